package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// helperEnv, when set, makes the test binary act as a worker-like process
// (see runHelper); its value is the worker id.
const helperEnv = "DSAE_COORDINATOR_TEST_HELPER"

// runHelper is the worker side of the control plane, without training: it
// joins the gossip pool, registers, and answers every generation announced
// to it with a ready report, until it is killed.
func runHelper() int {
	id := os.Getenv(helperEnv)
	addrs := strings.Split(os.Getenv("DSAE_TEST_COORDINATORS"), ",")
	a := auth.Config{Secret: []byte(os.Getenv(auth.EnvSecret))}
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "helper:", err); return 1 }
	conn, err := client.Dial(addrs, a)
	if err != nil {
		return fail(err)
	}
	cl := pb.NewControlClient(conn)
	ctx := context.Background()
	cluster, err := cl.GetCluster(ctx, &pb.GetClusterRequest{})
	if err != nil {
		return fail(err)
	}
	var gossip []string
	for _, c := range cluster.Coordinators {
		gossip = append(gossip, c.GossipAddr)
	}
	pool, err := client.JoinPool(client.PoolConfig{Addr: "127.0.0.1:0", Meta: client.NodeMeta{Role: client.RoleWorker, ID: id, GRPC: id + ":1", Ring: id + ":2"},
		Secret: a.Secret, Gossip: testGossipTimings(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fail(err)
	}
	if err := pool.Join(gossip); err != nil {
		return fail(err)
	}
	if _, err := cl.Register(ctx, &pb.RegisterRequest{WorkerId: id, GrpcAddr: id + ":1", RingAddr: id + ":2"}); err != nil {
		return fail(err)
	}
	for {
		ws, err := cl.WatchGeneration(ctx, &pb.WatchGenerationRequest{WorkerId: id})
		if err != nil {
			return fail(err)
		}
		for {
			u, err := ws.Recv()
			if err != nil {
				break // coordinator gone: watch again through another
			}
			g := u.Job.GetGeneration()
			if g.GetPhase() != pb.GenerationPhase_GENERATION_PHASE_ANNOUNCED {
				continue
			}
			_, err = cl.ReportReady(ctx, &pb.ReportReadyRequest{JobId: u.Job.Id, Generation: g.Id, WorkerId: id})
			if err != nil && status.Code(err) != codes.FailedPrecondition { // a newer generation is expected
				fmt.Fprintln(os.Stderr, "helper: ready:", err)
			}
		}
	}
}

// startHelper runs a worker-like process with the given id against c.
func startHelper(t *testing.T, c *cluster, id string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+id, "DSAE_TEST_COORDINATORS="+strings.Join(c.Addrs(), ","),
		auth.EnvSecret+"="+string(testSecret))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd
}

// waitGeneration waits until job id runs a started generation with exactly
// the given members in ring order, and returns when it was first seen.
func waitGeneration(t *testing.T, c *cluster, id string, members ...string) time.Time {
	t.Helper()
	WaitFor(t, waitTimeout, fmt.Sprintf("a started generation of %v", members), func() bool {
		l := c.nodes[c.Leader()]
		g := l.fsm.Job(id).GetGeneration()
		if g.GetPhase() != pb.GenerationPhase_GENERATION_PHASE_STARTED || len(g.Members) != len(members) {
			return false
		}
		for i, m := range g.Members {
			if m.WorkerId != members[i] {
				return false
			}
		}
		return true
	})
	return time.Now()
}

func TestMembershipWorkerProcesses(t *testing.T) {
	c := MakeCluster(t, 3)
	cl := c.Client()
	resp, err := cl.SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: testSpec()})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Job.Id
	start := time.Now()
	procs := map[string]*exec.Cmd{}
	for _, w := range []string{"w1", "w2", "w3"} {
		procs[w] = startHelper(t, c, w)
	}
	// Workers join in any order; the ring keeps the order they were added in.
	WaitFor(t, waitTimeout, "all three workers in a started generation", func() bool {
		g := c.nodes[c.Leader()].fsm.Job(id).GetGeneration()
		return g.GetPhase() == pb.GenerationPhase_GENERATION_PHASE_STARTED && len(g.Members) == 3
	})
	t.Logf("3 worker processes joined and started in %v", time.Since(start))
	var ring []string
	for _, m := range c.nodes[c.Leader()].fsm.Job(id).Generation.Members {
		ring = append(ring, m.WorkerId)
	}
	victim := ring[1]
	var rest []string
	for _, w := range ring {
		if w != victim {
			rest = append(rest, w)
		}
	}
	killed := time.Now()
	if err := procs[victim].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	seen := waitGeneration(t, c, id, rest...)
	g := c.nodes[c.Leader()].fsm.Job(id).Generation
	to := testGossipTimings()
	t.Logf("SIGKILL of %s → started generation %d of %v after %v (probe interval %v, probe timeout %v, suspicion mult %d)",
		victim, g.Id, rest, seen.Sub(killed), to.ProbeInterval, to.ProbeTimeout, to.SuspicionMult)
	if w := c.nodes[c.Leader()].fsm.Worker(victim); w.Alive || w.JobId != "" {
		t.Fatalf("killed worker still alive or assigned: %v", w)
	}
	joined := time.Now()
	startHelper(t, c, "w4")
	seen = waitGeneration(t, c, id, append(rest, "w4")...)
	t.Logf("w4 joined → started generation %d after %v", c.nodes[c.Leader()].fsm.Job(id).Generation.Id, seen.Sub(joined))
}
