package coordinator

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// checkInvariants returns the first broken invariant of st: each job has at
// most one current generation whose ranks are 0..N-1 with unique members; a
// worker is listed by at most one unfinished job and its job_id says which;
// checkpoints ascend; a generation id never exceeds the job's last one.
func checkInvariants(st *pb.State) error {
	owner := map[string]string{}
	for id, j := range st.Jobs {
		if j.Id != id {
			return fmt.Errorf("job key %s holds id %s", id, j.Id)
		}
		if g := j.Generation; g != nil {
			if g.Id == 0 || g.Id > j.LastGenerationId {
				return fmt.Errorf("job %s generation %d, last %d", id, g.Id, j.LastGenerationId)
			}
			seen := map[string]bool{}
			for i, m := range g.Members {
				if m.Rank != int32(i) {
					return fmt.Errorf("job %s member %d has rank %d", id, i, m.Rank)
				}
				if seen[m.WorkerId] {
					return fmt.Errorf("job %s lists %s twice", id, m.WorkerId)
				}
				seen[m.WorkerId] = true
				if client.Terminal(j.State) {
					continue
				}
				if o, ok := owner[m.WorkerId]; ok {
					return fmt.Errorf("worker %s in jobs %s and %s", m.WorkerId, o, id)
				}
				owner[m.WorkerId] = id
			}
			if g.Phase == pb.GenerationPhase_GENERATION_PHASE_STARTED && j.LastStep < g.StartStep {
				return fmt.Errorf("job %s last step %d below start %d", id, j.LastStep, g.StartStep)
			}
		}
		for i := 1; i < len(j.Checkpoints); i++ {
			if j.Checkpoints[i].Step < j.Checkpoints[i-1].Step {
				return fmt.Errorf("job %s checkpoints out of order", id)
			}
		}
	}
	for id, w := range st.Workers {
		if w.JobId != owner[id] {
			return fmt.Errorf("worker %s says job %q, generations say %q", id, w.JobId, owner[id])
		}
	}
	return nil
}

var (
	propJobs    = []string{"job-000001", "job-000002", "job-000003"}
	propWorkers = []string{"w1", "w2", "w3", "w4"}
)

// genOp draws a command that is often, but not always, valid for st: ids
// come from small pools, and reports mostly name the current generation and
// one of its members that has not reported yet.
func genOp(t *rapid.T, st *pb.State) any {
	job := rapid.SampledFrom(propJobs).Draw(t, "job")
	worker := rapid.SampledFrom(propWorkers).Draw(t, "worker")
	gen := uint64(rapid.IntRange(0, 3).Draw(t, "anygen"))
	var free []string // workers a new generation of job may take
	if j := st.Jobs[job]; j != nil {
		if rapid.IntRange(0, 4).Draw(t, "curgen") > 0 {
			gen = j.LastGenerationId
		}
		if g := j.Generation; g != nil && rapid.IntRange(0, 4).Draw(t, "member") > 0 {
			var pending []string
			for _, m := range g.Members {
				if _, ok := g.Reports[m.WorkerId]; !ok {
					pending = append(pending, m.WorkerId)
				}
			}
			if len(pending) == 0 {
				pending = []string{g.Members[0].WorkerId}
			}
			worker = rapid.SampledFrom(pending).Draw(t, "pending")
		}
		for _, w := range propWorkers {
			if ws := st.Workers[w]; ws != nil && ws.Alive && (ws.JobId == "" || ws.JobId == job) {
				free = append(free, w)
			}
		}
	}
	step := rapid.Int64Range(-1, 60).Draw(t, "step")
	// Request ids come from a small pool, so that retries of earlier
	// requests (and clashes of ids) occur.
	req := rapid.SampledFrom([]string{"", "", "r1", "r2", "r3"}).Draw(t, "request")
	switch rapid.IntRange(0, 12).Draw(t, "kind") {
	case 0, 1:
		s := testSpec()
		if rapid.IntRange(0, 5).Draw(t, "badspec") == 0 {
			s.Batch = 0
		}
		if rapid.IntRange(0, 3).Draw(t, "otherspec") == 0 {
			s.Steps++
		}
		return &pb.SubmitJobCmd{Spec: s, RequestId: req}
	case 2:
		return &pb.CancelJobCmd{JobId: job}
	case 3:
		return &pb.RegisterWorkerCmd{WorkerId: worker, GrpcAddr: worker + ":1"}
	case 4:
		return &pb.WorkerDownCmd{WorkerId: worker}
	case 5:
		pool := propWorkers
		if len(free) > 0 && rapid.IntRange(0, 4).Draw(t, "usefree") > 0 {
			pool = free
		}
		ids := rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 0, len(pool), rapid.ID[string]).Draw(t, "members")
		return &pb.NewGenerationCmd{JobId: job, WorkerIds: ids}
	case 6, 7, 8:
		return &pb.ReadyCmd{JobId: job, Generation: gen, WorkerId: worker, RequestId: req, Report: &pb.ReadyReport{LastStep: step, Checksum: uint64(step)}}
	case 9:
		return &pb.ProgressCmd{JobId: job, Generation: gen, WorkerId: worker, RequestId: req, Metrics: &pb.Metrics{Step: step}}
	case 10, 11:
		return &pb.CheckpointCmd{JobId: job, Generation: gen, WorkerId: worker, RequestId: req, Checkpoint: &pb.Checkpoint{Key: fmt.Sprint("ck/", step), Step: step, Checksum: uint64(step)}}
	default:
		st := rapid.SampledFrom([]pb.JobState{pb.JobState_JOB_STATE_COMPLETED, pb.JobState_JOB_STATE_FAILED, pb.JobState_JOB_STATE_RUNNING}).Draw(t, "result")
		return &pb.ResultCmd{JobId: job, Generation: gen, WorkerId: worker, RequestId: req, State: st, Reason: "r"}
	}
}

func hasRequestID(op any) bool {
	r, ok := op.(interface{ GetRequestId() string })
	return ok && r.GetRequestId() != ""
}

func TestFSMProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := NewFSM()
		n := rapid.IntRange(1, 120).Draw(t, "n")
		for i := 0; i < n; i++ {
			before := f.State()
			op := genOp(t, before)
			r := applyLog(f, op)
			after := f.State()
			if r.Err != nil && !proto.Equal(before, after) {
				t.Fatalf("refused %T (%v) changed the state", op, r.Err)
			}
			if err := checkInvariants(after); err != nil {
				t.Fatalf("after %T: %v", op, err)
			}
			// A command carrying a request id, delivered twice in a row (a
			// retry), changes nothing the second time and gets the same answer.
			if hasRequestID(op) && rapid.IntRange(0, 2).Draw(t, "retry") == 0 {
				again := applyLog(f, op)
				if !proto.Equal(after, f.State()) {
					t.Fatalf("retried %T (request id) changed the state", op)
				}
				if (r.Err == nil) != (again.Err == nil) || !proto.Equal(r.Reply, again.Reply) {
					t.Fatalf("retried %T: reply %v err %v, first reply %v err %v", op, again.Reply, again.Err, r.Reply, r.Err)
				}
			}
			for id, jb := range before.Jobs {
				ja := after.Jobs[id]
				if ja.LastStep < jb.LastStep || ja.LastGenerationId < jb.LastGenerationId {
					t.Fatalf("job %s went backwards: step %d→%d generation %d→%d", id, jb.LastStep, ja.LastStep, jb.LastGenerationId, ja.LastGenerationId)
				}
				if nb, na := len(jb.Checkpoints), len(ja.Checkpoints); nb > 0 && na > 0 && ja.Checkpoints[na-1].Step < jb.Checkpoints[nb-1].Step {
					t.Fatalf("job %s latest checkpoint went backwards", id)
				}
				if client.Terminal(jb.State) && !proto.Equal(jb, ja) {
					t.Fatalf("finished job %s changed", id)
				}
			}
			if rapid.IntRange(0, 15).Draw(t, "snap") == 0 {
				if g := snapshotRestore(t, f); !proto.Equal(g.State(), after) {
					t.Fatalf("restore(snapshot(s)) != s after %d commands", i+1)
				}
			}
		}
		if g := snapshotRestore(t, f); !proto.Equal(g.State(), f.State()) {
			t.Fatal("restore(snapshot(s)) != s")
		}
	})
}

// FuzzApply feeds arbitrary raft log entries to a state machine holding a
// running job: nothing may panic, and refused entries change nothing.
func FuzzApply(f *testing.F) {
	for _, op := range []any{
		&pb.ProgressCmd{JobId: JobID(1), Generation: 1, WorkerId: "w1", Metrics: &pb.Metrics{Step: 3}},
		&pb.CheckpointCmd{JobId: JobID(1), Generation: 1, WorkerId: "w1", Checkpoint: &pb.Checkpoint{Key: "k", Step: 2}},
		&pb.NewGenerationCmd{JobId: JobID(1), WorkerIds: []string{"w2", "w1"}},
		&pb.ResultCmd{JobId: JobID(1), Generation: 1, WorkerId: "w2", State: pb.JobState_JOB_STATE_FAILED, Reason: "nan"},
		&pb.SubmitJobCmd{Spec: testSpec()},
	} {
		data, _ := EncodeCommand(cmdOf(op))
		f.Add(data)
	}
	f.Add([]byte{0x08, 0x01, 0x52, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm, _ := startedJob(t)
		before := fsm.State()
		r := fsm.Apply(&raft.Log{Type: raft.LogCommand, Data: data}).(ApplyResult)
		after := fsm.State()
		if r.Err != nil && !proto.Equal(before, after) {
			t.Fatalf("refused entry changed the state: %v", r.Err)
		}
		if err := checkInvariants(after); err != nil {
			t.Fatal(err)
		}
	})
}
