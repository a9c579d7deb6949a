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
