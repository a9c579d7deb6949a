//go:build openblas

package sae

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/dsae/dsae/sae/internal/kernels"
	"gonum.org/v1/gonum/blas/blas32"
)

// pairRates runs fa and fb alternately, once each per iteration of b, and
// reports, for work units of work each, the median rate of each side and
// the median of the per-pair ratios rate(a)/rate(b). Pairs run
// milliseconds apart, so on a loaded machine both sides of a ratio see the
// same load (separate runs see loads that differ by 2–4×).
func pairRates(b *testing.B, work float64, unit, nameA, nameB string, fa, fb func()) {
	fa()
	fb()
	var ta, tb, ratio []float64
	for b.Loop() {
		t0 := time.Now()
		fa()
		t1 := time.Now()
		fb()
		t2 := time.Now()
		da, db := t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds()
		ta, tb, ratio = append(ta, da), append(tb, db), append(ratio, db/da)
	}
	med := func(s []float64) float64 { slices.Sort(s); return s[len(s)/2] }
	b.ReportMetric(work/med(ta), nameA+"-"+unit)
	b.ReportMetric(work/med(tb), nameB+"-"+unit)
	b.ReportMetric(med(ratio), nameA+"/"+nameB)
}

// BenchmarkVsOpenBLAS compares the kernels with OpenBLAS in one process,
// alternating call by call: GEMM GFLOP/s on the step's products and
// samples/s of the training step (as BenchmarkStep).
//
// DSAE_KERNEL (KernelEnv of the default build) selects the kernel here too,
// e.g. avx2 against OPENBLAS_CORETYPE=Haswell.
func BenchmarkVsOpenBLAS(b *testing.B) {
	if err := kernels.Use(os.Getenv("DSAE_KERNEL")); err != nil {
		b.Fatal(err)
	}
	defer kernels.Use("")
	orig := blas32.Implementation()
	kern := func() { blas32.Use(kernels.Implementation{}); gemmSplit = false }
	oblas := func() { blas32.Use(orig); gemmSplit = true }
	defer oblas()
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
			run := func() { gemm(s.tA, s.tB, 1, x, ar, ac, y, br, bc, 0, c, s.m, s.n) }
			b.Run(fmt.Sprintf("gemm/%s/m=%d,n=%d,k=%d", s.name, s.m, s.n, s.k), func(b *testing.B) {
				pairRates(b, 2*float64(s.m*s.n*s.k)/1e9, "GFLOP/s", "kernels", "openblas",
					func() { kern(); run() }, func() { oblas(); run() })
			})
		}
	}
	for _, kind := range []string{"kl", "topk"} {
		for _, sz := range benchSizes {
			c := benchConfig(kind, sz.d, sz.h)
			m, err := New(c)
			if err != nil {
				b.Fatal(err)
			}
			x := benchData(sz.b, c.D)
			st := m.NewStep(sz.b)
			grad := make([]float32, m.GradLen())
			run := func() { st.Compute(x, sz.b, grad) }
			name := fmt.Sprintf("step/%s/d=%d,h=%d,B=%d", kind, sz.d, sz.h, sz.b)
			b.Run(name, func(b *testing.B) {
				pairRates(b, float64(sz.b), "samples/s", "kernels", "openblas",
					func() { kern(); run() }, func() { oblas(); run() })
			})
		}
	}
}
