package sae

import (
	"fmt"
	"math"
)

// Learning-rate schedules accepted in OptimizerConfig.Schedule.
const (
	// ScheduleConstant holds the rate at LR after the optional linear warmup.
	ScheduleConstant = "constant"
	// ScheduleCosine warms up linearly for WarmupSteps, then decays from LR to
	// MinLR along half a cosine, reaching MinLR at TotalSteps and staying there.
	ScheduleCosine = "cosine"
)

// LRAt returns the learning rate of the update that follows step updates
// already applied: LRAt(0) is the rate of the first update, LRAt(o.Step()) the
// rate of the next one. It is a pure function of c and step, so every rank of a
// cluster that agrees on the step count agrees on the rate.
//
// With W = WarmupSteps > 0, the update with index step < W uses
// LR·(step+1)/W, so the first update uses LR/W and update W−1 the full LR.
// After the warmup, ScheduleConstant uses LR; ScheduleCosine uses
//
//	MinLR + (LR−MinLR)·½·(1 + cos(π·p)),  p = min(1, (step−W)/(TotalSteps−W)),
//
// so the rate is LR at step W, the mean of LR and MinLR halfway, and MinLR from
// step TotalSteps on. LRAt assumes c is valid (see Validate); a negative step
// is treated as 0.
func (c OptimizerConfig) LRAt(step int64) float64 {
	if step < 0 {
		step = 0
	}
	w := int64(c.WarmupSteps)
	if step < w {
		return c.LR * float64(step+1) / float64(w)
	}
	if c.Schedule != ScheduleCosine {
		return c.LR
	}
	span := int64(c.TotalSteps) - w
	if span <= 0 || step >= int64(c.TotalSteps) {
		return c.MinLR
	}
	p := float64(step-w) / float64(span)
	return c.MinLR + (c.LR-c.MinLR)*0.5*(1+math.Cos(math.Pi*p))
}

// validateSchedule checks the schedule fields of c; c.LR is already checked.
func (c OptimizerConfig) validateSchedule() error {
	switch c.Schedule {
	case ScheduleConstant, ScheduleCosine:
	default:
		return fmt.Errorf("%w: schedule = %q, must be %q or %q",
			ErrInvalidOptimizer, c.Schedule, ScheduleConstant, ScheduleCosine)
	}
	if c.WarmupSteps < 0 {
		return fmt.Errorf("%w: warmup_steps = %d, must be >= 0", ErrInvalidOptimizer, c.WarmupSteps)
	}
	if c.TotalSteps < 0 {
		return fmt.Errorf("%w: total_steps = %d, must be >= 0", ErrInvalidOptimizer, c.TotalSteps)
	}
	if !(c.MinLR >= 0 && c.MinLR <= c.LR) {
		return fmt.Errorf("%w: min_lr = %g, must be in [0, lr=%g]", ErrInvalidOptimizer, c.MinLR, c.LR)
	}
	if c.Schedule == ScheduleCosine && c.TotalSteps <= c.WarmupSteps {
		return fmt.Errorf("%w: total_steps = %d, must be > warmup_steps = %d for the %s schedule",
			ErrInvalidOptimizer, c.TotalSteps, c.WarmupSteps, ScheduleCosine)
	}
	return nil
}
