//go:build !amd64 || purego

package sae

// haveSigmoidAVX2 is false: no vector kernel on this platform.
var haveSigmoidAVX2 = false

// sigmoidBias sets dst[i] = 1/(1+exp(-(x[i]+b[i]))) for all i < len(dst);
// x and b must be at least as long as dst, and dst may alias x.
func sigmoidBias(dst, x, b []float32) {
	sigmoidBiasGo(dst, x[:len(dst)], b[:len(dst)])
}

// scaleUnit computes x *= alpha.
func scaleUnit(alpha float32, x []float32) {
	level1.Sscal(len(x), alpha, x, 1)
}

// sumSquares returns Σ g² in float64 (see sumSquaresGo).
func sumSquares(g []float32) float64 { return sumSquaresGo(g) }

// axpyUnit computes y += alpha*x for len(y) >= len(x).
func axpyUnit(alpha float32, x, y []float32) {
	level1.Saxpy(len(x), alpha, x, 1, y, 1)
}

// dotUnit returns Σ x[i]*y[i] for len(y) >= len(x).
func dotUnit(x, y []float32) float32 {
	return level1.Sdot(len(x), x, 1, y, 1)
}

// residual: see residualGo.
func residual(out, x, b []float32, sig bool) (recon, xx float64) {
	return residualGo(out, x, b, sig)
}

// addF64 sets acc[j] += float64(v[j]) for j < len(v) (len(acc) >= len(v)).
func addF64(acc []float64, v []float32) {
	acc = acc[:len(v)]
	for j, x := range v {
		acc[j] += float64(x)
	}
}

// sigGradKL: see sigGradKLGo.
func sigGradKL(g, a, extra []float32) { sigGradKLGo(g, a, extra) }

// colSumsFired: see colSumsFiredGo.
func colSumsFired(sa []float64, sf []uint32, row []float32, tb uint32) {
	colSumsFiredGo(sa, sf, row, tb)
}
