package allreduce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestPeerKilledMidCall stops one rank's server and ring while its call is
// in progress (its receiving goroutine is held after its first piece, so
// the kill is certain to land mid-operation). Every other rank must return
// an error, found through the broken streams rather than the (long)
// timeout.
//
// Small pieces are copied into gRPC's buffers; pieces of 64 KiB are sent
// from the caller's buffer, which a failed call must hand back only once
// gRPC has let go of it (the race detector checks that).
func TestPeerKilledMidCall(t *testing.T) {
	for _, tc := range transports {
		for _, piece := range []int{MinPieceBytes, 64 << 10} {
			t.Run(fmt.Sprintf("%s/piece=%d", tc.name, piece), func(t *testing.T) {
				testPeerKilledMidCall(t, tc, piece)
			})
		}
	}
}

func testPeerKilledMidCall(t *testing.T, tc transportCase, piece int) {
	const n, victim = 4, 2
	c := startCase(t, tc, n)
	rings := c.newRings(1, func(cfg *Config) {
		cfg.PieceBytes = piece
		cfg.Timeout = time.Minute
	})
	reached, release := make(chan struct{}), make(chan struct{})
	var once, releaseOnce sync.Once
	rings[victim].testHookReceived = func(int) {
		once.Do(func() { close(reached) })
		<-release
	}
	// A failed check below must not leave the victim's call parked in the
	// hook: the cluster's cleanup (registered earlier, so run later) closes
	// the victim's ring, which waits for that call.
	releaseVictim := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseVictim)
	in := inputs[float32](6, n, 50_000)
	bufs := clone2(in)
	errs := make(chan error, n)
	for r := range n {
		go func() {
			errs <- fmt.Errorf("rank %d: %w", r, rings[r].AllReduceFloat32(context.Background(), rings[r].Tag(1, 0), bufs[r]))
		}()
	}
	<-reached
	c.servers[victim].Stop()
	closed := make(chan struct{})
	go func() { rings[victim].Close(); close(closed) }()
	named := 0
	var survivors []error
	for range n - 1 {
		err := <-errs
		survivors = append(survivors, err)
		if errors.Unwrap(err) == nil {
			t.Fatalf("%v: survivor returned nil after rank %d was killed", err, victim)
		}
		if errors.Is(err, ErrTimeout) {
			t.Fatalf("survivor waited for the timeout instead of seeing the broken stream: %v", err)
		}
		var pe *PeerError
		if errors.As(err, &pe) {
			if !errors.Is(err, ErrPeer) || pe.Addr != c.addrs()[pe.Rank] {
				t.Fatalf("PeerError %+v: not ErrPeer or address not that of rank %d", pe, pe.Rank)
			}
			if pe.Rank == victim {
				named++
			}
		}
	}
	// The victim's neighbours see its streams break first and name it, so
	// that a worker can report the right peer.
	if named == 0 {
		t.Fatalf("no survivor's error names rank %d as the broken peer: %v", victim, survivors)
	}
	// The survivors' buffers are theirs again: writing them must not
	// race with gRPC still sending from them.
	for r := range n {
		if r != victim {
			clear(bufs[r])
		}
	}
	releaseVictim()
	if err := <-errs; errors.Unwrap(err) == nil {
		t.Fatalf("killed rank's own call returned nil")
	}
	<-closed
	// Every survivor's ring is broken for good.
	for r := range n {
		if r == victim {
			continue
		}
		err := rings[r].AllReduceFloat32(context.Background(), rings[r].Tag(2, 0), make([]float32, 3))
		if !errors.Is(err, ErrBroken) {
			t.Fatalf("rank %d: call after failure returned %v, want ErrBroken", r, err)
		}
	}
}

// TestHungPeer: one rank builds its ring but never calls. The others fail
// with ErrTimeout (or, having seen a neighbour fail, ErrPeer) instead of
// waiting forever.
func TestHungPeer(t *testing.T) {
	for _, registered := range []bool{true, false} {
		t.Run(fmt.Sprintf("ring-registered=%v", registered), func(t *testing.T) {
			const n, hung = 3, 1
			c := startServers(t, NewMemTransport(), n)
			var rings []*Ring
			for r := range n {
				cfg := DefaultConfig()
				cfg.Job, cfg.Generation, cfg.Members, cfg.Rank = "job", 1, c.addrs(), r
				cfg.Transport, cfg.Timeout = c.tr, 300*time.Millisecond
				if r == hung && !registered {
					rings = append(rings, nil)
					continue
				}
				ring, err := NewRing(c.servers[r].Service(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				c.rings = append(c.rings, ring)
				rings = append(rings, ring)
			}
			in := inputs[float32](7, n, 5_000)
			errs := runAll(n, func(r int) error {
				if r == hung {
					return nil
				}
				return rings[r].AllReduceFloat32(context.Background(), rings[r].Tag(1, 0), clone2(in)[r])
			})
			timeouts := 0
			for r, err := range errs {
				if r == hung {
					continue
				}
				if err == nil {
					t.Fatalf("rank %d returned nil with rank %d hung", r, hung)
				}
				if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrPeer) {
					t.Fatalf("rank %d: %v, want ErrTimeout or ErrPeer", r, err)
				}
				if errors.Is(err, ErrTimeout) {
					timeouts++
				}
			}
			if timeouts == 0 {
				t.Fatalf("no rank reported ErrTimeout: %v", errs)
			}
		})
	}
}

// TestContextCancelled: one rank's ctx is cancelled mid-call; it returns
// the ctx's error and the others fail through the broken ring.
func TestContextCancelled(t *testing.T) {
	const n = 3
	c := startServers(t, NewMemTransport(), n)
	rings := c.newRings(1, func(cfg *Config) {
		cfg.PieceBytes = MinPieceBytes
		cfg.Timeout = time.Minute
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	// Cancel after the first piece, and hold the receiver until the ring
	// has seen the cancellation (it is noticed asynchronously), so that the
	// call cannot complete in between.
	rings[0].testHookReceived = func(int) {
		once.Do(func() {
			cancel()
			<-rings[0].ctx.Done()
		})
	}
	in := inputs[float32](8, n, 20_000)
	errs := runAll(n, func(r int) error {
		cctx := context.Background()
		if r == 0 {
			cctx = ctx
		}
		return rings[r].AllReduceFloat32(cctx, rings[r].Tag(1, 0), clone2(in)[r])
	})
	if !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("rank 0: %v, want context.Canceled", errs[0])
	}
	for r := 1; r < n; r++ {
		if errs[r] == nil || errors.Is(errs[r], ErrTimeout) {
			t.Fatalf("rank %d: %v, want a peer failure (all: %v)", r, errs[r], errs)
		}
	}
}

// TestStaleGenerationRefused: a ring of an old generation cannot open its
// stream to a worker that already serves a newer one; the refusal is
// counted, and the new generation's all-reduce is unaffected.
func TestStaleGenerationRefused(t *testing.T) {
	c := startServers(t, TCP(), 2)
	old := c.newRings(1, nil)
	old[1].Close()
	cur := c.newRings(2, nil)
	err := old[0].AllReduceFloat32(context.Background(), old[0].Tag(1, 0), []float32{1, 2, 3})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("old generation call: %v, want ErrRefused", err)
	}
	if got := c.servers[1].Service().Refused(); got != 1 {
		t.Fatalf("rank 1 refused %d streams, want 1", got)
	}
	in := inputs[float32](9, 2, 1001)
	out, err := allReduceAll(context.Background(), cur, 1, 0, in)
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, in, out)
}

func TestClosedRing(t *testing.T) {
	c := startServers(t, NewMemTransport(), 2)
	rings := c.newRings(1, nil)
	rings[0].Close()
	err := rings[0].AllReduceFloat32(context.Background(), rings[0].Tag(1, 0), []float32{1})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("call on closed ring: %v, want ErrClosed", err)
	}
	if _, err := NewRing(c.servers[1].Service(), rings[1].cfg); !errors.Is(err, ErrDuplicateRing) {
		t.Fatalf("second ring for the same generation: %v, want ErrDuplicateRing", err)
	}
}
