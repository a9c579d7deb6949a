package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// benchShapes are the products of the training step at the project's two
// benchmark sizes (d=784, h=196, B=256 and d=512, h=4096, B=1024): the
// encoder (NT), decoder (NN), decoder gradient (TN) and the square 1024 case.
var benchShapes = []struct {
	name    string
	tA, tB  bool
	m, n, k int
}{
	{"enc/NT", false, true, 256, 196, 784},
	{"dec/NN", false, false, 256, 784, 196},
	{"gdec/TN", true, false, 196, 784, 256},
	{"enc/NT", false, true, 1024, 4096, 512},
	{"dec/NN", false, false, 1024, 512, 4096},
	{"gdec/TN", true, false, 4096, 512, 1024},
	{"square/NN", false, false, 1024, 1024, 1024},
}

// BenchmarkSgemm reports GFLOP/s of Implementation.Sgemm with each kernel
// (and gonum's native Sgemm) on the step's shapes.
func BenchmarkSgemm(b *testing.B) {
	defer Use("")
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		rowA, colA := s.m, s.k
		if s.tA {
			rowA, colA = s.k, s.m
		}
		rowB, colB := s.k, s.n
		if s.tB {
			rowB, colB = s.n, s.k
		}
		a := make([]float32, rowA*colA)
		bb := make([]float32, rowB*colB)
		c := make([]float32, s.m*s.n)
		for i := range a {
			a[i] = rng.Float32()
		}
		for i := range bb {
			bb[i] = rng.Float32()
		}
		ta, tb := blas.NoTrans, blas.NoTrans
		if s.tA {
			ta = blas.Trans
		}
		if s.tB {
			tb = blas.Trans
		}
		for _, name := range Names() {
			b.Run(fmt.Sprintf("%s/m=%d,n=%d,k=%d/%s", s.name, s.m, s.n, s.k, name), func(b *testing.B) {
				if err := Use(name); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					Implementation{}.Sgemm(ta, tb, s.m, s.n, s.k, 1, a, colA, bb, colB, 0, c, s.n)
				}
				flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
				b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
