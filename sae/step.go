package sae

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Layout of the float64 sums vector written by Step.Gradient (length
// Model.SumsLen() = 6 + d + 2h). Every entry is a plain sum over rows, so
// sums from several workers add up to the sums of the union of their rows.
const (
	sumRows   = iota // number of rows m
	sumRecon         // Σ_i ½‖x̂_i − x_i‖²
	sumXX            // Σ_i ‖x_i‖²
	sumActive        // Σ_i number of active latents in row i (for L0)
	sumL1            // Σ_i Σ_j w_j |a_ij| (l1 only, else 0)
	sumAux           // Σ_i ½‖ê_i − e_i‖² (AuxK only, else 0)
	sumHead          // start of Σ_i x_i (d values), then Σ_i a_i (h), then active counts per latent (h)
)

// rhoClamp keeps ρ̂ away from 0 and 1 in the KL term so that a saturated
// latent gives a large but finite penalty and gradient.
const rhoClamp = 1e-6

// Step is per-worker scratch for one training or evaluation step of a
// model, reused across steps so that a step allocates nothing. It is not
// safe for concurrent use; use one Step per goroutine. A Step reads the
// model's Params at each call, so in-place optimizer updates between steps
// are seen. Internally a Step splits elementwise and sparse work across up
// to Threads() goroutines (see SetThreads); results do not depend on that number except for
// float32 rounding inside the BLAS library.
type Step struct {
	m       *Model
	maxRows int
	workers int

	// batch loaded by Stats or Load
	x       []float32
	rows    int
	loaded  bool
	encoded bool

	z  []float32 // rows×h: activations a (dense kinds) or x·Encᵀ without the bias (topk)
	g  []float32 // rows×h: δa then δ2 (dense kinds)
	xh []float32 // rows×d: x̂, then δ3

	// topk: active latents per row (ascending index) and their activations
	idx  []int32
	val  []float32
	nact []int32
	dval []float32
	// AuxK: selected dead latents per row, their activations, the residual
	// ê−e per row, and the dead latents of this step
	auxIdx  []int32
	auxVal  []float32
	auxN    []int32
	auxDval []float32
	auxRes  []float32
	dead    []int32

	colA     []float64 // Σ_i a_ij of the loaded batch
	colFired []float64 // rows where latent j is active
	fired    []uint32  // scratch for colFired
	ones     []float32 // maxRows ones, for column sums through BLAS
	colB     []float64 // bias-gradient accumulator (h or d)
	rowRecon []float64
	rowAux   []float64
	rowXX    []float64
	klg      []float32 // KL gradient term per latent
	wnorm    []float32 // decoder row norms (L1DecoderNorm)
	stats    []float64 // Compute's stats buffer
	sums     []float64 // Compute's sums buffer

	// denseDecoder makes the topk path run its decoder (forward and
	// backward) as dense matrix products over a rows×h activation matrix
	// held in g. It exists to measure what the sparse decoder saves; tests
	// check both give the same gradient.
	denseDecoder bool
}

// NewStep returns scratch for batches of up to maxRows rows (maxRows >= 1).
func (m *Model) NewStep(maxRows int) *Step {
	if maxRows < 1 {
		panic(fmt.Sprintf("sae: NewStep(%d): maxRows must be >= 1", maxRows))
	}
	c := m.Cfg
	d, h := c.D, c.H
	s := &Step{
		m:        m,
		maxRows:  maxRows,
		workers:  defaultWorkers(),
		z:        make([]float32, maxRows*h),
		xh:       make([]float32, maxRows*d),
		colA:     make([]float64, h),
		colFired: make([]float64, h),
		colB:     make([]float64, max(h, d)),
		rowRecon: make([]float64, maxRows),
		rowXX:    make([]float64, maxRows),
		stats:    make([]float64, h+1),
		sums:     make([]float64, m.SumsLen()),
	}
	if c.Activation == ActTopK {
		s.idx = make([]int32, maxRows*c.K)
		s.val = make([]float32, maxRows*c.K)
		s.dval = make([]float32, maxRows*c.K)
		s.nact = make([]int32, maxRows)
		if c.AuxK > 0 {
			s.auxIdx = make([]int32, maxRows*c.AuxK)
			s.auxVal = make([]float32, maxRows*c.AuxK)
			s.auxDval = make([]float32, maxRows*c.AuxK)
			s.auxN = make([]int32, maxRows)
			s.auxRes = make([]float32, maxRows*d)
			s.rowAux = make([]float64, maxRows)
			s.dead = make([]int32, 0, h)
		}
	} else {
		s.g = make([]float32, maxRows*h)
	}
	if c.Sparsity == SparsityKL {
		s.klg = make([]float32, h)
	}
	if c.L1DecoderNorm {
		s.wnorm = make([]float32, h)
	}
	return s
}

// StatsLen returns the length of the stats vector: h+1.
func (m *Model) StatsLen() int { return m.Cfg.H + 1 }

// NeedsStats reports whether Gradient needs the globally reduced stats
// (true for KL sparsity only). When false, Gradient ignores its stats
// argument and the stats all-reduce can be skipped.
func (m *Model) NeedsStats() bool { return m.Cfg.Sparsity == SparsityKL }

// GradLen returns the length of a gradient buffer: NumParams(), same layout
// as Params.
func (m *Model) GradLen() int { return len(m.Params) }

// SumsLen returns the length of the float64 loss/metric sums vector written
// by Gradient: 6 + d + 2h.
func (m *Model) SumsLen() int { return sumHead + m.Cfg.D + 2*m.Cfg.H }

// Load sets the batch (rows×d row-major x, 0 <= rows <= maxRows) for the
// next Gradient call without computing anything; Gradient then runs the
// encoder itself. The Step keeps a reference to x until the next Load or
// Stats: the caller must not modify x before Gradient returns.
func (s *Step) Load(x []float32, rows int) {
	d := s.m.Cfg.D
	if rows < 0 || rows > s.maxRows {
		panic(fmt.Sprintf("sae: batch of %d rows, Step holds at most %d", rows, s.maxRows))
	}
	if len(x) < rows*d {
		panic(fmt.Sprintf("sae: batch of %d rows needs %d values, got %d", rows, rows*d, len(x)))
	}
	s.x = x[:rows*d]
	s.rows = rows
	s.loaded = true
	s.encoded = false
}

// Stats is the first phase of a step. It loads the batch (as Load), runs the
// encoder on it and caches what Gradient needs, then writes the local sums
// Σ_i a_ij into dst[0:h] and the row count into dst[h]. dst may be nil when
// the model does not NeedsStats; otherwise len(dst) must be StatsLen().
func (s *Step) Stats(x []float32, rows int, dst []float64) {
	s.Load(x, rows)
	s.encode()
	if dst == nil {
		return
	}
	h := s.m.Cfg.H
	if len(dst) != h+1 {
		panic(fmt.Sprintf("sae: stats buffer has %d values, want h+1 = %d", len(dst), h+1))
	}
	copy(dst[:h], s.colA)
	dst[h] = float64(rows)
}

// Gradient is the second phase of a step, on the batch of the latest Stats
// or Load call (it panics if there is none; it runs the encoder itself if
// only Load was called). stats are the globally reduced stats vector (the
// sum over all workers of Stats' output) when the model NeedsStats, else
// ignored and may be nil. Gradient overwrites grad (length GradLen) with the
// unnormalised local gradient sums Σ_i ∂J_i (divided by the global m in
// Finalize) and sums (length SumsLen) with the local loss/metric sums.
func (s *Step) Gradient(stats []float64, grad []float32, sums []float64) {
	m := s.m
	c := m.Cfg
	if !s.loaded {
		panic("sae: Gradient called before Stats or Load")
	}
	if len(grad) != m.GradLen() {
		panic(fmt.Sprintf("sae: gradient buffer has %d values, want %d", len(grad), m.GradLen()))
	}
	if len(sums) != m.SumsLen() {
		panic(fmt.Sprintf("sae: sums buffer has %d values, want %d", len(sums), m.SumsLen()))
	}
	if m.NeedsStats() {
		if len(stats) != c.H+1 || !(stats[c.H] > 0) {
			panic(fmt.Sprintf("sae: KL sparsity needs reduced stats of length h+1 = %d with a positive row count", c.H+1))
		}
		for j := range s.klg {
			rho := clampRho(stats[j] / stats[c.H])
			s.klg[j] = float32(c.Beta * (-c.Rho/rho + (1-c.Rho)/(1-rho)))
		}
	}
	if !s.encoded {
		s.encode()
	}
	s.decode(sums)
	if s.rows == 0 {
		clear(grad)
		return
	}
	if c.Activation == ActTopK {
		clear(grad) // the sparse backward scatters into it
		s.backwardSparse(grad)
	} else {
		s.backwardDense(grad)
	}
}

// Compute runs one single-process step (Stats, Gradient, Finalize with a
// one-member reduce) on rows×d x and writes the normalised gradient of J,
// weight decay included, into grad. It updates the dead-latent tracker like
// Finalize and returns the step's metrics.
func (s *Step) Compute(x []float32, rows int, grad []float32) Metrics {
	s.Stats(x, rows, s.stats)
	s.Gradient(s.stats, grad, s.sums)
	return s.m.Finalize(grad, s.sums)
}

func clampRho(r float64) float64 {
	return math.Min(math.Max(r, rhoClamp), 1-rhoClamp)
}

// encode computes the hidden layer of the loaded batch: z = x·Encᵀ + b1,
// then the activation, and the per-latent column sums.
func (s *Step) encode() {
	m := s.m
	c := m.Cfg
	d, h, rows := c.D, c.H, s.rows
	s.encoded = true
	clear(s.colA)
	clear(s.colFired)
	if rows == 0 {
		return
	}
	z := s.z[:rows*h]
	gemm(false, true, 1, s.x, rows, d, m.Enc(), h, d, 0, z, rows, h)
	b1 := m.BEnc()
	w := workersFor(s.workers, rows, h*4)
	switch c.Activation {
	case ActSigmoid:
		parallelFor(w, rows, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				row := z[i*h : (i+1)*h]
				sigmoidBias(row, row, b1)
			}
		})
		s.denseColumnSums(0.5)
	case ActReLU:
		parallelFor(w, rows, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				row := z[i*h : (i+1)*h]
				for j, v := range row {
					row[j] = max(v+b1[j], 0)
				}
			}
		})
		s.denseColumnSums(0)
	case ActTopK:
		k := c.K
		parallelFor(w, rows, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				s.nact[i] = int32(topK(z[i*h:(i+1)*h], b1, k, nil, s.idx[i*k:(i+1)*k], s.val[i*k:(i+1)*k]))
			}
		})
		for i := 0; i < rows; i++ {
			for t := 0; t < int(s.nact[i]); t++ {
				j := s.idx[i*k+t]
				s.colA[j] += float64(s.val[i*k+t])
				s.colFired[j]++
			}
		}
		if c.AuxK > 0 {
			s.selectAux()
		}
	}
}

// denseColumnSums fills colA (Σ_i a_ij) and colFired (rows with a_ij >
// thresh) from the dense activations (all >= 0), split by latent so that the
// order of summation does not depend on the number of workers.
func (s *Step) denseColumnSums(thresh float32) {
	h, rows := s.m.Cfg.H, s.rows
	a := s.z
	if len(s.fired) < h {
		s.fired = make([]uint32, h)
	}
	// For a >= 0, a > thresh exactly when the bits of a exceed those of
	// thresh; the sign bit of their difference counts it without a branch
	// (activations near the threshold would make a branch unpredictable).
	tb := math.Float32bits(thresh)
	parallelFor(workersFor(s.workers, h, rows), h, func(lo, hi int) {
		sa, sf := s.colA[lo:hi], s.fired[lo:hi]
		clear(sf)
		for i := 0; i < rows; i++ {
			colSumsFired(sa, sf, a[i*h+lo:i*h+hi], tb)
		}
		for j, n := range sf {
			s.colFired[lo+j] = float64(n)
		}
	})
}

// columnSums adds Σ_i m[i][lo:hi] (m is rows×n) into dst[lo:hi] for all
// columns, split by column.
func (s *Step) columnSums(mat []float32, rows, n int, dst []float64) {
	parallelFor(workersFor(s.workers, n, rows), n, func(lo, hi int) {
		acc := dst[lo:hi]
		for i := 0; i < rows; i++ {
			addF64(acc, mat[i*n+lo:i*n+hi])
		}
	})
}

// decode runs the decoder on the encoded batch, writes the loss/metric sums
// and leaves δ3 = (x̂−x)⊙g'(z3) in s.xh (and ê−e in s.auxRes for AuxK).
func (s *Step) decode(sums []float64) {
	m := s.m
	c := m.Cfg
	d, h, rows := c.D, c.H, s.rows
	clear(sums)
	sums[sumRows] = float64(rows)
	if rows == 0 {
		return
	}
	xh := s.xh[:rows*d]
	dec := m.Dec()
	w := workersFor(s.workers, rows, d*8)
	if c.Activation == ActTopK && s.denseDecoder {
		k := c.K
		a := s.g[:rows*h]
		clear(a)
		for i := 0; i < rows; i++ {
			for t := 0; t < int(s.nact[i]); t++ {
				a[i*h+int(s.idx[i*k+t])] = s.val[i*k+t]
			}
		}
		gemm(false, false, 1, a, rows, h, dec, h, d, 0, xh, rows, d)
	} else if c.Activation == ActTopK {
		k := c.K
		parallelFor(workersFor(s.workers, rows, k*d), rows, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				out := xh[i*d : (i+1)*d]
				clear(out)
				for t := 0; t < int(s.nact[i]); t++ {
					j := int(s.idx[i*k+t])
					axpyUnit(s.val[i*k+t], dec[j*d:(j+1)*d], out)
				}
			}
		})
	} else {
		gemm(false, false, 1, s.z, rows, h, dec, h, d, 0, xh, rows, d)
	}
	b2 := m.BDec()
	sigOut := c.Output == OutSigmoid
	aux := s.auxRes != nil
	parallelFor(w, rows, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out := xh[i*d : (i+1)*d]
			xi := s.x[i*d : (i+1)*d]
			var recon, xx float64
			if sigOut {
				sigmoidBias(out, out, b2)
			}
			if !aux {
				recon, xx := residual(out, xi, b2, sigOut)
				s.rowRecon[i] = recon / 2
				s.rowXX[i] = xx
				continue
			}
			for f, v := range out {
				if !sigOut {
					v += b2[f]
				}
				diff := v - xi[f]
				recon += float64(diff) * float64(diff)
				xx += float64(xi[f]) * float64(xi[f])
				if aux {
					s.auxRes[i*d+f] = diff // ê is added below: ê − e = ê + (x̂ − x)
				}
				if sigOut {
					diff *= v * (1 - v)
				}
				out[f] = diff
			}
			s.rowRecon[i] = recon / 2
			s.rowXX[i] = xx
		}
	})
	if aux {
		s.auxResidual()
	}
	for i := 0; i < rows; i++ {
		sums[sumRecon] += s.rowRecon[i]
		sums[sumXX] += s.rowXX[i]
		if aux {
			sums[sumAux] += s.rowAux[i]
		}
	}
	s.columnSums(s.x, rows, d, sums[sumHead:sumHead+d])
	copy(sums[sumHead+d:sumHead+d+h], s.colA)
	copy(sums[sumHead+d+h:sumHead+d+2*h], s.colFired)
	for _, f := range s.colFired {
		sums[sumActive] += f
	}
	if c.Sparsity == SparsityL1 {
		s.decoderNorms()
		for j, a := range s.colA {
			wj := 1.0
			if s.wnorm != nil {
				wj = float64(s.wnorm[j])
			}
			sums[sumL1] += wj * a // a_ij >= 0, so Σ_i |a_ij| = colA[j]
		}
	}
}

// decoderNorms fills s.wnorm with ‖Dec_j‖ when L1DecoderNorm is set.
func (s *Step) decoderNorms() {
	if s.wnorm == nil {
		return
	}
	d := s.m.Cfg.D
	dec := s.m.Dec()
	for j := range s.wnorm {
		row := dec[j*d : (j+1)*d]
		s.wnorm[j] = float32(math.Sqrt(float64(dotUnit(row, row))))
	}
}

// backwardDense computes the gradient for sigmoid and relu activations with
// dense matrix products.
func (s *Step) backwardDense(grad []float32) {
	m := s.m
	c := m.Cfg
	d, h, rows := c.D, c.H, s.rows
	l := m.layout
	a := s.z[:rows*h]
	d3 := s.xh[:rows*d]
	g := s.g[:rows*h]
	gEnc := grad[l.Enc.Off:l.Enc.End()]
	gDec := grad[l.Dec.Off:l.Dec.End()]
	// ∇Dec = aᵀ δ3 and δa = δ3 Decᵀ
	gemm(true, false, 1, a, rows, h, d3, rows, d, 0, gDec, h, d)
	gemm(false, true, 1, d3, rows, d, m.Dec(), h, d, 0, g, rows, h)
	// δ2 = (δa + sparsity term) ⊙ f'(z2)
	var extra []float32
	var l1 float32
	switch c.Sparsity {
	case SparsityKL:
		extra = s.klg
	case SparsityL1:
		if s.wnorm != nil {
			extra = s.wnorm
		}
		l1 = float32(c.L1)
	}
	sig := c.Activation == ActSigmoid
	parallelFor(workersFor(s.workers, rows, h*4), rows, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gr := g[i*h : (i+1)*h]
			ar := a[i*h : (i+1)*h]
			if sig && c.Sparsity == SparsityKL {
				sigGradKL(gr, ar, extra)
				continue
			}
			switch {
			case c.Sparsity == SparsityKL:
				for j := range gr {
					gr[j] += extra[j]
				}
			case c.Sparsity == SparsityL1 && extra != nil:
				for j := range gr {
					gr[j] += l1 * extra[j]
				}
			case c.Sparsity == SparsityL1:
				for j := range gr {
					gr[j] += l1
				}
			}
			if sig {
				for j, v := range ar {
					gr[j] *= v * (1 - v)
				}
			} else {
				for j, v := range ar {
					if v <= 0 {
						gr[j] = 0
					}
				}
			}
		}
	})
	// ∇Enc = δ2ᵀ x (added to the shared matrix when tied)
	beta := float32(0)
	if c.Tied {
		beta = 1
	}
	gemm(true, false, 1, g, rows, h, s.x, rows, d, beta, gEnc, h, d)
	s.biasGrads(grad, g)
	s.l1NormGrad(grad)
}

// biasGrads writes ∇b1 = Σ_i δ2_i (from g when non-nil) and ∇b2 = Σ_i δ3_i.
func (s *Step) biasGrads(grad []float32, g []float32) {
	c := s.m.Cfg
	l := s.m.layout
	d, h, rows := c.D, c.H, s.rows
	if g != nil {
		// δ2ᵀ·1 through BLAS: the rows×h matrix is the largest one summed
		// here, and float32 accumulation is what the other gradients get.
		if len(s.ones) < rows {
			s.ones = make([]float32, s.maxRows)
			for i := range s.ones {
				s.ones[i] = 1
			}
		}
		blas32.Gemv(blas.Trans, 1,
			blas32.General{Rows: rows, Cols: h, Stride: h, Data: g[:rows*h]},
			blas32.Vector{N: rows, Inc: 1, Data: s.ones[:rows]},
			0, blas32.Vector{N: h, Inc: 1, Data: grad[l.BEnc.Off:l.BEnc.End()]})
	}
	acc := s.colB[:d]
	clear(acc)
	s.columnSums(s.xh, rows, d, acc)
	for f, v := range acc {
		grad[l.BDec.Off+f] = float32(v)
	}
}

// l1NormGrad adds the gradient of λ₁ Σ_i Σ_j ‖Dec_j‖ a_ij with respect to
// the decoder: λ₁ (Σ_i a_ij) Dec_j / ‖Dec_j‖ (zero for a zero row).
func (s *Step) l1NormGrad(grad []float32) {
	if s.wnorm == nil {
		return
	}
	d := s.m.Cfg.D
	l := s.m.layout
	dec := s.m.Dec()
	gDec := grad[l.Dec.Off:l.Dec.End()]
	for j, n := range s.wnorm {
		if n == 0 || s.colA[j] == 0 {
			continue
		}
		axpyUnit(float32(s.m.Cfg.L1*s.colA[j]/float64(n)), dec[j*d:(j+1)*d], gDec[j*d:(j+1)*d])
	}
}
