package allreduce

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestConformance runs the same all-reduces over every transport: N ranks,
// buffer lengths around N and around the piece size, float32 and float64,
// many calls on one ring.
func TestConformance(t *testing.T) {
	for _, tc := range transports {
		for _, n := range []int{1, 2, 3, 5, 8} {
			// Lanes: one, and more than some chunks have pieces.
			lanes := 1 + 2*(n%2)
			t.Run(fmt.Sprintf("%s/N=%d,lanes=%d", tc.name, n, lanes), func(t *testing.T) {
				t.Parallel()
				c := startCase(t, tc, n)
				// Small pieces so that chunks span several pieces.
				rings := c.newRings(1, func(cfg *Config) {
					cfg.PieceBytes = MinPieceBytes
					cfg.Lanes = lanes
				})
				lengths := []int{0, 1, 2, 3, 7, max(n-1, 0), n + 1, 255, 256, 257, 1000, 1<<16 + 3}
				ctx := context.Background()
				step := uint64(0)
				for _, l := range lengths {
					step++
					in32 := inputs[float32](1, n, l)
					out32, err := allReduceAll(ctx, rings, step, 0, in32)
					if err != nil {
						t.Fatalf("float32 length %d: %v", l, err)
					}
					checkSums(t, in32, out32)
					in64 := inputs[float64](2, n, l)
					out64, err := allReduceAll(ctx, rings, step, 1, in64)
					if err != nil {
						t.Fatalf("float64 length %d: %v", l, err)
					}
					checkSums(t, in64, out64)
				}
				checkDataPath(t, tc, rings)
				for r, s := range c.servers {
					if got := s.Service().Refused(); got != 0 {
						t.Errorf("rank %d refused %d messages in a clean run", r, got)
					}
				}
			})
		}
	}
}

// TestDefaultPieceSize covers the default configuration of each data path,
// where a chunk is sent in several default-sized pieces (2 MiB on the bulk
// path, 512 KiB through gRPC) spread over two lanes.
func TestDefaultPieceSize(t *testing.T) {
	for _, path := range []DataPath{DataBulk, DataGRPC} {
		t.Run(path.String(), func(t *testing.T) {
			c := startCluster(t, TCP(), path, 2)
			rings := c.newRings(1, func(cfg *Config) { cfg.Lanes = 2 })
			// Chunks of 2.5 default pieces and a bit.
			l := 2 * (5*Config{DataPath: path}.pieceBytes()/2/4 + 3)
			in := inputs[float32](3, 2, l)
			out, err := allReduceAll(context.Background(), rings, 1, 0, in)
			if err != nil {
				t.Fatal(err)
			}
			checkSums(t, in, out)
		})
	}
}

// TestIdenticalAcrossGenerations: a later generation with a different
// member order still gives every rank the same bits.
func TestIdenticalAcrossGenerations(t *testing.T) {
	c := startServers(t, NewMemTransport(), 4)
	in := inputs[float32](4, 4, 10_001)
	for gen := uint64(1); gen <= 3; gen++ {
		rings := c.newRings(gen, func(cfg *Config) { cfg.PieceBytes = 4 << 10 })
		out, err := allReduceAll(context.Background(), rings, 7, 0, in)
		if err != nil {
			t.Fatalf("generation %d: %v", gen, err)
		}
		checkSums(t, in, out)
		closeAll(rings)
	}
}

func TestTagRules(t *testing.T) {
	c := startServers(t, NewMemTransport(), 2)
	rings := c.newRings(5, nil)
	ctx := context.Background()
	buf := []float32{1, 2, 3}
	if err := rings[0].AllReduceFloat32(ctx, Tag{Job: "other", Generation: 5, Step: 1}, buf); !isErr(err, ErrBadTag) {
		t.Fatalf("other job: got %v, want ErrBadTag", err)
	}
	if err := rings[0].AllReduceFloat32(ctx, Tag{Job: "job", Generation: 4, Step: 1}, buf); !isErr(err, ErrBadTag) {
		t.Fatalf("other generation: got %v, want ErrBadTag", err)
	}
	in := inputs[float32](5, 2, 3)
	if _, err := allReduceAll(ctx, rings, 3, 1, in); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []Tag{rings[0].Tag(3, 1), rings[0].Tag(3, 0), rings[0].Tag(2, 9)} {
		if err := rings[0].AllReduceFloat32(ctx, tag, buf); !isErr(err, ErrBadTag) {
			t.Fatalf("%v after step 3 phase 1: got %v, want ErrBadTag", tag, err)
		}
	}
	// The ring is still usable after refusing bad tags.
	out, err := allReduceAll(ctx, rings, 4, 0, in)
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, in, out)
}

func TestSingleRankIsNoOp(t *testing.T) {
	c := startServers(t, NewMemTransport(), 1)
	rings := c.newRings(1, nil)
	buf := []float32{1.5, -2}
	if err := rings[0].AllReduceFloat32(context.Background(), rings[0].Tag(1, 0), buf); err != nil {
		t.Fatal(err)
	}
	if buf[0] != 1.5 || buf[1] != -2 {
		t.Fatalf("buffer changed: %v", buf)
	}
}

// TestCloseRightAfterCall: each rank closes its ring as soon as its own
// call returns; no neighbour's call may fail for it (a rank's last
// acknowledgement reaches the previous rank before the ring goes away).
func TestCloseRightAfterCall(t *testing.T) {
	c := startServers(t, TCP(), 3)
	for gen := uint64(1); gen <= 10; gen++ {
		rings := c.newRings(gen, func(cfg *Config) { cfg.Lanes = 1 + int(gen%2) })
		in := inputs[float32](gen, 3, int(gen)*1000)
		out := clone2(in)
		errs := runAll(3, func(r int) error {
			err := rings[r].AllReduceFloat32(context.Background(), rings[r].Tag(1, 0), out[r])
			rings[r].Close()
			return err
		})
		for r, err := range errs {
			if err != nil {
				t.Fatalf("generation %d rank %d: %v", gen, r, err)
			}
		}
		checkSums(t, in, out)
	}
}

// TestEarlyPiecesOfTheNextCall: rank 0 starts the next call and sends its
// first pieces while rank 1 has not started it yet; they wait in the
// stream (flow control) and are used, not refused, once rank 1 calls.
func TestEarlyPiecesOfTheNextCall(t *testing.T) {
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			c := startCase(t, tc, 2)
			rings := c.newRings(1, func(cfg *Config) { cfg.PieceBytes = MinPieceBytes })
			ctx := context.Background()
			in1 := inputs[float32](12, 2, 5000)
			out1, err := allReduceAll(ctx, rings, 1, 0, in1)
			if err != nil {
				t.Fatal(err)
			}
			checkSums(t, in1, out1)

			sent := make(chan struct{})
			var once sync.Once
			rings[0].testHookSent = func(tag Tag, _ int) {
				if tag.Step == 2 {
					once.Do(func() { close(sent) })
				}
			}
			in2 := inputs[float32](13, 2, 5000)
			out2 := clone2(in2)
			done0 := make(chan error, 1)
			go func() { done0 <- rings[0].AllReduceFloat32(ctx, rings[0].Tag(2, 0), out2[0]) }()
			<-sent // rank 1 is not in call 2 yet
			if err := rings[1].AllReduceFloat32(ctx, rings[1].Tag(2, 0), out2[1]); err != nil {
				t.Fatalf("rank 1: %v", err)
			}
			if err := <-done0; err != nil {
				t.Fatalf("rank 0: %v", err)
			}
			checkSums(t, in2, out2)
			for r, s := range c.servers {
				if got := s.Service().Refused(); got != 0 {
					t.Errorf("rank %d refused %d pieces", r, got)
				}
			}
		})
	}
}
