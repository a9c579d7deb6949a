package kernels

import "testing"

// BenchmarkMicro reports GFLOP/s of each micro-kernel alone on one
// goroutine, with its packed panels (k = kc) in L1: the ceiling of Sgemm.
func BenchmarkMicro(b *testing.B) {
	for _, kern := range kernelsAvailable() {
		b.Run(kern.name, func(b *testing.B) {
			a := make([]float32, kern.mr*kern.kc)
			bp := make([]float32, kern.nr*kern.kc)
			c := make([]float32, kern.mr*kern.nr)
			for b.Loop() {
				kern.fn(kern.kc, &a[0], &bp[0], &c[0], kern.nr, 1, 1)
			}
			b.ReportMetric(2*float64(kern.mr*kern.nr*kern.kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
