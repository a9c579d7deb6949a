package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage/datafile"
)

// LocalRun is a training run in one process: the Trainer with a one-member
// reduce, over datasets held in memory. `dsae train` is a thin wrapper.
type LocalRun struct {
	Model     *sae.Model
	Optimizer sae.OptimizerConfig
	// Source is the training data. When nil, Train is served from memory.
	Source Source
	// Train, when set, is the training data in memory: the default Source
	// and the set the final train metrics are evaluated on. When it is nil
	// and Source is a RowReader (data streamed from S3), the final train
	// metrics are evaluated on one more pass over Source in batches of
	// EvalBatch rows; for any other Source they are the mean of the step
	// metrics of the last epoch.
	Train *datafile.Matrix
	Test  *datafile.Matrix // optional
	Batch int
	Steps int64  // total steps
	Seed  uint64 // data-order seed
	// EvalBatch is the batch size of the final evaluation (default 4096);
	// it also bounds the rows a streamed evaluation holds at once.
	EvalBatch int
	// HistoryEvery records one history point every so many steps (default
	// StepsPerEpoch/20, at least 1), averaging the steps in between.
	HistoryEvery int64
	// Progress, when set, is called after every step from the training goroutine.
	Progress func(StepResult, Progress)

	// Resume, when set, is the checkpoint to continue from: its State is
	// restored into Model and the optimizer, and training starts after its
	// completed steps, with its history; the result is the one an
	// uninterrupted run reaches, bit for bit.
	Resume *LocalCheckpoint
	// Checkpoint, when set, is called with the run's state every
	// CheckpointEvery completed steps (0: never) and, when ctx ends the run
	// early, once with the state after the last completed step.
	Checkpoint      func(*LocalCheckpoint) error
	CheckpointEvery int64
}

// ErrInterrupted: the run's context ended it before its last step; the
// model holds the parameters after the last completed step, which the error
// names.
var ErrInterrupted = errors.New("training interrupted")

// Progress is the state of a run for progress displays.
type Progress struct {
	Done, Total   int64
	Elapsed       time.Duration
	SamplesPerSec float64
	ETA           time.Duration
}

// HistoryPoint is the mean of the metrics of the steps since the previous point.
type HistoryPoint struct {
	Step  int64   `json:"step"`
	Epoch int64   `json:"epoch"`
	Loss  float64 `json:"loss"`
	MSE   float64 `json:"mse"`
	FVU   float64 `json:"fvu"`
	L0    float64 `json:"l0"`
	LR    float64 `json:"lr"`
}

// Report is the outcome of a LocalRun, written to metrics.json by `dsae train`.
type Report struct {
	Train         jsonMetrics    `json:"train"`
	Test          *jsonMetrics   `json:"test,omitempty"`
	Steps         int64          `json:"steps"`
	Epochs        float64        `json:"epochs"`
	SamplesPerSec float64        `json:"samples_per_sec"`
	TrainSeconds  float64        `json:"train_seconds"`
	History       []HistoryPoint `json:"-"`
}

// Run trains for r.Steps steps, then evaluates on the train and test sets.
// The model is trained in place.
func (r LocalRun) Run(ctx context.Context) (*Report, error) {
	opt, err := sae.NewOptimizer(r.Optimizer, r.Model.NumParams())
	if err != nil {
		return nil, err
	}
	src := r.Source
	if src == nil {
		if r.Train == nil {
			return nil, fmt.Errorf("%w: no training data", ErrInvalidConfig)
		}
		src = &MemorySource{DS: r.Train}
	}
	var completed int64
	rep := &Report{}
	var acc HistoryPoint
	var accN, fvuN int64
	var samples int64
	var before time.Duration // training time of the run before Resume
	if c := r.Resume; c != nil {
		if err := c.State.Restore(r.Model, opt); err != nil {
			return nil, fmt.Errorf("%w: resume: %w", ErrCheckpoint, err)
		}
		completed = c.State.Completed
		p := c.Progress
		rep.History = append(rep.History, p.History...)
		acc, accN, fvuN, samples = p.Window, p.WindowSteps, p.WindowFVUs, p.Samples
		before = time.Duration(p.TrainSeconds * float64(time.Second))
	}
	tr, err := NewTrainer(Options{
		Model: r.Model, Optimizer: opt, Source: src,
		Batch: r.Batch, Seed: r.Seed, Steps: r.Steps, Completed: completed,
	})
	if err != nil {
		return nil, err
	}
	every := r.HistoryEvery
	if every < 1 {
		every = max(1, tr.StepsPerEpoch()/20)
	}
	var last lastEpoch
	start := time.Now().Add(-before)
	checkpoint := func() error {
		if r.Checkpoint == nil {
			return nil
		}
		snap, err := TakeSnapshot(r.Model, opt, tr.Completed())
		if err != nil {
			return err
		}
		return r.Checkpoint(&LocalCheckpoint{State: snap, Progress: RunProgress{
			History: append([]HistoryPoint(nil), rep.History...), Window: acc, WindowSteps: accN, WindowFVUs: fvuN,
			Samples: samples, TrainSeconds: time.Since(start).Seconds()}})
	}
	for !tr.Done() {
		if err := ctx.Err(); err != nil {
			return nil, r.interrupted(ctx, tr, checkpoint)
		}
		res, err := tr.Step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, r.interrupted(ctx, tr, checkpoint)
			}
			return nil, err
		}
		samples += int64(res.Metrics.Rows)
		m := res.Metrics
		last.add(res)
		acc.Loss += m.Loss
		acc.MSE += m.MSE
		if finite(m.FVU) { // undefined for a batch of identical rows
			acc.FVU += m.FVU
			fvuN++
		}
		acc.L0 += m.L0
		acc.LR += res.LR
		accN++
		if accN == every || tr.Done() {
			k := float64(accN)
			rep.History = append(rep.History, HistoryPoint{
				Step: res.Step, Epoch: res.Epoch,
				Loss: acc.Loss / k, MSE: acc.MSE / k, FVU: acc.FVU / float64(max(fvuN, 1)), L0: acc.L0 / k, LR: acc.LR / k,
			})
			acc, accN, fvuN = HistoryPoint{}, 0, 0
		}
		if r.Progress != nil {
			el := time.Since(start)
			done := res.Step
			p := Progress{Done: done, Total: r.Steps, Elapsed: el}
			if el > 0 {
				p.SamplesPerSec = float64(samples) / el.Seconds()
				p.ETA = time.Duration(float64(el) / float64(done) * float64(r.Steps-done))
			}
			r.Progress(res, p)
		}
		if r.CheckpointEvery > 0 && res.Step%r.CheckpointEvery == 0 && !tr.Done() {
			if err := checkpoint(); err != nil {
				return nil, fmt.Errorf("checkpoint after step %d: %w", res.Step, err)
			}
		}
	}
	el := time.Since(start)
	rep.Steps = r.Steps
	rep.Epochs = float64(samples) / float64(tr.Rows())
	rep.TrainSeconds = el.Seconds()
	if el > 0 {
		rep.SamplesPerSec = float64(samples) / el.Seconds()
	}
	eb := r.EvalBatch
	if eb < 1 {
		eb = 4096
	}
	rr, streamed := src.(RowReader)
	switch {
	case r.Train != nil:
		rep.Train = jsonMetrics(r.Model.Evaluate(r.Train.X, r.Train.Rows, eb))
	case streamed:
		met, err := evaluateRows(ctx, r.Model, rr, tr.Rows(), eb)
		if err != nil {
			return nil, fmt.Errorf("final evaluation on the training data: %w", err)
		}
		rep.Train = jsonMetrics(met)
	default:
		rep.Train = jsonMetrics(last.mean())
	}
	if r.Test != nil {
		if r.Test.D != r.Model.Cfg.D {
			return nil, fmt.Errorf("%w: test data has d = %d but the model has d = %d", ErrInvalidConfig, r.Test.D, r.Model.Cfg.D)
		}
		t := jsonMetrics(r.Model.Evaluate(r.Test.X, r.Test.Rows, eb))
		rep.Test = &t
	}
	return rep, nil
}

// interrupted saves the checkpoint of a run that ctx ended and returns the
// ErrInterrupted error describing it.
func (r LocalRun) interrupted(ctx context.Context, tr *Trainer, checkpoint func() error) error {
	err := fmt.Errorf("%w after step %d of %d: %w", ErrInterrupted, tr.Completed(), r.Steps, context.Cause(ctx))
	if cerr := checkpoint(); cerr != nil {
		return fmt.Errorf("%w; its checkpoint failed: %w", err, cerr)
	}
	return err
}

// RowReader is a Source that can also read its rows in storage order (the
// global row ids of its Layout), so that LocalRun can evaluate the model on
// training data it does not hold in memory. ReaderSource implements it.
type RowReader interface {
	// ReadRows copies rows [lo, lo+n) into dst[:n*Dim()].
	ReadRows(ctx context.Context, lo, n int64, dst []float32) error
}

// evaluateRows returns the metrics of m on rows [0, rows) of src, read once
// in storage order in batches of at most batch rows and fed to an
// sae.Evaluator of that batch: the metrics of m.Evaluate on the same rows in
// memory. Its memory is one batch: a read buffer of batch·d values and the
// Evaluator's Step of batch rows, besides what src holds.
func evaluateRows(ctx context.Context, m *sae.Model, src RowReader, rows int64, batch int) (sae.Metrics, error) {
	b := int(min(int64(batch), max(rows, 1)))
	ev := m.NewEvaluator(b)
	x := make([]float32, b*m.Cfg.D)
	for lo := int64(0); lo < rows; lo += int64(b) {
		n := min(int64(b), rows-lo)
		if err := src.ReadRows(ctx, lo, n, x); err != nil {
			return sae.Metrics{}, err
		}
		ev.Add(x, int(n))
	}
	return ev.Metrics(), nil
}

// jsonMetrics is sae.Metrics whose undefined values (NaN, for example the
// FVU of data with zero variance) are written as JSON null.
type jsonMetrics sae.Metrics

// MarshalJSON writes the fields of sae.Metrics under their JSON names, with
// NaN and ±Inf as null.
func (m jsonMetrics) MarshalJSON() ([]byte, error) {
	v := reflect.ValueOf(sae.Metrics(m))
	fields := make(map[string]any, v.NumField())
	for i := 0; i < v.NumField(); i++ {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		f := v.Field(i)
		if f.Kind() == reflect.Float64 && !finite(f.Float()) {
			fields[name] = nil
			continue
		}
		fields[name] = f.Interface()
	}
	return json.Marshal(fields)
}

// lastEpoch averages the step metrics of the most recent epoch, weighting
// each step by its rows.
type lastEpoch struct {
	epoch int64
	rows  float64
	sum   sae.Metrics
}

func (l *lastEpoch) add(r StepResult) {
	if r.Epoch != l.epoch || l.rows == 0 {
		*l = lastEpoch{epoch: r.Epoch}
	}
	w := float64(r.Metrics.Rows)
	l.rows += w
	a, b := reflect.ValueOf(&l.sum).Elem(), reflect.ValueOf(r.Metrics)
	for i := 0; i < a.NumField(); i++ {
		switch a.Field(i).Kind() {
		case reflect.Float64:
			a.Field(i).SetFloat(a.Field(i).Float() + w*b.Field(i).Float())
		case reflect.Int:
			a.Field(i).SetInt(a.Field(i).Int() + b.Field(i).Int())
		}
	}
}

func (l *lastEpoch) mean() sae.Metrics {
	m := l.sum
	v := reflect.ValueOf(&m).Elem()
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Float64 && l.rows > 0 {
			f.SetFloat(f.Float() / l.rows)
		}
	}
	return m
}
