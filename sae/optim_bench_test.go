package sae

import (
	"fmt"
	"testing"
)

// Parameter counts: the MNIST model (d=784, h=196, untied) and a wide
// dictionary (d=784, h=4096, one weight matrix).
var benchOptimSizes = []int{2*784*196 + 784 + 196, 784 * 4096}

// benchOptimizer measures Update; bytes is the memory each parameter's update
// reads and writes (float32 params, grad and moments), so MB/s is the
// effective bandwidth. Compare GOMAXPROCS with -cpu 1,2.
func benchOptimizer(b *testing.B, c OptimizerConfig, bytes int) {
	for _, n := range benchOptimSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			o := mustOptimizer(b, c, n)
			p := randVec(1, n, 1)
			g := randVec(2, n, 1e-3)
			b.SetBytes(int64(bytes * n))
			b.ResetTimer()
			for b.Loop() {
				o.Update(p, g)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "params/s")
		})
	}
}

func BenchmarkSGD(b *testing.B) { benchOptimizer(b, sgdConfig(1e-3, 0), 12) }

func BenchmarkMomentum(b *testing.B) { benchOptimizer(b, sgdConfig(1e-3, 0.9), 20) }

func BenchmarkAdam(b *testing.B) { benchOptimizer(b, DefaultOptimizerConfig(), 28) }

// BenchmarkAdamClip has clipping on but never triggered, the usual case of a
// safety net: it adds the norm pass (one more read of the gradient). When the
// clip fires, the update also writes the scaled gradient back.
func BenchmarkAdamClip(b *testing.B) {
	c := DefaultOptimizerConfig()
	c.ClipNorm = 1e30
	benchOptimizer(b, c, 32)
}
