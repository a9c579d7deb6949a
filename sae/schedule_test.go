package sae

import (
	"math"
	"testing"
)

func TestLRAtCosineWithWarmup(t *testing.T) {
	c := DefaultOptimizerConfig()
	c.LR = 0.01
	c.MinLR = 0.001
	c.Schedule = ScheduleCosine
	c.WarmupSteps = 10
	c.TotalSteps = 110
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		step int64
		want float64
	}{
		{"first update", 0, 0.001},  // LR·1/10
		{"warmup middle", 4, 0.005}, // LR·5/10
		{"last warmup update", 9, 0.01},
		{"cosine start", 10, 0.01},
		{"cosine midpoint", 60, 0.0055}, // (LR+MinLR)/2
		{"cosine quarter", 35, 0.001 + 0.009*(0.5+0.5*math.Sqrt2/2)},
		{"total steps", 110, 0.001},
		{"after total steps", 1000, 0.001},
		{"negative step", -3, 0.001},
	} {
		if got := c.LRAt(tc.step); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("%s: LRAt(%d) = %.17g, want %.17g", tc.name, tc.step, got, tc.want)
		}
	}
	// Monotone decay after warmup.
	prev := c.LRAt(10)
	for s := int64(11); s <= 110; s++ {
		cur := c.LRAt(s)
		if cur > prev {
			t.Fatalf("LRAt(%d) = %g > LRAt(%d) = %g: cosine must not increase", s, cur, s-1, prev)
		}
		prev = cur
	}
}

func TestLRAtCosineWithoutWarmup(t *testing.T) {
	c := DefaultOptimizerConfig()
	c.LR = 1
	c.Schedule = ScheduleCosine
	c.TotalSteps = 4
	want := []float64{1, 0.5 + 0.5*math.Sqrt2/2, 0.5, 0.5 - 0.5*math.Sqrt2/2, 0, 0}
	for s, w := range want {
		if got := c.LRAt(int64(s)); math.Abs(got-w) > 1e-15 {
			t.Errorf("LRAt(%d) = %.17g, want %.17g", s, got, w)
		}
	}
}

func TestLRAtConstant(t *testing.T) {
	c := DefaultOptimizerConfig()
	c.LR = 0.5
	for _, s := range []int64{0, 1, 1000, math.MaxInt64} {
		if got := c.LRAt(s); got != 0.5 {
			t.Errorf("constant LRAt(%d) = %g, want 0.5", s, got)
		}
	}
	c.WarmupSteps = 4
	want := []float64{0.125, 0.25, 0.375, 0.5, 0.5, 0.5}
	for s, w := range want {
		if got := c.LRAt(int64(s)); got != w {
			t.Errorf("constant with warmup LRAt(%d) = %g, want %g", s, got, w)
		}
	}
}

// TestOptimizerUsesSchedule checks that Update reports and applies LRAt of
// the step count before the call.
func TestOptimizerUsesSchedule(t *testing.T) {
	c := DefaultOptimizerConfig()
	c.Kind = OptimizerSGD
	c.LR = 0.25
	c.WarmupSteps = 2
	o, err := NewOptimizer(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := []float32{0}
	for s, want := range []float64{0.125, 0.25, 0.25} {
		before := p[0]
		lr, _ := o.Update(p, []float32{1})
		if lr != want {
			t.Errorf("update %d: lr = %g, want %g", s, lr, want)
		}
		if d := before - p[0]; d != float32(want) {
			t.Errorf("update %d: parameter moved by %g, want %g", s, d, want)
		}
	}
	if o.Step() != 3 {
		t.Errorf("Step() = %d, want 3", o.Step())
	}
}
