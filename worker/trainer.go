package worker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"
	"time"
	"unsafe"

	"github.com/minio/crc64nvme"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage/order"
)

// Sentinel errors of package worker; errors wrap them with %w.
var (
	// ErrDiverged: a step produced a non-finite loss or gradient. Nothing of
	// that step was applied; the parameters, optimizer state and dead-latent
	// tracker are those of the last good step.
	ErrDiverged = errors.New("training diverged")
	// ErrInvalidConfig: options or a configuration outside their allowed
	// values (a Trainer's Options, a LocalRun, an AgentConfig, a job spec
	// that disagrees with its dataset); the message names the setting.
	ErrInvalidConfig = errors.New("invalid training options")
	// ErrData: this member's rows of a step could not be read (for example
	// a chunk that fails its checksum, dataset.ErrCorrupt, or a store that
	// stays unreachable past the client's retries). Nothing of that step was
	// applied; the error names the dataset, shard and chunk.
	ErrData = errors.New("training data unreadable")
	// ErrReplicaMismatch: the members of a group entered a step with
	// different parameters (their checksums, summed in the step's last
	// reduction, disagree). Nothing of that step was applied. It means a
	// bug or corrupted memory, never bad input, and the job must stop.
	ErrReplicaMismatch = errors.New("replicas disagree")
)

// Source gives a member its share of each global batch. dataset.Reader
// (datasets in S3, prefetched) and MemorySource implement it.
type Source interface {
	// Layout is the shard and chunk layout the epoch order is built on.
	Layout() order.Layout
	// Dim is the number of features per row.
	Dim() int
	// ReadStep copies into dst the rows of rank's share of the global batch
	// step (counted within the epoch) of order o, as order.BatchSlice
	// defines it, and returns how many rows it wrote. It may start fetching
	// the shares of later steps.
	ReadStep(ctx context.Context, o *order.EpochOrder, batch int, step int64, rank, ranks int, dst []float32) (int, error)
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
// length; every member ends with identical bits. step is the number of
// steps completed before the step being run (0 for the first).
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
	// Completed is the number of steps already completed (0 = a fresh
	// run): the Trainer runs steps Completed+1 … Steps. Model and Optimizer
	// must hold the state after those steps.
	Completed int64
	// AfterRead, when set, is called from Step with this member's rows of
	// the step about to run (n rows of d values, valid during the call
	// only), before anything is computed. Debug traces use it.
	AfterRead func(completed int64, x []float32, n int)
}

// Trainer runs the steps of one job on one member. It is not safe for
// concurrent use.
//
// A Trainer belongs to one generation: its reducer (the ring of that
// generation) and its buffers (sized for B/N rows) depend on the number of
// members. When the generation changes, the worker takes a Snapshot (or
// keeps the Model and Optimizer, which the Trainer updates in place) and
// builds a new Trainer with the new Reducer and Completed.
type Trainer struct {
	opt   Options
	red   Reducer
	done  int64 // completed steps
	ws    *sae.Step
	order *order.EpochOrder
	epoch int64

	rows    int64 // dataset rows
	spe     int64 // steps per epoch
	x       []float32
	stats   []float64
	grad    []float32
	sumsAll []float64 // sums followed by verifySlots replica-check values
	sums    []float64 // sumsAll[:SumsLen]
	tracker []uint32  // scratch: the tracker before Finalize
	hash    hash.Hash64
}

// StepResult is what one completed step reports.
type StepResult struct {
	// Step is the number of completed steps after this one (1 for the
	// first step of a run): the same count the coordinator, ready reports
	// and checkpoints use.
	Step     int64
	Epoch    int64 // epoch the step belongs to (0-based)
	Metrics  sae.Metrics
	LR       float64
	GradNorm float64
	Times    StepTimes
}

// StepTimes breaks one step's wall time down.
type StepTimes struct {
	Data        time.Duration // waiting for this member's rows
	Compute     time.Duration // both phases' local math (forward, backward)
	StatsReduce time.Duration // all-reduce of the KL statistics
	GradReduce  time.Duration // all-reduce of the gradient and metric sums
	Update      time.Duration // Finalize, checks and the optimizer update
}

// Total is the sum of the parts.
func (t StepTimes) Total() time.Duration {
	return t.Data + t.Compute + t.StatsReduce + t.GradReduce + t.Update
}

// verifySlots is the number of float64 values appended to the metric sums
// of every step for the replica check (see checkReplicas).
const verifySlots = 2 * checksumPieces

// NewTrainer checks the options and allocates the step buffers.
func NewTrainer(o Options) (*Trainer, error) {
	if o.Model == nil || o.Optimizer == nil || o.Source == nil {
		return nil, fmt.Errorf("%w: model, optimizer and source are required", ErrInvalidConfig)
	}
	red := o.Reducer
	if red == nil {
		red = Local{}
	}
	if o.Source.Dim() != o.Model.Cfg.D {
		return nil, fmt.Errorf("%w: data has d = %d but the model has d = %d", ErrInvalidConfig, o.Source.Dim(), o.Model.Cfg.D)
	}
	lay := o.Source.Layout()
	var rows int64
	for _, r := range lay.ShardRows {
		rows += r
	}
	if rows == 0 {
		return nil, fmt.Errorf("%w: the dataset has no rows", ErrInvalidConfig)
	}
	if o.Batch < 1 || int64(o.Batch) > rows {
		return nil, fmt.Errorf("%w: batch = %d out of range [1, %d] (rows in the dataset)", ErrInvalidConfig, o.Batch, rows)
	}
	if o.Steps < 0 || o.Completed < 0 || o.Completed > o.Steps {
		return nil, fmt.Errorf("%w: steps = %d, completed steps = %d", ErrInvalidConfig, o.Steps, o.Completed)
	}
	maxLocal := (o.Batch + red.Size() - 1) / red.Size()
	m := o.Model
	t := &Trainer{
		opt:     o,
		red:     red,
		done:    o.Completed,
		ws:      m.NewStep(maxLocal),
		epoch:   -1,
		rows:    rows,
		spe:     (rows + int64(o.Batch) - 1) / int64(o.Batch),
		x:       make([]float32, maxLocal*m.Cfg.D),
		stats:   make([]float64, m.StatsLen()),
		grad:    make([]float32, m.GradLen()),
		sumsAll: make([]float64, m.SumsLen()+verifySlots),
		tracker: make([]uint32, m.Cfg.H),
		hash:    crc64nvme.New(),
	}
	t.sums = t.sumsAll[:m.SumsLen()]
	return t, nil
}

// Rows is the number of rows in one epoch of the dataset.
func (t *Trainer) Rows() int64 { return t.rows }

// StepsPerEpoch is the number of global batches in one epoch; the last
// batch of an epoch holds the remaining rows and may be smaller than B.
func (t *Trainer) StepsPerEpoch() int64 { return t.spe }

// Completed is the number of completed steps.
func (t *Trainer) Completed() int64 { return t.done }

// Epoch is the epoch of the next step to run.
func (t *Trainer) Epoch() int64 { return t.done / t.spe }

// Done reports whether every step of the run has completed.
func (t *Trainer) Done() bool { return t.done >= t.opt.Steps }

// Step runs the next step: read this member's share of the global batch,
// both phases with their reductions, Finalize and the optimizer update. On
// error nothing of the step is applied: parameters, optimizer state, dead-
// latent tracker and the completed count are as before the call. A context
// cancelled during a reduction makes the reduction, and so the step, fail.
func (t *Trainer) Step(ctx context.Context) (StepResult, error) {
	s := t.done
	epoch := s / t.spe
	if epoch != t.epoch {
		t.order = order.NewEpochOrder(t.opt.Source.Layout(), t.opt.Seed, epoch)
		t.epoch = epoch
	}
	var tm StepTimes
	t0 := time.Now()
	n, err := t.opt.Source.ReadStep(ctx, t.order, t.opt.Batch, s%t.spe, t.red.Rank(), t.red.Size(), t.x)
	if err != nil {
		if ctx.Err() != nil {
			return StepResult{}, fmt.Errorf("step %d: read batch: %w", s+1, ctx.Err())
		}
		return StepResult{}, fmt.Errorf("%w at step %d: %w", ErrData, s+1, err)
	}
	m := t.opt.Model
	x := t.x[:n*m.Cfg.D]
	if t.opt.AfterRead != nil {
		t.opt.AfterRead(s, x, n)
	}
	t1 := time.Now()
	tm.Data = t1.Sub(t0)

	// The stats phase also runs the encoder forward that the gradient phase
	// reuses, so it runs even when the sparsity needs no global statistics.
	t.ws.Stats(x, n, t.stats)
	var stats []float64
	if m.NeedsStats() {
		t2 := time.Now()
		tm.Compute += t2.Sub(t1)
		if err := t.red.ReduceFloat64(ctx, s, PhaseStats, t.stats); err != nil {
			return StepResult{}, fmt.Errorf("step %d: reduce stats: %w", s+1, err)
		}
		t1 = time.Now()
		tm.StatsReduce = t1.Sub(t2)
		stats = t.stats
	}
	t.ws.Gradient(stats, t.grad, t.sums)
	checked := t.red.Size() > 1
	if checked {
		t.putReplicaCheck(t.sumsAll[len(t.sums):])
	}
	t2 := time.Now()
	tm.Compute += t2.Sub(t1)
	if err := t.red.ReduceFloat32(ctx, s, PhaseGrad, t.grad); err != nil {
		return StepResult{}, fmt.Errorf("step %d: reduce gradient: %w", s+1, err)
	}
	if err := t.red.ReduceFloat64(ctx, s, PhaseSums, t.sumsAll); err != nil {
		return StepResult{}, fmt.Errorf("step %d: reduce metric sums: %w", s+1, err)
	}
	t3 := time.Now()
	tm.GradReduce = t3.Sub(t2)
	if checked {
		if err := checkReplicas(t.sumsAll[len(t.sums):], t.red.Size()); err != nil {
			return StepResult{}, fmt.Errorf("%w at step %d (rank %d of %d): %v; nothing of the step was applied", ErrReplicaMismatch, s+1, t.red.Rank(), t.red.Size(), err)
		}
	}
	// Finalize advances the dead-latent tracker; keep it to undo a refused step.
	copy(t.tracker, m.TrainState())
	met := m.Finalize(t.grad, t.sums)
	if !finite(met.Loss) || !finite32(t.grad) {
		if err := m.SetTrainState(t.tracker); err != nil {
			panic(err) // same length by construction
		}
		return StepResult{}, fmt.Errorf("%w at step %d (epoch %d): loss = %v; parameters kept from step %d", ErrDiverged, s+1, epoch, met.Loss, s)
	}
	lr, norm := t.opt.Optimizer.Update(m.Params, t.grad)
	t.done++
	tm.Update = time.Since(t3)
	return StepResult{Step: t.done, Epoch: epoch, Metrics: met, LR: lr, GradNorm: norm, Times: tm}, nil
}

// checksumPieces cuts a 64-bit checksum into pieces of at most 11 bits for
// the replica check: with N ≤ 4096 members every sum of pieces and of their
// squares stays an exact integer in float64 (N²·2²² < 2⁵³).
const checksumPieces = 6

// putReplicaCheck writes, for each piece p of the checksum of the
// parameters, p and p² into dst, so that after the all-reduce dst holds
// Σp and Σp² over the members.
func (t *Trainer) putReplicaCheck(dst []float64) {
	c := t.paramsChecksum()
	for i := range checksumPieces {
		p := float64(c >> (11 * i) & 0x7ff)
		dst[2*i], dst[2*i+1] = p, p*p
	}
}

// checkReplicas reports whether n members contributed the same pieces: for
// integers, (Σp)² = n·Σp² holds exactly when all n values are equal
// (equality case of Cauchy–Schwarz).
func checkReplicas(sums []float64, n int) error {
	for i := range checksumPieces {
		s, sq := sums[2*i], sums[2*i+1]
		if s*s != float64(n)*sq {
			return fmt.Errorf("parameter checksums of the %d members differ (piece %d: sum %v, sum of squares %v)", n, i, s, sq)
		}
	}
	return nil
}

// paramsChecksum is the CRC-64/NVME of the parameter bits.
func (t *Trainer) paramsChecksum() uint64 {
	t.hash.Reset()
	t.hash.Write(float32Bytes(t.opt.Model.Params))
	return t.hash.Sum64()
}

// Snapshot is a member's full training state at a step boundary: exactly
// what a member that is behind needs to continue as if it had run every
// step itself, and what a checkpoint stores.
type Snapshot struct {
	Completed int64     // completed steps
	Params    []float32 // sae.Model.Params
	Optimizer []byte    // sae.Optimizer.MarshalBinary
	Tracker   []uint32  // sae.Model.TrainState (dead-latent tracker)
}

// Snapshot copies the state after the last completed step. The copy is the
// caller's: it may be uploaded or sent while training goes on.
func (t *Trainer) Snapshot() (*Snapshot, error) {
	return TakeSnapshot(t.opt.Model, t.opt.Optimizer, t.done)
}

// TakeSnapshot copies the state of model and opt after completed steps.
func TakeSnapshot(model *sae.Model, opt sae.Optimizer, completed int64) (*Snapshot, error) {
	ob, err := opt.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &Snapshot{
		Completed: completed,
		Params:    append([]float32(nil), model.Params...),
		Optimizer: ob,
		Tracker:   model.TrainState(),
	}, nil
}

// Restore replaces the state of model and opt with s. Sizes must match the
// model (an error wrapping sae.ErrShape or sae.ErrOptimizerState
// otherwise, with nothing changed).
func (s *Snapshot) Restore(model *sae.Model, opt sae.Optimizer) error {
	if len(s.Params) != len(model.Params) {
		return fmt.Errorf("%w: snapshot has %d parameters, the model %d", sae.ErrShape, len(s.Params), len(model.Params))
	}
	if len(s.Tracker) != model.Cfg.H {
		return fmt.Errorf("%w: snapshot tracker has %d values, want hidden = %d", sae.ErrShape, len(s.Tracker), model.Cfg.H)
	}
	if err := opt.UnmarshalBinary(s.Optimizer); err != nil {
		return err
	}
	copy(model.Params, s.Params)
	return model.SetTrainState(s.Tracker)
}

// Checksum is the one checksum of training state in dsae: ready reports,
// generations, checkpoints and state transfers all carry it. It is the
// CRC-64/NVME of exactly the bits that must agree across the members of a
// group after the same step: the completed count, the parameters, the
// optimizer state and the dead-latent tracker.
type Checksum = uint64

// Checksum returns the checksum of s.
func (s *Snapshot) Checksum() Checksum {
	h := crc64nvme.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(s.Completed))
	h.Write(b[:])
	h.Write(float32Bytes(s.Params))
	binary.LittleEndian.PutUint64(b[:], uint64(len(s.Optimizer)))
	h.Write(b[:])
	h.Write(s.Optimizer)
	h.Write(uint32Bytes(s.Tracker))
	return h.Sum64()
}

// Checksum returns the checksum of the Trainer's current state (see
// Snapshot.Checksum).
func (t *Trainer) Checksum() (Checksum, error) {
	s, err := t.Snapshot()
	if err != nil {
		return 0, err
	}
	return s.Checksum(), nil
}

// float32Bytes views v as its little-endian bytes (every platform dsae
// builds for is little-endian; the checksum then matches across them).
func float32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

func uint32Bytes(v []uint32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// finite32 reports whether no value of v is NaN or ±Inf. It reads v as
// 64-bit words of two float32: a value is non-finite exactly when its
// exponent bits are all ones, and then masking to the exponent and adding
// one exponent unit carries into that value's sign bit (never across into
// the other half of the word).
func finite32(v []float32) bool {
	const (
		exp32, unit32 = 0x7f800000, 0x00800000 // exponent bits, one exponent unit
		exp           = exp32<<32 | exp32
		unit          = unit32<<32 | unit32
		carry         = 0x80000000_80000000
	)
	one := func(x float32) uint64 { return uint64(math.Float32bits(x)&exp32 + unit32) }
	var acc uint64
	if len(v) > 0 && uintptr(unsafe.Pointer(&v[0]))%8 != 0 {
		acc = one(v[0])
		v = v[1:]
	}
	if n := len(v) / 2; n > 0 {
		w := unsafe.Slice((*uint64)(unsafe.Pointer(&v[0])), n)
		var a0, a1, a2, a3 uint64
		i := 0
		for ; i+4 <= n; i += 4 {
			a0 |= w[i]&exp + unit
			a1 |= w[i+1]&exp + unit
			a2 |= w[i+2]&exp + unit
			a3 |= w[i+3]&exp + unit
		}
		for ; i < n; i++ {
			a0 |= w[i]&exp + unit
		}
		acc |= a0 | a1 | a2 | a3
	}
	if len(v)%2 == 1 {
		acc |= one(v[len(v)-1])
	}
	return acc&carry == 0
}
