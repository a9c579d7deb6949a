package coordinator

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// runningJob submits a job, lets two gossiping workers join, walks the
// generation protocol, and records a checkpoint and progress. It returns
// the job id.
func runningJob(t *testing.T, c *cluster, cl pb.ControlClient, workers ...string) string {
	t.Helper()
	ctx := ctxT(t)
	spec := testSpec()
	spec.MaxWorkers = int32(len(workers))
	resp, err := cl.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	id := resp.Job.Id
	for _, w := range workers {
		c.JoinWorker(w)
	}
	var gen *pb.Generation
	WaitFor(t, waitTimeout, "a generation with every worker", func() bool {
		j, err := cl.GetJob(ctx, &pb.GetJobRequest{JobId: id})
		if err != nil || len(j.Job.GetGeneration().GetMembers()) != len(workers) {
			return false
		}
		gen = j.Job.Generation
		return true
	})
	for _, m := range gen.Members {
		if _, err := cl.ReportReady(ctx, &pb.ReportReadyRequest{JobId: id, Generation: gen.Id, WorkerId: m.WorkerId}); err != nil {
			t.Fatalf("ready %s: %v", m.WorkerId, err)
		}
	}
	rank0 := gen.Members[0].WorkerId
	if _, err := cl.ReportCheckpoint(ctx, &pb.ReportCheckpointRequest{JobId: id, Generation: gen.Id, WorkerId: rank0,
		Checkpoint: &pb.Checkpoint{Key: "checkpoints/" + id + "/10", Step: 10, Checksum: 10}}); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if _, err := cl.ReportProgress(ctx, &pb.ReportProgressRequest{JobId: id, Generation: gen.Id, WorkerId: rank0,
		Metrics: &pb.Metrics{Step: 12, Values: map[string]float64{"mse": 0.25}}}); err != nil {
		t.Fatalf("progress: %v", err)
	}
	return id
}

func TestClusterLeaderFailover(t *testing.T) {
	c := MakeCluster(t, 3)
	cl := c.Client()
	id := runningJob(t, c, cl, "w1", "w2")
	l := c.Leader()
	if err := c.nodes[l].raft.Barrier(applyTimeout).Error(); err != nil {
		t.Fatal(err)
	}
	before := c.nodes[l].fsm.State()
	if j := before.Jobs[id]; j.State != pb.JobState_JOB_STATE_RUNNING || len(j.Checkpoints) != 1 || j.LastStep != 12 {
		t.Fatalf("job before failover: %v", j)
	}
	killed := time.Now()
	c.Kill(l)
	nl := c.Leader()
	t.Logf("leader failover: %s killed, %s leads after %v", c.cfgs[l].ID, c.cfgs[nl].ID, time.Since(killed))
	for _, n := range c.Running() {
		if err := n.raft.Barrier(applyTimeout).Error(); err != nil && n.IsLeader() {
			t.Fatal(err)
		}
	}
	for i, n := range c.nodes {
		if n != nil {
			c.WaitState(i, "every committed job, generation and checkpoint", func(st *pb.State) bool { return jobsEqual(st, before) })
		}
	}
	// The survivors keep serving writes, through any address.
	resp, err := cl.SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: testSpec()})
	if err != nil {
		t.Fatalf("submit after failover: %v", err)
	}
	if resp.Job.Id != "job-000002" {
		t.Fatalf("second job id %s", resp.Job.Id)
	}
	// The old leader comes back from its data dir and catches up.
	c.Restart(l)
	c.WaitState(l, "the job submitted while it was down", func(st *pb.State) bool { return st.Jobs["job-000002"] != nil })
	c.WaitVoters(3)
}

func TestClusterRestartAllFromDataDirs(t *testing.T) {
	c := MakeCluster(t, 3)
	cl := c.Client()
	runningJob(t, c, cl, "w1")
	for i := 0; i < 3; i++ {
		if _, err := cl.SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: testSpec()}); err != nil {
			t.Fatal(err)
		}
	}
	l := c.Leader()
	// Let the leader settle the queue first (the waiting jobs' reasons), so
	// that the state compared after the restart is one reconcile keeps.
	c.WaitState(l, "the queued jobs' reasons reconciled", func(st *pb.State) bool {
		for _, j := range st.Jobs {
			if j.State == pb.JobState_JOB_STATE_QUEUED && j.Reason != "waiting for workers: 0 available, min_workers 1" {
				return false
			}
		}
		return true
	})
	if err := c.nodes[l].raft.Barrier(applyTimeout).Error(); err != nil {
		t.Fatal(err)
	}
	// Force a snapshot on one node so restarts go through Restore as well as log replay.
	if err := c.nodes[l].raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	want := c.nodes[l].fsm.State()
	c.Shutdown()
	for i := range c.nodes {
		c.Start(i)
	}
	c.Leader()
	for i := range c.nodes {
		c.WaitState(i, "the state from before the restart", func(st *pb.State) bool { return jobsEqual(st, want) })
	}
	c.WaitVoters(3)
	for _, n := range c.nodes {
		WaitFor(t, waitTimeout, n.cfg.ID+" gossiping with every coordinator", func() bool {
			k := 0
			for _, m := range n.pool.Members() {
				if m.Role == client.RoleCoordinator {
					k++
				}
			}
			return k == 3
		})
	}
}

func TestClusterPartitionedFollowerCatchesUp(t *testing.T) {
	c := MakeCluster(t, 3)
	f := c.Follower()
	c.Partition(f, true)
	var others []string
	for i, n := range c.nodes {
		if i != f {
			others = append(others, n.GRPCAddr())
		}
	}
	cl := c.Client(others...)
	var ids []string
	for i := 0; i < 5; i++ {
		resp, err := cl.SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: testSpec()})
		if err != nil {
			t.Fatalf("submit during partition: %v", err)
		}
		ids = append(ids, resp.Job.Id)
	}
	if n := len(c.nodes[f].fsm.State().Jobs); n != 0 {
		t.Fatalf("partitioned follower has %d jobs", n)
	}
	c.Partition(f, false)
	c.WaitState(f, "the jobs committed during the partition", func(st *pb.State) bool {
		for _, id := range ids {
			if st.Jobs[id] == nil {
				return false
			}
		}
		return true
	})
}

func TestClusterForwardsWritesAndRemovesVoter(t *testing.T) {
	c := MakeCluster(t, 3)
	f := c.Follower()
	cl := c.Client(c.nodes[f].GRPCAddr())
	resp, err := cl.SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: testSpec()})
	if err != nil {
		t.Fatalf("submit through a follower: %v", err)
	}
	// Reads come from the follower's replica, which catches up at once.
	WaitFor(t, waitTimeout, "the forwarded job readable on the follower", func() bool {
		got, err := cl.GetJob(ctxT(t), &pb.GetJobRequest{JobId: resp.Job.Id})
		if err != nil && status.Code(err) != codes.NotFound {
			t.Fatal(err)
		}
		return err == nil && got.Job.Spec.GetData() == "mnist"
	})

	victim := c.Follower()
	if _, err := cl.RemoveCoordinator(ctxT(t), &pb.RemoveCoordinatorRequest{Id: c.cfgs[victim].ID}); err != nil {
		t.Fatalf("remove voter: %v", err)
	}
	c.Kill(victim)
	c.WaitVoters(2)
	l := c.Leader()
	for _, s := range c.nodes[l].raft.GetConfiguration().Configuration().Servers {
		if s.ID == raft.ServerID(c.cfgs[victim].ID) {
			t.Fatalf("%s still a voter", s.ID)
		}
	}
	cl2 := c.Client()
	WaitFor(t, waitTimeout, "every replica to drop the removed coordinator", func() bool {
		for range 4 { // the client spreads reads over the replicas
			cluster, err := cl2.GetCluster(ctxT(t), &pb.GetClusterRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if len(cluster.Coordinators) != 2 || cluster.LeaderId != c.cfgs[l].ID {
				return false
			}
		}
		return true
	})
}

func TestClusterGracefulCloseHandsOverLeadership(t *testing.T) {
	c := MakeCluster(t, 3)
	l := c.Leader()
	closed := time.Now()
	if err := c.nodes[l].Close(); err != nil {
		t.Fatal(err)
	}
	c.nodes[l] = nil
	nl := c.Leader()
	t.Logf("graceful close of leader %s: %s leads after %v", c.cfgs[l].ID, c.cfgs[nl].ID, time.Since(closed))
	if _, err := c.Client().SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: testSpec()}); err != nil {
		t.Fatal(err)
	}
}

func TestJobWaitsWithoutWorkersAndResumesFromCheckpoint(t *testing.T) {
	c := MakeCluster(t, 1)
	cl := c.Client()
	ctx := ctxT(t)
	id := runningJob(t, c, cl, "w1") // checkpoint at step 10, progress to 12
	// w1 departs: the job goes back to the queue, keeping its checkpoints.
	c.workers["w1"].Close()
	WaitFor(t, waitTimeout, "the job queued without workers", func() bool {
		j := c.nodes[0].fsm.Job(id)
		return j.State == pb.JobState_JOB_STATE_QUEUED && j.Generation == nil
	})
	// A fresh worker appears: it holds nothing, so the checkpoint is the donor.
	c.JoinWorker("w2")
	var g *pb.Generation
	WaitFor(t, waitTimeout, "a generation of w2", func() bool {
		g = c.nodes[0].fsm.Job(id).GetGeneration()
		return len(g.GetMembers()) == 1 && g.Members[0].WorkerId == "w2"
	})
	resp, err := cl.ReportReady(ctx, &pb.ReportReadyRequest{JobId: id, Generation: g.Id, WorkerId: "w2", LastStep: 0})
	if err != nil {
		t.Fatal(err)
	}
	if s := resp.Generation; s.Phase != pb.GenerationPhase_GENERATION_PHASE_STARTED || s.StartStep != 10 || s.DonorCheckpoint != "checkpoints/"+id+"/10" || s.Donor != "" {
		t.Fatalf("resumed generation %v", s)
	}
	if j := c.nodes[0].fsm.Job(id); j.State != pb.JobState_JOB_STATE_RUNNING || j.LastStep != 12 {
		t.Fatalf("job %v", j)
	}
}

func TestClusterPartitionedLeaderStepsDown(t *testing.T) {
	c := MakeCluster(t, 3)
	old := c.Leader()
	c.Partition(old, true)
	WaitFor(t, waitTimeout, "the cut-off leader to step down and the majority to elect another", func() bool {
		if c.nodes[old].IsLeader() {
			return false
		}
		for i, n := range c.nodes {
			if i != old && n.IsLeader() {
				return true
			}
		}
		return false
	})
	var majority []string
	for i, n := range c.nodes {
		if i != old {
			majority = append(majority, n.GRPCAddr())
		}
	}
	resp, err := c.Client(majority...).SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: testSpec()})
	if err != nil {
		t.Fatalf("submit to the majority: %v", err)
	}
	c.Partition(old, false)
	c.WaitState(old, "the job committed by the majority", func(st *pb.State) bool { return st.Jobs[resp.Job.Id] != nil })
	c.Leader()
}

// A client whose submission committed but whose reply was lost with the
// leader retries with the same request id: first after the leader dies,
// then through the majority while the next leader is cut off. Every
// replica ends up with exactly one job.
func TestClusterRetriedSubmitMakesOneJob(t *testing.T) {
	c := MakeCluster(t, 3)
	ctx := ctxT(t)
	l := c.Leader()
	req := &pb.SubmitJobRequest{Spec: testSpec(), RequestId: "submit-7f3a"}
	first, err := c.Client(c.nodes[l].GRPCAddr()).SubmitJob(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	id := first.Job.Id
	for i, n := range c.nodes {
		if i != l && n != nil {
			c.WaitState(i, "the submitted job", func(st *pb.State) bool { return st.Jobs[id] != nil })
		}
	}
	c.Kill(l) // the reply is lost with the leader
	retry, err := c.Client().SubmitJob(ctx, req)
	if err != nil {
		t.Fatalf("retry after the leader died: %v", err)
	}
	if retry.Job.Id != id {
		t.Fatalf("retry after the leader died made %s, want %s", retry.Job.Id, id)
	}

	c.Start(l)
	c.WaitVoters(3)
	nl := c.Leader()
	c.Partition(nl, true)
	var majority []string
	for i, n := range c.nodes {
		if i != nl {
			majority = append(majority, n.GRPCAddr())
		}
	}
	retry, err = c.Client(majority...).SubmitJob(ctx, req)
	if err != nil {
		t.Fatalf("retry through the majority: %v", err)
	}
	if retry.Job.Id != id {
		t.Fatalf("retry through the majority made %s, want %s", retry.Job.Id, id)
	}
	c.Partition(nl, false)
	l = c.Leader()
	if err := c.nodes[l].raft.Barrier(applyTimeout).Error(); err != nil {
		t.Fatal(err)
	}
	for i := range c.nodes {
		c.WaitState(i, "exactly one job, the first", func(st *pb.State) bool {
			return len(st.Jobs) == 1 && st.Jobs[id].GetRequestId() == req.RequestId && st.NextJobSeq == 1
		})
	}
}

// A follower cut off from the leader ends its watches with Unavailable
// within WatchStaleness (+ a tick), although its state does not change;
// the watches on a connected follower go on.
func TestClusterWatchesEndOnCutOffFollower(t *testing.T) {
	const staleness = 1500 * time.Millisecond
	c := MakeClusterWith(t, 3, func(cfg *Config) { cfg.WatchStaleness = staleness })
	ctx := ctxT(t)
	resp, err := c.Client().SubmitJob(ctx, &pb.SubmitJobRequest{Spec: testSpec()})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Job.Id
	c.JoinWorker("w1")
	l := c.Leader()
	var followers []int
	for i := range c.nodes {
		if i != l {
			followers = append(followers, i)
			c.WaitState(i, "w1 assigned", func(st *pb.State) bool { return st.Workers["w1"].GetJobId() == id })
		}
	}
	type watch struct {
		name string
		recv func() (*pb.Job, error)
	}
	open := func(i int) []watch {
		cl := c.Client(c.nodes[i].GRPCAddr())
		js, err := cl.WatchJob(ctx, &pb.WatchJobRequest{JobId: id})
		if err != nil {
			t.Fatal(err)
		}
		gs, err := cl.WatchGeneration(ctx, &pb.WatchGenerationRequest{WorkerId: "w1"})
		if err != nil {
			t.Fatal(err)
		}
		ws := []watch{
			{c.cfgs[i].ID + " WatchJob", func() (*pb.Job, error) { u, err := js.Recv(); return u.GetJob(), err }},
			{c.cfgs[i].ID + " WatchGeneration", func() (*pb.Job, error) { u, err := gs.Recv(); return u.GetJob(), err }},
		}
		for _, w := range ws {
			if j, err := w.recv(); err != nil || j.GetId() != id {
				t.Fatalf("%s: first update %v, %v", w.name, j, err)
			}
		}
		return ws
	}
	cut, kept := open(followers[0]), open(followers[1])
	c.Partition(followers[0], true)
	partitioned := time.Now()
	type end struct {
		name  string
		after time.Duration
		err   error
	}
	ends := make(chan end, len(cut))
	for _, w := range cut {
		go func() {
			for {
				if _, err := w.recv(); err != nil {
					ends <- end{w.name, time.Since(partitioned), err}
					return
				}
			}
		}()
	}
	for range cut {
		e := <-ends
		t.Logf("%s on the cut-off follower ended %v after the partition: %v", e.name, e.after, e.err)
		if status.Code(e.err) != codes.Unavailable || !strings.Contains(status.Convert(e.err).Message(), "no contact with a raft leader") {
			t.Fatalf("%s: %v, want Unavailable naming the lost contact", e.name, e.err)
		}
		// The last contact was at most a heartbeat before the cut.
		if e.after < staleness-testRaftTimings().Heartbeat || e.after > staleness+2*time.Second {
			t.Fatalf("%s ended %v after the partition, want within [%v, %v]", e.name, e.after, staleness-testRaftTimings().Heartbeat, staleness+2*time.Second)
		}
	}
	// The connected follower's watches still deliver the next change.
	if _, err := c.Client().CancelJob(ctx, &pb.CancelJobRequest{JobId: id, Reason: "test over"}); err != nil {
		t.Fatal(err)
	}
	for _, w := range kept {
		j, err := w.recv()
		if err != nil || j.GetState() != pb.JobState_JOB_STATE_CANCELED {
			t.Fatalf("%s after the cancel: %v, %v", w.name, j, err)
		}
	}
	c.Partition(followers[0], false)
}
