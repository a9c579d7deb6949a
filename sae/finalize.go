package sae

import (
	"fmt"
	"math"
)

// Metrics are the loss terms and health metrics of one step (or of an
// evaluation over a dataset). All are means over the rows of the global
// batch.
type Metrics struct {
	// Rows is the number of rows m the metrics cover.
	Rows int `json:"rows"`
	// Loss = Recon + Sparsity + WeightDecay + AuxK, the objective J.
	Loss float64 `json:"loss"`
	// Recon = (1/m) Σ_i ½‖x̂_i − x_i‖².
	Recon float64 `json:"recon"`
	// Sparsity is the sparsity term: β Σ_j KL(ρ‖ρ̂_j) for kl,
	// (λ₁/m) Σ_ij w_j|a_ij| for l1, 0 for topk and none.
	Sparsity float64 `json:"sparsity"`
	// WeightDecay = (λ/2)(‖W1‖² + ‖W2‖²) (the shared matrix once when tied).
	WeightDecay float64 `json:"weight_decay"`
	// AuxK = aux_coef · (1/m) Σ_i ½‖ê_i − e_i‖² (0 when AuxK is off).
	AuxK float64 `json:"aux_k"`
	// MSE = Σ_i ‖x̂_i − x_i‖² / (m·d).
	MSE float64 `json:"mse"`
	// FVU = Σ_i ‖x_i − x̂_i‖² / Σ_i ‖x_i − x̄‖², x̄ the mean row of the
	// batch: the fraction of variance unexplained. NaN when the batch has no
	// variance (for example a single row).
	FVU float64 `json:"fvu"`
	// L0 is the mean number of active latents per row. A latent is active
	// when its pre-activation is > 0 (a > 0.5 for sigmoid, a > 0 for relu)
	// and, for topk, it is among the k kept.
	L0 float64 `json:"l0"`
	// MeanActivation = (1/h) Σ_j ρ̂_j = mean of a over rows and latents
	// (compare with ρ for kl).
	MeanActivation float64 `json:"mean_activation"`
	// DeadFraction is the fraction of dead latents. After a training step:
	// latents active on no row of the last DeadWindow steps, this one
	// included. For Evaluate: latents active on no row of the dataset.
	DeadFraction float64 `json:"dead_fraction"`
}

// Finalize completes a step on every worker after the reductions: grad and
// sums are the all-reduced outputs of Gradient. It divides grad by the
// global row count, adds λW to the weight gradients (never to biases),
// updates the dead-latent tracker from the reduced per-latent active counts
// (a latent active on any row of the global batch is alive) and returns the
// step's metrics. It is a deterministic function of (Params, tracker, grad,
// sums), so ranks holding identical inputs stay bitwise identical. It panics
// if the buffers have the wrong length or the row count is not positive.
func (m *Model) Finalize(grad []float32, sums []float64) Metrics {
	if len(grad) != m.GradLen() || len(sums) != m.SumsLen() {
		panic(fmt.Sprintf("sae: Finalize with %d gradient values and %d sums, want %d and %d",
			len(grad), len(sums), m.GradLen(), m.SumsLen()))
	}
	rows := sums[sumRows]
	if !(rows > 0) {
		panic(fmt.Sprintf("sae: Finalize with row count %v", rows))
	}
	inv := float32(1 / rows)
	lambda := float32(m.Cfg.WeightDecay)
	wsq := 0.0
	for _, s := range m.layout.Weights() {
		g := grad[s.Off:s.End()]
		w := m.Params[s.Off:s.End()]
		wsq += scaleAddDecay(g, w, inv, lambda)
	}
	for _, s := range []Span{m.layout.BEnc, m.layout.BDec} {
		scaleUnit(inv, grad[s.Off:s.End()])
	}
	h := m.Cfg.H
	fired := sums[sumHead+m.Cfg.D+h : sumHead+m.Cfg.D+2*h]
	for j, f := range fired {
		if f > 0 {
			m.sinceActive[j] = 0
		} else if m.sinceActive[j] < math.MaxUint32 {
			m.sinceActive[j]++
		}
	}
	met := m.metricsFromSums(sums, 0.5*m.Cfg.WeightDecay*wsq)
	met.DeadFraction = m.DeadFraction()
	return met
}

// decayChunk fixes the summation order of ‖W‖² independently of the number
// of goroutines; sqChunk bounds the float32 partial sums inside a chunk.
const (
	decayChunk = 1 << 14
	sqChunk    = 1 << 9
)

// scaleAddDecay sets g = g*inv + lambda*w and returns Σ w² (0 when lambda is
// 0), in fixed chunks split across goroutines. Sums of squares are taken in
// float32 over runs of sqChunk values and accumulated in float64.
func scaleAddDecay(g, w []float32, inv, lambda float32) float64 {
	nChunks := (len(g) + decayChunk - 1) / decayChunk
	partial := make([]float64, nChunks)
	parallelFor(workersFor(defaultWorkers(), nChunks, decayChunk), nChunks, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			a, b := c*decayChunk, min((c+1)*decayChunk, len(g))
			gc, wc := g[a:b], w[a:b]
			scaleUnit(inv, gc)
			if lambda == 0 {
				continue
			}
			axpyUnit(lambda, wc, gc)
			partial[c] = sqNorm(wc)
		}
	})
	total := 0.0
	for _, p := range partial {
		total += p
	}
	return total
}

// sqNorm returns Σ w², in float32 over runs of sqChunk values accumulated
// in float64.
func sqNorm(w []float32) float64 {
	var sq float64
	for i := 0; i < len(w); i += sqChunk {
		r := w[i:min(i+sqChunk, len(w))]
		sq += float64(dotUnit(r, r))
	}
	return sq
}

// metricsFromSums turns reduced sums into metrics (all but DeadFraction).
func (m *Model) metricsFromSums(sums []float64, wd float64) Metrics {
	c := m.Cfg
	d, h := c.D, c.H
	rows := sums[sumRows]
	met := Metrics{Rows: int(rows)}
	if !(rows > 0) {
		return met
	}
	met.Recon = sums[sumRecon] / rows
	met.MSE = 2 * sums[sumRecon] / (rows * float64(d))
	sx := sums[sumHead : sumHead+d]
	var meanSq float64
	for _, v := range sx {
		meanSq += v * v
	}
	variance := sums[sumXX] - meanSq/rows
	if variance > 0 {
		met.FVU = 2 * sums[sumRecon] / variance
	} else {
		met.FVU = math.NaN()
	}
	met.L0 = sums[sumActive] / rows
	sa := sums[sumHead+d : sumHead+d+h]
	var totalA float64
	for _, v := range sa {
		totalA += v
	}
	met.MeanActivation = totalA / (rows * float64(h))
	switch c.Sparsity {
	case SparsityKL:
		for _, v := range sa {
			met.Sparsity += klDiv(c.Rho, clampRho(v/rows))
		}
		met.Sparsity *= c.Beta
	case SparsityL1:
		met.Sparsity = c.L1 * sums[sumL1] / rows
	}
	met.AuxK = c.AuxCoef * sums[sumAux] / rows
	met.WeightDecay = wd
	met.Loss = met.Recon + met.Sparsity + met.WeightDecay + met.AuxK
	return met
}

// klDiv is KL(ρ‖r) between Bernoulli distributions.
func klDiv(rho, r float64) float64 {
	return rho*math.Log(rho/r) + (1-rho)*math.Log((1-rho)/(1-r))
}

// Evaluate returns the metrics of the model on rows×d row-major x, computed
// in batches of at most batch rows with no gradient and no change to the
// model. Every metric is over the whole set (ρ̂ for the KL term included).
// DeadFraction is the fraction of latents active on no row of x; AuxK uses
// the model's current dead latents. It panics if batch < 1 or x is short.
// It is an Evaluator fed all of x at once.
func (m *Model) Evaluate(x []float32, rows, batch int) Metrics {
	if batch < 1 {
		panic(fmt.Sprintf("sae: Evaluate batch %d must be >= 1", batch))
	}
	d := m.Cfg.D
	if len(x) < rows*d {
		panic(fmt.Sprintf("sae: Evaluate on %d rows needs %d values, got %d", rows, rows*d, len(x)))
	}
	e := m.NewEvaluator(min(batch, max(rows, 1)))
	e.Add(x, rows)
	return e.Metrics()
}

// Evaluator computes the metrics of Evaluate over rows that arrive in
// pieces, for datasets streamed rather than held in memory. It cuts the
// stream into batches of its batch size wherever the pieces end (a piece
// that splits a batch is copied into a buffer of one batch), so the metrics
// are those of Evaluate on the concatenated rows with the same batch,
// whatever the split. Its memory is a Step of batch rows, that buffer and
// the metric sums. The model must not change while an Evaluator is in use.
// An Evaluator is not safe for concurrent use.
type Evaluator struct {
	m       *Model
	s       *Step
	total   []float64 // sums over the full batches so far
	part    []float64 // one batch's sums
	buf     []float32 // rows of the batch not yet full (allocated on first use)
	pending int       // rows in buf
}

// NewEvaluator returns an Evaluator of the model in batches of batch rows.
// It panics if batch < 1.
func (m *Model) NewEvaluator(batch int) *Evaluator {
	if batch < 1 {
		panic(fmt.Sprintf("sae: NewEvaluator batch %d must be >= 1", batch))
	}
	return &Evaluator{m: m, s: m.NewStep(batch),
		total: make([]float64, m.SumsLen()), part: make([]float64, m.SumsLen())}
}

// Add adds the rows of rows×d row-major x to the evaluation. Full batches
// are evaluated straight from x; the rows of a batch that x leaves
// incomplete are copied and evaluated once later Adds fill it (or by
// Metrics). It panics if rows < 0 or x is short.
func (e *Evaluator) Add(x []float32, rows int) {
	d, b := e.m.Cfg.D, e.s.maxRows
	if rows < 0 || len(x) < rows*d {
		panic(fmt.Sprintf("sae: Evaluator.Add of %d rows with %d values (d = %d)", rows, len(x), d))
	}
	if e.pending > 0 {
		n := min(b-e.pending, rows)
		copy(e.buf[e.pending*d:], x[:n*d])
		e.pending += n
		x, rows = x[n*d:], rows-n
		if e.pending < b {
			return
		}
		e.batch(e.buf, b, e.total)
		e.pending = 0
	}
	for ; rows >= b; x, rows = x[b*d:], rows-b {
		e.batch(x, b, e.total)
	}
	if rows > 0 {
		if e.buf == nil {
			e.buf = make([]float32, b*d)
		}
		copy(e.buf, x[:rows*d])
		e.pending = rows
	}
}

// batch evaluates rows×d x (at most one batch) and adds its sums to total.
func (e *Evaluator) batch(x []float32, rows int, total []float64) {
	e.s.Load(x, rows)
	e.s.encode()
	e.s.decode(e.part)
	for i, v := range e.part {
		total[i] += v
	}
}

// Metrics returns the metrics over every row added so far (Rows = 0 and
// zero metrics when there are none). It evaluates an incomplete last batch
// without consuming it, so Add may continue afterwards.
func (e *Evaluator) Metrics() Metrics {
	m := e.m
	total := e.total
	if e.pending > 0 {
		total = append([]float64(nil), e.total...)
		e.batch(e.buf, e.pending, total)
	}
	wsq := 0.0
	for _, sp := range m.layout.Weights() {
		w := m.Params[sp.Off:sp.End()]
		for a := 0; a < len(w); a += decayChunk {
			wsq += sqNorm(w[a:min(a+decayChunk, len(w))]) // Finalize's order
		}
	}
	met := m.metricsFromSums(total, 0.5*m.Cfg.WeightDecay*wsq)
	d, h := m.Cfg.D, m.Cfg.H
	dead := 0
	for _, f := range total[sumHead+d+h : sumHead+d+2*h] {
		if f == 0 {
			dead++
		}
	}
	met.DeadFraction = float64(dead) / float64(h)
	return met
}
