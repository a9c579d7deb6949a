package sae

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// optKind is the kind byte of the state encoding; values are part of the format.
type optKind uint8

const (
	kindSGD  optKind = 1
	kindAdam optKind = 2
)

func (k optKind) String() string {
	switch k {
	case kindSGD:
		return OptimizerSGD
	case kindAdam:
		return OptimizerAdam
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// optimChunk is the number of parameters in one unit of parallel work. It is
// fixed, not derived from the worker count, so the per-chunk partial sums of
// the gradient norm, and hence the whole update, are the same bitwise for any
// thread budget (SetThreads) or GOMAXPROCS.
const optimChunk = 1 << 14

// pass selects what a parallel sweep over the chunks does.
type pass uint8

const (
	passNorm       pass = iota // partial[c] = Σ g² over chunk c
	passUpdate                 // update chunk c
	passNormUpdate             // both; the chunk's g is still in cache for the update
)

// optimizer implements Optimizer for SGD (with or without momentum) and Adam.
// Floating-point products that feed a sum are wrapped in explicit float32
// conversions so no platform fuses them into FMAs: every architecture
// computes the same bits.
type optimizer struct {
	cfg  OptimizerConfig
	kind optKind
	n    int
	step int64
	// bufs holds the moments: nil for plain SGD, [v] for SGD with momentum,
	// [m, v] for Adam.
	bufs [][]float32

	// State of the sweep in progress, written by Update before workers start.
	params, grad []float32
	pass         pass
	scale        float32 // clip factor; 1 = leave grad as is
	lr32         float32 // SGD rate
	mu           float32 // SGD momentum
	ad           adamCoef

	chunks  int
	partial []float64 // per-chunk Σ g², summed in chunk order
	next    atomic.Int64
	wg      sync.WaitGroup
	work    func() // o.worker, bound once so spawning does not allocate
	// workers caps the goroutines of a sweep; 0 means Threads(). Tests set
	// it to show the result does not depend on it.
	workers int
}

// adamCoef holds the float32 coefficients of one Adam step t.
type adamCoef struct {
	b1, omb1 float32 // β1, 1−β1
	b2, omb2 float32 // β2, 1−β2
	step     float32 // lr/(1−β1ᵗ)
	invBC2   float32 // 1/√(1−β2ᵗ)
	eps      float32
}

var _ Optimizer = (*optimizer)(nil)

func (o *optimizer) initParallel() {
	o.chunks = (o.n + optimChunk - 1) / optimChunk
	o.partial = make([]float64, o.chunks)
	o.work = o.worker
}

// Step implements Optimizer.
func (o *optimizer) Step() int64 { return o.step }

// Update implements Optimizer.
func (o *optimizer) Update(params, grad []float32) (lr float64, gradNorm float64) {
	if len(params) != o.n || len(grad) != o.n {
		panic(fmt.Sprintf("sae: optimizer for %d parameters got len(params) = %d, len(grad) = %d",
			o.n, len(params), len(grad)))
	}
	lr = o.cfg.LRAt(o.step)
	o.params, o.grad = params, grad
	o.setCoefficients(lr, o.step+1)
	o.scale = 1
	if o.cfg.ClipNorm > 0 {
		o.sweep(passNorm)
		gradNorm = o.norm()
		if gradNorm > o.cfg.ClipNorm {
			o.scale = float32(o.cfg.ClipNorm / gradNorm)
		}
		o.sweep(passUpdate)
	} else {
		o.sweep(passNormUpdate)
		gradNorm = o.norm()
	}
	o.params, o.grad = nil, nil
	o.step++
	return lr, gradNorm
}

func (o *optimizer) setCoefficients(lr float64, t int64) {
	switch o.kind {
	case kindSGD:
		o.lr32 = float32(lr)
		o.mu = float32(o.cfg.Momentum)
	case kindAdam:
		b1, b2 := o.cfg.Beta1, o.cfg.Beta2
		o.ad = adamCoef{
			b1: float32(b1), omb1: float32(1 - b1),
			b2: float32(b2), omb2: float32(1 - b2),
			step:   float32(lr / (1 - math.Pow(b1, float64(t)))),
			invBC2: float32(1 / math.Sqrt(1-math.Pow(b2, float64(t)))),
			eps:    float32(o.cfg.Eps),
		}
	}
}

// norm returns √(Σ partial) summed in chunk order.
func (o *optimizer) norm() float64 {
	var s float64
	for _, p := range o.partial {
		s += p
	}
	return math.Sqrt(s)
}

// sweep runs pass p over all chunks on up to min(Threads(), workers,
// chunks) goroutines, the caller's included, and returns when all are done.
func (o *optimizer) sweep(p pass) {
	o.pass = p
	o.next.Store(0)
	w := Threads()
	if o.workers > 0 {
		w = min(w, o.workers)
	}
	w = min(w, o.chunks)
	o.wg.Add(w - 1)
	for range w - 1 {
		go o.work()
	}
	o.drain()
	o.wg.Wait()
}

func (o *optimizer) worker() {
	defer o.wg.Done()
	o.drain()
}

// drain processes chunks until none is left.
func (o *optimizer) drain() {
	for {
		c := int(o.next.Add(1) - 1)
		if c >= o.chunks {
			return
		}
		lo := c * optimChunk
		hi := min(lo+optimChunk, o.n)
		o.partial[c] = o.chunk(lo, hi)
	}
}

// chunk applies the current pass to parameters [lo, hi) and returns Σ g² of
// the incoming gradient (0 for passUpdate).
func (o *optimizer) chunk(lo, hi int) float64 {
	g := o.grad[lo:hi]
	var ss float64
	if o.pass != passUpdate {
		ss = sumSquares(g)
	}
	if o.pass == passNorm {
		return ss
	}
	if o.scale != 1 { // clipping: scale while the chunk is in cache
		scale := o.scale
		for i, x := range g {
			g[i] = float32(x * scale)
		}
	}
	p := o.params[lo:hi]
	switch {
	case o.kind == kindAdam:
		adamKernel(p, g, o.bufs[0][lo:hi], o.bufs[1][lo:hi], &o.ad)
	case o.bufs != nil:
		momentumKernel(p, g, o.bufs[0][lo:hi], o.lr32, o.mu, o.cfg.Nesterov)
	default:
		sgdKernel(p, g, o.lr32)
	}
	return ss
}

// sumSquaresGo returns Σ g² in float64 with sixteen interleaved
// accumulators (element i goes to accumulator i mod 16, the rest after the
// last full group of 16 to accumulator 0), combined in a fixed tree. The
// explicit conversions keep products and sums separately rounded (no FMA),
// so the value is the same on every platform and from the vector kernel.
func sumSquaresGo(g []float32) float64 {
	var acc [16]float64
	n := len(g) &^ 15
	for i := 0; i < n; i += 16 {
		for k := range acc {
			a := float64(g[i+k])
			acc[k] += float64(a * a)
		}
	}
	return sumSquaresFinish(&acc, g[n:])
}

// sumSquaresFinish adds the tail (fewer than 16 values) to accumulator 0
// and combines the sixteen accumulators pairwise.
func sumSquaresFinish(acc *[16]float64, tail []float32) float64 {
	for _, x := range tail {
		a := float64(x)
		acc[0] += float64(a * a)
	}
	for w := 8; w >= 1; w /= 2 {
		for k := range w {
			acc[k] += acc[k+w]
		}
	}
	return acc[0]
}

// sgdKernel: W ← W − lr·g.
func sgdKernel(p, g []float32, lr float32) {
	g = g[:len(p)]
	for i := range p {
		p[i] -= float32(lr * g[i])
	}
}

// momentumKernel: v ← μv + g; W ← W − lr·v, or W ← W − lr·(g + μv) with
// Nesterov.
func momentumKernel(p, g, v []float32, lr, mu float32, nesterov bool) {
	g = g[:len(p)]
	v = v[:len(p)]
	for i := range p {
		gi := g[i]
		vi := float32(mu*v[i]) + gi
		v[i] = vi
		d := vi
		if nesterov {
			d = gi + float32(mu*vi)
		}
		p[i] -= float32(lr * d)
	}
}

// adamKernel: m ← β1m + (1−β1)g; v ← β2v + (1−β2)g²;
// W ← W − (lr/(1−β1ᵗ))·m/(√v/√(1−β2ᵗ) + ε).
func adamKernelGo(p, g, m, v []float32, c *adamCoef) {
	g = g[:len(p)]
	m = m[:len(p)]
	v = v[:len(p)]
	b1, omb1, b2, omb2 := c.b1, c.omb1, c.b2, c.omb2
	step, invBC2, eps := c.step, c.invBC2, c.eps
	for i := range p {
		gi := g[i]
		mi := float32(b1*m[i]) + float32(omb1*gi)
		vi := float32(b2*v[i]) + float32(omb2*float32(gi*gi))
		m[i] = mi
		v[i] = vi
		den := float32(float32(math.Sqrt(float64(vi)))*invBC2) + eps
		p[i] -= float32(step * float32(mi/den))
	}
}
