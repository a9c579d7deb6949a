package sae

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestNewDeterministicInit(t *testing.T) {
	for _, tied := range []bool{false, true} {
		c := DefaultConfig()
		c.D, c.H, c.Tied, c.Seed = 30, 20, tied, 42
		a, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := New(c)
		if !reflect.DeepEqual(a.Params, b.Params) {
			t.Fatal("same seed gave different parameters")
		}
		c.Seed = 43
		other, _ := New(c)
		if reflect.DeepEqual(a.Params, other.Params) {
			t.Fatal("different seeds gave identical parameters")
		}
		want := 2*c.D*c.H + c.D + c.H
		if tied {
			want = c.D*c.H + c.D + c.H
		}
		if a.NumParams() != want || a.GradLen() != want {
			t.Fatalf("NumParams %d, want %d", a.NumParams(), want)
		}
		r := math.Sqrt(6.0 / float64(c.D+c.H+1))
		l := a.Layout()
		var lo, hi float32
		for i, v := range a.Params {
			if l.IsWeight(i) {
				if math.Abs(float64(v)) > r {
					t.Fatalf("weight %d = %v outside ±%v", i, v, r)
				}
				lo, hi = min(lo, v), max(hi, v)
			} else if v != 0 {
				t.Fatalf("bias %d = %v, want 0", i, v)
			}
		}
		// the draw covers the range (not, say, a tenth of it)
		if float64(hi) < 0.9*r || float64(lo) > -0.9*r {
			t.Fatalf("weights span [%v, %v], want close to ±%v", lo, hi, r)
		}
		if tied != (l.Dec == l.Enc) {
			t.Fatalf("tied=%v but layout %+v", tied, l)
		}
	}
}

func TestSAELensRoundTrip(t *testing.T) {
	for _, tied := range []bool{false, true} {
		c := DefaultConfig()
		c.D, c.H, c.Tied = 3, 2, tied
		m, x := testProblem(t, c, 1, 9)
		_ = x
		wEnc, wDec, bEnc, bDec := m.SAELens()
		// W_enc[i][j] (d×h) is the weight from input i to latent j.
		for i := 0; i < c.D; i++ {
			for j := 0; j < c.H; j++ {
				if wEnc[i*c.H+j] != m.Enc()[j*c.D+i] {
					t.Fatalf("W_enc[%d][%d] = %v, want encoder row %d col %d = %v", i, j, wEnc[i*c.H+j], j, i, m.Enc()[j*c.D+i])
				}
				if tied && wDec[j*c.D+i] != wEnc[i*c.H+j] {
					t.Fatal("tied W_dec is not W_enc transposed")
				}
			}
		}
		back, err := FromSAELens(c, wEnc, wDec, bEnc, bDec)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Params, m.Params) {
			t.Fatalf("tied=%v: round trip changed the parameters", tied)
		}
		wEnc[0] = 99 // copies, not views
		if m.Enc()[0] == 99 {
			t.Fatal("SAELens returned a view")
		}
	}
}

func TestFromSAELensShapeErrors(t *testing.T) {
	c := DefaultConfig()
	c.D, c.H = 4, 3
	good := func() [][]float32 {
		return [][]float32{make([]float32, 12), make([]float32, 12), make([]float32, 3), make([]float32, 4)}
	}
	for i, name := range []string{"W_enc", "W_dec", "b_enc", "b_dec"} {
		ts := good()
		ts[i] = ts[i][:len(ts[i])-1]
		_, err := FromSAELens(c, ts[0], ts[1], ts[2], ts[3])
		if !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), name) {
			t.Fatalf("short %s: error %v", name, err)
		}
	}
	c.Tied = true
	ts := good()
	ts[1][5] = 1
	if _, err := FromSAELens(c, ts[0], ts[1], ts[2], ts[3]); !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), "W_dec[1][1]") {
		t.Fatalf("tied mismatch: %v", err)
	}
	c.Rho = 2
	if _, err := FromSAELens(c, ts[0], ts[1], ts[2], ts[3]); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad config: %v", err)
	}
}

func TestTrainStateRoundTrip(t *testing.T) {
	c := DefaultConfig()
	c.D, c.H = 4, 3
	m, _ := New(c)
	if err := m.SetTrainState([]uint32{1, 2}); !errors.Is(err, ErrShape) {
		t.Fatalf("short state: %v", err)
	}
	if err := m.SetTrainState([]uint32{5, 2000, 7}); err != nil {
		t.Fatal(err)
	}
	if got := m.TrainState(); !reflect.DeepEqual(got, []uint32{5, 2000, 7}) {
		t.Fatalf("state %v", got)
	}
	if got := m.DeadFraction(); got != 1.0/3 {
		t.Fatalf("dead fraction %v, want 1/3", got)
	}
}

// TestDeadTracker: a latent that never activates is dead after exactly
// DeadWindow steps; active latents are never dead.
func TestDeadTracker(t *testing.T) {
	c := DefaultConfig()
	c.D, c.H, c.Activation, c.Sparsity, c.Output, c.K, c.DeadWindow = 4, 3, ActTopK, SparsityTopK, OutLinear, 1, 3
	m, _ := New(c)
	// latent 2 can never fire: its encoder weights and bias push z < 0 for x >= 0
	for i := range m.Enc() {
		m.Enc()[i] = 0.5
	}
	for i := 0; i < c.D; i++ {
		m.Enc()[2*c.D+i] = -1
	}
	m.BEnc()[0] = 0.1 // latent 0 wins the top-1 on every row
	x := []float32{1, 0, 0, 1, 0, 1, 1, 0}
	s := m.NewStep(2)
	g := make([]float32, m.GradLen())
	for step := 1; step <= 4; step++ {
		met := s.Compute(x, 2, g)
		want := 0.0
		if step >= 3 {
			want = 2.0 / 3 // latents 1 (always beaten) and 2
		}
		if met.DeadFraction != want {
			t.Fatalf("step %d: dead fraction %v, want %v (state %v)", step, met.DeadFraction, want, m.TrainState())
		}
		if met.L0 != 1 {
			t.Fatalf("step %d: L0 %v, want 1", step, met.L0)
		}
	}
}

func TestTopKSelection(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 500; trial++ {
		h := 1 + rng.IntN(40)
		k := 1 + rng.IntN(h)
		row := make([]float32, h)
		bias := make([]float32, h)
		for j := range row {
			bias[j] = float32(rng.IntN(3) - 1)
			row[j] = float32(rng.IntN(7)-2) - bias[j] // many ties and non-positive values
		}
		var cand []int32
		if trial%2 == 1 {
			for j := 0; j < h; j++ {
				if rng.IntN(2) == 0 {
					cand = append(cand, int32(j))
				}
			}
		}
		idx := make([]int32, k)
		val := make([]float32, k)
		n := topK(row, bias, k, cand, idx, val)
		for j := range row {
			row[j] += bias[j]
		}
		// brute force: candidates with positive value, by value desc then index asc
		var want []int32
		for j := 0; j < h; j++ {
			if (cand == nil || contains(cand, int32(j))) && row[j] > 0 {
				want = append(want, int32(j))
			}
		}
		sort.SliceStable(want, func(a, b int) bool { return row[want[a]] > row[want[b]] })
		if len(want) > k {
			want = want[:k]
		}
		sort.Slice(want, func(a, b int) bool { return want[a] < want[b] })
		if n != len(want) || (n > 0 && !reflect.DeepEqual(idx[:n], want)) {
			t.Fatalf("row %v k=%d cand=%v: got %v, want %v", row, k, cand, idx[:n], want)
		}
		for t2 := 0; t2 < n; t2++ {
			if val[t2] != row[idx[t2]] {
				t.Fatalf("value mismatch")
			}
		}
	}
}

func contains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestExpfAccuracy(t *testing.T) {
	worst := 0.0
	for x := -87.0; x <= 88; x += 0.0137 {
		got := float64(expf(float32(x)))
		want := math.Exp(float64(float32(x)))
		rel := math.Abs(got-want) / want
		worst = math.Max(worst, rel)
	}
	if worst > 3e-7 {
		t.Fatalf("expf max relative error %g > 3e-7", worst)
	}
	for _, z := range []float32{-200, -90, 0, 90, 200} {
		s := sigmoidf(z)
		if math.IsNaN(float64(s)) || s < 0 || s > 1 {
			t.Fatalf("sigmoidf(%v) = %v", z, s)
		}
	}
	if sigmoidf(0) != 0.5 {
		t.Fatalf("sigmoidf(0) = %v", sigmoidf(0))
	}
}

// TestEvaluate: batching does not change evaluation metrics; they match a
// step's metrics on the same rows; the model is not modified.
func TestEvaluate(t *testing.T) {
	for name, c := range distConfigs() {
		m, x := testProblem(t, c, 20, 8)
		before := m.Clone()
		whole := m.Evaluate(x, 20, 20)
		batched := m.Evaluate(x, 20, 6)
		if !closeMetrics(whole, batched, metricsTol) {
			t.Fatalf("%s: batch 20 %+v, batch 6 %+v", name, whole, batched)
		}
		if !reflect.DeepEqual(m.Params, before.Params) || !reflect.DeepEqual(m.TrainState(), before.TrainState()) {
			t.Fatalf("%s: Evaluate modified the model", name)
		}
		step := before.NewStep(20).Compute(x, 20, make([]float32, m.GradLen()))
		step.DeadFraction = whole.DeadFraction // different definitions
		if !closeMetrics(whole, step, metricsTol) {
			t.Fatalf("%s: evaluate %+v, step %+v", name, whole, step)
		}
		if whole.Rows != 20 || !(whole.FVU > 0) || !(whole.MSE > 0) {
			t.Fatalf("%s: implausible metrics %+v", name, whole)
		}
	}
}

// TestEvaluatorSplits: an Evaluator fed the same rows in pieces of any
// sizes (empty pieces, pieces that split a batch, pieces of several batches)
// reports Evaluate's metrics, before and after more rows are added, and does
// not modify the model.
func TestEvaluatorSplits(t *testing.T) {
	const rows, batch = 23, 5
	for name, c := range distConfigs() {
		m, x := testProblem(t, c, rows, 13)
		before := m.Clone()
		want := m.Evaluate(x, rows, batch)
		if want.Rows != rows || !(want.MSE > 0) {
			t.Fatalf("%s: implausible metrics %+v", name, want)
		}
		if got := m.NewEvaluator(batch).Metrics(); got.Rows != 0 || got.Loss != 0 || got.DeadFraction != 1 {
			t.Fatalf("%s: metrics of no rows %+v, want Rows 0, Loss 0 and every latent dead", name, got)
		}
		splits := [][]int{
			{rows},
			{0, rows, 0},
			{1, 1, 1, 20},
			{4, 0, 7, 3, 9},
			{5, 5, 5, 5, 3},
			{12, 11},
			{2, 3, 4, 5, 6, 3},
		}
		for _, split := range splits {
			e := m.NewEvaluator(batch)
			lo := 0
			for _, n := range split {
				e.Add(x[lo*c.D:(lo+n)*c.D], n)
				lo += n
				if lo == 12 { // Metrics mid-stream must not disturb what follows
					if got, part := e.Metrics(), m.Evaluate(x, 12, batch); !closeMetrics(got, part, metricsTol) {
						t.Fatalf("%s: split %v after 12 rows: %+v, Evaluate %+v", name, split, got, part)
					}
				}
			}
			if lo != rows {
				t.Fatalf("split %v covers %d rows, want %d", split, lo, rows)
			}
			if got := e.Metrics(); !closeMetrics(got, want, metricsTol) {
				t.Fatalf("%s: split %v: %+v, Evaluate %+v", name, split, got, want)
			}
		}
		if !reflect.DeepEqual(m.Params, before.Params) || !reflect.DeepEqual(m.TrainState(), before.TrainState()) {
			t.Fatalf("%s: the Evaluator modified the model", name)
		}
	}
}

// TestMetricsDefinitions checks MSE, FVU, L0 and mean activation against
// direct computation from the reference forward pass.
func TestMetricsDefinitions(t *testing.T) {
	for name, c := range distConfigs() {
		const rows = 8
		m, x := testProblem(t, c, rows, 6)
		ref := newRef(m)
		xr := toRows(x, rows, c.D)
		var se, l0, sumA float64
		mean := make([]float64, c.D)
		for i, xi := range xr {
			f := ref.forward(xi, i)
			for o := range xi {
				se += (f.xhat[o] - xi[o]) * (f.xhat[o] - xi[o])
				mean[o] += xi[o] / rows
			}
			for j, z := range f.z {
				sumA += f.a[j]
				if z > 0 && (c.Activation != ActTopK || f.a[j] > 0) {
					l0++
				}
			}
		}
		var ss float64
		for _, xi := range xr {
			for o := range xi {
				ss += (xi[o] - mean[o]) * (xi[o] - mean[o])
			}
		}
		met := m.NewStep(rows).Compute(x, rows, make([]float32, m.GradLen()))
		for _, chk := range []struct {
			what      string
			got, want float64
		}{
			{"mse", met.MSE, se / (rows * float64(c.D))},
			{"fvu", met.FVU, se / ss},
			{"l0", met.L0, l0 / rows},
			{"mean activation", met.MeanActivation, sumA / (rows * float64(c.H))},
		} {
			if math.Abs(chk.got-chk.want) > 1e-5*math.Abs(chk.want) {
				t.Fatalf("%s: %s = %v, want %v", name, chk.what, chk.got, chk.want)
			}
		}
	}
}

// TestSigmoidBias: the vector kernel (when the CPU has one) agrees with
// the exact sigmoid for every length (tails included) and extreme inputs.
func TestSigmoidBias(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for n := 0; n <= 41; n++ {
		x := make([]float32, n)
		b := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 30)
			b[i] = float32(rng.NormFloat64())
		}
		x = append(x, 1e9) // past len(dst): must not be read or written
		dst := make([]float32, n+1)
		dst[n] = -7
		sigmoidBias(dst[:n], x, b)
		if dst[n] != -7 {
			t.Fatalf("n=%d: wrote past the end", n)
		}
		for i := 0; i < n; i++ {
			z := float64(x[i] + b[i]) // the kernel adds in float32
			want := 1 / (1 + math.Exp(-z))
			if math.Abs(float64(dst[i])-want) > 1e-6*want {
				t.Fatalf("n=%d i=%d: sigmoid(%v) = %v, want %v (avx2=%v)", n, i, z, dst[i], want, haveSigmoidAVX2)
			}
		}
	}
	// NaN propagates (a diverged model must not look healthy), in the vector
	// body and in the tail
	nan := float32(math.NaN())
	xs := []float32{0, nan, 1, 2, 3, 4, 5, 6, 7, nan}
	out := make([]float32, len(xs))
	sigmoidBias(out, xs, make([]float32, len(xs)))
	if !math.IsNaN(float64(out[1])) || !math.IsNaN(float64(out[9])) || out[0] != 0.5 {
		t.Fatalf("NaN handling: %v", out)
	}
	// in place, as the step uses it
	x := []float32{-100, -3, 0, 3, 100, 1, 2, 3, 4}
	sigmoidBias(x, x, make([]float32, len(x)))
	if x[2] != 0.5 || x[4] != 1 || !(x[0] > 0) {
		t.Fatalf("in place: %v", x)
	}
}

// TestVectorKernels: axpyUnit and dotUnit (AVX2 where available) against
// float64 loops, for every length up to 70 (tails included), at unaligned
// offsets, without touching memory past the end.
func TestVectorKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for n := 0; n <= 70; n++ {
		x := make([]float32, n+3)
		y := make([]float32, n+3)
		for i := range x {
			x[i], y[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		xs, ys := x[1:n+1], y[2:n+2]
		var want float64
		for i := range xs {
			want += float64(xs[i]) * float64(ys[i])
		}
		got := dotUnit(xs, ys)
		if math.Abs(float64(got)-want) > 1e-5*(1+math.Abs(want)) {
			t.Fatalf("n=%d: dot %v, want %v", n, got, want)
		}
		before := append([]float32(nil), y...)
		axpyUnit(0.75, xs, ys)
		for i := range y {
			w := before[i]
			if i >= 2 && i < n+2 {
				w += 0.75 * x[i-1]
			}
			if math.Abs(float64(y[i]-w)) > 1e-6*(1+math.Abs(float64(w))) {
				t.Fatalf("n=%d: y[%d] = %v, want %v", n, i, y[i], w)
			}
		}
	}
}

// TestScaleAndSumSquaresKernels: scaleUnit is an exact per-element product
// (bitwise equal to a scalar loop, NaN and ±Inf included) and sumSquares
// (AVX2 where available) is bitwise equal to sumSquaresGo and within
// rounding of a float64 loop, for every length up to 70 and a long one, at
// unaligned offsets, without touching memory past the end.
func TestScaleAndSumSquaresKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	lengths := make([]int, 0, 72)
	for n := 0; n <= 70; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 100_003)
	for _, n := range lengths {
		x := make([]float32, n+2)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * math.Exp(4*rng.NormFloat64()))
		}
		if n > 5 {
			x[3], x[4], x[5] = float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))
		}
		xs := x[1 : n+1]
		before := append([]float32(nil), x...)
		const alpha = float32(1.0 / 3)
		scaleUnit(alpha, xs)
		for i := range x {
			w := before[i]
			if i >= 1 && i < n+1 {
				w *= alpha
			}
			if math.Float32bits(x[i]) != math.Float32bits(w) && !(w != w && x[i] != x[i]) {
				t.Fatalf("n=%d: x[%d] = %v after scaling, want %v", n, i, x[i], w)
			}
		}
		copy(x, before)
		if n > 5 {
			x[3], x[4], x[5] = 1, 2, 3
		}
		got, ref := sumSquares(xs), sumSquaresGo(xs)
		if math.Float64bits(got) != math.Float64bits(ref) {
			t.Fatalf("n=%d: sumSquares %v, sumSquaresGo %v: not bitwise equal", n, got, ref)
		}
		var want float64
		for _, v := range xs {
			want += float64(v) * float64(v)
		}
		if math.Abs(got-want) > 1e-12*(1+want) {
			t.Fatalf("n=%d: sumSquares %v, want %v", n, got, want)
		}
	}
}
