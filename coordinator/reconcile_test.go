package coordinator

import (
	"fmt"
	"slices"
	"testing"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// members lists the worker ids of job id's current generation on node 0.
func members(c *cluster, id string) []string {
	var out []string
	for _, m := range c.nodes[0].FSM().Job(id).GetGeneration().GetMembers() {
		out = append(out, m.WorkerId)
	}
	return out
}

// waitJob waits until job id on node 0 has exactly the given generation
// members (none: no generation) and, when reason is set, that reason.
func waitJob(t *testing.T, c *cluster, id, reason string, want ...string) {
	t.Helper()
	WaitFor(t, waitTimeout, fmt.Sprintf("%s with members %v and reason %q", id, want, reason), func() bool {
		j := c.nodes[0].FSM().Job(id)
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
	if j := c.nodes[0].FSM().Job(a); j.LastGenerationId != 0 {
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
	if w := c.nodes[0].FSM().Worker("w1"); !w.Alive || w.JobId != "" {
		t.Fatalf("w1 after a's generation ended: %v", w)
	}
	c.JoinWorker("w6")
	waitJob(t, c, a, "", "w1", "w6")
	if got := members(c, b); !slices.Equal(got, []string{"w4", "w5"}) {
		t.Fatalf("b's members changed to %v", got)
	}
}
