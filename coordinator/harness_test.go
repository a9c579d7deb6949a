package coordinator

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/coordinator/internal/faults"
)

// testSecret is the cluster secret of test clusters.
var testSecret = []byte("test-cluster-secret-0123456789")

// Test timings: short, but with margins for a loaded 2-core machine. With
// DSAE_TEST_RAFT=default the production defaults are used instead, to
// measure failover as deployed.
func testRaftTimings() RaftTimings {
	if os.Getenv("DSAE_TEST_RAFT") == "default" {
		d := DefaultRaftTimings()
		d.SnapshotThreshold = 64
		return d
	}
	return RaftTimings{Heartbeat: 400 * time.Millisecond, Election: 400 * time.Millisecond,
		LeaderLease: 200 * time.Millisecond, Commit: 20 * time.Millisecond, SnapshotThreshold: 64}
}

// testGossipTimings are short failure-detector timings; with
// DSAE_TEST_GOSSIP=default the production defaults are used instead, to
// measure detection times as deployed.
func testGossipTimings() client.GossipTimings {
	if os.Getenv("DSAE_TEST_GOSSIP") == "default" {
		return client.DefaultGossipTimings()
	}
	return client.GossipTimings{ProbeInterval: 200 * time.Millisecond, ProbeTimeout: 150 * time.Millisecond,
		GossipInterval: 50 * time.Millisecond, SuspicionMult: 2, PushPull: 2 * time.Second}
}

// waitTimeout is the deadline of every poll; conditions usually hold far sooner.
const waitTimeout = 20 * time.Second

// WaitFor polls cond every 20 ms until it holds or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cluster is a raft group of coordinators on loopback TCP, in the manner of
// hashicorp/raft's testing.go. nodes[i] is nil while node i is stopped.
type cluster struct {
	t       testing.TB
	cfgs    []Config
	nodes   []*Node
	parts   []*partitionLayer // node i's raft stream layer, for Partition
	logs    *syncBuffer
	workers map[string]*fakeWorker // in-process workers, by id
}

// MakeCluster starts n coordinators: the first bootstraps, the others join
// through it. It waits until all n are voters and every node knows a leader.
func MakeCluster(t testing.TB, n int) *cluster {
	t.Helper()
	return MakeClusterWith(t, n, nil)
}

// MakeClusterWith is MakeCluster with edit applied to every node's config.
func MakeClusterWith(t testing.TB, n int, edit func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, logs: &syncBuffer{}, workers: map[string]*fakeWorker{}}
	for i := 0; i < n; i++ {
		cfg := Config{
			ID: fmt.Sprintf("c%d", i+1), DataDir: t.TempDir(),
			RaftAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Registerer: testRegistry(),
			Auth: auth.Config{Secret: testSecret}, Raft: testRaftTimings(), Gossip: testGossipTimings(),
			Logger: slog.New(slog.NewJSONHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		}
		if i > 0 {
			cfg.Join = []string{c.nodes[0].GRPCAddr()}
		}
		if edit != nil {
			edit(&cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, nil)
		c.parts = append(c.parts, nil)
		c.Start(i)
		if i == 0 {
			c.Leader()
		}
	}
	t.Cleanup(c.Shutdown)
	c.WaitVoters(n)
	return c
}

// Start starts (or restarts, from its data dir and on its old addresses) node i.
func (c *cluster) Start(i int) *Node {
	c.t.Helper()
	cfg := c.cfgs[i]
	cfg.wrapRaftStream = func(l *streamLayer) raft.StreamLayer {
		c.parts[i] = &partitionLayer{streamLayer: l}
		return c.parts[i]
	}
	n, err := Start(context.Background(), cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", c.cfgs[i].ID, err)
	}
	// A restart must come back on the same addresses: raft knows it by them.
	c.cfgs[i].RaftAddr, c.cfgs[i].GRPCAddr, c.cfgs[i].GossipAddr = n.RaftAddr(), n.GRPCAddr(), n.GossipAddr()
	c.nodes[i] = n
	return n
}

// Kill stops node i abruptly (no gossip leave).
func (c *cluster) Kill(i int) {
	if n := c.nodes[i]; n != nil {
		n.Kill()
		c.nodes[i] = nil
	}
}

// Restart kills and starts node i again.
func (c *cluster) Restart(i int) *Node {
	c.Kill(i)
	return c.Start(i)
}

// Shutdown closes every running node.
func (c *cluster) Shutdown() {
	for i := range c.nodes {
		c.Kill(i)
	}
}

// Partition cuts node i's raft traffic (true) or heals it (false).
func (c *cluster) Partition(i int, cut bool) { c.parts[i].setBlocked(cut) }

// Running returns the running nodes.
func (c *cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Leader waits until exactly one running node leads and every running,
// unpartitioned node agrees; it returns the leader's index.
func (c *cluster) Leader() int {
	c.t.Helper()
	idx := -1
	WaitFor(c.t, waitTimeout, "a single leader", func() bool {
		idx = -1
		for i, n := range c.nodes {
			if n != nil && n.IsLeader() {
				if idx >= 0 {
					return false
				}
				idx = i
			}
		}
		if idx < 0 {
			return false
		}
		for i, n := range c.nodes {
			if n == nil {
				continue
			}
			if _, id := n.raft.LeaderWithID(); string(id) != c.cfgs[idx].ID && !c.parts[i].isBlocked() {
				return false
			}
		}
		return true
	})
	return idx
}

// Follower returns the index of a running node that does not lead.
func (c *cluster) Follower() int {
	l := c.Leader()
	for i, n := range c.nodes {
		if n != nil && i != l {
			return i
		}
	}
	c.t.Fatal("no follower")
	return -1
}

// WaitVoters waits until the leader's raft configuration has want voters
// and the state machine lists them all.
func (c *cluster) WaitVoters(want int) {
	c.t.Helper()
	WaitFor(c.t, waitTimeout, fmt.Sprintf("%d voters", want), func() bool {
		l := c.nodes[c.Leader()]
		f := l.raft.GetConfiguration()
		return f.Error() == nil && len(f.Configuration().Servers) == want && len(l.fsm.State().Coordinators) == want
	})
}

// WaitState waits until node i's state machine satisfies cond.
func (c *cluster) WaitState(i int, what string, cond func(*pb.State) bool) {
	c.t.Helper()
	WaitFor(c.t, waitTimeout, fmt.Sprintf("%s on %s", what, c.cfgs[i].ID), func() bool { return cond(c.nodes[i].fsm.State()) })
}

// Addrs returns the gRPC addresses of the running nodes.
func (c *cluster) Addrs() []string {
	var out []string
	for _, n := range c.Running() {
		out = append(out, n.GRPCAddr())
	}
	return out
}

// GossipAddrs returns the gossip addresses of the running nodes.
func (c *cluster) GossipAddrs() []string {
	var out []string
	for _, n := range c.Running() {
		out = append(out, n.GossipAddr())
	}
	return out
}

// Client connects to the given coordinators (all running ones if none
// given) with the cluster's credentials.
func (c *cluster) Client(addrs ...string) pb.ControlClient {
	c.t.Helper()
	if len(addrs) == 0 {
		addrs = c.Addrs()
	}
	conn, err := client.Dial(addrs, c.cfgs[0].Auth)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return pb.NewControlClient(conn)
}

// rawConn dials one address with the given options, for security tests.
func rawConn(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// fakeWorker is an in-process worker without training: a gossip member
// whose gRPC address serves the standard health service on loopback TCP,
// with the cluster token, as a worker process does.
type fakeWorker struct {
	t    testing.TB
	id   string
	addr string // gRPC address, in the gossip metadata
	pool *client.Pool

	mu  sync.Mutex
	srv *grpc.Server // nil while stopped
}

// JoinWorker starts a fakeWorker with the given id and adds it to the
// gossip pool of c; the leader registers it from its gossip metadata.
func (c *cluster) JoinWorker(id string) *fakeWorker {
	c.t.Helper()
	w := &fakeWorker{t: c.t, id: id}
	w.serve("127.0.0.1:0")
	p, err := client.JoinPool(client.PoolConfig{Addr: "127.0.0.1:0", Meta: client.NodeMeta{Role: client.RoleWorker, ID: id, GRPC: w.addr, Ring: id + ".ring:2"},
		Secret: testSecret, Gossip: testGossipTimings(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		c.t.Fatal(err)
	}
	w.pool = p
	c.t.Cleanup(func() { w.Close() })
	if err := p.Join(c.GossipAddrs()); err != nil {
		c.t.Fatal(err)
	}
	c.workers[id] = w
	return w
}

// serve starts the health server on addr and records the address.
func (w *fakeWorker) serve(addr string) {
	w.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		w.t.Fatalf("worker %s: %v", w.id, err)
	}
	opts, err := auth.Config{Secret: testSecret}.ServerOptions()
	if err != nil {
		w.t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	w.mu.Lock()
	w.srv, w.addr = srv, ln.Addr().String()
	w.mu.Unlock()
}

// StopServer stops the worker's gRPC server at once, as a crash does, while
// its gossip member lives on (memberlist takes seconds to notice a crash).
func (w *fakeWorker) StopServer() {
	w.mu.Lock()
	srv := w.srv
	w.srv = nil
	w.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// RestartServer serves again on the same address.
func (w *fakeWorker) RestartServer() { w.serve(w.addr) }

// Close leaves the pool gracefully and stops the server.
func (w *fakeWorker) Close() {
	w.pool.Close()
	w.StopServer()
}

// Kill stops gossiping without a leave message and stops the server.
func (w *fakeWorker) Kill() {
	faults.KillPool(w.pool)
	w.StopServer()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// jobsEqual compares the jobs of two states.
func jobsEqual(a, b *pb.State) bool {
	return proto.Equal(&pb.State{Jobs: a.Jobs}, &pb.State{Jobs: b.Jobs})
}
