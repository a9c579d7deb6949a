package sae

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchSizes are the step sizes of the project's benchmark table.
var benchSizes = []struct{ d, h, b int }{
	{784, 196, 256},
	{512, 4096, 1024},
}

func benchConfig(kind string, d, h int) Config {
	c := DefaultConfig()
	c.D, c.H = d, h
	if kind == "topk" {
		c.Activation, c.Sparsity, c.Output, c.K = ActTopK, SparsityTopK, OutLinear, 32
		c.WeightDecay = 0
	}
	return c
}

func benchData(rows, d int) []float32 {
	rng := rand.New(rand.NewPCG(7, 7))
	x := make([]float32, rows*d)
	for i := range x {
		x[i] = float32(rng.Float64())
	}
	return x
}

// benchStep times one full training step: Stats, Gradient and Finalize (the
// optimizer update is not included), and reports samples/s.
func benchStep(b *testing.B, c Config, rows int, dense bool) {
	m, err := New(c)
	if err != nil {
		b.Fatal(err)
	}
	x := benchData(rows, c.D)
	s := m.NewStep(rows)
	if dense {
		s.useDenseDecoder()
	}
	grad := make([]float32, m.GradLen())
	s.Compute(x, rows, grad) // warm up
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.Compute(x, rows, grad)
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkStep: one training step (two phases + finalize) for KL
// (sigmoid/sigmoid, weight decay) and TopK k=32 (relu-topk, linear output).
func BenchmarkStep(b *testing.B) {
	for _, kind := range []string{"kl", "topk"} {
		for _, sz := range benchSizes {
			name := fmt.Sprintf("%s/d=%d,h=%d,B=%d", kind, sz.d, sz.h, sz.b)
			if kind == "topk" {
				name = fmt.Sprintf("%s/k=32/d=%d,h=%d,B=%d", kind, sz.d, sz.h, sz.b)
			}
			b.Run(name, func(b *testing.B) { benchStep(b, benchConfig(kind, sz.d, sz.h), sz.b, false) })
		}
	}
}

// BenchmarkTopKDecoder compares the TopK step with the sparse decoder
// (gather/scatter of the k active rows) against the same step with a dense
// decoder (matrix products over the rows×h activation matrix).
func BenchmarkTopKDecoder(b *testing.B) {
	sz := benchSizes[1]
	for _, dense := range []bool{false, true} {
		name := "sparse"
		if dense {
			name = "dense"
		}
		b.Run(fmt.Sprintf("%s/k=32/d=%d,h=%d,B=%d", name, sz.d, sz.h, sz.b), func(b *testing.B) {
			benchStep(b, benchConfig("topk", sz.d, sz.h), sz.b, dense)
		})
	}
}

// BenchmarkGemm reports GFLOP/s of the package's gemm (on this build's
// backend, see Backend) for the products of the step at the benchmark sizes:
// the encoder x·Encᵀ (NT), the decoder a·Dec (NN) and the decoder gradient
// aᵀ·d3 (TN).
func BenchmarkGemm(b *testing.B) {
	for _, sz := range benchSizes {
		for _, s := range []struct {
			name    string
			tA, tB  bool
			m, n, k int
		}{
			{"enc/NT", false, true, sz.b, sz.h, sz.d},
			{"dec/NN", false, false, sz.b, sz.d, sz.h},
			{"gdec/TN", true, false, sz.h, sz.d, sz.b},
		} {
			ar, ac := s.m, s.k
			if s.tA {
				ar, ac = s.k, s.m
			}
			br, bc := s.k, s.n
			if s.tB {
				br, bc = s.n, s.k
			}
			x, y := benchData(ar, ac), benchData(br, bc)
			c := make([]float32, s.m*s.n)
			b.Run(fmt.Sprintf("%s/m=%d,n=%d,k=%d", s.name, s.m, s.n, s.k), func(b *testing.B) {
				for b.Loop() {
					gemm(s.tA, s.tB, 1, x, ar, ac, y, br, bc, 0, c, s.m, s.n)
				}
				b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkFinalize times Finalize alone (scale by 1/m, weight decay, the
// dead-latent tracker, metrics) on one thread — what each worker of a
// cluster with one core per worker runs after the gradient all-reduce —
// and on the default budget, and reports parameters/s. The row count is 1
// so that repeated calls do not shrink the gradient towards denormals.
func BenchmarkFinalize(b *testing.B) {
	for _, sz := range benchSizes {
		for _, threads := range []int{1, 0} {
			name := fmt.Sprintf("d=%d,h=%d/threads=%d", sz.d, sz.h, threads)
			if threads == 0 {
				name = fmt.Sprintf("d=%d,h=%d/threads=default", sz.d, sz.h)
			}
			b.Run(name, func(b *testing.B) {
				if threads > 0 {
					defer SetThreads(Threads())
					SetThreads(threads)
				}
				m, err := New(benchConfig("kl", sz.d, sz.h))
				if err != nil {
					b.Fatal(err)
				}
				rows := min(sz.b, 64)
				s := m.NewStep(rows)
				grad := make([]float32, m.GradLen())
				sums := make([]float64, m.SumsLen())
				stats := make([]float64, m.StatsLen())
				s.Stats(benchData(rows, sz.d), rows, stats)
				s.Gradient(stats, grad, sums)
				sums[sumRows] = 1
				b.ResetTimer()
				for b.Loop() {
					m.Finalize(grad, sums)
				}
				b.ReportMetric(float64(m.GradLen())*float64(b.N)/b.Elapsed().Seconds(), "params/s")
			})
		}
	}
}
