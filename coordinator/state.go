package coordinator

import (
	"cmp"
	"fmt"
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// CommandVersion is the encoding version of the raft commands this build
// writes and understands.
const CommandVersion = 1

// maxCheckpoints bounds the checkpoint history kept per job; older entries
// are dropped so that the state and its snapshots stay small.
const maxCheckpoints = 32

// JobID formats the id of the job with submission sequence seq.
func JobID(seq uint64) string { return fmt.Sprintf("job-%06d", seq) }

// applyCommand applies cmd to st and returns the message the command's
// caller receives. It is deterministic: it reads nothing but st and cmd
// (time comes from cmd.UnixNano). On error st is left unchanged: every
// handler checks everything before it mutates.
func applyCommand(st *pb.State, cmd *pb.Command) (proto.Message, error) {
	if cmd.GetVersion() != CommandVersion {
		return nil, fmt.Errorf("%w: version %d (this node knows %d)", ErrUnknownCommand, cmd.GetVersion(), CommandVersion)
	}
	now := cmd.UnixNano
	if reply, ok, err := repeatedReport(st, cmd); ok {
		return reply, err
	}
	switch op := cmd.Op.(type) {
	case *pb.Command_SubmitJob:
		return submitJob(st, op.SubmitJob, now)
	case *pb.Command_CancelJob:
		return cancelJob(st, op.CancelJob, now)
	case *pb.Command_RegisterWorker:
		return registerWorker(st, op.RegisterWorker, now)
	case *pb.Command_WorkerDown:
		return workerDown(st, op.WorkerDown, now)
	case *pb.Command_NewGeneration:
		return newGeneration(st, op.NewGeneration, now)
	case *pb.Command_Ready:
		return ready(st, op.Ready)
	case *pb.Command_Progress:
		return progress(st, op.Progress)
	case *pb.Command_Checkpoint:
		return checkpoint(st, op.Checkpoint, now)
	case *pb.Command_Result:
		return result(st, op.Result, now)
	case *pb.Command_SetCoordinator:
		c := op.SetCoordinator.GetCoordinator()
		if c.GetId() == "" {
			return nil, fieldErr("coordinator.id", "empty")
		}
		if st.Coordinators == nil {
			st.Coordinators = map[string]*pb.Coordinator{}
		}
		st.Coordinators[c.Id] = proto.Clone(c).(*pb.Coordinator)
		return c, nil
	case *pb.Command_RemoveCoordinator:
		id := op.RemoveCoordinator.GetId()
		if _, ok := st.Coordinators[id]; !ok {
			return nil, fmt.Errorf("%w: coordinator %q", ErrNotFound, id)
		}
		delete(st.Coordinators, id)
		return &pb.RemoveCoordinatorResponse{}, nil
	default:
		return nil, fmt.Errorf("%w: no operation set", ErrUnknownCommand)
	}
}

// submitJob creates a job. A request id that already created a job
// returns that job unchanged (a retried submission), or fails when the
// retry carries another spec.
func submitJob(st *pb.State, c *pb.SubmitJobCmd, now int64) (proto.Message, error) {
	if err := ValidateSpec(c.GetSpec()); err != nil {
		return nil, err
	}
	if c.RequestId != "" {
		for _, j := range st.Jobs {
			if j.RequestId != c.RequestId {
				continue
			}
			if !proto.Equal(j.Spec, c.Spec) {
				return nil, fieldErr("request_id", "%q already created %s with another spec", c.RequestId, j.Id)
			}
			return j, nil
		}
	}
	st.NextJobSeq++
	j := &pb.Job{
		Id:                JobID(st.NextJobSeq),
		Seq:               st.NextJobSeq,
		Spec:              proto.Clone(c.Spec).(*pb.JobSpec),
		State:             pb.JobState_JOB_STATE_QUEUED,
		Reason:            "waiting for workers",
		SubmittedUnixNano: now,
		RequestId:         c.RequestId,
	}
	if st.Jobs == nil {
		st.Jobs = map[string]*pb.Job{}
	}
	st.Jobs[j.Id] = j
	return j, nil
}

// report is what the worker reports (ReadyCmd, ProgressCmd, CheckpointCmd,
// ResultCmd) have in common.
type report interface {
	GetJobId() string
	GetGeneration() uint64
	GetWorkerId() string
	GetRequestId() string
}

var (
	_ report = (*pb.ReadyCmd)(nil)
	_ report = (*pb.ProgressCmd)(nil)
	_ report = (*pb.CheckpointCmd)(nil)
	_ report = (*pb.ResultCmd)(nil)
)

// reportOf returns the worker report cmd carries, or nil.
func reportOf(cmd *pb.Command) report {
	switch op := cmd.Op.(type) {
	case *pb.Command_Ready:
		return op.Ready
	case *pb.Command_Progress:
		return op.Progress
	case *pb.Command_Checkpoint:
		return op.Checkpoint
	case *pb.Command_Result:
		return op.Result
	}
	return nil
}

// repeatedReport answers (ok true) a worker report whose request id is the
// last one applied for that worker, without applying it again: a ready
// report gets the generation it named if that is still current, the
// others get the job as it now stands, even when it has finished since (a
// retried ReportResult). Every other command gives ok false.
func repeatedReport(st *pb.State, cmd *pb.Command) (proto.Message, bool, error) {
	r := reportOf(cmd)
	if r == nil || r.GetRequestId() == "" {
		return nil, false, nil
	}
	w, ok := st.Workers[r.GetWorkerId()]
	if !ok || w.LastRequestId != r.GetRequestId() {
		return nil, false, nil
	}
	j, ok := st.Jobs[r.GetJobId()]
	if !ok {
		return nil, true, fmt.Errorf("%w: job %q", ErrNotFound, r.GetJobId())
	}
	if _, isReady := r.(*pb.ReadyCmd); !isReady {
		return j, true, nil
	}
	if g := j.Generation; g != nil && g.Id == r.GetGeneration() {
		return g, true, nil
	}
	return nil, true, fmt.Errorf("%w: job %s generation %d is not current (current %d)", ErrStaleGeneration, j.Id, r.GetGeneration(), j.Generation.GetId())
}

// applied records r's request id as the last one applied for its worker.
func applied(st *pb.State, r report) {
	if w, ok := st.Workers[r.GetWorkerId()]; ok && r.GetRequestId() != "" {
		w.LastRequestId = r.GetRequestId()
	}
}

// liveJob returns the job id names if it exists and has not finished.
func liveJob(st *pb.State, id string) (*pb.Job, error) {
	if id == "" {
		return nil, fieldErr("job_id", "empty")
	}
	j, ok := st.Jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: job %q", ErrNotFound, id)
	}
	if client.Terminal(j.State) {
		return nil, fmt.Errorf("%w: job %s is %s", ErrTerminal, id, j.State)
	}
	return j, nil
}

// memberOf checks that worker is a member of the job's current generation gen.
func memberOf(j *pb.Job, gen uint64, worker string) (*pb.Member, error) {
	if worker == "" {
		return nil, fieldErr("worker_id", "empty")
	}
	cur := j.Generation
	if cur == nil || cur.Id != gen {
		return nil, fmt.Errorf("%w: job %s generation %d is not current (current %d)", ErrStaleGeneration, j.Id, gen, cur.GetId())
	}
	for _, m := range cur.Members {
		if m.WorkerId == worker {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w: worker %q, job %s generation %d", ErrNotMember, worker, j.Id, gen)
}

// release frees the workers of j's current generation.
func release(st *pb.State, j *pb.Job) {
	for _, m := range j.Generation.GetMembers() {
		if w, ok := st.Workers[m.WorkerId]; ok && w.JobId == j.Id {
			w.JobId = ""
		}
	}
}

func finish(st *pb.State, j *pb.Job, s pb.JobState, reason string, now int64) {
	release(st, j)
	j.State, j.Reason, j.FinishedUnixNano = s, reason, now
}

func cancelJob(st *pb.State, c *pb.CancelJobCmd, now int64) (proto.Message, error) {
	j, err := liveJob(st, c.GetJobId())
	if err != nil {
		return nil, err
	}
	reason := c.Reason
	if reason == "" {
		reason = "canceled by user"
	}
	finish(st, j, pb.JobState_JOB_STATE_CANCELED, reason, now)
	return j, nil
}

func registerWorker(st *pb.State, c *pb.RegisterWorkerCmd, now int64) (proto.Message, error) {
	if c.GetWorkerId() == "" {
		return nil, fieldErr("worker_id", "empty")
	}
	if st.Workers == nil {
		st.Workers = map[string]*pb.Worker{}
	}
	w, ok := st.Workers[c.WorkerId]
	if !ok {
		w = &pb.Worker{Id: c.WorkerId}
		st.Workers[c.WorkerId] = w
	}
	w.GrpcAddr, w.RingAddr, w.Alive, w.UpdatedUnixNano = c.GrpcAddr, c.RingAddr, true, now
	w.Quarantined, w.DownReason = false, ""
	return w, nil
}

func workerDown(st *pb.State, c *pb.WorkerDownCmd, now int64) (proto.Message, error) {
	w, ok := st.Workers[c.GetWorkerId()]
	if !ok {
		return nil, fmt.Errorf("%w: worker %q", ErrNotFound, c.GetWorkerId())
	}
	w.Alive, w.UpdatedUnixNano, w.Quarantined, w.DownReason = false, now, c.Quarantine, c.Reason
	return w, nil
}

func newGeneration(st *pb.State, c *pb.NewGenerationCmd, now int64) (proto.Message, error) {
	j, err := liveJob(st, c.GetJobId())
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, id := range c.WorkerIds {
		field := fmt.Sprintf("worker_ids[%d]", i)
		w, ok := st.Workers[id]
		switch {
		case id == "":
			return nil, fieldErr(field, "empty")
		case seen[id]:
			return nil, fieldErr(field, "%q listed twice", id)
		case !ok:
			return nil, fmt.Errorf("%w: %s: worker %q", ErrNotFound, field, id)
		case !w.Alive:
			return nil, fieldErr(field, "worker %q is down", id)
		case w.JobId != "" && w.JobId != j.Id:
			return nil, fmt.Errorf("%w: %s: worker %q runs %s", ErrBusy, field, id, w.JobId)
		}
		seen[id] = true
	}
	if len(c.WorkerIds) == 0 {
		// A job without a generation keeps its generation counter: only
		// the reason it waits for changes.
		if j.Generation != nil {
			release(st, j)
			j.LastGenerationId++
			j.Generation = nil
		}
		j.State, j.Reason = pb.JobState_JOB_STATE_QUEUED, cmp.Or(c.Reason, "waiting for workers")
		return j, nil
	}
	release(st, j)
	j.LastGenerationId++
	g := &pb.Generation{Id: j.LastGenerationId, Phase: pb.GenerationPhase_GENERATION_PHASE_ANNOUNCED, AnnouncedUnixNano: now}
	for i, id := range c.WorkerIds {
		w := st.Workers[id]
		w.JobId = j.Id
		g.Members = append(g.Members, &pb.Member{WorkerId: id, Rank: int32(i), GrpcAddr: w.GrpcAddr, RingAddr: w.RingAddr})
	}
	j.Generation = g
	j.State, j.Reason = pb.JobState_JOB_STATE_QUEUED, fmt.Sprintf("generation %d announced, waiting for %d members to report", g.Id, len(g.Members))
	return j, nil
}

func ready(st *pb.State, c *pb.ReadyCmd) (proto.Message, error) {
	j, err := liveJob(st, c.GetJobId())
	if err != nil {
		return nil, err
	}
	if _, err := memberOf(j, c.Generation, c.WorkerId); err != nil {
		return nil, err
	}
	r := c.GetReport()
	if r.GetLastStep() < 0 {
		return nil, fieldErr("last_step", "%d is negative", r.GetLastStep())
	}
	g := j.Generation
	applied(st, c)
	if g.Phase == pb.GenerationPhase_GENERATION_PHASE_STARTED {
		return g, nil // the start is fixed; a repeated report changes nothing
	}
	if g.Reports == nil {
		g.Reports = map[string]*pb.ReadyReport{}
	}
	g.Reports[c.WorkerId] = &pb.ReadyReport{LastStep: r.GetLastStep(), Checksum: r.GetChecksum()}
	if len(g.Reports) == len(g.Members) {
		fixStart(j)
	}
	return g, nil
}

// fixStart ends the announce phase of j's generation once every member has
// reported: training resumes after the highest step any member or
// checkpoint holds. The donor is the first member in ring order at that
// step; when only a checkpoint holds it, the checkpoint is the donor.
func fixStart(j *pb.Job) {
	g := j.Generation
	start, donor := int64(-1), (*pb.Member)(nil)
	for _, m := range g.Members {
		if r := g.Reports[m.WorkerId]; r.LastStep > start {
			start, donor = r.LastStep, m
		}
	}
	g.Donor, g.DonorCheckpoint, g.StartStep = donor.WorkerId, "", start
	g.DonorChecksum = g.Reports[donor.WorkerId].Checksum
	if n := len(j.Checkpoints); n > 0 && j.Checkpoints[n-1].Step > start {
		ck := j.Checkpoints[n-1]
		g.Donor, g.DonorCheckpoint, g.StartStep, g.DonorChecksum = "", ck.Key, ck.Step, ck.Checksum
	}
	g.Phase = pb.GenerationPhase_GENERATION_PHASE_STARTED
	j.State, j.Reason = pb.JobState_JOB_STATE_RUNNING, ""
	j.LastStep = max(j.LastStep, g.StartStep)
}

// startedMember checks that worker reports for the current, started generation.
func startedMember(j *pb.Job, gen uint64, worker string) error {
	if _, err := memberOf(j, gen, worker); err != nil {
		return err
	}
	if j.Generation.Phase != pb.GenerationPhase_GENERATION_PHASE_STARTED {
		return fmt.Errorf("%w: job %s generation %d has not started", ErrStaleGeneration, j.Id, gen)
	}
	return nil
}

func progress(st *pb.State, c *pb.ProgressCmd) (proto.Message, error) {
	j, err := liveJob(st, c.GetJobId())
	if err != nil {
		return nil, err
	}
	if err := startedMember(j, c.Generation, c.WorkerId); err != nil {
		return nil, err
	}
	m := c.GetMetrics()
	if m.GetStep() < 0 {
		return nil, fieldErr("metrics.step", "%d is negative", m.GetStep())
	}
	if m.Step >= j.LatestMetrics.GetStep() {
		j.LatestMetrics = proto.Clone(m).(*pb.Metrics)
	}
	j.LastStep = max(j.LastStep, m.Step)
	applied(st, c)
	return j, nil
}

func checkpoint(st *pb.State, c *pb.CheckpointCmd, now int64) (proto.Message, error) {
	j, err := liveJob(st, c.GetJobId())
	if err != nil {
		return nil, err
	}
	if err := startedMember(j, c.Generation, c.WorkerId); err != nil {
		return nil, err
	}
	ck := c.GetCheckpoint()
	switch {
	case ck.GetKey() == "":
		return nil, fieldErr("checkpoint.key", "empty")
	case ck.Step < 0:
		return nil, fieldErr("checkpoint.step", "%d is negative", ck.Step)
	}
	if n := len(j.Checkpoints); n > 0 {
		last := j.Checkpoints[n-1]
		if ck.Step < last.Step {
			return nil, fmt.Errorf("%w: checkpoint.step %d is older than the latest checkpoint at step %d", ErrStepBackwards, ck.Step, last.Step)
		}
		if ck.Step == last.Step && ck.Key == last.Key {
			applied(st, c)
			return j, nil // a retried report without a request id
		}
	}
	j.Checkpoints = append(j.Checkpoints, &pb.Checkpoint{Key: ck.Key, Step: ck.Step, Checksum: ck.Checksum, RecordedUnixNano: now})
	if n := len(j.Checkpoints); n > maxCheckpoints {
		j.Checkpoints = slices.Clone(j.Checkpoints[n-maxCheckpoints:])
	}
	j.LastStep = max(j.LastStep, ck.Step)
	applied(st, c)
	return j, nil
}

func result(st *pb.State, c *pb.ResultCmd, now int64) (proto.Message, error) {
	j, err := liveJob(st, c.GetJobId())
	if err != nil {
		return nil, err
	}
	if err := startedMember(j, c.Generation, c.WorkerId); err != nil {
		return nil, err
	}
	switch c.State {
	case pb.JobState_JOB_STATE_COMPLETED:
	case pb.JobState_JOB_STATE_FAILED:
		if c.Reason == "" {
			return nil, fieldErr("reason", "empty for a failed job")
		}
	default:
		return nil, fieldErr("state", "%s: want JOB_STATE_COMPLETED or JOB_STATE_FAILED", c.State)
	}
	if c.FinalMetrics != nil {
		j.FinalMetrics = proto.Clone(c.FinalMetrics).(*pb.Metrics)
		j.LastStep = max(j.LastStep, c.FinalMetrics.Step)
	}
	j.ModelKey = c.ModelKey
	finish(st, j, c.State, c.Reason, now)
	applied(st, c)
	return j, nil
}

// sortedJobs returns the jobs of st in submission order.
func sortedJobs(st *pb.State) []*pb.Job {
	jobs := make([]*pb.Job, 0, len(st.Jobs))
	for _, j := range st.Jobs {
		jobs = append(jobs, j)
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].Seq < jobs[b].Seq })
	return jobs
}
