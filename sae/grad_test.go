package sae

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// modelConfigs returns every activation × output × sparsity × tied combination
// that Validate accepts, plus the L1-with-decoder-norm and AuxK variants,
// at small sizes.
func modelConfigs() []Config {
	var out []Config
	for _, act := range []string{ActSigmoid, ActReLU, ActTopK} {
		for _, outp := range []string{OutSigmoid, OutLinear} {
			for _, sp := range []string{SparsityKL, SparsityL1, SparsityTopK, SparsityNone} {
				for _, tied := range []bool{false, true} {
					c := DefaultConfig()
					c.D, c.H = 5, 6
					c.Activation, c.Output, c.Sparsity, c.Tied = act, outp, sp, tied
					c.Rho, c.Beta, c.L1, c.WeightDecay = 0.2, 0.7, 0.05, 0.03
					if act == ActTopK {
						c.H, c.K = 8, 3
					}
					if c.Validate() != nil {
						continue
					}
					out = append(out, c)
					switch sp {
					case SparsityL1:
						v := c
						v.L1DecoderNorm = true
						out = append(out, v)
					case SparsityTopK:
						v := c
						v.AuxK, v.AuxCoef = 2, 0.5
						out = append(out, v)
					}
				}
			}
		}
	}
	return out
}

func cfgName(c Config) string {
	s := fmt.Sprintf("%s-%s-%s", c.Activation, c.Output, c.Sparsity)
	if c.Tied {
		s += "-tied"
	}
	if c.L1DecoderNorm {
		s += "-decnorm"
	}
	if c.AuxK > 0 {
		s += "-auxk"
	}
	return s
}

// testProblem returns a model with random weights and biases, a batch, and
// for AuxK a tracker with half the latents dead.
func testProblem(t testing.TB, c Config, rows int, seed uint64) (*Model, []float32) {
	t.Helper()
	c.Seed = seed
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	for _, s := range []Span{m.layout.BEnc, m.layout.BDec} {
		for i := s.Off; i < s.End(); i++ {
			m.Params[i] = float32(rng.Float64() - 0.5)
		}
	}
	if c.Activation != ActSigmoid {
		// spread the pre-activations so that several latents are active
		for i := range m.Enc() {
			m.Enc()[i] *= 1.5
		}
	}
	if c.AuxK > 0 {
		st := make([]uint32, c.H)
		for j := 1; j < c.H; j += 2 {
			st[j] = uint32(c.DeadWindow)
		}
		if err := m.SetTrainState(st); err != nil {
			t.Fatal(err)
		}
	}
	x := make([]float32, rows*c.D)
	for i := range x {
		x[i] = float32(rng.Float64())
	}
	return m, x
}

func toRows(x []float32, rows, d int) [][]float64 {
	out := make([][]float64, rows)
	for i := range out {
		out[i] = make([]float64, d)
		for f := range out[i] {
			out[i][f] = float64(x[i*d+f])
		}
	}
	return out
}

// TestGradientCheck compares the analytic gradient of the two-phase path
// (Stats, Gradient, Finalize) with central differences of the float64
// reference objective, for every valid combination.
func TestGradientCheck(t *testing.T) {
	const rows, eps, tol = 7, 1e-5, 1e-4
	for _, c := range modelConfigs() {
		t.Run(cfgName(c), func(t *testing.T) {
			var (
				m      *Model
				x      []float32
				num    []float64
				margin float64
			)
			// Pick the first seed whose ReLU kinks and top-k cuts are at least
			// 1e-3 away from every evaluation point, so that the loss is smooth
			// within ±eps (deterministic: the same seed every run).
			for seed := uint64(1); ; seed++ {
				if seed > 200 {
					t.Fatalf("no seed with smooth selection margins")
				}
				m, x = testProblem(t, c, rows, seed)
				ref := newRef(m)
				xr := toRows(x, rows, c.D)
				ref.setAuxTarget(xr)
				num, margin = ref.numGrad(xr, eps)
				if margin > 1e-3 {
					break
				}
			}
			grad := make([]float32, m.GradLen())
			s := m.NewStep(rows)
			stats := make([]float64, m.StatsLen())
			sums := make([]float64, m.SumsLen())
			s.Stats(x, rows, stats)
			s.Gradient(stats, grad, sums)
			met := m.Finalize(grad, sums)
			if met.Rows != rows {
				t.Fatalf("metrics rows = %d, want %d", met.Rows, rows)
			}
			if (c.AuxK > 0 && !(met.AuxK > 0)) || ((c.Sparsity == SparsityKL || c.Sparsity == SparsityL1) && !(met.Sparsity > 0)) {
				t.Fatalf("the penalty under test is inactive: %+v", met)
			}
			maxAbs := 0.0
			for _, v := range num {
				maxAbs = math.Max(maxAbs, math.Abs(v))
			}
			if maxAbs == 0 {
				t.Fatal("reference gradient is zero; the problem checks nothing")
			}
			worst := 0.0
			for i, v := range num {
				rel := math.Abs(float64(grad[i])-v) / math.Max(math.Abs(v), 1e-3*maxAbs)
				if rel > worst {
					worst = rel
				}
				if rel > tol {
					t.Errorf("param %d (weight=%v): analytic %.9g, numeric %.9g, rel err %.3g", i, m.layout.IsWeight(i), grad[i], v, rel)
				}
			}
			t.Logf("max rel err %.3g over %d params (margin %.3g)", worst, len(num), margin)
		})
	}
}

// TestLossMatchesReference checks the loss terms reported by Finalize
// against the float64 reference objective.
func TestLossMatchesReference(t *testing.T) {
	const rows = 9
	for _, c := range modelConfigs() {
		t.Run(cfgName(c), func(t *testing.T) {
			m, x := testProblem(t, c, rows, 3)
			ref := newRef(m)
			xr := toRows(x, rows, c.D)
			ref.setAuxTarget(xr)
			want, _ := ref.loss(xr)
			grad := make([]float32, m.GradLen())
			met := m.NewStep(rows).Compute(x, rows, grad)
			if math.Abs(met.Loss-want) > 1e-5*math.Abs(want) {
				t.Fatalf("loss %.9g, reference %.9g", met.Loss, want)
			}
			sum := met.Recon + met.Sparsity + met.WeightDecay + met.AuxK
			if math.Abs(sum-met.Loss) > 1e-12*math.Abs(met.Loss) {
				t.Fatalf("loss %v is not the sum of its terms %v", met.Loss, sum)
			}
		})
	}
}

// TestWeightDecayOnlyOnWeights checks that λ changes exactly the weight
// entries of the gradient, by λ·W, and never the biases.
func TestWeightDecayOnlyOnWeights(t *testing.T) {
	for _, tied := range []bool{false, true} {
		c := DefaultConfig()
		c.D, c.H, c.Tied, c.WeightDecay = 6, 4, tied, 0
		m0, x := testProblem(t, c, 5, 7)
		c.WeightDecay = 0.25
		m1 := m0.Clone()
		m1.Cfg.WeightDecay = 0.25
		g0 := make([]float32, m0.GradLen())
		g1 := make([]float32, m1.GradLen())
		m0.NewStep(5).Compute(x, 5, g0)
		met := m1.NewStep(5).Compute(x, 5, g1)
		wsq := 0.0
		for i := range g0 {
			want := g0[i]
			if m0.layout.IsWeight(i) {
				want += 0.25 * m0.Params[i]
				wsq += float64(m0.Params[i]) * float64(m0.Params[i])
			}
			if math.Abs(float64(g1[i]-want)) > 1e-6 {
				t.Fatalf("tied=%v param %d (weight=%v): grad %v, want %v", tied, i, m0.layout.IsWeight(i), g1[i], want)
			}
		}
		if math.Abs(met.WeightDecay-0.125*wsq) > 1e-6*wsq { // float32 partial sums
			t.Fatalf("tied=%v weight decay term %v, want %v", tied, met.WeightDecay, 0.125*wsq)
		}
	}
}

// TestNaNParamsShowInLoss: a NaN parameter is never hidden by the kernels
// (clamps, ReLU, top-k); it makes the loss NaN so that training stops.
func TestNaNParamsShowInLoss(t *testing.T) {
	for _, c := range modelConfigs() {
		spans := []Span{layoutFor(c).BDec}
		if c.Activation != ActTopK {
			spans = append(spans, layoutFor(c).Enc)
		}
		for _, sp := range spans {
			m, x := testProblem(t, c, 4, 1)
			m.Params[sp.Off] = float32(math.NaN())
			met := m.NewStep(4).Compute(x, 4, make([]float32, m.GradLen()))
			if !math.IsNaN(met.Loss) {
				t.Fatalf("%s: NaN at param %d gives loss %v", cfgName(c), sp.Off, met.Loss)
			}
		}
	}
}
