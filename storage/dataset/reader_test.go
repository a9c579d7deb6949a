package dataset

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/order"
	"github.com/dsae/dsae/storage/storetest"
)

// ingestTestDataset publishes a rows×d dataset in a memStore.
func ingestTestDataset(t testing.TB, rows, d int, opt IngestOptions) (*storetest.MemStore, *Manifest, []float32) {
	t.Helper()
	dir := t.TempDir()
	x := testMatrix(11, rows, d)
	p := writeNPYf32(t, dir, "x.npy", x, rows, d)
	store := storetest.NewMemStore()
	m, err := Ingest(context.Background(), store, "rd", []string{p}, opt)
	if err != nil {
		t.Fatal(err)
	}
	return store, m, x
}

// ingestLabelled publishes a rows×3 dataset (matrix seed seed) whose row
// i has label i mod classes, in chunks of 10 rows and shards of 100.
func ingestLabelled(t *testing.T, seed uint64, rows, classes int) (*storetest.MemStore, *Manifest, []float32) {
	t.Helper()
	dir := t.TempDir()
	x := testMatrix(seed, rows, 3)
	var lx []byte
	for i := range rows {
		lx = le.AppendUint32(lx, uint32(i%classes))
	}
	xp := writeNPYf32(t, dir, "x.npy", x, rows, 3)
	lp := writeFile(t, t.TempDir(), "l.npy", npyFile("<i4", lx, int64(rows)))
	store := storetest.NewMemStore()
	m, err := Ingest(context.Background(), store, "lab", []string{xp}, IngestOptions{ChunkRows: 10, ShardRows: 100, TempDir: dir, Labels: []string{lp}})
	if err != nil {
		t.Fatal(err)
	}
	return store, m, x
}

// epochRows reads one epoch as `workers` workers taking contiguous slices
// of each global batch, checks every row against the source, and returns
// the bytes fetched by all workers.
func epochRows(t *testing.T, store storage.ObjectStore, m *Manifest, x []float32, seed uint64, epoch int64, batch, workers int) int64 {
	t.Helper()
	ctx := context.Background()
	o := order.NewEpochOrder(m.Layout(), seed, epoch)
	d := m.D
	var fetched int64
	seen := make([]bool, m.Rows)
	for r := 0; r < workers; r++ {
		rd := NewReader(store, m, ReaderOptions{})
		buf := make([]float32, batch*d)
		for s := int64(0); s*int64(batch) < o.Len(); s++ {
			// DESIGN §4: rank r of N takes its contiguous 1/N of batch s.
			b := min(int64(batch), o.Len()-s*int64(batch))
			lo := s*int64(batch) + int64(r)*b/int64(workers)
			hi := s*int64(batch) + int64(r+1)*b/int64(workers)
			n, err := rd.ReadStep(ctx, o, batch, s, r, workers, buf, nil)
			if err != nil {
				t.Fatal(err)
			}
			if int64(n) != hi-lo {
				t.Fatalf("step %d rank %d: %d rows, want %d", s, r, n, hi-lo)
			}
			ids := o.Rows(lo, hi-lo, nil)
			for i, id := range ids {
				if seen[id] {
					t.Fatalf("row %d read twice", id)
				}
				seen[id] = true
				if !slices.Equal(buf[i*d:(i+1)*d], x[id*int64(d):(id+1)*int64(d)]) {
					t.Fatalf("position %d: row %d data differs from the source", lo+int64(i), id)
				}
			}
		}
		fetched += rd.Stats().BytesFetched
		rd.Close()
	}
	for id, ok := range seen {
		if !ok {
			t.Fatalf("row %d never read", id)
		}
	}
	return fetched
}

func TestReaderEpochSingleWorker(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store, m, x := ingestTestDataset(t, 2000, 9, IngestOptions{ShardRows: 700, ChunkRows: 16})
	for epoch := int64(0); epoch < 2; epoch++ {
		fetched := epochRows(t, store, m, x, 5, epoch, 100, 1)
		// Every data byte exactly once: the cache holds the chunk a batch
		// boundary splits.
		if dataBytes := m.Rows * int64(m.D) * 4; fetched != dataBytes {
			t.Fatalf("epoch %d: fetched %d bytes, dataset rows hold %d", epoch, fetched, dataBytes)
		}
	}
}

func TestReaderEpochSeveralWorkers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store, m, x := ingestTestDataset(t, 3000, 5, IngestOptions{ShardRows: 1000, ChunkRows: 8})
	const batch, workers = 960, 4
	// Uneven shares (101 rows, 3 ranks) read every row exactly once too.
	epochRows(t, store, m, x, 9, 0, 101, 3)
	fetched := epochRows(t, store, m, x, 9, 1, batch, workers)
	// Each worker's slice of a batch (240 rows) can share at most one chunk
	// with each neighbour, so at most 2 extra chunks per slice.
	dataBytes := m.Rows * int64(m.D) * 4
	steps := (m.Rows + batch - 1) / batch
	bound := dataBytes + steps*workers*2*int64(m.ChunkRows*m.D*4)
	if fetched < dataBytes || fetched > bound {
		t.Fatalf("fetched %d bytes for %d data bytes; want within [%d, %d]", fetched, dataBytes, dataBytes, bound)
	}
	t.Logf("bytes fetched / dataset bytes = %.4f", float64(fetched)/float64(m.DataBytes()))
}

func TestReaderPrefetchAndLabels(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store, m, x := ingestLabelled(t, 12, 300, 10)
	rd := NewReader(store, m, ReaderOptions{Prefetch: 8, Cache: 4})
	defer rd.Close()
	o := order.NewEpochOrder(m.Layout(), 1, 0)
	rd.Prefetch(o, 0, 50) // five chunks
	deadline := time.Now().Add(10 * time.Second)
	for rd.Stats().ChunksFetched < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("prefetch did not complete: %+v", rd.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	before := rd.Stats()
	if before.BytesFetched != 50*3*4 || before.LabelBytesFetched != 50*4 {
		t.Fatalf("prefetching 50 rows fetched %+v", before)
	}
	buf := make([]float32, 50*3)
	labels := make([]int32, 50)
	if err := rd.ReadPositions(context.Background(), o, 0, 50, buf, labels); err != nil {
		t.Fatal(err)
	}
	after := rd.Stats()
	if after.BytesFetched != before.BytesFetched || after.LabelBytesFetched != before.LabelBytesFetched || after.CacheHits-before.CacheHits != 5 {
		t.Fatalf("reading prefetched rows fetched more: before %+v after %+v", before, after)
	}
	for i, id := range o.Rows(0, 50, nil) {
		if labels[i] != int32(id%10) || buf[3*i] != x[3*id] {
			t.Fatalf("position %d (row %d): label %d value %v", i, id, labels[i], buf[3*i])
		}
	}
}

// ReadRows in batches that split chunks and cross shard boundaries returns
// every row and label once in storage order, fetches each chunk once, and
// never holds more than Prefetch + Cache chunks.
func TestReaderReadRowsStorageOrder(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const rows, d, batch = 300, 3, 37
	store := storetest.NewMemStore()
	dir := t.TempDir()
	x := testMatrix(13, rows, d)
	var lx []byte
	for i := range rows {
		lx = le.AppendUint32(lx, uint32(i%7))
	}
	xp := writeNPYf32(t, dir, "x.npy", x, rows, d)
	lp := writeFile(t, t.TempDir(), "l.npy", npyFile("<i4", lx, 300))
	// Shards of 110, 110 and 80 rows in chunks of 16: each shard ends with a short chunk.
	m, err := Ingest(context.Background(), store, "rows", []string{xp}, IngestOptions{ChunkRows: 16, ShardRows: 110, TempDir: dir, Labels: []string{lp}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Shards) != 3 {
		t.Fatalf("%d shards, want 3", len(m.Shards))
	}
	opt := ReaderOptions{Prefetch: 3, Cache: 2}
	rd := NewReader(store, m, opt)
	defer rd.Close()
	buf := make([]float32, batch*d)
	labels := make([]int32, batch)
	for lo := int64(0); lo < rows; lo += batch {
		n := min(batch, rows-lo)
		if err := rd.ReadRows(context.Background(), lo, n, buf, labels[:n]); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(buf[:n*d], x[lo*d:(lo+n)*d]) {
			t.Fatalf("rows [%d, %d) differ from the source", lo, lo+n)
		}
		for i, l := range labels[:n] {
			if l != int32((lo+int64(i))%7) {
				t.Fatalf("row %d: label %d, want %d", lo+int64(i), l, (lo+int64(i))%7)
			}
		}
		rd.mu.Lock()
		held := len(rd.entries)
		rd.mu.Unlock()
		if held > opt.Prefetch+opt.Cache {
			t.Fatalf("after rows [%d, %d): %d chunks held, want at most %d", lo, lo+n, held, opt.Prefetch+opt.Cache)
		}
	}
	st := rd.Stats()
	if st.ChunksFetched != 7+7+5 || st.BytesFetched != rows*d*4 || st.LabelBytesFetched != rows*4 {
		t.Fatalf("one pass fetched %+v; want each of the 19 chunks once (%d row bytes)", st, rows*d*4)
	}
}

func TestReaderCorruptChunk(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store, m, _ := ingestTestDataset(t, 200, 4, IngestOptions{ShardRows: 100, ChunkRows: 10})
	// Flip one byte in row 57 of shard 1: chunk 5 of shard 1.
	key := m.Shards[1].Key
	store.Update(key, func(b []byte) []byte { b[m.Shards[1].DataOffset+57*4*4+3] ^= 0x40; return b })
	rd := NewReader(store, m, ReaderOptions{})
	defer rd.Close()
	_, err := rd.Load(context.Background())
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v, want ErrCorrupt", err)
	}
	for _, want := range []string{"dataset rd", "shard 1", key, "chunk 5", "rows 50-59"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, want)
		}
	}
	// Chunks elsewhere still read.
	o := order.NewEpochOrder(m.Layout(), 0, 0)
	for i := int64(0); i < o.NumChunks(); i++ {
		c := o.ChunkAt(i)
		err := rd.ReadPositions(context.Background(), o, c.Pos, int64(c.Rows), make([]float32, c.Rows*4), nil)
		if bad := c.Shard == 1 && c.Start == 50; bad != (err != nil) {
			t.Fatalf("chunk %+v: error %v", c, err)
		}
	}
}

func TestReaderMissingShard(t *testing.T) {
	store, m, _ := ingestTestDataset(t, 50, 2, IngestOptions{ShardRows: 25, ChunkRows: 5})
	store.Delete(context.Background(), m.Shards[1].Key)
	rd := NewReader(store, m, ReaderOptions{})
	defer rd.Close()
	_, err := rd.Load(context.Background())
	if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "shard 1") {
		t.Fatalf("error %v, want ErrNotFound naming shard 1", err)
	}
}

func BenchmarkReaderEpoch(b *testing.B) {
	for _, tc := range []struct{ rows, d, chunk int }{{20000, 784, 32}, {20000, 784, 256}} {
		b.Run(fmt.Sprintf("rows=%d,d=%d,chunk=%d,B=256", tc.rows, tc.d, tc.chunk), func(b *testing.B) {
			store, m, _ := ingestTestDataset(b, tc.rows, tc.d, IngestOptions{ChunkRows: tc.chunk})
			buf := make([]float32, 256*tc.d)
			var rows int64
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				rd := NewReader(store, m, ReaderOptions{})
				o := order.NewEpochOrder(m.Layout(), 1, int64(i))
				for pos := int64(0); pos < o.Len(); pos += 256 {
					n := min(256, o.Len()-pos)
					rd.Prefetch(o, pos+n, 256*4)
					if err := rd.ReadPositions(context.Background(), o, pos, n, buf, nil); err != nil {
						b.Fatal(err)
					}
					rows += n
				}
				rd.Close()
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

func TestReaderConcurrentReadsAndDropUnread(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store, m, x := ingestTestDataset(t, 1200, 3, IngestOptions{ShardRows: 500, ChunkRows: 10})
	rd := NewReader(store, m, ReaderOptions{Prefetch: 4, Cache: 2, Concurrency: 3})
	defer rd.Close()
	o := order.NewEpochOrder(m.Layout(), 4, 2)

	// The prefetch budget: four unread chunks, then no more until they are
	// read or dropped.
	if rd.Prefetch(o, 0, 100) {
		t.Fatal("Prefetch of 10 chunks fit a budget of 4")
	}
	if !rd.Prefetch(o, 0, 40) {
		t.Fatal("the first four chunks are not held or in flight")
	}
	rd.DropUnread()
	if !rd.Prefetch(o, 600, 40) {
		t.Fatal("DropUnread did not free the prefetch budget")
	}

	// Concurrent readers of disjoint ranges get the right rows.
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			lo, n := int64(g*300), int64(300)
			buf := make([]float32, n*3)
			if err := rd.ReadPositions(context.Background(), o, lo, n, buf, nil); err != nil {
				errs <- err
				return
			}
			for i, id := range o.Rows(lo, n, nil) {
				if !slices.Equal(buf[3*i:3*i+3], x[3*id:3*id+3]) {
					errs <- fmt.Errorf("position %d: wrong row", lo+int64(i))
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadStepDropsPrefetchOnNewShare: after the membership changes, the
// chunks prefetched for the old share no longer hold the prefetch budget.
func TestReadStepDropsPrefetchOnNewShare(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store, m, _ := ingestTestDataset(t, 400, 2, IngestOptions{ChunkRows: 10})
	rd := NewReader(store, m, ReaderOptions{Prefetch: 4})
	defer rd.Close()
	o := order.NewEpochOrder(m.Layout(), 1, 0)
	buf := make([]float32, 40*2)
	held := func() map[int64]bool {
		rd.mu.Lock()
		defer rd.mu.Unlock()
		out := map[int64]bool{}
		for idx, e := range rd.entries {
			if !e.read {
				out[idx] = true
			}
		}
		return out
	}
	if _, err := rd.ReadStep(context.Background(), o, 40, 0, 0, 1, buf, nil); err != nil {
		t.Fatal(err)
	}
	before := held() // step 1's four chunks
	if len(before) != 4 {
		t.Fatalf("%d chunks prefetched, want the budget of 4", len(before))
	}
	if _, err := rd.ReadStep(context.Background(), o, 40, 5, 1, 2, buf, nil); err != nil {
		t.Fatal(err)
	}
	after := held()
	for idx := range before {
		if after[idx] {
			t.Fatalf("chunk %d prefetched for the old share is still held", idx)
		}
	}
	// The new share's next steps were prefetched instead.
	lo, hi := order.BatchSlice(o.Len(), 40, 6, 1, 2)
	for _, c := range o.Chunks(lo, hi-lo) {
		if !after[c.Index] {
			t.Fatalf("chunk %d of the next step of the new share not prefetched (held %v)", c.Index, after)
		}
	}
}

// A Reader with SkipLabels reads the same rows of a labelled dataset
// without fetching a byte of its labels.
func TestReaderSkipLabels(t *testing.T) {
	store, m, x := ingestLabelled(t, 13, 200, 7)
	rd := NewReader(store, m, ReaderOptions{SkipLabels: true})
	defer rd.Close()
	o := order.NewEpochOrder(m.Layout(), 2, 0)
	buf := make([]float32, 64*3)
	n, err := rd.ReadStep(context.Background(), o, 64, 1, 0, 1, buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range o.Rows(64, int64(n), nil) {
		if buf[3*i] != x[3*id] {
			t.Fatalf("position %d (row %d): %v, want %v", i, id, buf[3*i], x[3*id])
		}
	}
	if st := rd.Stats(); st.LabelBytesFetched != 0 || st.BytesFetched == 0 {
		t.Fatalf("stats %+v: want row bytes and no label bytes", st)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("asking a SkipLabels reader for labels did not panic")
		}
	}()
	rd.ReadPositions(context.Background(), o, 0, 1, buf, make([]int32, 1))
}

// TestReaderRecyclesChunkBuffers: over several epochs with a small cache,
// chunks leaving the Reader lend their buffers to later fetches, while
// concurrent readers of overlapping ranges (so chunks are evicted or
// dropped while others wait on them or copy from them) and DropUnread calls
// still get exactly the source rows. Run with -race.
func TestReaderRecyclesChunkBuffers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store, m, x := ingestTestDataset(t, 997, 3, IngestOptions{ShardRows: 400, ChunkRows: 16})
	rd := NewReader(store, m, ReaderOptions{Prefetch: 3, Cache: 1, Concurrency: 2})
	defer rd.Close()
	const d = 3
	for epoch := int64(0); epoch < 4; epoch++ {
		o := order.NewEpochOrder(m.Layout(), 9, epoch)
		errs := make(chan error, 5)
		for g := 0; g < 4; g++ {
			go func() {
				// Overlapping windows walking the epoch in steps of 37 rows.
				for lo := int64(g * 11); lo < o.Len(); lo += 37 {
					n := min(int64(50), o.Len()-lo)
					buf := make([]float32, n*d)
					if err := rd.ReadPositions(context.Background(), o, lo, n, buf, nil); err != nil {
						errs <- err
						return
					}
					for i, id := range o.Rows(lo, n, nil) {
						if !slices.Equal(buf[d*i:d*i+d], x[d*id:d*id+d]) {
							errs <- fmt.Errorf("epoch %d position %d: row %d differs from the source", epoch, lo+int64(i), id)
							return
						}
					}
				}
				errs <- nil
			}()
		}
		go func() {
			for i := 0; i < 20; i++ {
				rd.Prefetch(o, int64(i*40)%o.Len(), 40)
				rd.DropUnread()
				time.Sleep(100 * time.Microsecond)
			}
			errs <- nil
		}()
		for range 5 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	st := rd.Stats()
	if st.BuffersReused == 0 || st.BuffersReused > st.ChunksFetched {
		t.Fatalf("%d of %d chunk fetches reused a buffer; want some, and no more than the fetches", st.BuffersReused, st.ChunksFetched)
	}
	t.Logf("%d of %d chunk fetches reused a buffer", st.BuffersReused, st.ChunksFetched)
}
