package coordinator

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/worker/jobspec"
)

// testSpec is a valid job: the defaults of dsae job submit on mnist.
func testSpec() *pb.JobSpec {
	s := jobspec.Default()
	s.Name, s.Data, s.Steps, s.CheckpointEvery = "mnist-kl", "mnist", 100, 10
	s.Model.D, s.Model.WeightDecay, s.Model.Seed = 784, 1e-4, 7
	return s.Proto()
}

func cmdOf(op any) *pb.Command {
	c := &pb.Command{Version: CommandVersion, UnixNano: 1000}
	switch o := op.(type) {
	case *pb.SubmitJobCmd:
		c.Op = &pb.Command_SubmitJob{SubmitJob: o}
	case *pb.CancelJobCmd:
		c.Op = &pb.Command_CancelJob{CancelJob: o}
	case *pb.RegisterWorkerCmd:
		c.Op = &pb.Command_RegisterWorker{RegisterWorker: o}
	case *pb.WorkerDownCmd:
		c.Op = &pb.Command_WorkerDown{WorkerDown: o}
	case *pb.NewGenerationCmd:
		c.Op = &pb.Command_NewGeneration{NewGeneration: o}
	case *pb.ReadyCmd:
		c.Op = &pb.Command_Ready{Ready: o}
	case *pb.ProgressCmd:
		c.Op = &pb.Command_Progress{Progress: o}
	case *pb.CheckpointCmd:
		c.Op = &pb.Command_Checkpoint{Checkpoint: o}
	case *pb.ResultCmd:
		c.Op = &pb.Command_Result{Result: o}
	case *pb.SetCoordinatorCmd:
		c.Op = &pb.Command_SetCoordinator{SetCoordinator: o}
	case *pb.RemoveCoordinatorCmd:
		c.Op = &pb.Command_RemoveCoordinator{RemoveCoordinator: o}
	default:
		panic("unknown op")
	}
	return c
}

// applyLog goes through the raft entry point, encoding included.
func applyLog(f *FSM, op any) ApplyResult {
	data, err := EncodeCommand(cmdOf(op))
	if err != nil {
		panic(err)
	}
	return f.Apply(&raft.Log{Type: raft.LogCommand, Data: data}).(ApplyResult)
}

func mustApply(t *testing.T, f *FSM, op any) proto.Message {
	t.Helper()
	r := applyLog(f, op)
	if r.Err != nil {
		t.Fatalf("apply %T: %v", op, r.Err)
	}
	return r.Reply
}

func mustFail(t *testing.T, f *FSM, op any, want error) {
	t.Helper()
	before := f.State()
	r := applyLog(f, op)
	if !errors.Is(r.Err, want) {
		t.Fatalf("apply %T: err %v, want %v", op, r.Err, want)
	}
	if !proto.Equal(before, f.State()) {
		t.Fatalf("refused %T changed the state", op)
	}
}

// startedJob returns an FSM with one job running on workers w1, w2.
func startedJob(t *testing.T) (*FSM, string) {
	f := NewFSM()
	j := mustApply(t, f, &pb.SubmitJobCmd{Spec: testSpec()}).(*pb.Job)
	for _, w := range []string{"w1", "w2"} {
		mustApply(t, f, &pb.RegisterWorkerCmd{WorkerId: w, GrpcAddr: w + ":1", RingAddr: w + ":2"})
	}
	mustApply(t, f, &pb.NewGenerationCmd{JobId: j.Id, WorkerIds: []string{"w1", "w2"}})
	mustApply(t, f, &pb.ReadyCmd{JobId: j.Id, Generation: 1, WorkerId: "w1", Report: &pb.ReadyReport{}})
	mustApply(t, f, &pb.ReadyCmd{JobId: j.Id, Generation: 1, WorkerId: "w2", Report: &pb.ReadyReport{}})
	return f, j.Id
}

func TestSubmitJob(t *testing.T) {
	f := NewFSM()
	j := mustApply(t, f, &pb.SubmitJobCmd{Spec: testSpec()}).(*pb.Job)
	if j.Id != "job-000001" || j.State != pb.JobState_JOB_STATE_QUEUED || j.SubmittedUnixNano != 1000 {
		t.Fatalf("job %v", j)
	}
	j2 := mustApply(t, f, &pb.SubmitJobCmd{Spec: testSpec()}).(*pb.Job)
	if j2.Id != "job-000002" || j2.Seq != 2 {
		t.Fatalf("second job %s seq %d", j2.Id, j2.Seq)
	}
	bad := testSpec()
	bad.Batch = 0 // the FSM checks job-level fields only
	mustFail(t, f, &pb.SubmitJobCmd{Spec: bad}, ErrInvalidSpec)
}

func TestSubmitJobWithRequestIDIsIdempotent(t *testing.T) {
	f := NewFSM()
	j := mustApply(t, f, &pb.SubmitJobCmd{Spec: testSpec(), RequestId: "req-a"}).(*pb.Job)
	if j.Id != "job-000001" || j.RequestId != "req-a" {
		t.Fatalf("job %v", j)
	}
	mustApply(t, f, &pb.CancelJobCmd{JobId: j.Id}) // even a finished job answers its retried submission
	again := mustApply(t, f, &pb.SubmitJobCmd{Spec: testSpec(), RequestId: "req-a"}).(*pb.Job)
	if again.Id != j.Id || again.State != pb.JobState_JOB_STATE_CANCELED {
		t.Fatalf("retried submit returned %v, want %s as it stands", again, j.Id)
	}
	if st := f.State(); len(st.Jobs) != 1 || st.NextJobSeq != 1 {
		t.Fatalf("retried submit created a job: %d jobs, seq %d", len(st.Jobs), st.NextJobSeq)
	}
	other := testSpec()
	other.Steps = 5
	mustFail(t, f, &pb.SubmitJobCmd{Spec: other, RequestId: "req-a"}, ErrInvalidSpec)
	if r := applyLog(f, &pb.SubmitJobCmd{Spec: other, RequestId: "req-a"}); !strings.Contains(r.Err.Error(), "request_id") {
		t.Fatalf("reused request id with another spec: %v, want an error naming request_id", r.Err)
	}
	// Another id, or none, makes a new job each time.
	if j2 := mustApply(t, f, &pb.SubmitJobCmd{Spec: testSpec(), RequestId: "req-b"}).(*pb.Job); j2.Id != "job-000002" {
		t.Fatalf("second id made %s", j2.Id)
	}
	mustApply(t, f, &pb.SubmitJobCmd{Spec: testSpec()})
	mustApply(t, f, &pb.SubmitJobCmd{Spec: testSpec()})
	if n := len(f.State().Jobs); n != 4 {
		t.Fatalf("%d jobs, want 4", n)
	}
}

func TestRepeatedReportsAreAnsweredNotApplied(t *testing.T) {
	f, id := startedJob(t)
	mustApply(t, f, &pb.ProgressCmd{JobId: id, Generation: 1, WorkerId: "w1", RequestId: "p1", Metrics: &pb.Metrics{Step: 5, Values: map[string]float64{"mse": 0.5}}})
	if w := f.Worker("w1"); w.LastRequestId != "p1" {
		t.Fatalf("last request id %q", w.LastRequestId)
	}
	// A repeat (same id) is answered from the state; its content is not applied.
	before := f.State()
	j := mustApply(t, f, &pb.ProgressCmd{JobId: id, Generation: 1, WorkerId: "w1", RequestId: "p1", Metrics: &pb.Metrics{Step: 9}}).(*pb.Job)
	if !proto.Equal(before, f.State()) || j.LastStep != 5 {
		t.Fatalf("repeated progress applied: last step %d", j.LastStep)
	}
	// The same id from another worker is that worker's own first report.
	mustApply(t, f, &pb.ProgressCmd{JobId: id, Generation: 1, WorkerId: "w2", RequestId: "p1", Metrics: &pb.Metrics{Step: 6}})
	if j := f.Job(id); j.LastStep != 6 {
		t.Fatalf("w2's report not applied: last step %d", j.LastStep)
	}

	ck := &pb.CheckpointCmd{JobId: id, Generation: 1, WorkerId: "w1", RequestId: "c1", Checkpoint: &pb.Checkpoint{Key: "ck/10", Step: 10, Checksum: 3}}
	mustApply(t, f, ck)
	ck.Checkpoint = &pb.Checkpoint{Key: "ck/10-other", Step: 10}
	mustApply(t, f, ck)
	if cks := f.Job(id).Checkpoints; len(cks) != 1 || cks[0].Key != "ck/10" {
		t.Fatalf("repeated checkpoint applied: %v", cks)
	}

	res := &pb.ResultCmd{JobId: id, Generation: 1, WorkerId: "w1", RequestId: "r1", State: pb.JobState_JOB_STATE_COMPLETED, ModelKey: "models/m"}
	mustApply(t, f, res)
	// The job has finished: the retried result gets it, a new one ErrTerminal.
	got := mustApply(t, f, res).(*pb.Job)
	if got.State != pb.JobState_JOB_STATE_COMPLETED || got.ModelKey != "models/m" {
		t.Fatalf("retried result: %v", got)
	}
	res.RequestId = "r2"
	mustFail(t, f, res, ErrTerminal)
	res.RequestId = ""
	mustFail(t, f, res, ErrTerminal)
}

func TestRepeatedReadyReport(t *testing.T) {
	f := NewFSM()
	j := mustApply(t, f, &pb.SubmitJobCmd{Spec: testSpec()}).(*pb.Job)
	for _, w := range []string{"w1", "w2"} {
		mustApply(t, f, &pb.RegisterWorkerCmd{WorkerId: w})
	}
	mustApply(t, f, &pb.NewGenerationCmd{JobId: j.Id, WorkerIds: []string{"w1", "w2"}})
	rd := &pb.ReadyCmd{JobId: j.Id, Generation: 1, WorkerId: "w1", RequestId: "a", Report: &pb.ReadyReport{LastStep: 4, Checksum: 4}}
	mustApply(t, f, rd)
	rd.Report = &pb.ReadyReport{LastStep: 40, Checksum: 40} // not applied: same id
	g := mustApply(t, f, rd).(*pb.Generation)
	if g.Id != 1 || g.Reports["w1"].GetLastStep() != 4 {
		t.Fatalf("repeated ready: %v", g)
	}
	// Once the generation is gone, a repeat is told so, as a first report would be.
	mustApply(t, f, &pb.NewGenerationCmd{JobId: j.Id, WorkerIds: []string{"w1"}})
	mustFail(t, f, rd, ErrStaleGeneration)
	mustFail(t, f, &pb.ReadyCmd{JobId: "job-999999", Generation: 1, WorkerId: "w1", RequestId: "a", Report: &pb.ReadyReport{}}, ErrNotFound)
}

func TestCancelJob(t *testing.T) {
	f, id := startedJob(t)
	j := mustApply(t, f, &pb.CancelJobCmd{JobId: id}).(*pb.Job)
	if j.State != pb.JobState_JOB_STATE_CANCELED || j.Reason != "canceled by user" {
		t.Fatalf("state %v reason %q", j.State, j.Reason)
	}
	if w := f.Worker("w1"); w.JobId != "" {
		t.Fatalf("w1 still assigned to %q", w.JobId)
	}
	mustFail(t, f, &pb.CancelJobCmd{JobId: id}, ErrTerminal)
	mustFail(t, f, &pb.CancelJobCmd{JobId: "job-999999"}, ErrNotFound)
	mustFail(t, f, &pb.CancelJobCmd{}, ErrInvalidSpec)
}

func TestRegisterAndWorkerDown(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, &pb.RegisterWorkerCmd{WorkerId: "w1", GrpcAddr: "a:1", RingAddr: "a:2"})
	if w := f.Worker("w1"); !w.Alive || w.GrpcAddr != "a:1" || w.RingAddr != "a:2" {
		t.Fatalf("worker %v", w)
	}
	mustApply(t, f, &pb.WorkerDownCmd{WorkerId: "w1"})
	if f.Worker("w1").Alive {
		t.Fatal("w1 alive after down")
	}
	mustApply(t, f, &pb.RegisterWorkerCmd{WorkerId: "w1", GrpcAddr: "b:1"})
	if w := f.Worker("w1"); !w.Alive || w.GrpcAddr != "b:1" {
		t.Fatalf("re-registered worker %v", w)
	}
	mustApply(t, f, &pb.WorkerDownCmd{WorkerId: "w1", Reason: "silent", Quarantine: true})
	if w := f.Worker("w1"); w.Alive || !w.Quarantined || w.DownReason != "silent" {
		t.Fatalf("quarantined worker %v", w)
	}
	mustApply(t, f, &pb.RegisterWorkerCmd{WorkerId: "w1", GrpcAddr: "b:1"})
	if w := f.Worker("w1"); !w.Alive || w.Quarantined || w.DownReason != "" {
		t.Fatalf("registering did not lift the quarantine: %v", w)
	}
	mustFail(t, f, &pb.WorkerDownCmd{WorkerId: "nobody"}, ErrNotFound)
	mustFail(t, f, &pb.RegisterWorkerCmd{}, ErrInvalidSpec)
}

func TestNewGeneration(t *testing.T) {
	f := NewFSM()
	j := mustApply(t, f, &pb.SubmitJobCmd{Spec: testSpec()}).(*pb.Job)
	j2 := mustApply(t, f, &pb.SubmitJobCmd{Spec: testSpec()}).(*pb.Job)
	for _, w := range []string{"w1", "w2", "w3"} {
		mustApply(t, f, &pb.RegisterWorkerCmd{WorkerId: w})
	}
	got := mustApply(t, f, &pb.NewGenerationCmd{JobId: j.Id, WorkerIds: []string{"w2", "w1"}}).(*pb.Job)
	g := got.Generation
	if g.Id != 1 || len(g.Members) != 2 || g.Members[0].WorkerId != "w2" || g.Members[0].Rank != 0 ||
		g.Members[1].WorkerId != "w1" || g.Members[1].Rank != 1 || g.Phase != pb.GenerationPhase_GENERATION_PHASE_ANNOUNCED {
		t.Fatalf("generation %v", g)
	}
	if f.Worker("w1").JobId != j.Id || f.Worker("w3").JobId != "" {
		t.Fatal("worker assignment wrong")
	}
	mustFail(t, f, &pb.NewGenerationCmd{JobId: j2.Id, WorkerIds: []string{"w1"}}, ErrBusy)
	mustFail(t, f, &pb.NewGenerationCmd{JobId: j.Id, WorkerIds: []string{"w1", "w1"}}, ErrInvalidSpec)
	mustFail(t, f, &pb.NewGenerationCmd{JobId: j.Id, WorkerIds: []string{"zz"}}, ErrNotFound)
	mustApply(t, f, &pb.WorkerDownCmd{WorkerId: "w3"})
	mustFail(t, f, &pb.NewGenerationCmd{JobId: j.Id, WorkerIds: []string{"w3"}}, ErrInvalidSpec)
	// Shrinking frees the dropped worker for the other job.
	mustApply(t, f, &pb.NewGenerationCmd{JobId: j.Id, WorkerIds: []string{"w2"}})
	if f.Worker("w1").JobId != "" || f.Job(j.Id).Generation.Id != 2 {
		t.Fatal("w1 not released or generation id not advanced")
	}
	mustApply(t, f, &pb.NewGenerationCmd{JobId: j2.Id, WorkerIds: []string{"w1"}})
	// No workers: the job goes back to the queue without a generation.
	got = mustApply(t, f, &pb.NewGenerationCmd{JobId: j.Id, Reason: "waiting for workers: 0 available, min_workers 2"}).(*pb.Job)
	if got.Generation != nil || got.State != pb.JobState_JOB_STATE_QUEUED || got.LastGenerationId != 3 ||
		got.Reason != "waiting for workers: 0 available, min_workers 2" || f.Worker("w2").JobId != "" {
		t.Fatalf("empty generation: %v", got)
	}
	// Without a generation, an empty one only changes the reason.
	got = mustApply(t, f, &pb.NewGenerationCmd{JobId: j.Id, Reason: "waiting for workers: 1 available, min_workers 2"}).(*pb.Job)
	if got.LastGenerationId != 3 || got.Reason != "waiting for workers: 1 available, min_workers 2" {
		t.Fatalf("empty generation of a waiting job: %v", got)
	}
}

func TestReadyFixesStartAndDonor(t *testing.T) {
	f := NewFSM()
	j := mustApply(t, f, &pb.SubmitJobCmd{Spec: testSpec()}).(*pb.Job)
	for _, w := range []string{"w1", "w2", "w3"} {
		mustApply(t, f, &pb.RegisterWorkerCmd{WorkerId: w})
	}
	mustApply(t, f, &pb.NewGenerationCmd{JobId: j.Id, WorkerIds: []string{"w1", "w2", "w3"}})
	mustApply(t, f, &pb.ReadyCmd{JobId: j.Id, Generation: 1, WorkerId: "w1", Report: &pb.ReadyReport{LastStep: 41, Checksum: 1}})
	mustApply(t, f, &pb.ReadyCmd{JobId: j.Id, Generation: 1, WorkerId: "w2", Report: &pb.ReadyReport{LastStep: 42, Checksum: 2}})
	if f.Job(j.Id).Generation.Phase != pb.GenerationPhase_GENERATION_PHASE_ANNOUNCED {
		t.Fatal("started before every member reported")
	}
	mustFail(t, f, &pb.ReadyCmd{JobId: j.Id, Generation: 9, WorkerId: "w3", Report: &pb.ReadyReport{}}, ErrStaleGeneration)
	mustFail(t, f, &pb.ReadyCmd{JobId: j.Id, Generation: 1, WorkerId: "w9", Report: &pb.ReadyReport{}}, ErrNotMember)
	mustFail(t, f, &pb.ReadyCmd{JobId: j.Id, Generation: 1, WorkerId: "w3", Report: &pb.ReadyReport{LastStep: -1}}, ErrInvalidSpec)
	g := mustApply(t, f, &pb.ReadyCmd{JobId: j.Id, Generation: 1, WorkerId: "w3", Report: &pb.ReadyReport{LastStep: 42, Checksum: 2}}).(*pb.Generation)
	if g.Phase != pb.GenerationPhase_GENERATION_PHASE_STARTED || g.StartStep != 42 || g.Donor != "w2" || g.DonorChecksum != 2 {
		t.Fatalf("start %d donor %q checksum %d phase %v", g.StartStep, g.Donor, g.DonorChecksum, g.Phase)
	}
	if jj := f.Job(j.Id); jj.State != pb.JobState_JOB_STATE_RUNNING || jj.LastStep != 42 {
		t.Fatalf("job state %v last step %d", jj.State, jj.LastStep)
	}
}

func TestCheckpointIsDonorWhenAheadOfMembers(t *testing.T) {
	f, id := startedJob(t)
	mustApply(t, f, &pb.CheckpointCmd{JobId: id, Generation: 1, WorkerId: "w1", Checkpoint: &pb.Checkpoint{Key: "ck/50", Step: 50, Checksum: 0xabc}})
	mustApply(t, f, &pb.WorkerDownCmd{WorkerId: "w1"})
	mustApply(t, f, &pb.WorkerDownCmd{WorkerId: "w2"})
	mustApply(t, f, &pb.NewGenerationCmd{JobId: id})
	mustApply(t, f, &pb.RegisterWorkerCmd{WorkerId: "w3"})
	mustApply(t, f, &pb.NewGenerationCmd{JobId: id, WorkerIds: []string{"w3"}})
	g := mustApply(t, f, &pb.ReadyCmd{JobId: id, Generation: 3, WorkerId: "w3", Report: &pb.ReadyReport{}}).(*pb.Generation)
	if g.StartStep != 50 || g.DonorCheckpoint != "ck/50" || g.Donor != "" || g.DonorChecksum != 0xabc {
		t.Fatalf("start %d donor %q checkpoint %q checksum %#x", g.StartStep, g.Donor, g.DonorCheckpoint, g.DonorChecksum)
	}
}

func TestProgress(t *testing.T) {
	f, id := startedJob(t)
	mustApply(t, f, &pb.ProgressCmd{JobId: id, Generation: 1, WorkerId: "w1", Metrics: &pb.Metrics{Step: 5, Values: map[string]float64{"mse": 0.5}}})
	mustApply(t, f, &pb.ProgressCmd{JobId: id, Generation: 1, WorkerId: "w2", Metrics: &pb.Metrics{Step: 3, Values: map[string]float64{"mse": 0.9}}})
	j := f.Job(id)
	if j.LastStep != 5 || j.LatestMetrics.Values["mse"] != 0.5 {
		t.Fatalf("last step %d metrics %v", j.LastStep, j.LatestMetrics)
	}
	mustFail(t, f, &pb.ProgressCmd{JobId: id, Generation: 2, WorkerId: "w1", Metrics: &pb.Metrics{Step: 6}}, ErrStaleGeneration)
	mustFail(t, f, &pb.ProgressCmd{JobId: id, Generation: 1, WorkerId: "w1", Metrics: &pb.Metrics{Step: -6}}, ErrInvalidSpec)
	// Before the generation starts, progress is refused.
	mustApply(t, f, &pb.NewGenerationCmd{JobId: id, WorkerIds: []string{"w1"}})
	mustFail(t, f, &pb.ProgressCmd{JobId: id, Generation: 2, WorkerId: "w1", Metrics: &pb.Metrics{Step: 6}}, ErrStaleGeneration)
}

func TestCheckpoint(t *testing.T) {
	f, id := startedJob(t)
	ck := func(step int64, key string) *pb.CheckpointCmd {
		return &pb.CheckpointCmd{JobId: id, Generation: 1, WorkerId: "w1", Checkpoint: &pb.Checkpoint{Key: key, Step: step, Checksum: 5}}
	}
	mustApply(t, f, ck(10, "k10"))
	mustApply(t, f, ck(10, "k10")) // retried: no duplicate
	mustApply(t, f, ck(20, "k20"))
	j := f.Job(id)
	if len(j.Checkpoints) != 2 || j.Checkpoints[1].Key != "k20" || j.LastStep != 20 || j.Checkpoints[1].RecordedUnixNano != 1000 {
		t.Fatalf("checkpoints %v last step %d", j.Checkpoints, j.LastStep)
	}
	mustFail(t, f, ck(5, "k5"), ErrStepBackwards)
	mustFail(t, f, ck(30, ""), ErrInvalidSpec)
	for s := int64(30); s < 30+maxCheckpoints; s++ {
		mustApply(t, f, ck(s, "k"))
	}
	if n := len(f.Job(id).Checkpoints); n != maxCheckpoints {
		t.Fatalf("%d checkpoints kept, want %d", n, maxCheckpoints)
	}
}

func TestResult(t *testing.T) {
	f, id := startedJob(t)
	mustFail(t, f, &pb.ResultCmd{JobId: id, Generation: 1, WorkerId: "w1", State: pb.JobState_JOB_STATE_RUNNING}, ErrInvalidSpec)
	mustFail(t, f, &pb.ResultCmd{JobId: id, Generation: 1, WorkerId: "w1", State: pb.JobState_JOB_STATE_FAILED}, ErrInvalidSpec)
	j := mustApply(t, f, &pb.ResultCmd{JobId: id, Generation: 1, WorkerId: "w1", State: pb.JobState_JOB_STATE_COMPLETED,
		FinalMetrics: &pb.Metrics{Step: 100, Values: map[string]float64{"fvu": 0.1}}, ModelKey: "models/x"}).(*pb.Job)
	if j.State != pb.JobState_JOB_STATE_COMPLETED || j.ModelKey != "models/x" || j.LastStep != 100 || j.FinalMetrics.Values["fvu"] != 0.1 || j.FinishedUnixNano != 1000 {
		t.Fatalf("job %v", j)
	}
	if f.Worker("w1").JobId != "" || f.Worker("w2").JobId != "" {
		t.Fatal("workers not released")
	}
	mustFail(t, f, &pb.ProgressCmd{JobId: id, Generation: 1, WorkerId: "w1", Metrics: &pb.Metrics{Step: 101}}, ErrTerminal)
}

func TestCoordinators(t *testing.T) {
	f := NewFSM()
	mustApply(t, f, &pb.SetCoordinatorCmd{Coordinator: &pb.Coordinator{Id: "c1", RaftAddr: "r", GrpcAddr: "g", GossipAddr: "m"}})
	if c := f.State().Coordinators["c1"]; c.GetGrpcAddr() != "g" {
		t.Fatalf("coordinator %v", c)
	}
	mustFail(t, f, &pb.SetCoordinatorCmd{Coordinator: &pb.Coordinator{}}, ErrInvalidSpec)
	mustApply(t, f, &pb.RemoveCoordinatorCmd{Id: "c1"})
	mustFail(t, f, &pb.RemoveCoordinatorCmd{Id: "c1"}, ErrNotFound)
}

func TestBadLogEntries(t *testing.T) {
	f := NewFSM()
	for _, data := range [][]byte{{0xff, 0xff, 0xff}, {}} {
		r := f.Apply(&raft.Log{Type: raft.LogCommand, Data: data}).(ApplyResult)
		if !errors.Is(r.Err, ErrUnknownCommand) {
			t.Fatalf("data %x: err %v", data, r.Err)
		}
	}
	c := cmdOf(&pb.RemoveCoordinatorCmd{Id: "x"})
	c.Version = 99
	if r := f.ApplyCommand(c); !errors.Is(r.Err, ErrUnknownCommand) {
		t.Fatalf("future version: %v", r.Err)
	}
	if err := f.Restore(io.NopCloser(bytes.NewReader([]byte("junk")))); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("restore junk: %v", err)
	}
}

type memSink struct {
	bytes.Buffer
	canceled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.canceled = true; return nil }
func (s *memSink) Close() error  { return nil }

func snapshotRestore(t interface{ Fatalf(string, ...any) }, f *FSM) *FSM {
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	snap.Release()
	g := NewFSM()
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return g
}

func TestSnapshotRestore(t *testing.T) {
	f, id := startedJob(t)
	mustApply(t, f, &pb.CheckpointCmd{JobId: id, Generation: 1, WorkerId: "w1", Checkpoint: &pb.Checkpoint{Key: "k", Step: 3}})
	mustApply(t, f, &pb.SetCoordinatorCmd{Coordinator: &pb.Coordinator{Id: "c1"}})
	g := snapshotRestore(t, f)
	if !proto.Equal(f.State(), g.State()) {
		t.Fatalf("restored state differs:\n%v\n%v", f.State(), g.State())
	}
	// The restored machine continues exactly like the original.
	op := &pb.ProgressCmd{JobId: id, Generation: 1, WorkerId: "w2", Metrics: &pb.Metrics{Step: 9}}
	mustApply(t, f, op)
	mustApply(t, g, op)
	if !proto.Equal(f.State(), g.State()) {
		t.Fatal("states diverge after the same command")
	}
}
