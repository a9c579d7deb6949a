//go:build !purego

package sae

import "golang.org/x/sys/cpu"

// haveSigmoidAVX2 selects the vector sigmoid kernel (AVX2 and FMA).
var haveSigmoidAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func sigmoidBiasAVX2(dst, x, b []float32)

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
