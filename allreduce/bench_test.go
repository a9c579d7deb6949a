package allreduce

import (
	"context"
	"fmt"
	"net"
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

// BenchmarkSocketStream is the floor under the bulk path: one goroutine
// writes 2 MiB buffers to a loopback socket and another reads them in
// bulkReadBytes parts, with the socket settings the bulk path uses (Unix
// socket buffers of unixSocketBuffer; TCP left to the kernel's autotuning).
func BenchmarkSocketStream(b *testing.B) {
	for _, network := range []string{"tcp", "unix"} {
		b.Run("net="+network+",write=2MiB,read=256KiB", func(b *testing.B) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = b.TempDir() + "/s.sock"
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					accepted <- nil
					return
				}
				accepted <- c
			}()
			w, err := net.Dial(network, ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			r := <-accepted
			if r == nil {
				b.Fatal("accept failed")
			}
			defer r.Close()
			if network == "unix" {
				for _, c := range []net.Conn{w, r} {
					c.(*net.UnixConn).SetReadBuffer(unixSocketBuffer)
					c.(*net.UnixConn).SetWriteBuffer(unixSocketBuffer)
				}
			}
			src := make([]byte, 2<<20)
			for i := range src {
				src[i] = byte(i * 7)
			}
			done := make(chan error, 1)
			go func() {
				dst := make([]byte, bulkReadBytes)
				var err error
				for range b.N {
					for got := 0; got < len(src) && err == nil; {
						var n int
						n, err = r.Read(dst[:min(len(dst), len(src)-got)])
						got += n
					}
				}
				done <- err
			}()
			b.SetBytes(int64(len(src)))
			b.ResetTimer()
			for range b.N {
				if _, err := w.Write(src); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(src))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
