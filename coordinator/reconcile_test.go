package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// members lists the worker ids of job id's current generation on node 0.
func members(c *cluster, id string) []string {
	var out []string
	for _, m := range c.nodes[0].fsm.Job(id).GetGeneration().GetMembers() {
		out = append(out, m.WorkerId)
	}
	return out
}

// waitJob waits until job id on node 0 has exactly the given generation
// members (none: no generation) and, when reason is set, that reason.
func waitJob(t *testing.T, c *cluster, id, reason string, want ...string) {
	t.Helper()
	WaitFor(t, waitTimeout, fmt.Sprintf("%s with members %v and reason %q", id, want, reason), func() bool {
		j := c.nodes[0].fsm.Job(id)
		return slices.Equal(members(c, id), want) && (reason == "" || j.Reason == reason) &&
			(len(want) > 0 || (j.Generation == nil && j.State == pb.JobState_JOB_STATE_QUEUED))
	})
}

func TestElasticBounds(t *testing.T) {
	c := MakeCluster(t, 1)
	cl := c.Client()
	ctx := ctxT(t)
	submit := func(min, max int32) string {
		t.Helper()
		s := testSpec()
		s.MinWorkers, s.MaxWorkers = min, max
		resp, err := cl.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: s})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Job.Id
	}
	a := submit(2, 3)
	b := submit(0, 0)
	waitJob(t, c, a, "waiting for workers: 0 available, min_workers 2")
	waitJob(t, c, b, "waiting for workers: 0 available, min_workers 1")
	c.JoinWorker("w1")
	// One worker is not enough for a, and b, submitted later, does not get it.
	waitJob(t, c, a, "waiting for workers: 1 available, min_workers 2")
	waitJob(t, c, b, "waiting for workers: 0 available, min_workers 1")
	if j := c.nodes[0].fsm.Job(a); j.LastGenerationId != 0 {
		t.Fatalf("waiting job announced %d generations", j.LastGenerationId)
	}
	c.JoinWorker("w2")
	waitJob(t, c, a, "", "w1", "w2")
	c.JoinWorker("w3")
	waitJob(t, c, a, "", "w1", "w2", "w3") // up to max_workers
	c.JoinWorker("w4")
	waitJob(t, c, b, "", "w4") // a is full: the next worker goes to b
	c.JoinWorker("w5")
	waitJob(t, c, b, "", "w4", "w5") // b has no limit
	// Two of a's members crash: the one left is below the minimum, so a's
	// generation ends, and its survivor stays reserved for a.
	c.workers["w2"].Kill()
	c.workers["w3"].Kill()
	waitJob(t, c, a, "waiting for workers: 1 available, min_workers 2")
	if w := c.nodes[0].fsm.Worker("w1"); !w.Alive || w.JobId != "" {
		t.Fatalf("w1 after a's generation ended: %v", w)
	}
	c.JoinWorker("w6")
	waitJob(t, c, a, "", "w1", "w6")
	if got := members(c, b); !slices.Equal(got, []string{"w4", "w5"}) {
		t.Fatalf("b's members changed to %v", got)
	}
}

// startAll answers job id's announced generation with a ready report from
// every member and waits until it has started with the given members.
func startAll(t *testing.T, c *cluster, cl pb.ControlClient, id string, want ...string) *pb.Generation {
	t.Helper()
	waitJob(t, c, id, "", want...)
	g := c.nodes[c.Leader()].fsm.Job(id).Generation
	for _, m := range g.Members {
		if _, err := cl.ReportReady(ctxT(t), &pb.ReportReadyRequest{JobId: id, Generation: g.Id, WorkerId: m.WorkerId}); err != nil {
			t.Fatalf("ready %s: %v", m.WorkerId, err)
		}
	}
	return c.nodes[c.Leader()].fsm.Job(id).Generation
}

// A ring member's process dies (its gRPC server is gone, gossip still sees
// it) and a neighbour reports it: the next generation, announced to the
// survivors, leaves it out at once instead of waiting ReadyTimeout for it.
func TestPeerFailureProbesMembers(t *testing.T) {
	c := MakeCluster(t, 3)
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec := testSpec()
	spec.MaxWorkers = 3
	resp, err := cl.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Job.Id
	for _, w := range []string{"w1", "w2", "w3"} {
		c.JoinWorker(w)
	}
	ring := []string{"w1", "w2", "w3"}
	// w1 follows its assignment as a worker does.
	ws, err := cl.WatchGeneration(ctx, &pb.WatchGenerationRequest{WorkerId: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	updates := make(chan *pb.Job, 64)
	go func() {
		for {
			u, err := ws.Recv()
			if err != nil {
				close(updates)
				return
			}
			updates <- u.Job
		}
	}()
	const rounds = 5
	var took []time.Duration
	for round := range rounds {
		g := startAll(t, c, cl, id, ring...)
		for len(updates) > 0 {
			<-updates // earlier announcements
		}
		victim := "w2"
		var rest []string
		for _, w := range ring {
			if w != victim {
				rest = append(rest, w)
			}
		}
		c.workers[victim].StopServer()
		start := time.Now()
		if _, err := cl.ReportPeerFailure(ctx, &pb.ReportPeerFailureRequest{JobId: id, Generation: g.Id, WorkerId: "w1",
			PeerId: victim, Detail: "connection reset", RequestId: fmt.Sprint("pf-", round)}); err != nil {
			t.Fatal(err)
		}
		var got *pb.Generation
	wait:
		for {
			select {
			case j, ok := <-updates:
				if !ok {
					t.Fatal("watch ended")
				}
				if ng := j.GetGeneration(); ng.GetId() > g.Id && ng.GetPhase() == pb.GenerationPhase_GENERATION_PHASE_ANNOUNCED {
					got = ng
					break wait
				}
			case <-time.After(waitTimeout):
				t.Fatal("no new generation announced")
			}
		}
		took = append(took, time.Since(start))
		var names []string
		for _, m := range got.Members {
			names = append(names, m.WorkerId)
		}
		if !slices.Equal(names, rest) {
			t.Fatalf("round %d: generation %d after the report has %v, want %v", round, got.Id, names, rest)
		}
		if w := c.nodes[c.Leader()].fsm.Worker(victim); w.Alive || !w.Quarantined || !strings.Contains(w.DownReason, "health probe") {
			t.Fatalf("round %d: %s after a failed probe: %v", round, victim, w)
		}
		if limit := c.nodes[0].cfg.PeerProbeTimeout + time.Second; took[round] > limit {
			t.Fatalf("round %d: new generation announced %v after the report, want under %v", round, took[round], limit)
		}
		// The worker comes back: its Register lifts the quarantine, and it
		// joins at the end of the ring.
		c.workers[victim].RestartServer()
		if _, err := cl.Register(ctx, &pb.RegisterRequest{WorkerId: victim, GrpcAddr: c.workers[victim].addr, RingAddr: victim + ".ring:2"}); err != nil {
			t.Fatal(err)
		}
		ring = append(rest, victim)
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	t.Logf("report → new generation announced to a survivor: median %v over %d runs (all: %v; probe timeout %v)",
		sorted[len(sorted)/2], rounds, took, c.nodes[0].cfg.PeerProbeTimeout)
}
