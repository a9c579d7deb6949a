//go:build !amd64 || purego

package sae

var haveAdamAVX2 = false

// adamKernel is adamKernelGo on this platform.
func adamKernel(p, g, m, v []float32, c *adamCoef) { adamKernelGo(p, g, m, v, c) }
