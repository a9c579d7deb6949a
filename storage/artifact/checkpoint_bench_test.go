package artifact

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/storetest"
)

// BenchmarkCheckpoint saves and loads checkpoints of 4M parameters (16 MiB)
// through the embedded server; op=put-raw is the yardstick: a plain Put and
// Get of the same number of bytes.
func BenchmarkCheckpoint(b *testing.B) {
	const n = 4 << 20
	e := storetest.StartS3(b, "")
	c, err := storage.NewClient(storetest.ClientConfig(e.Endpoint, "dsae"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := c.EnsureBucket(ctx); err != nil {
		b.Fatal(err)
	}
	cs, _ := NewCheckpointStore(c, "bench")
	ck := testCheckpoint(1, n)
	bytesPer := float64(4 * n)
	report := func(b *testing.B) {
		b.ReportMetric(bytesPer*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
	}
	b.Run(fmt.Sprintf("op=save,params=%d", n), func(b *testing.B) {
		b.SetBytes(4 * n)
		for i := 0; i < b.N; i++ {
			if _, err := cs.Save(ctx, ck); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run(fmt.Sprintf("op=load,params=%d", n), func(b *testing.B) {
		info, err := cs.Latest(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(4 * n)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := cs.Load(ctx, info); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	raw := float32Bytes(ck.Params)
	b.Run(fmt.Sprintf("op=put-raw,bytes=%d", len(raw)), func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for i := 0; i < b.N; i++ {
			if err := c.Put(ctx, "raw", bytes.NewReader(raw), int64(len(raw))); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run(fmt.Sprintf("op=get-raw,bytes=%d", len(raw)), func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for i := 0; i < b.N; i++ {
			rc, err := c.Get(ctx, "raw")
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, rc)
			rc.Close()
		}
		report(b)
	})
}
