package sae

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The vector Adam kernel gives bitwise the results of the Go kernel, for
// every length (tails included) and for gradients with zeros, tiny and
// huge values.
func TestAdamKernelMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	c := &adamCoef{b1: 0.9, omb1: 0.1, b2: 0.999, omb2: 0.001, step: 3e-3 / (1 - 0.9*0.9), invBC2: float32(1 / math.Sqrt(1-0.999*0.999)), eps: 1e-8}
	for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 63, 1000, 4099} {
		p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range p {
			p[i] = r.Float32()*2 - 1
			m[i] = (r.Float32()*2 - 1) * 1e-2
			v[i] = r.Float32() * 1e-4
			switch i % 5 {
			case 0:
				g[i] = 0
			case 1:
				g[i] = float32(r.NormFloat64()) * 1e-20
			case 2:
				g[i] = float32(r.NormFloat64()) * 1e3
			default:
				g[i] = float32(r.NormFloat64())
			}
		}
		p2, m2, v2 := append([]float32(nil), p...), append([]float32(nil), m...), append([]float32(nil), v...)
		adamKernel(p, g, m, v, c)
		adamKernelGo(p2, g, m2, v2, c)
		for i := range p {
			if math.Float32bits(p[i]) != math.Float32bits(p2[i]) || math.Float32bits(m[i]) != math.Float32bits(m2[i]) || math.Float32bits(v[i]) != math.Float32bits(v2[i]) {
				t.Fatalf("n=%d i=%d: kernel p,m,v = %v,%v,%v; Go %v,%v,%v", n, i, p[i], m[i], v[i], p2[i], m2[i], v2[i])
			}
		}
	}
}
