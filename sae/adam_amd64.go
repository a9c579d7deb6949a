//go:build !purego

package sae

import "golang.org/x/sys/cpu"

// haveAdamAVX2 selects the vector Adam kernel.
var haveAdamAVX2 = cpu.X86.HasAVX2

// adamAVX2 runs adamKernelGo's update on the first n elements (n a
// multiple of 8) with the same operations in the same order — separate
// multiplies and adds, no FMA, a correctly rounded square root and
// division — so that its results are bitwise those of adamKernelGo.
//
//go:noescape
func adamAVX2(param, grad, mom, vel *float32, n int, c *adamCoef)

// adamKernel is adamKernelGo, eight elements at a time where AVX2 is there.
func adamKernel(p, g, m, v []float32, c *adamCoef) {
	n := len(p) &^ 7
	if !haveAdamAVX2 || n == 0 {
		adamKernelGo(p, g, m, v, c)
		return
	}
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	adamAVX2(&p[0], &g[0], &m[0], &v[0], n, c)
	adamKernelGo(p[n:], g[n:], m[n:], v[n:], c)
}
