package sae

import (
	"math"
	"sync"

	"github.com/dsae/dsae/sae/internal/kernels"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	gonumblas "gonum.org/v1/gonum/blas/gonum"
)

// Level-1 vector kernels (axpyUnit, dotUnit on short rows; AVX2 in
// vec_amd64.s where available) never go through blas32: they are called once
// per active latent per row, and a cgo call each would cost more than the
// arithmetic. Without AVX2 they use gonum's native implementation.
var level1 gonumblas.Implementation

// gemmSplit makes gemm split each product by rows of C across goroutines
// (set for single-threaded BLAS libraries; gonum's native Sgemm
// parallelises internally).
var gemmSplit = false

// gemmRowAlign keeps the row blocks of a split product a multiple of the
// BLAS kernels' register blocking.
const gemmRowAlign = 16

// gemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices with
// tight strides. A is ar×ac and B is br×bc before op; C is cr×cc.
func gemm(tA, tB bool, alpha float32, a []float32, ar, ac int, b []float32, br, bc int, beta float32, c []float32, cr, cc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	bm := blas32.General{Rows: br, Cols: bc, Stride: bc, Data: b[:br*bc]}
	w := 1
	if gemmSplit {
		k := ac
		if tA {
			k = ar
		}
		w = min(workersFor(defaultWorkers(), cr, cc*k), (cr+gemmRowAlign-1)/gemmRowAlign)
	}
	if w <= 1 {
		blas32.Gemm(ta, tb, alpha,
			blas32.General{Rows: ar, Cols: ac, Stride: ac, Data: a[:ar*ac]}, bm, beta,
			blas32.General{Rows: cr, Cols: cc, Stride: cc, Data: c[:cr*cc]})
		return
	}
	blocks := (cr + gemmRowAlign - 1) / gemmRowAlign
	parallelFor(w, w, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			r0 := min(cr, blocks*p/w*gemmRowAlign)
			r1 := min(cr, blocks*(p+1)/w*gemmRowAlign)
			if r0 >= r1 {
				continue
			}
			// rows r0..r1 of op(A): rows of A, or columns of A when transposed
			var am blas32.General
			if tA {
				am = blas32.General{Rows: ar, Cols: r1 - r0, Stride: ac, Data: a[r0 : (ar-1)*ac+r1]}
			} else {
				am = blas32.General{Rows: r1 - r0, Cols: ac, Stride: ac, Data: a[r0*ac : r1*ac]}
			}
			blas32.Gemm(ta, tb, alpha, am, bm, beta,
				blas32.General{Rows: r1 - r0, Cols: cc, Stride: cc, Data: c[r0*cc : r1*cc]})
		}
	})
}

// expf returns e^x in float32 with a relative error below 3e-7 for
// x in [-87, 88]. Arguments outside are clamped to that range, so the result
// is finite and > 0, except that NaN is returned as is. It reduces
// x = n·ln2 + r with |r| <= ln2/2, evaluates a degree-6 Taylor polynomial of
// e^r, then scales by 2^n through the exponent bits.
func expf(x float32) float32 {
	if x != x {
		return x // NaN in, NaN out: a diverged model must show in the loss
	}
	if x > 88 {
		x = 88
	} else if x < -87 {
		x = -87
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	t := x * log2e
	var n float32
	if t >= 0 {
		n = float32(int32(t + 0.5))
	} else {
		n = float32(int32(t - 0.5))
	}
	r := x - n*ln2hi - n*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// sigmoidf returns 1/(1+e^-z) in float32 (relative error below 5e-7).
func sigmoidf(z float32) float32 {
	return 1 / (1 + expf(-z))
}

// parallelMinWork is the amount of work (about flops) below which a
// goroutine costs more than it saves. Tests lower it to exercise the
// parallel paths on small inputs.
var parallelMinWork = 1 << 15

// workersFor returns how many goroutines to use for n units of work of
// roughly `cost` flops each: one for small jobs, else up to maxWorkers.
func workersFor(maxWorkers, n, cost int) int {
	w := maxWorkers
	if n*cost < parallelMinWork*2 || n < 2 {
		return 1
	}
	if w > n {
		w = n
	}
	return w
}

// parallelFor splits [0,n) into w contiguous chunks and runs fn on each, the
// last chunk on the calling goroutine. fn must only write data owned by its
// chunk. The split depends on w only, so results that are per-index do not
// depend on the number of workers.
func parallelFor(w, n int, fn func(lo, hi int)) {
	if w <= 1 || n <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + w - 1) / w
	lo := 0
	for ; lo+chunk < n; lo += chunk {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, lo+chunk)
	}
	fn(lo, n)
	wg.Wait()
}

// SetThreads sets the most goroutines the package runs one operation on (a
// matrix product, an elementwise pass, an optimizer sweep), for the whole
// process; n ≤ 0 restores the default, runtime.GOMAXPROCS(0). A Step reads
// it when it is created (NewStep), products and optimizer sweeps each time
// they run. Results do not depend on it beyond what Step documents.
//
// It lets a process keep GOMAXPROCS above the kernels' share, so that the
// goroutines that move data (network reads, all-reduce) can run while a
// product is in flight: the assembly kernels cannot be preempted by the
// scheduler. Whether that pays depends on the machine: where the workers
// fill every core, idle Ps spinning for work cost more than it gains, and
// GOMAXPROCS set to the share (the default budget then) is faster.
func SetThreads(n int) { kernels.SetThreads(n) }

// Threads returns the goroutine budget of one operation (see SetThreads).
func Threads() int { return kernels.Threads() }

// defaultWorkers is the number of goroutines a Step uses for elementwise and
// sparse work.
func defaultWorkers() int {
	w := Threads()
	if w > 16 {
		w = 16
	}
	if w < 1 {
		w = 1
	}
	return w
}

// sigmoidBiasGo is the portable sigmoidBias.
func sigmoidBiasGo(dst, x, b []float32) {
	for i := range dst {
		dst[i] = sigmoidf(x[i] + b[i])
	}
}

// residualGo computes one row's reconstruction residual in place: with
// v = out[f] (sig: out holds the sigmoid outputs) or v = out[f] + b[f]
// (linear output) and diff = v - x[f], it returns recon = Σ diff² and
// xx = Σ x[f]² in float64 and sets out[f] = diff·v(1−v) (sig) or diff.
// x (and b when !sig) must be at least as long as out.
func residualGo(out, x, b []float32, sig bool) (recon, xx float64) {
	x = x[:len(out)]
	if !sig {
		b = b[:len(out)]
	}
	for f, v := range out {
		if !sig {
			v += b[f]
		}
		diff := v - x[f]
		recon += float64(diff) * float64(diff)
		xx += float64(x[f]) * float64(x[f])
		if sig {
			diff *= v * (1 - v)
		}
		out[f] = diff
	}
	return recon, xx
}

// sigGradKLGo sets g[j] = (g[j] + extra[j]) · a[j](1 − a[j]) for j < len(g):
// δ2 of a sigmoid encoder with the KL term; a and extra at least as long.
func sigGradKLGo(g, a, extra []float32) {
	a, extra = a[:len(g)], extra[:len(g)]
	for j, v := range a {
		g[j] = (g[j] + extra[j]) * (v * (1 - v))
	}
}

// colSumsFiredGo adds row[j] to sa[j] and, when the bits of row[j] exceed
// tb as unsigned integers (for row[j] >= 0: row[j] > the float with bits
// tb), one to sf[j], for j < len(row); sa and sf at least as long.
func colSumsFiredGo(sa []float64, sf []uint32, row []float32, tb uint32) {
	sa, sf = sa[:len(row)], sf[:len(row)]
	for j, v := range row {
		sa[j] += float64(v)
		sf[j] += (tb - math.Float32bits(v)) >> 31
	}
}
