package sae

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestResidual: the vector residual and addF64 agree with the scalar loops
// for lengths around the 8-lane blocks, sigmoid and linear outputs.
func TestResidual(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for n := 0; n <= 41; n++ {
		for _, sig := range []bool{false, true} {
			x, b, out := make([]float32, n), make([]float32, n), make([]float32, n)
			for i := range n {
				x[i], b[i], out[i] = rng.Float32(), rng.Float32()-0.5, rng.Float32()
			}
			want := append([]float32(nil), out...)
			wr, wx := residualGo(want, x, b, sig)
			got := append([]float32(nil), out...)
			gr, gx := residual(got, x, b, sig)
			if math.Abs(gr-wr) > 1e-12*(1+wr) || math.Abs(gx-wx) > 1e-12*(1+wx) {
				t.Fatalf("n=%d sig=%v: sums %g %g, want %g %g", n, sig, gr, gx, wr, wx)
			}
			for i := range got {
				if math.Abs(float64(got[i]-want[i])) > 1e-7 {
					t.Fatalf("n=%d sig=%v: out[%d] = %g, want %g", n, sig, i, got[i], want[i])
				}
			}
		}
		acc, want := make([]float64, n+3), make([]float64, n+3)
		v := make([]float32, n)
		for i := range v {
			v[i] = rng.Float32()
			acc[i], want[i] = float64(i), float64(i)+float64(v[i])
		}
		addF64(acc, v)
		for i := range acc {
			if acc[i] != want[i] {
				t.Fatalf("addF64 n=%d: acc[%d] = %g, want %g", n, i, acc[i], want[i])
			}
		}
	}
}

// TestSigGradKLAndColSumsFired: the vector forms agree exactly with the
// scalar loops, including activations at, just above and below the
// threshold, zeros and -0.
func TestSigGradKLAndColSumsFired(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const thresh = float32(0.25)
	tb := math.Float32bits(thresh)
	for n := 0; n <= 41; n++ {
		g, a, e := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range n {
			g[i], a[i], e[i] = rng.Float32()-0.5, rng.Float32(), rng.Float32()-0.5
			switch i % 5 {
			case 0:
				a[i] = thresh
			case 1:
				a[i] = math.Nextafter32(thresh, 1)
			case 2:
				a[i] = float32(math.Copysign(0, -1))
			case 3:
				a[i] = 0
			}
		}
		want := append([]float32(nil), g...)
		sigGradKLGo(want, a, e)
		got := append([]float32(nil), g...)
		sigGradKL(got, a, e)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("sigGradKL n=%d: g[%d] = %g, want %g", n, i, got[i], want[i])
			}
		}
		sa, sf := make([]float64, n+1), make([]uint32, n+1)
		wa, wf := make([]float64, n+1), make([]uint32, n+1)
		for range 3 {
			colSumsFired(sa, sf, a, tb)
			colSumsFiredGo(wa, wf, a, tb)
		}
		for i := range sa {
			if sa[i] != wa[i] || sf[i] != wf[i] {
				t.Fatalf("colSumsFired n=%d: [%d] = %g, %d, want %g, %d", n, i, sa[i], sf[i], wa[i], wf[i])
			}
		}
	}
}
