package sae

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// randVec returns n seeded values uniform in [-scale, scale).
func randVec(seed uint64, n int, scale float32) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x5ae))
	v := make([]float32, n)
	for i := range v {
		v[i] = (2*r.Float32() - 1) * scale
	}
	return v
}

func mustOptimizer(t testing.TB, c OptimizerConfig, n int) *optimizer {
	t.Helper()
	o, err := NewOptimizer(c, n)
	if err != nil {
		t.Fatal(err)
	}
	return o.(*optimizer)
}

func sgdConfig(lr, momentum float64) OptimizerConfig {
	c := DefaultOptimizerConfig()
	c.Kind = OptimizerSGD
	c.LR = lr
	c.Momentum = momentum
	return c
}

func norm64(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// TestSGDExactStep checks W_after = W_before − float32(lr)·g bitwise, on a
// vector spanning several parallel chunks, and that grad is left alone.
func TestSGDExactStep(t *testing.T) {
	n := 3*optimChunk + 17
	p := randVec(1, n, 1)
	g := randVec(2, n, 3)
	before := append([]float32(nil), p...)
	gcopy := append([]float32(nil), g...)
	const lr = 0.037
	o := mustOptimizer(t, sgdConfig(lr, 0), n)
	gotLR, gotNorm := o.Update(p, g)
	if gotLR != lr {
		t.Errorf("lr = %g, want %g", gotLR, lr)
	}
	if want := norm64(gcopy); math.Abs(gotNorm-want) > 1e-12*want {
		t.Errorf("gradNorm = %.17g, want %.17g", gotNorm, want)
	}
	lr32 := float32(lr)
	for i := range p {
		want := before[i] - float32(lr32*gcopy[i])
		if p[i] != want {
			t.Fatalf("p[%d] = %v, want %v - %v*%v = %v", i, p[i], before[i], lr32, gcopy[i], want)
		}
		if g[i] != gcopy[i] {
			t.Fatalf("grad[%d] changed from %v to %v without clipping", i, gcopy[i], g[i])
		}
	}
	if o.Step() != 1 {
		t.Errorf("Step() = %d, want 1", o.Step())
	}
}

// TestSGDMomentumReference compares (Nesterov) momentum with a float64
// recurrence written out here.
func TestSGDMomentumReference(t *testing.T) {
	grads := [][]float32{
		{1, -2, 0.5},
		{0.25, -1, 0},
		{-3, 0.5, 2},
		{0, 0, 1},
		{2, 2, -2},
	}
	const lr, mu = 0.1, 0.9
	for _, nesterov := range []bool{false, true} {
		c := sgdConfig(lr, mu)
		c.Nesterov = nesterov
		o := mustOptimizer(t, c, 3)
		p := []float32{0.5, -0.25, 1}
		ref := []float64{0.5, -0.25, 1}
		vel := make([]float64, 3)
		for s, g := range grads {
			o.Update(p, append([]float32(nil), g...))
			for i := range ref {
				vel[i] = mu*vel[i] + float64(g[i])
				d := vel[i]
				if nesterov {
					d = float64(g[i]) + mu*vel[i]
				}
				ref[i] -= lr * d
				if math.Abs(float64(p[i])-ref[i]) > 1e-6*(1+math.Abs(ref[i])) {
					t.Errorf("nesterov=%v step %d: p[%d] = %.9g, want %.9g", nesterov, s+1, i, p[i], ref[i])
				}
			}
		}
	}
	// By hand: p = 0, g = 1 twice, lr 0.1, μ 0.9: v1 = 1, p1 = -0.1; v2 = 1.9, p2 = -0.29.
	o := mustOptimizer(t, sgdConfig(lr, mu), 1)
	p := []float32{0}
	o.Update(p, []float32{1})
	o.Update(p, []float32{1})
	if math.Abs(float64(p[0])+0.29) > 1e-7 {
		t.Errorf("two momentum steps: p = %.9g, want -0.29", p[0])
	}
}

// adamRef is a float64 Adam with bias correction, written from the paper.
type adamRef struct {
	lr, b1, b2, eps float64
	m, v            []float64
	t               int
}

func (a *adamRef) step(p []float64, g []float32) {
	a.t++
	bc1 := 1 - math.Pow(a.b1, float64(a.t))
	bc2 := 1 - math.Pow(a.b2, float64(a.t))
	for i := range p {
		gi := float64(g[i])
		a.m[i] = a.b1*a.m[i] + (1-a.b1)*gi
		a.v[i] = a.b2*a.v[i] + (1-a.b2)*gi*gi
		mhat := a.m[i] / bc1
		vhat := a.v[i] / bc2
		p[i] -= a.lr * mhat / (math.Sqrt(vhat) + a.eps)
	}
}

func TestAdamReference(t *testing.T) {
	c := DefaultOptimizerConfig()
	c.LR = 0.01
	c.Beta1 = 0.8
	c.Beta2 = 0.95
	c.Eps = 1e-6
	// Entries: ordinary, large, zero (update must stay 0), tiny (ε matters).
	grads := [][]float32{
		{0.5, -40, 0, 2e-6},
		{-0.1, 30, 0, 1e-6},
		{0.3, -10, 0, -3e-6},
		{0.7, 5, 0, 0},
		{-0.2, -25, 0, 5e-6},
	}
	o := mustOptimizer(t, c, 4)
	p := []float32{1, -2, 0.5, 0.25}
	ref := &adamRef{lr: c.LR, b1: c.Beta1, b2: c.Beta2, eps: c.Eps, m: make([]float64, 4), v: make([]float64, 4)}
	rp := []float64{1, -2, 0.5, 0.25}
	for s, g := range grads {
		prev := p[0]
		o.Update(p, append([]float32(nil), g...))
		ref.step(rp, g)
		for i := range rp {
			if math.Abs(float64(p[i])-rp[i]) > 1e-6*(1+math.Abs(rp[i])) {
				t.Errorf("step %d: p[%d] = %.9g, reference %.9g", s+1, i, p[i], rp[i])
			}
		}
		if s == 0 {
			// Bias-corrected first step moves each coordinate by lr·g/(|g|+ε) ≈ lr.
			if d := float64(prev - p[0]); math.Abs(d-0.01*0.5/(0.5+1e-6)) > 1e-7 {
				t.Errorf("first Adam step moved p[0] by %.9g, want ≈ lr = 0.01", d)
			}
		}
	}
	if p[2] != 0.5 {
		t.Errorf("zero-gradient coordinate moved to %v", p[2])
	}
}

func TestClipNorm(t *testing.T) {
	n := 2*optimChunk + 9
	c := sgdConfig(0.5, 0)
	c.ClipNorm = 1.5
	g := randVec(3, n, 1)
	orig := append([]float32(nil), g...)
	origNorm := norm64(orig)
	if origNorm < 10*c.ClipNorm {
		t.Fatalf("test gradient norm %g too small to clip", origNorm)
	}
	p := randVec(4, n, 1)
	before := append([]float32(nil), p...)
	o := mustOptimizer(t, c, n)
	_, gotNorm := o.Update(p, g)
	if math.Abs(gotNorm-origNorm) > 1e-12*origNorm {
		t.Errorf("reported gradNorm %.17g, want pre-clip norm %.17g", gotNorm, origNorm)
	}
	if got := norm64(g); math.Abs(got-c.ClipNorm) > 1e-6*c.ClipNorm {
		t.Errorf("clipped gradient norm %.9g, want %g", got, c.ClipNorm)
	}
	scale := c.ClipNorm / origNorm
	lr32 := float32(c.LR)
	for i := range g {
		if math.Abs(float64(g[i])-scale*float64(orig[i])) > 1e-7*math.Abs(scale*float64(orig[i])) {
			t.Fatalf("grad[%d] = %v, want %v·%v", i, g[i], scale, orig[i])
		}
		if want := before[i] - float32(lr32*g[i]); p[i] != want {
			t.Fatalf("p[%d] = %v, want update with the clipped gradient %v", i, p[i], want)
		}
	}

	// Below the threshold nothing is scaled.
	small := []float32{0.3, -0.4} // norm 0.5
	keep := append([]float32(nil), small...)
	o2 := mustOptimizer(t, c, 2)
	pp := []float32{0, 0}
	if _, nrm := o2.Update(pp, small); math.Abs(nrm-0.5) > 1e-7 {
		t.Errorf("gradNorm = %g, want 0.5", nrm)
	}
	if small[0] != keep[0] || small[1] != keep[1] {
		t.Errorf("gradient below clip_norm changed: %v -> %v", keep, small)
	}
	if want := -float32(lr32 * keep[0]); pp[0] != want {
		t.Errorf("p[0] = %v, want %v", pp[0], want)
	}
}

func TestNonFiniteGradientReported(t *testing.T) {
	for _, clip := range []float64{0, 1} {
		c := DefaultOptimizerConfig()
		c.ClipNorm = clip
		o := mustOptimizer(t, c, 3)
		_, nrm := o.Update([]float32{1, 2, 3}, []float32{1, float32(math.NaN()), 0})
		if !math.IsNaN(nrm) {
			t.Errorf("clip %g: gradNorm = %g for a NaN gradient, want NaN", clip, nrm)
		}
	}
}

// allConfigs covers every optimizer branch, with clipping and schedules.
func allConfigs() map[string]OptimizerConfig {
	nest := sgdConfig(0.05, 0.9)
	nest.Nesterov = true
	adamClip := DefaultOptimizerConfig()
	adamClip.ClipNorm = 20
	adamClip.Schedule = ScheduleCosine
	adamClip.WarmupSteps = 2
	adamClip.TotalSteps = 7
	adamClip.MinLR = 1e-4
	return map[string]OptimizerConfig{
		"sgd":           sgdConfig(0.05, 0),
		"momentum":      sgdConfig(0.05, 0.9),
		"nesterov":      nest,
		"adam":          DefaultOptimizerConfig(),
		"adam-clip-cos": adamClip,
	}
}

// TestUpdateIndependentOfWorkers runs the same steps with one worker and
// with several and requires bitwise equal parameters.
func TestUpdateIndependentOfWorkers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	n := 5*optimChunk + 123
	for name, c := range allConfigs() {
		var results [2][]float32
		var norms [2][]float64
		for k, workers := range []int{1, 4} {
			o := mustOptimizer(t, c, n)
			o.workers = workers
			p := randVec(5, n, 1)
			for s := range 4 {
				_, nrm := o.Update(p, randVec(uint64(10+s), n, 0.5))
				norms[k] = append(norms[k], nrm)
			}
			results[k] = p
		}
		for s := range norms[0] {
			if norms[0][s] != norms[1][s] {
				t.Errorf("%s: step %d gradNorm %v with 1 worker, %v with 4", name, s, norms[0][s], norms[1][s])
			}
		}
		for i := range results[0] {
			if math.Float32bits(results[0][i]) != math.Float32bits(results[1][i]) {
				t.Errorf("%s: p[%d] = %v with 1 worker, %v with 4", name, i, results[0][i], results[1][i])
				break
			}
		}
	}
}

func TestUpdateDoesNotAllocate(t *testing.T) {
	n := 4*optimChunk + 1
	for name, c := range allConfigs() {
		o := mustOptimizer(t, c, n)
		p, g := randVec(6, n, 1), randVec(7, n, 1)
		if a := testing.AllocsPerRun(5, func() { o.Update(p, g) }); a != 0 {
			t.Errorf("%s: %v allocations per Update, want 0", name, a)
		}
	}
}

func TestUpdatePanicsOnWrongLength(t *testing.T) {
	o := mustOptimizer(t, DefaultOptimizerConfig(), 4)
	for _, tc := range []struct{ np, ng int }{{3, 4}, {4, 5}, {0, 0}} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), "4 parameters") {
					t.Errorf("len(params)=%d len(grad)=%d: recovered %v, want a panic naming the size", tc.np, tc.ng, r)
				}
			}()
			o.Update(make([]float32, tc.np), make([]float32, tc.ng))
		}()
	}
	if o.Step() != 0 {
		t.Errorf("Step() = %d after rejected updates, want 0", o.Step())
	}
}

func TestOptimizerConfigValidate(t *testing.T) {
	mod := func(f func(*OptimizerConfig)) OptimizerConfig {
		c := DefaultOptimizerConfig()
		f(&c)
		return c
	}
	nan := math.NaN()
	inf := math.Inf(1)
	for _, tc := range []struct {
		name  string
		cfg   OptimizerConfig
		field string // "" = valid
	}{
		{"default", DefaultOptimizerConfig(), ""},
		{"sgd plain", sgdConfig(0.1, 0), ""},
		{"sgd momentum", sgdConfig(0.1, 0.99), ""},
		{"nesterov", mod(func(c *OptimizerConfig) { *c = sgdConfig(0.1, 0.5); c.Nesterov = true }), ""},
		{"cosine", mod(func(c *OptimizerConfig) {
			c.Schedule = ScheduleCosine
			c.WarmupSteps = 5
			c.TotalSteps = 6
			c.MinLR = 1e-3
		}), ""},
		{"constant with warmup", mod(func(c *OptimizerConfig) { c.WarmupSteps = 100 }), ""},
		{"clip", mod(func(c *OptimizerConfig) { c.ClipNorm = 1 }), ""},
		{"adam ignores sgd fields", mod(func(c *OptimizerConfig) { c.Momentum = 7 }), ""},
		{"empty kind", mod(func(c *OptimizerConfig) { c.Kind = "" }), "optimizer"},
		{"unknown kind", mod(func(c *OptimizerConfig) { c.Kind = "lbfgs" }), "optimizer"},
		{"zero lr", mod(func(c *OptimizerConfig) { c.LR = 0 }), "lr"},
		{"negative lr", mod(func(c *OptimizerConfig) { c.LR = -1 }), "lr"},
		{"nan lr", mod(func(c *OptimizerConfig) { c.LR = nan }), "lr"},
		{"inf lr", mod(func(c *OptimizerConfig) { c.LR = inf }), "lr"},
		{"momentum 1", sgdConfig(0.1, 1), "momentum"},
		{"negative momentum", sgdConfig(0.1, -0.1), "momentum"},
		{"nan momentum", sgdConfig(0.1, nan), "momentum"},
		{"nesterov without momentum", mod(func(c *OptimizerConfig) { *c = sgdConfig(0.1, 0); c.Nesterov = true }), "nesterov"},
		{"beta1 1", mod(func(c *OptimizerConfig) { c.Beta1 = 1 }), "beta1"},
		{"beta1 negative", mod(func(c *OptimizerConfig) { c.Beta1 = -0.5 }), "beta1"},
		{"beta2 1", mod(func(c *OptimizerConfig) { c.Beta2 = 1 }), "beta2"},
		{"beta2 nan", mod(func(c *OptimizerConfig) { c.Beta2 = nan }), "beta2"},
		{"eps zero", mod(func(c *OptimizerConfig) { c.Eps = 0 }), "eps"},
		{"eps inf", mod(func(c *OptimizerConfig) { c.Eps = inf }), "eps"},
		{"clip negative", mod(func(c *OptimizerConfig) { c.ClipNorm = -1 }), "clip_norm"},
		{"clip nan", mod(func(c *OptimizerConfig) { c.ClipNorm = nan }), "clip_norm"},
		{"unknown schedule", mod(func(c *OptimizerConfig) { c.Schedule = "linear" }), "schedule"},
		{"empty schedule", mod(func(c *OptimizerConfig) { c.Schedule = "" }), "schedule"},
		{"negative warmup", mod(func(c *OptimizerConfig) { c.WarmupSteps = -1 }), "warmup_steps"},
		{"negative total", mod(func(c *OptimizerConfig) { c.TotalSteps = -1 }), "total_steps"},
		{"cosine without total", mod(func(c *OptimizerConfig) { c.Schedule = ScheduleCosine }), "total_steps"},
		{"cosine total = warmup", mod(func(c *OptimizerConfig) { c.Schedule = ScheduleCosine; c.WarmupSteps = 5; c.TotalSteps = 5 }), "total_steps"},
		{"min_lr above lr", mod(func(c *OptimizerConfig) { c.MinLR = 0.1 }), "min_lr"},
		{"min_lr negative", mod(func(c *OptimizerConfig) { c.MinLR = -1e-5 }), "min_lr"},
	} {
		err := tc.cfg.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: unexpected error %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidOptimizer) {
			t.Errorf("%s: error %v, want one wrapping ErrInvalidOptimizer", tc.name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.field) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q must name field %q on one line", tc.name, msg, tc.field)
		}
		if _, err := NewOptimizer(tc.cfg, 10); !errors.Is(err, ErrInvalidOptimizer) {
			t.Errorf("%s: NewOptimizer error %v, want ErrInvalidOptimizer", tc.name, err)
		}
	}
	for _, n := range []int{0, -1} {
		if _, err := NewOptimizer(DefaultOptimizerConfig(), n); !errors.Is(err, ErrInvalidOptimizer) || !strings.Contains(err.Error(), "parameter count") {
			t.Errorf("NewOptimizer(n=%d) error %v, want ErrInvalidOptimizer naming the parameter count", n, err)
		}
	}
}
