package coordinator

import (
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/worker/jobspec"
)

func wantCode(t *testing.T, err error, code codes.Code, field string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), field) {
		t.Fatalf("err %v, want %v naming %q", err, code, field)
	}
}

func TestSubmitJobValidationOverGRPC(t *testing.T) {
	c := MakeCluster(t, 1) // no JobSpecs: job-level checks only
	cl := c.Client()
	ctx := ctxT(t)
	_, err := cl.SubmitJob(ctx, &pb.SubmitJobRequest{})
	wantCode(t, err, codes.InvalidArgument, "spec")
	bad := testSpec()
	bad.Batch = 0
	_, err = cl.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: bad})
	wantCode(t, err, codes.InvalidArgument, "batch: 0 out of range")
	// The model is not the coordinator's to check without JobSpecs.
	resp, err := cl.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: &pb.JobSpec{Data: "mnist", Steps: 10, Batch: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if m := resp.Job.Spec.Model; m.GetHidden() != 0 || m.GetD() != 0 || resp.Job.Spec.Steps != 10 {
		t.Fatalf("spec changed: %v", resp.Job.Spec)
	}
	list, err := cl.ListJobs(ctx, &pb.ListJobsRequest{})
	if err != nil || len(list.Jobs) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
}

// TestSubmitJobInjectedValidator: with JobSpecs set (as cmd/dsae does)
// SubmitJob refuses the model and optimizer settings that dsae train
// refuses, for sae's reason, naming the proto field (model.rho).
func TestSubmitJobInjectedValidator(t *testing.T) {
	c := MakeClusterWith(t, 1, func(cfg *Config) { cfg.JobSpecs = jobspec.Rules{} })
	cl := c.Client()
	for _, tc := range []struct {
		edit func(*pb.JobSpec)
		msg  string
	}{
		{func(s *pb.JobSpec) { s.Model.Rho = 1.5 }, "model.rho = 1.5 out of range (0, 1)"},
		{func(s *pb.JobSpec) { s.Model.Beta = -1 }, "model.beta = -1 out of range [0, +inf)"},
		{func(s *pb.JobSpec) { s.Model.Activation = "relu" }, "model.sparsity kl requires model.activation sigmoid (outputs in (0,1)), got relu"},
		{func(s *pb.JobSpec) { s.Model.Output = "identity" }, `model.output "identity" unknown (want sigmoid or linear)`},
		{func(s *pb.JobSpec) { s.Model.AuxK = 4 }, "model.aux_k = 4 requires model.sparsity topk, got kl"},
		{func(s *pb.JobSpec) { s.Optimizer.Optimizer = "momentum" }, `optimizer.optimizer = "momentum", must be "sgd" or "adam"`},
		{func(s *pb.JobSpec) { s.Optimizer.Schedule = "linear" }, `optimizer.schedule = "linear", must be "constant" or "cosine"`},
	} {
		bad := testSpec()
		tc.edit(bad)
		_, err := cl.SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: bad})
		if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != tc.msg {
			t.Errorf("SubmitJob = %v, want InvalidArgument %q", err, tc.msg)
		}
	}
	if _, err := cl.SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: testSpec()}); err != nil {
		t.Fatal(err)
	}
}

type fakeDatasets map[string]DatasetInfo

func (f fakeDatasets) LookupDataset(_ context.Context, name string) (DatasetInfo, bool, error) {
	info, ok := f[name]
	return info, ok, nil
}

// suggestingDatasets adds the DatasetSuggester capability: the names that
// begin with the missing one.
type suggestingDatasets struct{ fakeDatasets }

func (f suggestingDatasets) SuggestDatasets(_ context.Context, missing string) []string {
	var out []string
	for n := range f.fakeDatasets {
		if strings.HasPrefix(n, missing) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func TestMalformedRPCs(t *testing.T) {
	c := MakeCluster(t, 1)
	cl := c.Client()
	ctx := ctxT(t)
	check := func(err error, code codes.Code, field string) {
		t.Helper()
		wantCode(t, err, code, field)
	}
	_, err := cl.GetJob(ctx, &pb.GetJobRequest{})
	check(err, codes.InvalidArgument, "job_id")
	_, err = cl.GetJob(ctx, &pb.GetJobRequest{JobId: "job-424242"})
	check(err, codes.NotFound, "job-424242")
	_, err = cl.CancelJob(ctx, &pb.CancelJobRequest{})
	check(err, codes.InvalidArgument, "job_id")
	_, err = cl.Register(ctx, &pb.RegisterRequest{})
	check(err, codes.InvalidArgument, "worker_id")
	_, err = cl.ReportReady(ctx, &pb.ReportReadyRequest{JobId: "j"})
	check(err, codes.InvalidArgument, "worker_id")
	_, err = cl.ReportProgress(ctx, &pb.ReportProgressRequest{JobId: "j", WorkerId: "w"})
	check(err, codes.InvalidArgument, "metrics")
	_, err = cl.ReportCheckpoint(ctx, &pb.ReportCheckpointRequest{JobId: "j", WorkerId: "w"})
	check(err, codes.InvalidArgument, "checkpoint")
	_, err = cl.ReportPeerFailure(ctx, &pb.ReportPeerFailureRequest{JobId: "j", WorkerId: "w"})
	check(err, codes.InvalidArgument, "peer_id")
	_, err = cl.ReportResult(ctx, &pb.ReportResultRequest{WorkerId: "w"})
	check(err, codes.InvalidArgument, "job_id")
	_, err = cl.Join(ctx, &pb.JoinRequest{Coordinator: &pb.Coordinator{Id: "x"}})
	check(err, codes.InvalidArgument, "coordinator.raft_addr")
	_, err = cl.RemoveCoordinator(ctx, &pb.RemoveCoordinatorRequest{})
	check(err, codes.InvalidArgument, "id")
	ws, err := cl.WatchJob(ctx, &pb.WatchJobRequest{})
	if err == nil {
		_, err = ws.Recv()
	}
	check(err, codes.InvalidArgument, "job_id")
	gs, err := cl.WatchGeneration(ctx, &pb.WatchGenerationRequest{})
	if err == nil {
		_, err = gs.Recv()
	}
	check(err, codes.InvalidArgument, "worker_id")

	// Reports about a job's wrong generation or from a non-member are refused.
	id := runningJob(t, c, cl, "w1")
	_, err = cl.ReportProgress(ctx, &pb.ReportProgressRequest{JobId: id, Generation: 99, WorkerId: "w1", Metrics: &pb.Metrics{Step: 1}})
	check(err, codes.FailedPrecondition, "stale generation")
	_, err = cl.ReportCheckpoint(ctx, &pb.ReportCheckpointRequest{JobId: id, Generation: 1, WorkerId: "nobody", Checkpoint: &pb.Checkpoint{Key: "k", Step: 20}})
	check(err, codes.FailedPrecondition, "not a member")
	_, err = cl.ReportCheckpoint(ctx, &pb.ReportCheckpointRequest{JobId: id, Generation: 1, WorkerId: "w1", Checkpoint: &pb.Checkpoint{Key: "k", Step: 2}})
	check(err, codes.FailedPrecondition, "checkpoint.step")
	_, err = cl.ReportResult(ctx, &pb.ReportResultRequest{JobId: id, Generation: 1, WorkerId: "w1", State: pb.JobState_JOB_STATE_CANCELED})
	check(err, codes.InvalidArgument, "state")
}

func TestSubmitChecksDataset(t *testing.T) {
	datasets := fakeDatasets{"mnist": {Rows: 60000, D: 784}, "acts": {Rows: 1000, D: 4}, "acts-test": {Rows: 10, D: 4}}
	cl := MakeClusterWith(t, 1, func(cfg *Config) { cfg.Datasets, cfg.JobSpecs = datasets, jobspec.Rules{} })
	client := cl.Client()
	for _, tc := range []struct {
		edit func(*pb.JobSpec)
		msg  string
	}{
		{func(s *pb.JobSpec) { s.Data = "cifar" }, `data: "cifar" not found`},
		{func(s *pb.JobSpec) { s.Test = "cifar-test" }, `test: "cifar-test" not found`},
		{func(s *pb.JobSpec) { s.Test = "acts-test" }, `test: "acts-test" has d = 4 but data "mnist" has d = 784`},
		{func(s *pb.JobSpec) { s.Model.D = 5 }, `d: 5 disagrees with data "mnist" (d = 784)`},
		{func(s *pb.JobSpec) { s.Data, s.Model.D, s.Batch = "acts", 0, 1001 }, `batch: 1001 exceeds the 1000 rows of data "acts"`},
	} {
		s := testSpec()
		tc.edit(s)
		_, err := client.SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: s})
		wantCode(t, err, codes.InvalidArgument, tc.msg)
	}
	// A checker that can suggest names has them listed; one that cannot
	// (above) does not.
	sl := MakeClusterWith(t, 1, func(cfg *Config) { cfg.Datasets = suggestingDatasets{datasets} })
	s := testSpec()
	s.Data = "act"
	_, err := sl.Client().SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: s})
	wantCode(t, err, codes.InvalidArgument, `data: "act" not found in the store; did you mean acts, acts-test?`)
	s.Data = "cifar"
	_, err = sl.Client().SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: s})
	if msg := status.Convert(err).Message(); !strings.HasSuffix(msg, `"cifar" not found in the store`) {
		t.Errorf("no close name: %q, want no suggestion", msg)
	}
	// d and steps come from the manifest: 1000 rows in batches of 100, 2.5
	// epochs, on a model submitted without d.
	s = testSpec()
	s.Data, s.Test, s.Model.D, s.Steps, s.Epochs, s.Batch = "acts", "acts-test", 0, 0, 2.5, 100
	resp, err := client.SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: s})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Job.Spec; got.Model.D != 4 || got.Steps != 25 {
		t.Errorf("stored d = %d, steps = %d; want 4, 25", got.Model.D, got.Steps)
	}
}

func TestWatchJob(t *testing.T) {
	c := MakeCluster(t, 1)
	cl := c.Client()
	ctx := ctxT(t)
	resp, err := cl.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: testSpec()})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := cl.WatchJob(ctx, &pb.WatchJobRequest{JobId: resp.Job.Id})
	if err != nil {
		t.Fatal(err)
	}
	first, err := ws.Recv()
	if err != nil || first.Job.State != pb.JobState_JOB_STATE_QUEUED {
		t.Fatalf("first update %v %v", first, err)
	}
	if _, err := cl.CancelJob(ctx, &pb.CancelJobRequest{JobId: resp.Job.Id, Reason: "test over"}); err != nil {
		t.Fatal(err)
	}
	var last *pb.Job
	for {
		u, err := ws.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = u.Job
	}
	if last.GetState() != pb.JobState_JOB_STATE_CANCELED || last.Reason != "test over" {
		t.Fatalf("last update %v", last)
	}
}

func TestWatchGenerationFollowsProtocol(t *testing.T) {
	c := MakeCluster(t, 1)
	cl := c.Client()
	ctx := ctxT(t)
	c.JoinWorker("w1")
	gs, err := cl.WatchGeneration(ctx, &pb.WatchGenerationRequest{WorkerId: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	recv := func() *pb.Job {
		t.Helper()
		u, err := gs.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return u.Job
	}
	if j := recv(); j != nil {
		t.Fatalf("idle worker got %v", j)
	}
	resp, err := cl.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: testSpec()})
	if err != nil {
		t.Fatal(err)
	}
	j := recv()
	if j.Id != resp.Job.Id || j.Generation.GetPhase() != pb.GenerationPhase_GENERATION_PHASE_ANNOUNCED || j.Generation.Members[0].RingAddr != "w1.ring:2" {
		t.Fatalf("announcement %v", j)
	}
	if _, err := cl.ReportReady(ctx, &pb.ReportReadyRequest{JobId: j.Id, Generation: j.Generation.Id, WorkerId: "w1", LastStep: 0, Checksum: 7}); err != nil {
		t.Fatal(err)
	}
	j = recv()
	if g := j.Generation; g.Phase != pb.GenerationPhase_GENERATION_PHASE_STARTED || g.Donor != "w1" || g.DonorChecksum != 7 || j.State != pb.JobState_JOB_STATE_RUNNING {
		t.Fatalf("start %v", j)
	}
	if _, err := cl.ReportResult(ctx, &pb.ReportResultRequest{JobId: j.Id, Generation: j.Generation.Id, WorkerId: "w1",
		State: pb.JobState_JOB_STATE_COMPLETED, ModelKey: "models/m", FinalMetrics: &pb.Metrics{Step: 100}}); err != nil {
		t.Fatal(err)
	}
	if j = recv(); j.State != pb.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("end %v", j)
	}
	if j = recv(); j != nil {
		t.Fatalf("worker not idle after the job: %v", j)
	}
}

func TestRetriedReportsOverGRPC(t *testing.T) {
	c := MakeCluster(t, 1)
	cl := c.Client()
	ctx := ctxT(t)
	id := runningJob(t, c, cl, "w1")
	g := c.nodes[0].fsm.Job(id).Generation.Id
	prog := &pb.ReportProgressRequest{JobId: id, Generation: g, WorkerId: "w1", RequestId: "w1-p-13", Metrics: &pb.Metrics{Step: 13}}
	if _, err := cl.ReportProgress(ctx, prog); err != nil {
		t.Fatal(err)
	}
	prog.Metrics = &pb.Metrics{Step: 99} // a retry carries the same id; this content is not applied
	if _, err := cl.ReportProgress(ctx, prog); err != nil {
		t.Fatal(err)
	}
	if j := c.nodes[0].fsm.Job(id); j.LastStep != 13 {
		t.Fatalf("retried progress applied: last step %d", j.LastStep)
	}
	res := &pb.ReportResultRequest{JobId: id, Generation: g, WorkerId: "w1", RequestId: "w1-result",
		State: pb.JobState_JOB_STATE_COMPLETED, ModelKey: "models/" + id, FinalMetrics: &pb.Metrics{Step: 100}}
	for attempt := range 2 {
		resp, err := cl.ReportResult(ctx, res)
		if err != nil {
			t.Fatalf("result attempt %d: %v", attempt, err)
		}
		if j := resp.Job; j.State != pb.JobState_JOB_STATE_COMPLETED || j.ModelKey != "models/"+id {
			t.Fatalf("result attempt %d: %v", attempt, j)
		}
	}
	res.RequestId = "w1-another"
	_, err := cl.ReportResult(ctx, res)
	wantCode(t, err, codes.FailedPrecondition, "finished")
}

func TestPeerFailureReport(t *testing.T) {
	c := MakeCluster(t, 1)
	cl := c.Client()
	ctx := ctxT(t)
	id := runningJob(t, c, cl, "w1", "w2", "w3")
	g0 := c.nodes[0].fsm.Job(id).Generation.Id
	// The peer is still gossiping: the same members form a fresh ring.
	if _, err := cl.ReportPeerFailure(ctx, &pb.ReportPeerFailureRequest{JobId: id, Generation: g0, WorkerId: "w1", PeerId: "w2", Detail: "stream reset"}); err != nil {
		t.Fatal(err)
	}
	j := c.nodes[0].fsm.Job(id)
	if g := j.Generation; g.Id != g0+1 || len(g.Members) != 3 || g.Phase != pb.GenerationPhase_GENERATION_PHASE_ANNOUNCED {
		t.Fatalf("after report on a live peer: %v", g)
	}
	// A second report about the old generation changes nothing.
	if _, err := cl.ReportPeerFailure(ctx, &pb.ReportPeerFailureRequest{JobId: id, Generation: g0, WorkerId: "w3", PeerId: "w2"}); err != nil {
		t.Fatal(err)
	}
	if g := c.nodes[0].fsm.Job(id).Generation; g.Id != g0+1 {
		t.Fatalf("stale report made generation %d", g.Id)
	}
	_, err := cl.ReportPeerFailure(ctx, &pb.ReportPeerFailureRequest{JobId: id, Generation: g0 + 1, WorkerId: "w1", PeerId: "zz"})
	wantCode(t, err, codes.FailedPrecondition, "peer_id")
	// Reported again in the very next generation: w2 is quarantined and
	// the ring goes on without it, although it still gossips.
	if _, err := cl.ReportPeerFailure(ctx, &pb.ReportPeerFailureRequest{JobId: id, Generation: g0 + 1, WorkerId: "w3", PeerId: "w2", Detail: "again"}); err != nil {
		t.Fatal(err)
	}
	g := c.nodes[0].fsm.Job(id).Generation
	if g.Id != g0+2 || len(g.Members) != 2 || g.Members[0].WorkerId != "w1" || g.Members[1].WorkerId != "w3" {
		t.Fatalf("after a second report: %v", g)
	}
	if w := c.nodes[0].fsm.Worker("w2"); w.Alive || !w.Quarantined {
		t.Fatalf("w2 not quarantined: %v", w)
	}
}

func TestSilentWorkerIsQuarantinedUntilItRegisters(t *testing.T) {
	c := MakeClusterWith(t, 1, func(cfg *Config) { cfg.ReadyTimeout = 2 * time.Second })
	cl := c.Client()
	ctx := ctxT(t)
	spec := testSpec()
	spec.MaxWorkers = 2
	resp, err := cl.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Job.Id
	c.JoinWorker("w1")
	c.JoinWorker("w2")
	// w1 answers every announcement; w2 never does.
	WaitFor(t, waitTimeout, "a generation without the silent worker", func() bool {
		g := c.nodes[0].fsm.Job(id).GetGeneration()
		if g.GetPhase() == pb.GenerationPhase_GENERATION_PHASE_ANNOUNCED {
			if _, ok := g.Reports["w1"]; !ok {
				cl.ReportReady(ctx, &pb.ReportReadyRequest{JobId: id, Generation: g.Id, WorkerId: "w1"})
			}
		}
		return g.GetPhase() == pb.GenerationPhase_GENERATION_PHASE_STARTED && len(g.Members) == 1 && g.Members[0].WorkerId == "w1"
	})
	if w := c.nodes[0].fsm.Worker("w2"); !w.Quarantined || !strings.Contains(w.DownReason, "no ready report") {
		t.Fatalf("w2: %v", w)
	}
	// Gossip alone does not bring it back; its own Register does.
	if _, err := cl.Register(ctx, &pb.RegisterRequest{WorkerId: "w2", GrpcAddr: "w2.grpc:1", RingAddr: "w2.ring:2"}); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, waitTimeout, "w2 back in the ring", func() bool {
		g := c.nodes[0].fsm.Job(id).GetGeneration()
		return len(g.GetMembers()) == 2 && g.Members[1].WorkerId == "w2"
	})
}

func TestHealthServedWithoutToken(t *testing.T) {
	c := MakeCluster(t, 1)
	conn := rawConn(t, c.nodes[0].GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	h := healthpb.NewHealthClient(conn)
	resp, err := h.Check(ctxT(t), &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v %v", resp, err)
	}
	WaitFor(t, waitTimeout, "the control service reported serving", func() bool {
		resp, err := h.Check(ctxT(t), &healthpb.HealthCheckRequest{Service: pb.Control_ServiceDesc.ServiceName})
		return err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING
	})
}

// TestReadAfterWriteOnFollower: a job submitted through the leader is
// found through a follower that has not applied it yet (its raft traffic
// cut off): the follower asks the leader and waits for its replica instead
// of saying NotFound. A job the leader does not know is NotFound there.
func TestReadAfterWriteOnFollower(t *testing.T) {
	c := MakeCluster(t, 3)
	c.WaitVoters(3)
	leader := c.Leader()
	f := c.Follower()
	lc, fc := c.Client(c.Addrs()[leader]), c.Client(c.Addrs()[f])
	ctx := ctxT(t)
	c.Partition(f, true)
	resp, err := lc.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: testSpec(), RequestId: "raw-1"})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Job.Id
	if c.nodes[f].fsm.Job(id) != nil {
		t.Fatalf("follower %d applied job %s while partitioned", f, id)
	}
	const heal = 300 * time.Millisecond
	go func() {
		time.Sleep(heal)
		c.Partition(f, false)
	}()
	start := time.Now()
	got, err := fc.GetJob(ctx, &pb.GetJobRequest{JobId: id})
	if err != nil {
		t.Fatalf("GetJob %s on follower %d right after the submit: %v", id, f, err)
	}
	if got.Job.Id != id || time.Since(start) < heal/2 {
		t.Fatalf("GetJob on follower: job %s after %v, want %s once the follower applied it (after ~%v)", got.Job.Id, time.Since(start), id, heal)
	}
	w, err := fc.WatchJob(ctx, &pb.WatchJobRequest{JobId: id})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := w.Recv(); err != nil || first.Job.Id != id {
		t.Fatalf("WatchJob on follower: %v %v", first, err)
	}
	_, err = fc.GetJob(ctx, &pb.GetJobRequest{JobId: "job-999999"})
	wantCode(t, err, codes.NotFound, "job-999999")
}
