package dataset

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/order"
	"github.com/dsae/dsae/storage/storetest"
)

// benchStores returns the stores the dataset benchmarks run against: the
// in-memory store (no network) and the embedded S3 server on loopback.
func benchStores(b *testing.B) map[string]func() storage.ObjectStore {
	return map[string]func() storage.ObjectStore{
		"mem": func() storage.ObjectStore { return storetest.NewMemStore() },
		"s3": func() storage.ObjectStore {
			e := storetest.StartS3(b, "")
			c, err := storage.NewClient(storetest.ClientConfig(e.Endpoint, "bench"))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.EnsureBucket(context.Background()); err != nil {
				b.Fatal(err)
			}
			return c
		},
	}
}

// BenchmarkIngest measures ingest throughput of a float32 .npy file.
func BenchmarkIngest(b *testing.B) {
	const rows, d = 16384, 784 // 51 MB
	for _, store := range []string{"mem", "s3"} {
		b.Run(fmt.Sprintf("store=%s,rows=%d,d=%d", store, rows, d), func(b *testing.B) {
			dir := b.TempDir()
			p := writeNPYf32(b, dir, "x.npy", testMatrix(1, rows, d), rows, d)
			st := benchStores(b)[store]()
			b.SetBytes(int64(rows) * d * 4)
			for b.Loop() {
				if _, err := Ingest(context.Background(), st, "bench", []string{p},
					IngestOptions{Overwrite: true, ShardRows: 4096, TempDir: dir}); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Reference: the same file uploaded as one object, unparsed.
		b.Run(fmt.Sprintf("store=%s,rows=%d,d=%d,reference=put", store, rows, d), func(b *testing.B) {
			dir := b.TempDir()
			p := writeNPYf32(b, dir, "x.npy", testMatrix(1, rows, d), rows, d)
			st := benchStores(b)[store]()
			b.SetBytes(int64(rows) * d * 4)
			for b.Loop() {
				f, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				fi, _ := f.Stat()
				if err := st.Put(context.Background(), "raw/x.npy", f, fi.Size()); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}

// BenchmarkShardGetS3 is the reference for BenchmarkReaderEpochS3: the
// same dataset's shards read whole and in order, one GET each.
func BenchmarkShardGetS3(b *testing.B) {
	const rows, d = 16100, 784
	b.Run(fmt.Sprintf("rows=%d,d=%d", rows, d), func(b *testing.B) {
		dir := b.TempDir()
		p := writeNPYf32(b, dir, "x.npy", testMatrix(1, rows, d), rows, d)
		st := benchStores(b)["s3"]()
		m, err := Ingest(context.Background(), st, "bench", []string{p}, IngestOptions{TempDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		var total int64
		for b.Loop() {
			for _, sh := range m.Shards {
				rc, err := st.Get(context.Background(), sh.Key)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
			total += m.Rows
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkReaderEpochS3 reads whole epochs from the embedded S3 server as
// W workers taking contiguous slices of B-row global batches with
// Reader.ReadStep, and reports rows/s and bytes fetched ÷ dataset bytes.
func BenchmarkReaderEpochS3(b *testing.B) {
	const rows, d = 16100, 784 // not a multiple of the chunk sizes: short chunks exist
	for _, tc := range []struct{ chunk, batch, workers int }{
		{32, 256, 1}, {128, 256, 1}, {128, 1024, 4}, {128, 1000, 4}, {128, 4000, 4}, {32, 1000, 4},
	} {
		b.Run(fmt.Sprintf("rows=%d,d=%d,chunk=%d,B=%d,W=%d", rows, d, tc.chunk, tc.batch, tc.workers), func(b *testing.B) {
			dir := b.TempDir()
			p := writeNPYf32(b, dir, "x.npy", testMatrix(1, rows, d), rows, d)
			st := benchStores(b)["s3"]()
			m, err := Ingest(context.Background(), st, "bench", []string{p}, IngestOptions{ChunkRows: tc.chunk, TempDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			var total, fetched int64
			epochs := 0
			for b.Loop() {
				total += readEpoch(b, st, m, uint64(epochs), tc.batch, tc.workers, &fetched)
				epochs++
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(fetched)/float64(epochs)/float64(m.DataBytes()), "fetched/dataset")
		})
	}
}

// readEpoch reads one epoch as workers concurrent readers and returns the
// rows read; bytes fetched are added to *fetched.
func readEpoch(b *testing.B, st storage.ObjectStore, m *Manifest, epoch uint64, batch, workers int, fetched *int64) int64 {
	o := order.NewEpochOrder(m.Layout(), 7, int64(epoch))
	errs := make(chan error, workers)
	bytes := make(chan int64, workers)
	for r := 0; r < workers; r++ {
		go func() {
			rd := NewReader(st, m, ReaderOptions{})
			defer rd.Close()
			buf := make([]float32, batch*m.D)
			for s := int64(0); s*int64(batch) < o.Len(); s++ {
				if _, err := rd.ReadStep(context.Background(), o, batch, s, r, workers, buf, nil); err != nil {
					errs <- err
					bytes <- 0
					return
				}
			}
			errs <- nil
			bytes <- rd.Stats().BytesFetched
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		*fetched += <-bytes
	}
	return o.Len()
}
