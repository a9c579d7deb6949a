package client_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/coordinator/internal/faults"
)

var testSecret = []byte("client-test-secret-0123456789")

// fastGossip detects a failure within about a second on loopback.
var fastGossip = client.GossipTimings{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
	GossipInterval: 50 * time.Millisecond, SuspicionMult: 2, PushPull: time.Second}

func TestDialRefusesBadAddresses(t *testing.T) {
	for _, addrs := range [][]string{nil, {"127.0.0.1:7100", "no-port"}} {
		if conn, err := client.Dial(addrs, auth.Config{}); !errors.Is(err, client.ErrInvalidConfig) {
			if conn != nil {
				conn.Close()
			}
			t.Errorf("Dial(%q): %v, want ErrInvalidConfig", addrs, err)
		}
	}
	conn, err := client.Dial([]string{" 127.0.0.1:7100", "localhost:7101"}, auth.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
}

func TestGossipTimingsValidate(t *testing.T) {
	if err := client.DefaultGossipTimings().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if err := fastGossip.Validate(); err != nil {
		t.Fatalf("test timings: %v", err)
	}
	for _, tc := range []struct {
		edit func(*client.GossipTimings)
		want string
	}{
		{func(g *client.GossipTimings) { g.ProbeInterval = 0 }, "Gossip.ProbeInterval = 0s out of range (0, +inf)"},
		{func(g *client.GossipTimings) { g.ProbeTimeout = 0 }, "Gossip.ProbeTimeout = 0s out of range (0, ProbeInterval = 500ms)"},
		{func(g *client.GossipTimings) { g.ProbeTimeout = time.Second }, "Gossip.ProbeTimeout = 1s out of range (0, ProbeInterval = 500ms)"},
		{func(g *client.GossipTimings) { g.GossipInterval = -time.Second }, "Gossip.GossipInterval = -1s out of range [0, +inf)"},
		{func(g *client.GossipTimings) { g.SuspicionMult = 0 }, "Gossip.SuspicionMult = 0 out of range [1, +inf)"},
		{func(g *client.GossipTimings) { g.PushPull = -time.Second }, "Gossip.PushPull = -1s out of range [0, +inf)"},
	} {
		g := client.DefaultGossipTimings()
		tc.edit(&g)
		if err := g.Validate(); !errors.Is(err, client.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalidConfig with %q", g, err, tc.want)
		}
	}
}

func TestJoinPoolRefusesBadConfig(t *testing.T) {
	ok := client.PoolConfig{Addr: "127.0.0.1:0", Meta: client.NodeMeta{Role: client.RoleWorker, ID: "w1"}, Secret: testSecret}
	for _, tc := range []struct {
		edit func(*client.PoolConfig)
		want string
	}{
		{func(c *client.PoolConfig) { c.Meta.ID = "" }, "node metadata: empty id"},
		{func(c *client.PoolConfig) { c.Meta.Role = "observer" }, `node metadata: role "observer"`},
		{func(c *client.PoolConfig) { c.Meta.GRPC = strings.Repeat("x", 600) }, "node metadata is 6"},
		{func(c *client.PoolConfig) { c.Addr = "127.0.0.1" }, `gossip address "127.0.0.1"`},
		{func(c *client.PoolConfig) { c.Gossip = client.GossipTimings{ProbeInterval: time.Second} }, "Gossip.ProbeTimeout"},
	} {
		c := ok
		tc.edit(&c)
		p, err := client.JoinPool(c)
		if !errors.Is(err, client.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			p.Close()
			t.Errorf("JoinPool(%+v): %v, want ErrInvalidConfig with %q", c, err, tc.want)
		}
	}
}

func join(t *testing.T, id, role string, peers ...*client.Pool) *client.Pool {
	t.Helper()
	p, err := client.JoinPool(client.PoolConfig{Addr: "127.0.0.1:0", Meta: client.NodeMeta{Role: role, ID: id, GRPC: id + ":1"},
		Secret: testSecret, Gossip: fastGossip, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	var addrs []string
	for _, q := range peers {
		addrs = append(addrs, q.Addr())
	}
	if err := p.Join(addrs); err != nil {
		t.Fatal(err)
	}
	return p
}

func ids(p *client.Pool) string {
	var s []string
	for _, m := range p.Members() {
		s = append(s, m.Role+" "+m.ID)
	}
	return strings.Join(s, ", ")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPoolLeaveAndCrash: a member that closes its pool is gone at once; one
// whose pool is killed (no leave message, as in a crash) is gone once the
// failure detector notices.
func TestPoolLeaveAndCrash(t *testing.T) {
	c := join(t, "c1", client.RoleCoordinator)
	w1 := join(t, "w1", client.RoleWorker, c)
	w2 := join(t, "w2", client.RoleWorker, c)
	waitFor(t, "three members", func() bool { return ids(c) == "coordinator c1, worker w1, worker w2" })

	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "w1 gone", func() bool { return c.Gone("w1") })
	if c.Gone("w2") {
		t.Fatal("w2 gone too")
	}

	start := time.Now()
	if err := faults.KillPool(w2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "w2 gone", func() bool { return c.Gone("w2") })
	t.Logf("crashed member detected after %v", time.Since(start))
	if err := w2.Close(); err != nil { // after a kill, Close does nothing
		t.Fatal(err)
	}
	if got := ids(c); got != "coordinator c1" {
		t.Fatalf("members %q, want only c1", got)
	}
}

func TestRefused(t *testing.T) {
	for c, want := range map[codes.Code]bool{
		codes.FailedPrecondition: true, codes.InvalidArgument: true, codes.NotFound: true,
		codes.PermissionDenied: true, codes.Unauthenticated: true,
		codes.Unavailable: false, codes.DeadlineExceeded: false, codes.Internal: false, codes.Canceled: false,
	} {
		if got := client.Refused(status.Error(c, "x")); got != want {
			t.Errorf("Refused(%v) = %v, want %v", c, got, want)
		}
	}
	if client.Refused(nil) || client.Refused(errors.New("connection reset")) {
		t.Error("nil or a plain error counted as a refusal")
	}
}

func TestTerminal(t *testing.T) {
	for s := range pb.JobState_name {
		st := pb.JobState(s)
		want := st == pb.JobState_JOB_STATE_COMPLETED || st == pb.JobState_JOB_STATE_FAILED || st == pb.JobState_JOB_STATE_CANCELED
		if client.Terminal(st) != want {
			t.Errorf("Terminal(%v) = %v", st, !want)
		}
	}
}

func TestNewRequestID(t *testing.T) {
	a, b := client.NewRequestID(), client.NewRequestID()
	if len(a) != 32 || strings.Trim(a, "0123456789abcdef") != "" || a == b {
		t.Fatalf("ids %q, %q: want two different 32-digit hex strings", a, b)
	}
}

// Two processes meet in the gossip pool: a coordinator, and a worker that
// joins through the coordinator's gossip address (which a real worker
// learns from GetCluster).
func ExampleJoinPool() {
	secret := []byte("example-cluster-secret-0123")
	quiet := slog.New(slog.DiscardHandler)
	coord, err := client.JoinPool(client.PoolConfig{Addr: "127.0.0.1:0", Secret: secret, Logger: quiet,
		Meta: client.NodeMeta{Role: client.RoleCoordinator, ID: "c1", GRPC: "127.0.0.1:7100"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer coord.Close()
	w, err := client.JoinPool(client.PoolConfig{Addr: "127.0.0.1:0", Secret: secret, Logger: quiet,
		Meta: client.NodeMeta{Role: client.RoleWorker, ID: "w1", GRPC: "127.0.0.1:7300", Ring: "127.0.0.1:7300"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	// Join syncs state with the coordinator: on return the worker knows it
	// (the coordinator learns of the worker a moment later).
	if err := w.Join([]string{coord.Addr()}); err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range w.Members() {
		fmt.Println(m.Role, m.ID, m.GRPC)
	}
	// Output:
	// coordinator c1 127.0.0.1:7100
	// worker w1 127.0.0.1:7300
}
