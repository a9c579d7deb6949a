package allreduce

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dsae/dsae/allreduce/ringpb"
	"google.golang.org/grpc"
)

// cluster is n workers, each with its own gRPC server and Service, on one
// transport, with one ring per worker for one generation.
type cluster struct {
	t       testing.TB
	tr      Transport
	path    DataPath
	servers []*Server
	rings   []*Ring
}

// transportCase is a transport and a data path; unix says whether servers
// offer Unix sockets for bulk streams (TCP only).
type transportCase struct {
	name string
	new  func() Transport
	path DataPath
	unix bool
}

var transports = []transportCase{
	{"tcp/bulk-unix", func() Transport { return TCP() }, DataBulk, true},
	{"tcp/bulk-tcp", func() Transport { return TCP() }, DataBulk, false},
	{"tcp/grpc", func() Transport { return TCP() }, DataGRPC, false},
	{"mem/bulk", func() Transport { return NewMemTransport() }, DataBulk, false},
	{"mem/grpc", func() Transport { return NewMemTransport() }, DataGRPC, false},
}

// startServers starts n servers with the default data path (bulk, with
// Unix sockets); rings are added with newRings.
func startServers(t testing.TB, tr Transport, n int) *cluster {
	t.Helper()
	return startCluster(t, tr, DataBulk, n)
}

// startCase starts n servers for a transportCase.
func startCase(t testing.TB, tc transportCase, n int, opts ...ServiceOption) *cluster {
	t.Helper()
	if !tc.unix {
		opts = append(opts, WithUnixSockets(""))
	}
	return startCluster(t, tc.new(), tc.path, n, opts...)
}

func startCluster(t testing.TB, tr Transport, path DataPath, n int, opts ...ServiceOption) *cluster {
	t.Helper()
	c := &cluster{t: t, tr: tr, path: path}
	for range n {
		s, err := StartServer(tr, "127.0.0.1:0", NewService(opts...))
		if err != nil {
			t.Fatalf("start server: %v", err)
		}
		c.servers = append(c.servers, s)
	}
	t.Cleanup(c.stop)
	return c
}

// checkDataPath checks what carried the pieces of rings: for the bulk path,
// a Unix socket or TCP connection (or an in-memory one) on every lane; for
// the gRPC path, no bulk connection.
func checkDataPath(t *testing.T, tc transportCase, rings []*Ring) {
	t.Helper()
	for r, ring := range rings {
		if ring.n == 1 {
			continue
		}
		for _, l := range ring.lanes {
			c := l.bulkOut
			var ok bool
			switch {
			case tc.path == DataGRPC:
				ok = c == nil
			case tc.name == "tcp/bulk-unix":
				_, ok = c.(*net.UnixConn)
			case tc.name == "tcp/bulk-tcp":
				_, ok = c.(*net.TCPConn)
			default:
				ok = c != nil
			}
			if !ok {
				t.Fatalf("%s: rank %d lane %d sent on %T", tc.name, r, l.idx, c)
			}
		}
	}
}

func (c *cluster) addrs() []string {
	a := make([]string, len(c.servers))
	for i, s := range c.servers {
		a[i] = s.Addr()
	}
	return a
}

// newRings builds one ring per server for generation gen.
func (c *cluster) newRings(gen uint64, edit func(*Config)) []*Ring {
	c.t.Helper()
	rings := make([]*Ring, len(c.servers))
	for i, s := range c.servers {
		cfg := DefaultConfig()
		cfg.Job, cfg.Generation, cfg.Members, cfg.Rank = "job", gen, c.addrs(), i
		cfg.Transport, cfg.DataPath = c.tr, c.path
		cfg.Timeout = 20 * time.Second
		if edit != nil {
			edit(&cfg)
		}
		r, err := NewRing(s.Service(), cfg)
		if err != nil {
			c.t.Fatalf("NewRing rank %d: %v", i, err)
		}
		rings[i] = r
	}
	c.rings = append(c.rings, rings...)
	return rings
}

// closeAll closes rings concurrently, as separate workers would.
func closeAll(rings []*Ring) {
	runAll(len(rings), func(i int) error {
		if rings[i] != nil {
			rings[i].Close()
		}
		return nil
	})
}

func (c *cluster) stop() {
	closeAll(c.rings)
	for _, s := range c.servers {
		s.Stop()
	}
}

// runAll calls f for every rank concurrently and returns the errors.
func runAll(n int, f func(rank int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errs
}

// inputs returns n seeded buffers of length l with values of mixed sign
// and magnitude, so that summation order shows in the low bits.
func inputs[T elem](seed uint64, n, l int) [][]T {
	rng := rand.New(rand.NewPCG(seed, uint64(n*1_000_003+l)))
	bufs := make([][]T, n)
	for r := range bufs {
		bufs[r] = make([]T, l)
		for i := range bufs[r] {
			bufs[r][i] = T((rng.Float64()*2 - 1) * math.Pow(10, float64(rng.IntN(7)-3)))
		}
	}
	return bufs
}

// checkSums compares every rank's result with a float64 reference sum of
// the inputs, within the rounding error of n-1 additions in T, and checks
// that all ranks hold the same bits.
func checkSums[T elem](t *testing.T, in, out [][]T) {
	t.Helper()
	eps := 0x1p-24
	if elemSize[T]() == 8 {
		eps = 0x1p-53
	}
	n := len(in)
	for i := range out[0] {
		var ref, mag float64
		for r := range n {
			ref += float64(in[r][i])
			mag += math.Abs(float64(in[r][i]))
		}
		tol := 2*float64(n)*eps*mag + 1e-300
		if got := float64(out[0][i]); math.Abs(got-ref) > tol {
			t.Fatalf("element %d: got %g, reference %g (tolerance %g)", i, got, ref, tol)
		}
	}
	want := hashOf(out[0])
	for r := 1; r < n; r++ {
		if got := hashOf(out[r]); got != want {
			t.Fatalf("rank %d result hash %x differs from rank 0's %x", r, got, want)
		}
	}
}

func hashOf[T elem](v []T) [32]byte {
	h := sha256.New()
	var b [8]byte
	for _, x := range v {
		if elemSize[T]() == 4 {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(float32(x)))
			h.Write(b[:4])
		} else {
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(float64(x)))
			h.Write(b[:])
		}
	}
	return [32]byte(h.Sum(nil))
}

func clone2[T any](in [][]T) [][]T {
	out := make([][]T, len(in))
	for i := range in {
		out[i] = append([]T(nil), in[i]...)
	}
	return out
}

// allReduceAll runs one all-reduce of copies of in on every ring.
func allReduceAll[T elem](ctx context.Context, rings []*Ring, step uint64, phase uint32, in [][]T) ([][]T, error) {
	out := clone2(in)
	errs := runAll(len(rings), func(r int) error {
		tag := rings[r].Tag(step, phase)
		switch b := any(out[r]).(type) {
		case []float32:
			return rings[r].AllReduceFloat32(ctx, tag, b)
		case []float64:
			return rings[r].AllReduceFloat64(ctx, tag, b)
		}
		return nil
	})
	for r, err := range errs {
		if err != nil {
			return out, fmt.Errorf("rank %d: %w", r, err)
		}
	}
	return out, nil
}

func isErr(err, target error) bool { return err != nil && errors.Is(err, target) }

// openStream opens a ring stream on client as a hand-played sender, sends
// the hello h and returns the stream with the receiver's first reply.
func openStream(ctx context.Context, client ringpb.RingClient, h *ringpb.Hello) (ringpb.Ring_StreamClient, *ringpb.Reply, error) {
	st, err := client.Stream(ctx, grpc.WaitForReady(true))
	if err != nil {
		return nil, nil, err
	}
	if err := st.Send(&ringpb.Frame{Kind: &ringpb.Frame_Hello{Hello: h}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	rep, err := st.Recv()
	if err != nil {
		return nil, nil, err
	}
	return st, rep, nil
}
