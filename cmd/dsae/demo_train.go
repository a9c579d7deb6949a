package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage/artifact"
	"github.com/dsae/dsae/worker"
)

// killRecord is the worker the demo killed and how the job recovered.
type killRecord struct {
	Worker     string `json:"worker"`
	Step       int64  `json:"step"`       // the job's last completed step when it was killed
	Generation uint64 `json:"generation"` // the generation it was killed in
	at         time.Time
	// RecoverySeconds is the time from the kill to the first report of a
	// step beyond Step by a later generation.
	RecoverySeconds     *float64 `json:"recovery_seconds,omitempty"`
	RecoveredGeneration uint64   `json:"recovered_generation,omitempty"`
	RecoveredMembers    int      `json:"recovered_members,omitempty"`
	Replacement         string   `json:"replacement,omitempty"`
	replacedAt          time.Time
	// ReplacementJoinedSeconds is the time from the replacement's start to
	// the first generation listing it.
	ReplacementJoinedSeconds *float64 `json:"replacement_joined_seconds,omitempty"`
	ReplacementError         string   `json:"replacement_error,omitempty"`
}

// trainResult is what the demo saw of its job.
type trainResult struct {
	job     *pb.Job // the last state seen
	gens    []genSeen
	history []worker.HistoryPoint // the progress reports seen
	// timeSum is the sum of the step-time breakdowns of the progress
	// reports seen, each the mean over its reporting window weighted by
	// the steps of that window; timeN is the sum of the weights.
	timeSum stepTimes
	timeN   float64
	lastSPS float64 // the last samples/s reported
	// first and last observation of a completed step, for the wall-clock
	// throughput
	firstT, lastT       time.Time
	firstStep, lastStep int64
	reportStep          int64 // step of the last progress report recorded
	kill                *killRecord
	replaceTimer        *time.Timer
}

// meanTimes is the mean step-time breakdown over the steps reported, nil
// when there was none.
func (r *trainResult) meanTimes() *stepTimes {
	if r.timeN == 0 {
		return nil
	}
	n, s := r.timeN, r.timeSum
	t := stepTimes{Data: s.Data / n, StatsReduce: s.StatsReduce / n, Compute: s.Compute / n, GradReduce: s.GradReduce / n,
		Update: s.Update / n, Step: s.Step / n, CommFraction: (s.StatsReduce + s.GradReduce) / s.Step}
	return &t
}

// observe records j, seen at now.
func (r *trainResult) observe(j *pb.Job, now time.Time) {
	r.job = j
	if j.LastStep > 0 && r.firstT.IsZero() {
		r.firstT, r.firstStep = now, j.LastStep
	}
	if j.LastStep > r.lastStep {
		r.lastT, r.lastStep = now, j.LastStep
	}
	m := j.LatestMetrics
	v := m.GetValues()
	if m.GetStep() <= r.reportStep {
		return // no report yet, or one already seen
	}
	// A report's times are means over the steps since the previous one.
	weight := float64(m.GetStep() - r.reportStep)
	r.reportStep = m.GetStep()
	if loss, ok := v["loss"]; ok {
		r.history = append(r.history, worker.HistoryPoint{Step: m.GetStep(), Epoch: int64(v["epoch"]), Loss: loss,
			MSE: v["mse"], FVU: v["fvu"], L0: v["l0"]})
	}
	if t, ok := stepTimesOf(m); ok {
		ts := &r.timeSum
		ts.Data += weight * t.Data
		ts.StatsReduce += weight * t.StatsReduce
		ts.Compute += weight * t.Compute
		ts.GradReduce += weight * t.GradReduce
		ts.Update += weight * t.Update
		ts.Step += weight * t.Step
		r.timeN += weight
	}
	if s := v["samples_per_sec"]; s > 0 {
		r.lastSPS = s
	}
}

// train submits spec and follows the job to its end, killing and replacing
// a worker on the way if asked.
func (d *demo) train(ctx context.Context, spec *pb.JobSpec) (*trainResult, error) {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	resp, err := d.cl.SubmitJob(sctx, &pb.SubmitJobRequest{Spec: spec, RequestId: "demo-" + randomHex(8)})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("submitting the demo job: %w", rpcErr(err))
	}
	id := resp.Job.Id
	js := resp.Job.Spec
	length := fmt.Sprintf("%d steps", js.GetSteps())
	if js.GetSteps() == 0 {
		length = fmt.Sprintf("%g epochs", js.GetEpochs())
	}
	m := js.GetModel()
	fmt.Fprintf(d.w, "submitted job %s: %d→%d %s sparse autoencoder (ρ = %g, β = %g), batch %d, %s, seed %d\n", id,
		m.GetD(), m.GetHidden(), m.GetSparsity(), m.GetRho(), m.GetBeta(), js.GetBatch(), length, m.GetSeed())

	wctx, cancelWatch := context.WithCancelCause(ctx)
	defer cancelWatch(nil)
	wctx, cancelTimeout := context.WithTimeoutCause(wctx, d.f.timeout, fmt.Errorf("job %s did not end within --timeout %v", id, d.f.timeout))
	defer cancelTimeout()
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				if err := d.procs.Check(); err != nil {
					cancelWatch(fmt.Errorf("training job %s: %w", id, err))
					return
				}
			}
		}
	}()
	res := &trainResult{}
	p := newProgress(d.w, isTerminal(d.w), d.f.progress)
	_, err = watchJob(wctx, d.cl, id, time.Minute, func(j *pb.Job) {
		d.mu.Lock()
		defer d.mu.Unlock()
		now := time.Now()
		p.Update(j)
		res.observe(j, now)
		d.killAndReplace(j, now, p, res)
	})
	d.mu.Lock()
	p.Done()
	res.gens = slices.Clone(p.Generations())
	if res.replaceTimer != nil {
		res.replaceTimer.Stop()
	}
	d.mu.Unlock()
	if err != nil {
		if wctx.Err() != nil {
			return nil, interrupted(wctx)
		}
		return nil, err
	}
	return res, nil
}

// killAndReplace implements --kill-worker-at: it SIGKILLs a worker once j
// reaches the step, schedules its replacement, and notes when training has
// moved past the step of the kill. d.mu is held.
func (d *demo) killAndReplace(j *pb.Job, now time.Time, p *progress, res *trainResult) {
	if d.f.killAt == 0 {
		return
	}
	k := res.kill
	if k == nil {
		if j.State != pb.JobState_JOB_STATE_RUNNING || j.LastStep < d.f.killAt {
			return
		}
		victim := d.victim(j)
		d.procs.Kill(d.workers[victim])
		d.releaseSlot(d.workerIDs[victim])
		k = &killRecord{Worker: d.workerIDs[victim], Step: j.LastStep, Generation: j.Generation.GetId(), at: now}
		res.kill = k
		p.event(fmt.Sprintf("killed worker %s (SIGKILL) at step %d; its replacement starts in %v", k.Worker, k.Step, demoReplaceDelay))
		res.replaceTimer = time.AfterFunc(demoReplaceDelay, func() {
			started := time.Now()
			id, err := d.startWorker()
			d.mu.Lock()
			defer d.mu.Unlock()
			if err != nil {
				k.ReplacementError = err.Error()
				p.event("starting the replacement worker: " + err.Error())
				return
			}
			k.Replacement, k.replacedAt = id, started
			p.event("started replacement worker " + id)
		})
		return
	}
	if k.RecoverySeconds == nil && j.LastStep > k.Step && j.Generation.GetId() > k.Generation {
		s := now.Sub(k.at).Seconds()
		k.RecoverySeconds, k.RecoveredGeneration, k.RecoveredMembers = &s, j.Generation.GetId(), len(j.Generation.GetMembers())
		p.event(fmt.Sprintf("recovered %.1f s after the kill: generation %d (%d members) is past step %d", s, k.RecoveredGeneration, k.RecoveredMembers, k.Step))
	}
	if k.Replacement != "" && k.ReplacementJoinedSeconds == nil && slices.Contains(memberIDs(j.Generation), k.Replacement) {
		s := now.Sub(k.replacedAt).Seconds()
		k.ReplacementJoinedSeconds = &s
		p.event(fmt.Sprintf("replacement %s joined generation %d, %.2f s after it started", k.Replacement, j.Generation.GetId(), s))
	}
}

// victim picks the worker to kill: a member of j's generation other than
// the first worker, else the last worker started. d.mu is held.
func (d *demo) victim(j *pb.Job) int {
	members := memberIDs(j.Generation)
	for i := 1; i < len(d.workers); i++ {
		if slices.Contains(members, d.workerIDs[i]) && !d.workers[i].exited() {
			return i
		}
	}
	return len(d.workers) - 1
}

// demoSummary is summary.json.
type demoSummary struct {
	JobID        string  `json:"job_id"`
	State        string  `json:"state"`
	Reason       string  `json:"reason,omitempty"`
	Workers      int     `json:"workers"`
	Coordinators int     `json:"coordinators"`
	Steps        int64   `json:"steps"`
	BatchSize    int64   `json:"batch"`
	Hidden       int64   `json:"hidden"`
	Rho          float64 `json:"rho"`
	// SamplesPerSec is the training rate the workers measured (their final
	// report, else their last progress report); WallSamplesPerSec is the
	// rate seen from outside, from the first to the last completed step
	// observed (recoveries included).
	SamplesPerSec      float64  `json:"samples_per_sec"`
	WallSamplesPerSec  float64  `json:"wall_samples_per_sec"`
	TestFVU            *float64 `json:"test_fvu"`
	TestMeanActivation *float64 `json:"test_mean_activation"`
	TrainFVU           *float64 `json:"train_fvu,omitempty"`
	// RecoverySeconds has one entry per kill that training recovered from.
	RecoverySeconds []float64     `json:"recovery_seconds"`
	Kills           []*killRecord `json:"kills,omitempty"`
	// TimeBreakdown is the mean of the progress reports' step times.
	TimeBreakdown *stepTimes `json:"time_breakdown"`
	Generations   []genSeen  `json:"generations"`
	// WorkerCPUs is the CPU set each worker alive at the end was bound to
	// (absent when the workers were not bound; see PinNote).
	WorkerCPUs   map[string]string `json:"worker_cpus,omitempty"`
	PinNote      string            `json:"pin_note,omitempty"`
	JobSeconds   float64           `json:"job_seconds"`   // submission to end, by the coordinators' clock
	TotalSeconds float64           `json:"total_seconds"` // the whole demo up to the end of the job
	Model        string            `json:"model,omitempty"`
	Features     string            `json:"features,omitempty"`
	Loss         string            `json:"loss_curve,omitempty"`
	Logs         string            `json:"logs"`
}

func (d *demo) summarize(r *trainResult, total time.Duration) demoSummary {
	j := r.job
	s := demoSummary{JobID: j.Id, State: stateName(j.State), Reason: j.Reason, Workers: d.f.workers, Coordinators: d.f.coordinators,
		Steps: j.LastStep, BatchSize: j.Spec.GetBatch(), Hidden: j.Spec.GetModel().GetHidden(), Rho: j.Spec.GetModel().GetRho(),
		SamplesPerSec: r.lastSPS, RecoverySeconds: []float64{}, TimeBreakdown: r.meanTimes(), Generations: r.gens,
		TotalSeconds: total.Seconds(), Logs: d.procs.logDir}
	if dt := r.lastT.Sub(r.firstT).Seconds(); dt > 0 {
		s.WallSamplesPerSec = float64(r.lastStep-r.firstStep) * float64(s.BatchSize) / dt
	}
	fv := j.FinalMetrics.GetValues()
	if sps, ok := fv["samples_per_sec"]; ok {
		s.SamplesPerSec = sps
	}
	get := func(k string) *float64 {
		if v, ok := fv[k]; ok {
			return &v
		}
		return nil
	}
	s.TestFVU, s.TestMeanActivation, s.TrainFVU = get("test_fvu"), get("test_mean_activation"), get("train_fvu")
	if r.kill != nil {
		s.Kills = []*killRecord{r.kill}
		if r.kill.RecoverySeconds != nil {
			s.RecoverySeconds = append(s.RecoverySeconds, *r.kill.RecoverySeconds)
		}
	}
	if j.FinishedUnixNano > j.SubmittedUnixNano && j.SubmittedUnixNano > 0 {
		s.JobSeconds = time.Duration(j.FinishedUnixNano - j.SubmittedUnixNano).Seconds()
	}
	return s
}

// writeArtifacts pulls the model and draws its features and loss curve,
// recording the paths in s. The loss curve comes from the model's training
// history, or, when the model has none, from the progress the demo saw.
func (d *demo) writeArtifacts(ctx context.Context, r *trainResult, s *demoSummary) error {
	modelDir := filepath.Join(d.dir, "model")
	if _, err := artifact.PullModel(ctx, d.store, r.job.Id, modelDir, false); err != nil {
		return fmt.Errorf("pulling the model of %s: %w", r.job.Id, err)
	}
	s.Model = modelDir
	m, err := sae.Load(modelDir)
	if err != nil {
		return err
	}
	if tw, th, err := tileShape("", m.Cfg.D); err == nil {
		s.Features = filepath.Join(d.dir, "features.png")
		if err := writeFeatures(s.Features, modelDir, m, tw, th, 2, 0); err != nil {
			return err
		}
	}
	observed := filepath.Join(d.dir, "progress.json")
	if err := writeJSONFile(observed, r.history); err != nil {
		return err
	}
	hist := filepath.Join(modelDir, historyFile)
	if _, err := os.Stat(hist); err != nil {
		hist = observed
	}
	s.Loss = filepath.Join(d.dir, "loss.png")
	if err := plotLoss(hist, s.Loss, lossScaleLog); err != nil {
		return fmt.Errorf("loss curve: %w", err)
	}
	return nil
}

// writeJSONFile writes v as indented JSON to path.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// printDemoSummary writes the human summary of the demo.
func printDemoSummary(w io.Writer, s demoSummary) {
	fmt.Fprintf(w, "\njob %s %s: %d steps of batch %d on %d worker(s) and %d coordinator(s); job %.1f s, demo %.1f s\n",
		s.JobID, s.State, s.Steps, s.BatchSize, s.Workers, s.Coordinators, s.JobSeconds, s.TotalSeconds)
	if s.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", s.Reason)
	}
	if s.TestFVU != nil {
		fmt.Fprintf(w, "  test FVU %.4f", *s.TestFVU)
		if s.TrainFVU != nil {
			fmt.Fprintf(w, " (train %.4f)", *s.TrainFVU)
		}
		fmt.Fprintln(w)
	}
	if a := s.TestMeanActivation; a != nil && s.Rho > 0 {
		fmt.Fprintf(w, "  test mean activation %.4f vs ρ = %g (%+.1f%%)\n", *a, s.Rho, 100*(*a-s.Rho)/s.Rho)
	}
	fmt.Fprintf(w, "  throughput %.0f samples/s (workers' measure), %.0f samples/s wall clock\n", s.SamplesPerSec, s.WallSamplesPerSec)
	if t := s.TimeBreakdown; t != nil {
		fmt.Fprintf(w, "  mean time per step: %s\n", t)
	}
	for _, k := range s.Kills {
		fmt.Fprintf(w, "  killed %s at step %d (generation %d): ", k.Worker, k.Step, k.Generation)
		if k.RecoverySeconds != nil {
			fmt.Fprintf(w, "recovered in %.1f s (generation %d, %d members)", *k.RecoverySeconds, k.RecoveredGeneration, k.RecoveredMembers)
		} else {
			fmt.Fprint(w, "the job ended before it moved past that step in a new generation")
		}
		switch {
		case k.ReplacementJoinedSeconds != nil:
			fmt.Fprintf(w, "; replacement %s joined %.2f s after it started", k.Replacement, *k.ReplacementJoinedSeconds)
		case k.Replacement != "":
			fmt.Fprintf(w, "; replacement %s started but did not join before the end", k.Replacement)
		case k.ReplacementError != "":
			fmt.Fprintf(w, "; the replacement failed to start: %s", k.ReplacementError)
		}
		fmt.Fprintln(w)
	}
	if len(s.Generations) > 0 {
		var parts []string
		for _, g := range s.Generations {
			parts = append(parts, fmt.Sprintf("%d [%s]", g.ID, strings.Join(g.Members, " ")))
		}
		fmt.Fprintf(w, "  generations: %s\n", strings.Join(parts, ", "))
	}
	var wrote []string
	for _, p := range []string{s.Model, s.Features, s.Loss} {
		if p != "" {
			wrote = append(wrote, p)
		}
	}
	if len(wrote) > 0 {
		fmt.Fprintf(w, "  wrote %s\n", strings.Join(wrote, ", "))
	}
	fmt.Fprintf(w, "  summary in %s, logs in %s\n", filepath.Join(filepath.Dir(s.Logs), "summary.json"), s.Logs)
}
