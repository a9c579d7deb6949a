package sae

import (
	"errors"
	"fmt"
	"math"
)

// Sentinel errors of package sae (optimizers). Validate and NewOptimizer
// wrap ErrInvalidOptimizer; UnmarshalBinary wraps ErrOptimizerState. Test
// with errors.Is.
var (
	// ErrInvalidOptimizer reports an OptimizerConfig field outside its
	// allowed range; the message names the field and the range.
	ErrInvalidOptimizer = errors.New("sae: invalid optimizer config")
	// ErrOptimizerState reports optimizer state bytes that are truncated,
	// corrupt, of an unknown version, or made for a different optimizer.
	ErrOptimizerState = errors.New("sae: invalid optimizer state")
)

// Optimizer kinds accepted in OptimizerConfig.Kind.
const (
	// OptimizerSGD is stochastic gradient descent, optionally with (Nesterov)
	// momentum in PyTorch's formulation: v ← μv + g; W ← W − lr·v
	// (Nesterov: W ← W − lr·(g + μv)).
	OptimizerSGD = "sgd"
	// OptimizerAdam is Adam with bias correction (Kingma & Ba), in PyTorch's
	// formulation: W ← W − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
	OptimizerAdam = "adam"
)

// OptimizerConfig selects and parameterises the optimizer, the learning-rate
// schedule and gradient clipping. The zero value is not valid; start from
// DefaultOptimizerConfig.
type OptimizerConfig struct {
	// Kind is OptimizerSGD or OptimizerAdam (JSON and flag name
	// "optimizer").
	Kind string `json:"optimizer"`
	// LR is the peak learning rate, > 0.
	LR float64 `json:"lr"`
	// Momentum is SGD's momentum μ in [0, 1); 0 is plain SGD, whose update is
	// exactly W ← W − float32(lr)·g in float32.
	Momentum float64 `json:"momentum"`
	// Nesterov selects Nesterov momentum for SGD; it needs Momentum > 0.
	Nesterov bool `json:"nesterov"`
	// Beta1 and Beta2 are Adam's moment decay rates, each in [0, 1).
	Beta1 float64 `json:"beta1"`
	Beta2 float64 `json:"beta2"`
	// Eps is Adam's denominator term, > 0.
	Eps float64 `json:"eps"`
	// Schedule is ScheduleConstant or ScheduleCosine; see LRAt.
	Schedule string `json:"schedule"`
	// WarmupSteps is the length of the linear warmup, >= 0 (both schedules).
	WarmupSteps int `json:"warmup_steps"`
	// TotalSteps is where the cosine schedule reaches MinLR; it must exceed
	// WarmupSteps for ScheduleCosine and is ignored by ScheduleConstant.
	TotalSteps int `json:"total_steps"`
	// MinLR is the final rate of the cosine schedule, in [0, LR].
	MinLR float64 `json:"min_lr"`
	// ClipNorm, when > 0, rescales the gradient before the update so that its
	// global L2 norm is at most ClipNorm. 0 turns clipping off.
	ClipNorm float64 `json:"clip_norm"`
}

// DefaultOptimizerConfig returns Adam with lr 1e-3, β = (0.9, 0.999),
// ε = 1e-8, a constant schedule and no clipping. Momentum is 0, so switching
// Kind to OptimizerSGD gives plain SGD.
func DefaultOptimizerConfig() OptimizerConfig {
	return OptimizerConfig{
		Kind:     OptimizerAdam,
		LR:       1e-3,
		Beta1:    0.9,
		Beta2:    0.999,
		Eps:      1e-8,
		Schedule: ScheduleConstant,
	}
}

// Validate reports the first field of c outside its allowed range, wrapping
// ErrInvalidOptimizer. Fields that only the other kind uses (Momentum and
// Nesterov for Adam; Beta1, Beta2, Eps for SGD) are not checked.
func (c OptimizerConfig) Validate() error {
	if !(c.LR > 0) || math.IsInf(c.LR, 0) {
		return fmt.Errorf("%w: lr = %g, must be finite and > 0", ErrInvalidOptimizer, c.LR)
	}
	switch c.Kind {
	case OptimizerSGD:
		if !(c.Momentum >= 0 && c.Momentum < 1) {
			return fmt.Errorf("%w: momentum = %g, must be in [0, 1)", ErrInvalidOptimizer, c.Momentum)
		}
		if c.Nesterov && c.Momentum == 0 {
			return fmt.Errorf("%w: nesterov needs momentum in (0, 1), got momentum = 0", ErrInvalidOptimizer)
		}
	case OptimizerAdam:
		if !(c.Beta1 >= 0 && c.Beta1 < 1) {
			return fmt.Errorf("%w: beta1 = %g, must be in [0, 1)", ErrInvalidOptimizer, c.Beta1)
		}
		if !(c.Beta2 >= 0 && c.Beta2 < 1) {
			return fmt.Errorf("%w: beta2 = %g, must be in [0, 1)", ErrInvalidOptimizer, c.Beta2)
		}
		if !(c.Eps > 0) || math.IsInf(c.Eps, 0) {
			return fmt.Errorf("%w: eps = %g, must be finite and > 0", ErrInvalidOptimizer, c.Eps)
		}
	default:
		return fmt.Errorf("%w: optimizer = %q, must be %q or %q", ErrInvalidOptimizer, c.Kind, OptimizerSGD, OptimizerAdam)
	}
	if !(c.ClipNorm >= 0) || math.IsInf(c.ClipNorm, 0) {
		return fmt.Errorf("%w: clip_norm = %g, must be finite and >= 0 (0 = off)", ErrInvalidOptimizer, c.ClipNorm)
	}
	return c.validateSchedule()
}

// Optimizer updates a flat float32 parameter vector from a gradient of the
// same layout. The gradient it receives is final: divided by the global row
// count and with weight decay added.
//
// An Optimizer is not safe for concurrent use; one goroutine (the training
// loop) calls it. Update may use several goroutines internally and returns
// only when they are done.
type Optimizer interface {
	// Update applies one step to params in place and returns the learning
	// rate it used (LRAt(Step()) before the call) and the global L2 norm of
	// grad before clipping. When clipping is on and the norm exceeds
	// ClipNorm, grad is scaled in place to norm ClipNorm. The result is
	// bitwise deterministic: it does not depend on GOMAXPROCS or scheduling,
	// so the ranks of a cluster stay identical. A non-finite gradNorm means
	// grad held a NaN or Inf; params are then no longer meaningful.
	// Update panics if len(params) or len(grad) differs from the size given
	// to NewOptimizer. It does not allocate.
	Update(params, grad []float32) (lr float64, gradNorm float64)
	// Step returns the number of updates applied (restored by UnmarshalBinary).
	Step() int64
	// MarshalBinary encodes the full state (kind, step, moment buffers) in a
	// versioned format with a CRC-32C checksum.
	MarshalBinary() ([]byte, error)
	// UnmarshalBinary replaces the state with one written by MarshalBinary of
	// an optimizer of the same kind, size and momentum setting. Wrong sizes,
	// kinds, versions and corrupt bytes give an error wrapping
	// ErrOptimizerState and leave the state unchanged.
	UnmarshalBinary(data []byte) error
}

// NewOptimizer returns an optimizer for nParams parameters with zeroed state
// (step 0). It validates cfg and wraps ErrInvalidOptimizer on failure.
func NewOptimizer(cfg OptimizerConfig, nParams int) (Optimizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if nParams < 1 {
		return nil, fmt.Errorf("%w: parameter count = %d, must be >= 1", ErrInvalidOptimizer, nParams)
	}
	o := &optimizer{cfg: cfg, n: nParams}
	switch {
	case cfg.Kind == OptimizerAdam:
		o.kind = kindAdam
		o.bufs = [][]float32{make([]float32, nParams), make([]float32, nParams)}
	case cfg.Momentum > 0:
		o.kind = kindSGD
		o.bufs = [][]float32{make([]float32, nParams)}
	default:
		o.kind = kindSGD
	}
	o.initParallel()
	return o, nil
}
