//go:build !purego

package sae

import "golang.org/x/sys/cpu"

// haveSigmoidAVX2 selects the vector kernels (sigmoid, axpy, dot), which
// need AVX2 and FMA.
var haveSigmoidAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func sigmoidBiasAVX2(dst, x, b []float32)

//go:noescape
func axpyAVX2(alpha float32, x, y []float32)

//go:noescape
func dotAVX2(x, y []float32) float32

//go:noescape
func scaleAVX2(alpha float32, x []float32)

//go:noescape
func sumSquaresAVX2(g []float32, acc *[16]float64)

// scaleUnit computes x *= alpha.
func scaleUnit(alpha float32, x []float32) {
	if !haveSigmoidAVX2 {
		level1.Sscal(len(x), alpha, x, 1)
		return
	}
	n := len(x) &^ 7
	scaleAVX2(alpha, x[:n])
	for i := n; i < len(x); i++ {
		x[i] *= alpha
	}
}

// sumSquares returns Σ g² in float64 in the order of sumSquaresGo.
func sumSquares(g []float32) float64 {
	if !haveSigmoidAVX2 {
		return sumSquaresGo(g)
	}
	var acc [16]float64
	n := len(g) &^ 15
	sumSquaresAVX2(g[:n], &acc)
	return sumSquaresFinish(&acc, g[n:])
}

// axpyUnit computes y += alpha*x for len(y) >= len(x).
func axpyUnit(alpha float32, x, y []float32) {
	if !haveSigmoidAVX2 {
		level1.Saxpy(len(x), alpha, x, 1, y, 1)
		return
	}
	y = y[:len(x)]
	n := len(x) &^ 7
	axpyAVX2(alpha, x[:n], y[:n])
	for i := n; i < len(x); i++ {
		y[i] += alpha * x[i]
	}
}

// dotUnit returns Σ x[i]*y[i] for len(y) >= len(x).
func dotUnit(x, y []float32) float32 {
	if !haveSigmoidAVX2 {
		return level1.Sdot(len(x), x, 1, y, 1)
	}
	y = y[:len(x)]
	n := len(x) &^ 7
	s := dotAVX2(x[:n], y[:n])
	for i := n; i < len(x); i++ {
		s += x[i] * y[i]
	}
	return s
}

// sigmoidBias sets dst[i] = 1/(1+exp(-(x[i]+b[i]))) for all i < len(dst);
// x and b must be at least as long as dst, and dst may alias x. The result
// matches sigmoidf (relative error below 5e-7).
func sigmoidBias(dst, x, b []float32) {
	n := 0
	if haveSigmoidAVX2 {
		n = len(dst) &^ 7
		sigmoidBiasAVX2(dst[:n], x[:n], b[:n])
	}
	sigmoidBiasGo(dst[n:], x[n:len(dst)], b[n:len(dst)])
}
