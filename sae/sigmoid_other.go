//go:build !amd64 || purego

package sae

// haveSigmoidAVX2 is false: no vector kernel on this platform.
var haveSigmoidAVX2 = false

// sigmoidBias sets dst[i] = 1/(1+exp(-(x[i]+b[i]))) for all i < len(dst);
// x and b must be at least as long as dst, and dst may alias x.
func sigmoidBias(dst, x, b []float32) {
	sigmoidBiasGo(dst, x[:len(dst)], b[:len(dst)])
}
