package worker

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/dsae/dsae/allreduce"
	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage/artifact"
	"github.com/dsae/dsae/storage/dataset"
	"github.com/dsae/dsae/worker/transferpb"
)

// jobState is everything a worker keeps of a job between generations: the
// replica (model and optimizer, updated in place by the Trainers of
// successive generations), the dataset reader, and the loss history.
type jobState struct {
	id        string
	spec      *pb.JobSpec
	model     *sae.Model
	opt       sae.Optimizer
	completed int64
	steps     int64 // total steps of the job
	seed      uint64
	batch     int
	reader    *dataset.Reader
	source    ReaderSource

	every   int64 // steps per history point
	history []HistoryPoint
	acc     HistoryPoint
	accN    int64
	fvuN    int64

	trainTime time.Duration // spent in steps applied here
	samples   int64         // rows of those steps (global batches)
}

func (js *jobState) close() {
	if js.reader != nil {
		js.reader.Close()
	}
}

func (js *jobState) historyJSON() []byte {
	b, err := json.Marshal(js.history)
	if err != nil {
		panic(err) // plain numbers
	}
	return b
}

// record adds a completed step to the history (every member records the
// same points: the metrics of a step are identical on every rank).
func (js *jobState) record(res StepResult) {
	m := res.Metrics
	js.acc.Loss += m.Loss
	js.acc.MSE += m.MSE
	if finite(m.FVU) {
		js.acc.FVU += m.FVU
		js.fvuN++
	}
	js.acc.L0 += m.L0
	js.acc.LR += res.LR
	js.accN++
	if res.Step%js.every == 0 || res.Step == js.steps {
		k := float64(js.accN)
		js.history = append(js.history, HistoryPoint{Step: res.Step, Epoch: res.Epoch,
			Loss: js.acc.Loss / k, MSE: js.acc.MSE / k, FVU: js.acc.FVU / float64(max(js.fvuN, 1)), L0: js.acc.L0 / k, LR: js.acc.LR / k})
		js.acc, js.accN, js.fvuN = HistoryPoint{}, 0, 0
	}
}

// jobState returns the worker's state of job j, creating a fresh replica
// (initialised from the spec's seed, as on every member) the first time.
func (a *Agent) jobState(ctx context.Context, j *pb.Job) (*jobState, error) {
	if js := a.jobs[j.Id]; js != nil {
		return js, nil
	}
	spec := j.Spec
	r, err := dataset.OpenReader(ctx, a.cfg.Store, spec.GetData(), dataset.ReaderOptions{SkipLabels: true})
	if err != nil {
		return nil, fmt.Errorf("job %s: dataset %q: %w", j.Id, spec.GetData(), err)
	}
	man := r.Manifest()
	s, err := jobSpec(spec, man.D, man.Rows)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("job %s: %w", j.Id, err)
	}
	model, err := sae.New(s.Model)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("job %s: %w", j.Id, err)
	}
	opt, err := sae.NewOptimizer(s.OptimizerConfig(), model.NumParams())
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("job %s: %w", j.Id, err)
	}
	spe := (man.Rows + int64(s.Batch) - 1) / int64(s.Batch)
	steps, batch := s.Steps, s.Batch
	mc := s.Model
	js := &jobState{id: j.Id, spec: spec, model: model, opt: opt, steps: steps, seed: mc.Seed, batch: batch,
		reader: r, source: ReaderSource{R: r}, every: max(1, spe/20)}
	a.jobs[j.Id] = js
	return js, nil
}

// genRun is the training goroutine of one generation.
type genRun struct {
	job    string
	gen    uint64
	cancel context.CancelFunc
	done   chan struct{}
}

// stop cancels the generation's step in flight and waits until nothing of
// it runs any more.
func (r *genRun) stop() {
	r.cancel()
	<-r.done
}

func (a *Agent) startGeneration(ctx context.Context, js *jobState, j *pb.Job, rank int) *genRun {
	gctx, cancel := context.WithCancel(ctx)
	r := &genRun{job: j.Id, gen: j.Generation.Id, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := a.runGeneration(gctx, js, j, rank); err != nil && gctx.Err() == nil {
			a.log.Warn("generation ended", "job", j.Id, "generation", j.Generation.Id, "err", err)
		}
	}()
	return r
}

// runGeneration trains generation j.Generation as member rank until the
// job's last step, the end of ctx (a new generation) or a failure.
func (a *Agent) runGeneration(ctx context.Context, js *jobState, j *pb.Job, rank int) error {
	g := j.Generation
	log := a.log.With("job", j.Id, "generation", g.Id, "rank", rank, "members", len(g.Members))
	if err := a.takeStartState(ctx, js, j); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errTransfer) && g.Donor != "" {
			a.repeat(ctx, func() { a.reportPeer(ctx, j.Id, g.Id, g.Donor, err.Error()) })
		} else {
			a.repeat(ctx, func() { a.fail(ctx, j, err) })
		}
		return err
	}
	var red Reducer = Local{}
	if n := len(g.Members); n > 1 {
		addrs := make([]string, n)
		for i, m := range g.Members {
			addrs[i] = m.RingAddr
		}
		rc := allreduce.DefaultConfig()
		rc.Job, rc.Generation, rc.Members, rc.Rank, rc.Timeout = j.Id, g.Id, addrs, rank, a.cfg.RingTimeout
		rc.DialOptions = a.dial
		ring, err := allreduce.NewRing(a.ring, rc)
		if err != nil {
			a.repeat(ctx, func() { a.fail(ctx, j, err) })
			return err
		}
		defer ring.Close()
		red = ringReducer{ring}
	}
	opts := Options{Model: js.model, Optimizer: js.opt, Source: js.source, Reducer: red,
		Batch: js.batch, Seed: js.seed, Steps: js.steps, Completed: js.completed}
	if a.cfg.Trace != nil {
		d := js.model.Cfg.D
		opts.AfterRead = func(completed int64, x []float32, n int) {
			x0 := make([]float32, n)
			for i := range x0 {
				x0[i] = x[i*d]
			}
			a.trace(map[string]any{"ev": "read", "job": j.Id, "gen": g.Id, "rank": rank, "size": len(g.Members), "step": completed + 1, "x0": x0})
		}
	}
	tr, err := NewTrainer(opts)
	if err != nil {
		a.repeat(ctx, func() { a.fail(ctx, j, err) })
		return err
	}
	log.Info("generation started", "start_step", js.completed, "steps", js.steps)
	prog := newProgressReporter(a, j.Id, g.Id, len(g.Members), js.steps)
	defer prog.close()
	ck := &checkpointer{a: a, job: j.Id, gen: g.Id}
	defer ck.wait()
	for !tr.Done() {
		t0 := time.Now()
		res, err := tr.Step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // a new generation: nothing of the step was applied
			}
			if errors.Is(err, ErrDiverged) || errors.Is(err, ErrReplicaMismatch) || errors.Is(err, ErrData) {
				a.repeat(ctx, func() { a.fail(ctx, j, err) })
				return err
			}
			peer := g.Members[(rank+1)%len(g.Members)].WorkerId
			var pe *allreduce.PeerError
			if errors.As(err, &pe) && pe.Rank >= 0 && pe.Rank < len(g.Members) {
				peer = g.Members[pe.Rank].WorkerId
			}
			a.repeat(ctx, func() { a.reportPeer(ctx, j.Id, g.Id, peer, err.Error()) })
			return err
		}
		el := time.Since(t0)
		js.completed = res.Step
		js.trainTime += el
		js.samples += int64(res.Metrics.Rows)
		js.record(res)
		a.met.observe(res.Times)
		if a.cfg.Trace != nil {
			a.trace(map[string]any{"ev": "apply", "job": j.Id, "gen": g.Id, "rank": rank, "step": res.Step,
				"sum": strconv.FormatUint(tr.paramsChecksum(), 16), "t": time.Now().UnixNano()})
		}
		if rank == 0 {
			prog.add(res, el)
			if every := j.Spec.GetCheckpointEvery(); every > 0 && res.Step%every == 0 && res.Step < js.steps {
				ck.maybeSave(ctx, js, tr)
			}
		}
	}
	if rank != 0 {
		log.Info("all steps done; rank 0 publishes the model")
		return nil
	}
	prog.flush()
	ck.wait()
	return a.finish(ctx, js, j)
}

// reportAgain is how long a member whose generation broke waits for the
// next generation before it repeats its report (the first may have been
// lost with a coordinator).
const reportAgain = 5 * time.Second

// repeat runs report now and again every reportAgain until ctx ends, which
// it does when the next generation (or the end of the job) arrives.
func (a *Agent) repeat(ctx context.Context, report func()) {
	for {
		report()
		select {
		case <-ctx.Done():
			return
		case <-time.After(reportAgain):
		}
	}
}

// takeStartState makes js hold the generation's start state: its own when
// it matches, else the donor's (over gRPC) or the checkpoint's.
func (a *Agent) takeStartState(ctx context.Context, js *jobState, j *pb.Job) error {
	g := j.Generation
	held := a.transfer.heldSum(j.Id)
	if js.completed == g.StartStep && (g.DonorChecksum == 0 || held == g.DonorChecksum) {
		return nil
	}
	var snap *Snapshot
	var history []byte
	var err error
	if g.DonorCheckpoint != "" {
		snap, history, err = a.loadCheckpoint(ctx, j.Id, g.DonorCheckpoint, g.StartStep, g.DonorChecksum)
	} else {
		var donor *pb.Member
		for _, m := range g.Members {
			if m.WorkerId == g.Donor {
				donor = m
			}
		}
		if donor == nil {
			return fmt.Errorf("job %s generation %d: donor %q is not a member", j.Id, g.Id, g.Donor)
		}
		snap, history, err = a.fetchFromDonor(ctx, donor.GrpcAddr, j.Id, g.StartStep, g.DonorChecksum)
	}
	if err != nil {
		return err
	}
	if err := snap.Restore(js.model, js.opt); err != nil {
		return fmt.Errorf("%w: %w", errTransfer, err)
	}
	js.completed = snap.Completed
	if len(history) > 0 {
		var h []HistoryPoint
		if json.Unmarshal(history, &h) == nil {
			js.history = h
		}
	}
	js.acc, js.accN, js.fvuN = HistoryPoint{}, 0, 0
	a.log.Info("took the start state", "job", j.Id, "generation", g.Id, "step", snap.Completed,
		"from", firstNonEmpty(g.DonorCheckpoint, g.Donor))
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// fetchFromDonor streams the start state from the donor, retrying briefly
// (the donor may still be setting up).
func (a *Agent) fetchFromDonor(ctx context.Context, addr, job string, step int64, sum Checksum) (*Snapshot, []byte, error) {
	conn, err := grpc.NewClient(addr, append(a.dial, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(transferPart+1<<16)))...)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errTransfer, err)
	}
	defer conn.Close()
	cl := transferpb.NewStateTransferClient(conn)
	var lastErr error
	for attempt := 0; attempt < 4; attempt++ {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		snap, hist, err := fetchState(fctx, cl, job, step, sum)
		cancel()
		if err == nil {
			return snap, hist, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		sleepCtx(ctx, time.Duration(100<<attempt)*time.Millisecond)
	}
	return nil, nil, fmt.Errorf("from donor %s: %w", addr, lastErr)
}

// trackerBytes encodes the dead-latent tracker as artifact.Checkpoint keeps
// it: little-endian uint32s (loadCheckpoint decodes them).
func trackerBytes(t []uint32) []byte {
	b := make([]byte, 4*len(t))
	for i, v := range t {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

// loadCheckpoint reads checkpoint id of job and checks it is the start
// state the generation names.
func (a *Agent) loadCheckpoint(ctx context.Context, job, id string, step int64, sum Checksum) (*Snapshot, []byte, error) {
	store, err := artifact.NewCheckpointStore(a.cfg.Store, job)
	if err != nil {
		return nil, nil, err
	}
	info, err := store.Get(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w", id, err)
	}
	ck, err := store.Load(ctx, info)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w", id, err)
	}
	if len(ck.TrackerState)%4 != 0 {
		return nil, nil, fmt.Errorf("checkpoint %s: tracker state of %d bytes", id, len(ck.TrackerState))
	}
	tracker := make([]uint32, len(ck.TrackerState)/4)
	for i := range tracker {
		tracker[i] = binary.LittleEndian.Uint32(ck.TrackerState[4*i:])
	}
	snap := &Snapshot{Completed: ck.Step, Params: ck.Params, Optimizer: ck.OptimizerState, Tracker: tracker}
	if snap.Completed != step || (sum != 0 && snap.Checksum() != sum) {
		return nil, nil, fmt.Errorf("checkpoint %s holds step %d checksum %016x, the generation wants step %d checksum %016x",
			id, snap.Completed, snap.Checksum(), step, sum)
	}
	return snap, ck.Metrics, nil
}

// checkpointer writes rank 0's checkpoints: the state is copied at a step
// boundary and uploaded in the background, one upload at a time (a
// checkpoint due while one is in flight is skipped).
type checkpointer struct {
	a        *Agent
	job      string
	gen      uint64
	inflight sync.WaitGroup
	busy     bool
	mu       sync.Mutex
}

func (c *checkpointer) maybeSave(ctx context.Context, js *jobState, tr *Trainer) {
	c.mu.Lock()
	if c.busy {
		c.mu.Unlock()
		c.a.log.Warn("checkpoint skipped: the previous one is still uploading", "job", c.job, "step", tr.Completed())
		return
	}
	c.busy = true
	c.mu.Unlock()
	snap, err := tr.Snapshot()
	if err != nil {
		c.a.log.Warn("checkpoint snapshot", "err", err)
		c.mu.Lock()
		c.busy = false
		c.mu.Unlock()
		return
	}
	history := js.historyJSON()
	epoch := tr.Epoch()
	c.inflight.Add(1)
	go func() {
		defer c.inflight.Done()
		defer func() { c.mu.Lock(); c.busy = false; c.mu.Unlock() }()
		if err := c.save(ctx, snap, epoch, js.seed, history); err != nil && ctx.Err() == nil {
			c.a.log.Warn("checkpoint", "job", c.job, "step", snap.Completed, "err", err)
		}
	}()
}

func (c *checkpointer) save(ctx context.Context, snap *Snapshot, epoch int64, seed uint64, history []byte) error {
	store, err := artifact.NewCheckpointStore(c.a.cfg.Store, c.job)
	if err != nil {
		return err
	}
	info, err := store.Save(ctx, &artifact.Checkpoint{Step: snap.Completed, Epoch: epoch, Seed: seed, Params: snap.Params,
		OptimizerState: snap.Optimizer, TrackerState: trackerBytes(snap.Tracker), Metrics: history})
	if err != nil {
		return err
	}
	reqID := client.NewRequestID()
	return retry(ctx, c.a.log, "report checkpoint", func(ctx context.Context) error {
		_, err := c.a.ctl.ReportCheckpoint(ctx, &pb.ReportCheckpointRequest{JobId: c.job, Generation: c.gen, WorkerId: c.a.cfg.ID,
			Checkpoint: &pb.Checkpoint{Key: info.ID, Step: snap.Completed, Checksum: snap.Checksum()}, RequestId: reqID})
		return stopOnPrecondition(err)
	})
}

func (c *checkpointer) wait() { c.inflight.Wait() }

// finish evaluates the trained model, uploads the model directory and
// reports the job's result (rank 0, after the last step).
func (a *Agent) finish(ctx context.Context, js *jobState, j *pb.Job) error {
	g := j.Generation
	rep, err := a.evaluate(ctx, js)
	if err != nil {
		a.fail(ctx, j, fmt.Errorf("final evaluation: %w", err))
		return err
	}
	dir := filepath.Join(a.cfg.DataDir, "models", j.Id)
	if err := a.writeModelDir(dir, js, rep); err != nil {
		a.fail(ctx, j, fmt.Errorf("write the model directory: %w", err))
		return err
	}
	if err := retry(ctx, a.log, "upload the model", func(ctx context.Context) error {
		_, err := artifact.UploadModel(ctx, a.cfg.Store, j.Id, dir)
		return err
	}); err != nil {
		return err
	}
	fm := &pb.Metrics{Step: js.steps, Values: map[string]float64{"samples_per_sec": rep.SamplesPerSec, "train_seconds": rep.TrainSeconds}}
	addMetrics(fm.Values, "train_", sae.Metrics(rep.Train))
	if rep.Test != nil {
		addMetrics(fm.Values, "test_", sae.Metrics(*rep.Test))
	}
	reqID := client.NewRequestID()
	err = retry(ctx, a.log, "report the result", func(ctx context.Context) error {
		_, err := a.ctl.ReportResult(ctx, &pb.ReportResultRequest{JobId: j.Id, Generation: g.Id, WorkerId: a.cfg.ID,
			State: pb.JobState_JOB_STATE_COMPLETED, FinalMetrics: fm, ModelKey: "jobs/" + j.Id + "/model/", RequestId: reqID})
		return stopOnPrecondition(err)
	})
	if err == nil {
		a.log.Info("job completed", "job", j.Id, "steps", js.steps, "test_fvu", fm.Values["test_fvu"])
	}
	return err
}

// evaluate computes the final train metrics (one streamed pass over the
// dataset) and test metrics (the test dataset, loaded).
func (a *Agent) evaluate(ctx context.Context, js *jobState) (*Report, error) {
	man := js.reader.Manifest()
	train, err := evaluateRows(ctx, js.model, js.source, man.Rows, 4096)
	if err != nil {
		return nil, err
	}
	rep := &Report{Train: jsonMetrics(train), Steps: js.steps, History: js.history}
	rep.Epochs = float64(js.steps*int64(js.batch)) / float64(man.Rows)
	rep.TrainSeconds = js.trainTime.Seconds()
	if js.trainTime > 0 {
		rep.SamplesPerSec = float64(js.samples) / js.trainTime.Seconds()
	}
	if t := js.spec.GetTest(); t != "" {
		ds, err := dataset.LoadDataset(ctx, a.cfg.Store, t)
		if err != nil {
			return nil, fmt.Errorf("test dataset %s: %w", t, err)
		}
		if ds.D != js.model.Cfg.D {
			return nil, fmt.Errorf("%w: test dataset %s has d = %d, the model d = %d", ErrInvalidConfig, t, ds.D, js.model.Cfg.D)
		}
		m := jsonMetrics(js.model.Evaluate(ds.X, ds.Rows, 4096))
		rep.Test = &m
	}
	return rep, nil
}

func (a *Agent) writeModelDir(dir string, js *jobState, rep *Report) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := js.model.Save(dir); err != nil {
		return err
	}
	if err := sae.WriteJSON(dir, sae.MetricsFile, rep); err != nil {
		return err
	}
	if err := sae.WriteJSON(dir, HistoryFile, rep.History); err != nil {
		return err
	}
	if a.cfg.WriteModelFiles != nil {
		return a.cfg.WriteModelFiles(dir, js.model)
	}
	return nil
}

// HistoryFile holds the loss curve inside a model directory.
const HistoryFile = "history.json"

func addMetrics(dst map[string]float64, prefix string, m sae.Metrics) {
	for k, v := range map[string]float64{"mse": m.MSE, "fvu": m.FVU, "l0": m.L0, "mean_activation": m.MeanActivation,
		"dead_fraction": m.DeadFraction, "loss": m.Loss} {
		if finite(v) {
			dst[prefix+k] = v
		}
	}
}

// ringReducer is the Reducer of a generation: the ring all-reduce, each call
// tagged with the step (completed steps before it) and the phase.
type ringReducer struct{ r *allreduce.Ring }

func (x ringReducer) Rank() int { return x.r.Rank() }
func (x ringReducer) Size() int { return x.r.Size() }

func (x ringReducer) ReduceFloat32(ctx context.Context, step int64, phase Phase, buf []float32) error {
	return x.r.AllReduceFloat32(ctx, x.r.Tag(uint64(step), uint32(phase)), buf)
}

func (x ringReducer) ReduceFloat64(ctx context.Context, step int64, phase Phase, buf []float64) error {
	return x.r.AllReduceFloat64(ctx, x.r.Tag(uint64(step), uint32(phase)), buf)
}

// trace writes one JSON line to the trace.
func (a *Agent) trace(v map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	a.traceMu.Lock()
	a.cfg.Trace.Write(append(b, '\n'))
	a.traceMu.Unlock()
}
