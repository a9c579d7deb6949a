package allreduce

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// BenchmarkAllReduce runs float32 all-reduces between N rings in this
// process on loopback, for each data path (bulk streams over Unix sockets,
// bulk streams over TCP, gRPC messages over TCP), and reports the
// nccl-tests bandwidths: algbw = bytes/time and busbw = algbw*2(N-1)/N, in
// GB/s (1e9 bytes/s).
func BenchmarkAllReduce(b *testing.B) {
	for _, tc := range transports {
		if !strings.HasPrefix(tc.name, "tcp/") {
			continue
		}
		b.Run("path="+strings.TrimPrefix(tc.name, "tcp/"), func(b *testing.B) { benchAllReduce(b, tc) })
	}
}

func benchAllReduce(b *testing.B, tc transportCase) {
	sizes := []struct {
		name  string
		bytes int
	}{{"64KiB", 64 << 10}, {"1MiB", 1 << 20}, {"16MiB", 16 << 20}, {"64MiB", 64 << 20}}
	for _, n := range []int{2, 4} {
		for _, sz := range sizes {
			b.Run(fmt.Sprintf("N=%d,bytes=%s", n, sz.name), func(b *testing.B) {
				c := startCase(b, tc, n)
				rings := c.newRings(1, nil)
				bufs := inputs[float32](11, n, sz.bytes/4)
				ctx := context.Background()
				step := uint64(0)
				run := func() {
					step++
					var wg sync.WaitGroup
					for r := range n {
						wg.Add(1)
						go func() {
							defer wg.Done()
							if err := rings[r].AllReduceFloat32(ctx, rings[r].Tag(step, 0), bufs[r]); err != nil {
								b.Error(err)
							}
						}()
					}
					wg.Wait()
				}
				run() // open the streams
				b.SetBytes(int64(sz.bytes))
				b.ResetTimer()
				for b.Loop() {
					run()
				}
				b.StopTimer()
				sec := b.Elapsed().Seconds() / float64(b.N)
				algbw := float64(sz.bytes) / sec / 1e9
				b.ReportMetric(algbw, "GB/s-algbw")
				b.ReportMetric(algbw*2*float64(n-1)/float64(n), "GB/s-busbw")
				b.ReportMetric(sec*1e6, "us/call")
			})
		}
	}
}
