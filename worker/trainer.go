package worker

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage"
)

// Errors returned by the Trainer.
var (
	// ErrDiverged: a step produced a non-finite loss or gradient. Nothing of
	// that step was applied; the parameters are those of the last good step.
	ErrDiverged = errors.New("training diverged")
	// ErrOptions: the Trainer was configured with inconsistent options.
	ErrOptions = errors.New("invalid training options")
)

// Source gives a member its share of each global batch. storage.Reader
// (datasets in S3, prefetched) and MemorySource implement it.
type Source interface {
	// Layout is the shard and chunk layout the epoch order is built on.
	Layout() storage.Layout
	// Dim is the number of features per row.
	Dim() int
	// ReadStep copies into dst the rows of rank's share of the global batch
	// step (counted within the epoch) of order o, as storage.BatchSlice
	// defines it, and returns how many rows it wrote. It may start fetching
	// the shares of later steps.
	ReadStep(ctx context.Context, o *storage.EpochOrder, batch int, step int64, rank, ranks int, dst []float32) (int, error)
}

// Phase names which buffer of a step is being reduced; reducers put it in
// the tag of every message so that buffers of different phases never mix.
type Phase uint32

// The reductions of one step, in order.
const (
	PhaseStats Phase = iota + 1
	PhaseGrad
	PhaseSums
)

// Reducer sums a buffer element-wise across every member of the current
// generation, in place. All members call it with the same step, phase and
// length; every member ends with identical bits.
type Reducer interface {
	Rank() int
	Size() int
	ReduceFloat32(ctx context.Context, step int64, phase Phase, buf []float32) error
	ReduceFloat64(ctx context.Context, step int64, phase Phase, buf []float64) error
}

// Local is the Reducer of a one-member group: every reduction is the identity.
type Local struct{}

var _ Reducer = Local{}

func (Local) Rank() int                                                    { return 0 }
func (Local) Size() int                                                    { return 1 }
func (Local) ReduceFloat32(context.Context, int64, Phase, []float32) error { return nil }
func (Local) ReduceFloat64(context.Context, int64, Phase, []float64) error { return nil }

// Options configures a Trainer.
type Options struct {
	Model     *sae.Model
	Optimizer sae.Optimizer
	Source    Source
	Reducer   Reducer // nil means Local
	Batch     int     // global batch size B (rows per step over all members)
	Seed      uint64  // data-order seed
	Steps     int64   // total number of steps of the run
	StartStep int64   // first step to run (steps before it are complete)
}

// Trainer runs the steps of one job on one member. It is not safe for
// concurrent use.
type Trainer struct {
	opt   Options
	red   Reducer
	step  int64
	ws    *sae.Step
	order *storage.EpochOrder
	epoch int64

	rows  int64 // dataset rows
	spe   int64 // steps per epoch
	x     []float32
	stats []float64
	grad  []float32
	sums  []float64
}

// StepResult is what one completed step reports.
type StepResult struct {
	Step     int64 // the step just completed (0-based)
	Epoch    int64
	Metrics  sae.Metrics
	LR       float64
	GradNorm float64
}

// NewTrainer checks the options and allocates the step buffers.
func NewTrainer(o Options) (*Trainer, error) {
	if o.Model == nil || o.Optimizer == nil || o.Source == nil {
		return nil, fmt.Errorf("%w: model, optimizer and source are required", ErrOptions)
	}
	red := o.Reducer
	if red == nil {
		red = Local{}
	}
	if o.Source.Dim() != o.Model.Cfg.D {
		return nil, fmt.Errorf("%w: data has d = %d but the model has d = %d", ErrOptions, o.Source.Dim(), o.Model.Cfg.D)
	}
	lay := o.Source.Layout()
	var rows int64
	for _, r := range lay.ShardRows {
		rows += r
	}
	if rows == 0 {
		return nil, fmt.Errorf("%w: the dataset has no rows", ErrOptions)
	}
	if o.Batch < 1 || int64(o.Batch) > rows {
		return nil, fmt.Errorf("%w: batch = %d out of range [1, %d] (rows in the dataset)", ErrOptions, o.Batch, rows)
	}
	if o.Steps < 0 || o.StartStep < 0 || o.StartStep > o.Steps {
		return nil, fmt.Errorf("%w: steps = %d, start step = %d", ErrOptions, o.Steps, o.StartStep)
	}
	maxLocal := (o.Batch + red.Size() - 1) / red.Size()
	m := o.Model
	t := &Trainer{
		opt:   o,
		red:   red,
		step:  o.StartStep,
		ws:    m.NewStep(maxLocal),
		epoch: -1,
		rows:  rows,
		spe:   (rows + int64(o.Batch) - 1) / int64(o.Batch),
		x:     make([]float32, maxLocal*m.Cfg.D),
		stats: make([]float64, m.StatsLen()),
		grad:  make([]float32, m.GradLen()),
		sums:  make([]float64, m.SumsLen()),
	}
	return t, nil
}

// Rows is the number of rows in one epoch of the dataset.
func (t *Trainer) Rows() int64 { return t.rows }

// StepsPerEpoch is the number of global batches in one epoch; the last
// batch of an epoch holds the remaining rows and may be smaller than B.
func (t *Trainer) StepsPerEpoch() int64 { return t.spe }

// Next is the next step to run.
func (t *Trainer) Next() int64 { return t.step }

// Done reports whether every step of the run has completed.
func (t *Trainer) Done() bool { return t.step >= t.opt.Steps }

// Step runs the next step: read this member's share of the global batch,
// both phases with their reductions, Finalize and the optimizer update. On
// error nothing of the step is applied.
func (t *Trainer) Step(ctx context.Context) (StepResult, error) {
	s := t.step
	epoch := s / t.spe
	if epoch != t.epoch {
		t.order = storage.NewEpochOrder(t.opt.Source.Layout(), t.opt.Seed, epoch)
		t.epoch = epoch
	}
	n, err := t.opt.Source.ReadStep(ctx, t.order, t.opt.Batch, s%t.spe, t.red.Rank(), t.red.Size(), t.x)
	if err != nil {
		return StepResult{}, fmt.Errorf("step %d: read batch: %w", s, err)
	}
	x := t.x[:n*t.opt.Model.Cfg.D]

	m := t.opt.Model
	// The stats phase also runs the encoder forward that the gradient phase
	// reuses, so it runs even when the sparsity needs no global statistics.
	t.ws.Stats(x, n, t.stats)
	var stats []float64
	if m.NeedsStats() {
		if err := t.red.ReduceFloat64(ctx, s, PhaseStats, t.stats); err != nil {
			return StepResult{}, fmt.Errorf("step %d: reduce stats: %w", s, err)
		}
		stats = t.stats
	}
	t.ws.Gradient(stats, t.grad, t.sums)
	if err := t.red.ReduceFloat32(ctx, s, PhaseGrad, t.grad); err != nil {
		return StepResult{}, fmt.Errorf("step %d: reduce gradient: %w", s, err)
	}
	if err := t.red.ReduceFloat64(ctx, s, PhaseSums, t.sums); err != nil {
		return StepResult{}, fmt.Errorf("step %d: reduce metric sums: %w", s, err)
	}
	met := m.Finalize(t.grad, t.sums)
	if !finite(met.Loss) || !finite32(t.grad) {
		return StepResult{}, fmt.Errorf("%w at step %d (epoch %d): loss = %v; parameters kept from step %d", ErrDiverged, s, epoch, met.Loss, s-1)
	}
	lr, norm := t.opt.Optimizer.Update(m.Params, t.grad)
	t.step++
	return StepResult{Step: s, Epoch: epoch, Metrics: met, LR: lr, GradNorm: norm}, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func finite32(v []float32) bool {
	var acc float32
	for _, x := range v {
		acc += x * 0 // NaN or ±Inf anywhere makes acc NaN
	}
	return acc == 0
}
