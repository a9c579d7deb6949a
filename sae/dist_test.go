package sae

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// splitStep runs one step the way the cluster does: the batch is cut into
// parts (one Step each, like workers), the stats of every part are summed,
// every part's Gradient gets the summed stats, gradients (float32, as the
// ring reduces them) and sums are added, and Finalize runs on the totals.
func splitStep(t *testing.T, m *Model, x []float32, bounds []int) ([]float32, Metrics) {
	t.Helper()
	d := m.Cfg.D
	parts := len(bounds) - 1
	steps := make([]*Step, parts)
	stats := make([]float64, m.StatsLen())
	part := make([]float64, m.StatsLen())
	for p := 0; p < parts; p++ {
		lo, hi := bounds[p], bounds[p+1]
		steps[p] = m.NewStep(max(hi-lo, 1))
		steps[p].Stats(x[lo*d:hi*d], hi-lo, part)
		for i, v := range part {
			stats[i] += v
		}
	}
	grad := make([]float32, m.GradLen())
	sums := make([]float64, m.SumsLen())
	pg := make([]float32, m.GradLen())
	ps := make([]float64, m.SumsLen())
	for p := 0; p < parts; p++ {
		steps[p].Gradient(stats, pg, ps)
		for i, v := range pg {
			grad[i] += v
		}
		for i, v := range ps {
			sums[i] += v
		}
	}
	return grad, m.Finalize(grad, sums)
}

func evenBounds(rows, parts int) []int {
	b := make([]int, parts+1)
	for p := 0; p <= parts; p++ {
		b[p] = p * rows / parts
	}
	return b
}

func distConfigs() map[string]Config {
	base := DefaultConfig()
	base.D, base.H, base.WeightDecay = 12, 10, 0.01
	kl := base
	l1 := base
	l1.Activation, l1.Sparsity, l1.Output, l1.L1, l1.L1DecoderNorm = ActReLU, SparsityL1, OutLinear, 0.1, true
	topk := base
	topk.Activation, topk.Sparsity, topk.Output, topk.K, topk.AuxK, topk.AuxCoef = ActTopK, SparsityTopK, OutLinear, 3, 2, 1.0/32
	tiedKL := kl
	tiedKL.Tied = true
	return map[string]Config{"kl": kl, "l1": l1, "topk": topk, "kl-tied": tiedKL}
}

// metricsTol is the relative tolerance between the metrics of the same rows
// computed in different batchings. Metrics are float64 sums of float32
// per-row values, and a BLAS may round a row's float32 products differently
// for different batch shapes (OpenBLAS picks its kernels by shape), so they
// agree to a few float32 ulps rather than bitwise. A lost or doubled row
// moves them by orders of magnitude more.
const metricsTol = 1e-6

func closeMetrics(a, b Metrics, tol float64) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 0; i < va.NumField(); i++ {
		x, y := va.Field(i), vb.Field(i)
		if x.Kind() == reflect.Int {
			if x.Int() != y.Int() {
				return false
			}
			continue
		}
		fx, fy := x.Float(), y.Float()
		if math.Abs(fx-fy) > tol*math.Max(1, math.Max(math.Abs(fx), math.Abs(fy))) {
			return false
		}
	}
	return true
}

// TestDistributedEquivalence: splitting a batch into 1, 2, 3 and 7 parts
// (and parts with no rows) gives the whole-batch gradient, metrics and
// dead-latent tracker.
func TestDistributedEquivalence(t *testing.T) {
	const rows = 21
	for name, c := range distConfigs() {
		t.Run(name, func(t *testing.T) {
			m, x := testProblem(t, c, rows, 11)
			ref := m.Clone()
			want := make([]float32, m.GradLen())
			wantMet := ref.NewStep(rows).Compute(x, rows, want)
			scale := 0.0
			for _, v := range want {
				scale = math.Max(scale, math.Abs(float64(v)))
			}
			cases := map[string][]int{
				"1": evenBounds(rows, 1), "2": evenBounds(rows, 2), "3": evenBounds(rows, 3),
				"7": evenBounds(rows, 7), "empty-parts": {0, 0, 10, 10, 21, 21},
			}
			for cname, bounds := range cases {
				mm := m.Clone()
				got, met := splitStep(t, mm, x, bounds)
				for i := range want {
					if math.Abs(float64(got[i]-want[i])) > 1e-5*scale {
						t.Fatalf("%s parts: grad[%d] = %v, whole batch %v", cname, i, got[i], want[i])
					}
				}
				if !closeMetrics(met, wantMet, metricsTol) {
					t.Fatalf("%s parts: metrics\n %+v\nwhole batch\n %+v", cname, met, wantMet)
				}
				if !reflect.DeepEqual(mm.TrainState(), ref.TrainState()) {
					t.Fatalf("%s parts: tracker %v, whole batch %v", cname, mm.TrainState(), ref.TrainState())
				}
			}
		})
	}
}

// TestGradientWithoutStats: for kinds that need no stats, Load followed by
// Gradient (the encoder runs inside Gradient) equals Stats then Gradient.
func TestGradientWithoutStats(t *testing.T) {
	for name, c := range distConfigs() {
		if c.Sparsity == SparsityKL {
			continue
		}
		m, x := testProblem(t, c, 9, 5)
		s := m.NewStep(9)
		g1 := make([]float32, m.GradLen())
		g2 := make([]float32, m.GradLen())
		s1 := make([]float64, m.SumsLen())
		s2 := make([]float64, m.SumsLen())
		s.Stats(x, 9, nil)
		s.Gradient(nil, g1, s1)
		s.Load(x, 9)
		s.Gradient(nil, g2, s2)
		if !reflect.DeepEqual(g1, g2) || !reflect.DeepEqual(s1, s2) {
			t.Fatalf("%s: Load+Gradient differs from Stats+Gradient", name)
		}
	}
}

// TestStepReuse: a Step reused for batches of different sizes gives the
// same results as fresh Steps (no state leaks between batches).
func TestStepReuse(t *testing.T) {
	for name, c := range distConfigs() {
		m, x := testProblem(t, c, 13, 2)
		s := m.NewStep(13)
		g := make([]float32, m.GradLen())
		for _, rows := range []int{13, 4, 9} {
			a := m.Clone()
			b := m.Clone()
			s.m = a
			ma := s.Compute(x, rows, g)
			want := make([]float32, m.GradLen())
			mb := b.NewStep(rows).Compute(x, rows, want)
			if !reflect.DeepEqual(g, want) || !reflect.DeepEqual(ma, mb) {
				t.Fatalf("%s rows=%d: reused step differs from a fresh one", name, rows)
			}
		}
	}
}

// TestParallelMatchesSerial: the goroutine split of elementwise, column-sum
// and scatter work changes nothing, bit for bit.
func TestParallelMatchesSerial(t *testing.T) {
	defer func(v int) { parallelMinWork = v }(parallelMinWork)
	for name, c := range distConfigs() {
		m, x := testProblem(t, c, 17, 4)
		run := func(workers int) ([]float32, Metrics, []uint32) {
			mm := m.Clone()
			s := mm.NewStep(17)
			s.workers = workers
			g := make([]float32, mm.GradLen())
			met := s.Compute(x, 17, g)
			return g, met, mm.TrainState()
		}
		parallelMinWork = 1 << 15
		g1, m1, t1 := run(1)
		parallelMinWork = 1
		g3, m3, t3 := run(3)
		if !reflect.DeepEqual(g1, g3) || !reflect.DeepEqual(m1, m3) || !reflect.DeepEqual(t1, t3) {
			t.Fatalf("%s: 3 workers differ from 1", name)
		}
	}
}

// TestSparseDecoderMatchesDense: the sparse gather/scatter decoder of topk
// gives the gradient of the dense formulation.
func TestSparseDecoderMatchesDense(t *testing.T) {
	for _, c := range modelConfigs() {
		if c.Activation != ActTopK {
			continue
		}
		m, x := testProblem(t, c, 11, 3)
		a, b := m.Clone(), m.Clone()
		ga := make([]float32, m.GradLen())
		gb := make([]float32, m.GradLen())
		ma := a.NewStep(11).Compute(x, 11, ga)
		sb := b.NewStep(11)
		sb.useDenseDecoder()
		mb := sb.Compute(x, 11, gb)
		for i := range ga {
			if math.Abs(float64(ga[i]-gb[i])) > 1e-5*(1+math.Abs(float64(gb[i]))) {
				t.Fatalf("%s: grad[%d] sparse %v, dense %v", cfgName(c), i, ga[i], gb[i])
			}
		}
		if !closeMetrics(ma, mb, 1e-6) {
			t.Fatalf("%s: metrics sparse %+v, dense %+v", cfgName(c), ma, mb)
		}
	}
}

// TestGemmSplit: a product split by rows of C across goroutines equals the
// unsplit product, for every transposition and for sizes that do not divide
// evenly.
func TestGemmSplit(t *testing.T) {
	defer func(v int, s bool) { parallelMinWork, gemmSplit = v, s }(parallelMinWork, gemmSplit)
	parallelMinWork = 1
	rng := rand.New(rand.NewPCG(5, 5))
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	for _, sz := range [][3]int{{37, 5, 53}, {16, 7, 3}, {70, 33, 1}, {1, 4, 9}} {
		m, k, n := sz[0], sz[1], sz[2] // C is m×n, inner size k
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				ar, ac := m, k
				if tA {
					ar, ac = k, m
				}
				br, bc := k, n
				if tB {
					br, bc = n, k
				}
				a, b, c0 := fill(ar*ac), fill(br*bc), fill(m*n)
				want := append([]float32(nil), c0...)
				got := append([]float32(nil), c0...)
				gemmSplit = false
				gemm(tA, tB, 1.5, a, ar, ac, b, br, bc, 0.5, want, m, n)
				gemmSplit = true
				gemm(tA, tB, 1.5, a, ar, ac, b, br, bc, 0.5, got, m, n)
				for i := range want {
					if math.Abs(float64(got[i]-want[i])) > 1e-5*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("m=%d k=%d n=%d tA=%v tB=%v: C[%d] = %v split, %v whole", m, k, n, tA, tB, i, got[i], want[i])
					}
				}
			}
		}
	}
}
