package kernels

import (
	"fmt"
	"unsafe"
)

// microKernel computes the mr×nr tile C = alpha*Σ_p a[p]⊗b[p] + beta*C, where
// a holds k packed columns of mr values and b k packed rows of nr values,
// C starts at c with row stride ldc (elements). With beta == 0, C is not read.
type microKernel func(k int, a, b, c *float32, ldc int, alpha, beta float32)

// kernel is a micro-kernel with its register blocking and cache blocking:
// kc rows of a packed B micro-panel (kc×nr) stay in L1, the packed A block
// (mc×kc) in L2, and nc columns bound the packed B block (kc×nc).
type kernel struct {
	name       string
	mr, nr     int
	mc, kc, nc int
	fn         microKernel
	// half, if set, is fn on the first nr/2 columns of a B micro-panel
	// (the tile is mr×nr/2), for the last panel of a block when it is at
	// most half full.
	half microKernel
	// packT and packN pack one micro-panel (see packFunc).
	packT, packN packFunc
}

// packFunc packs k rows of w <= ds values into dst with row stride ds,
// from src with stride ld: for the transposing packT, dst[p*ds+j] =
// src[j*ld+p]; for packN, dst[p*ds+j] = src[p*ld+j]. Lanes w..ds-1 of dst
// are not written.
type packFunc func(dst, src []float32, ld, k, w, ds int)

// packTGo is the portable transposing pack.
func packTGo(dst, src []float32, ld, k, w, ds int) {
	for j := range w {
		s := src[j*ld : j*ld+k]
		d := dst[j:]
		for p, v := range s {
			d[p*ds] = v
		}
	}
}

// packNGo is the portable row pack.
func packNGo(dst, src []float32, ld, k, w, ds int) {
	for p := range k {
		copy(dst[p*ds:p*ds+w], src[p*ld:p*ld+w])
	}
}

// goKernel is the portable micro-kernel, the reference for the assembly ones.
var goKernel = kernel{name: "go", mr: 4, nr: 8, mc: 128, kc: 256, nc: 2048, fn: microGo, packT: packTGo, packN: packNGo}

// microGo is the portable 4×8 micro-kernel.
func microGo(k int, a, b, c *float32, ldc int, alpha, beta float32) {
	const mr, nr = 4, 8
	as := unsafe.Slice(a, k*mr)
	bs := unsafe.Slice(b, k*nr)
	var acc [mr][nr]float32
	for p := 0; p < k; p++ {
		ap := as[p*mr : p*mr+mr : p*mr+mr]
		bp := bs[p*nr : p*nr+nr : p*nr+nr]
		for i, av := range ap {
			r := &acc[i]
			for j, bv := range bp {
				r[j] += av * bv
			}
		}
	}
	cs := unsafe.Slice(c, (mr-1)*ldc+nr)
	for i := range acc {
		row := cs[i*ldc : i*ldc+nr]
		for j, v := range acc[i] {
			if beta == 0 {
				row[j] = alpha * v
			} else {
				row[j] = alpha*v + beta*row[j]
			}
		}
	}
}

// kernelsAvailable lists the micro-kernels this CPU can run, best first.
func kernelsAvailable() []kernel {
	return append(asmKernels(), goKernel)
}

// active is the kernel Sgemm uses; nil means gonum's native Sgemm.
var active = defaultKernel()

func defaultKernel() *kernel {
	if ks := asmKernels(); len(ks) > 0 {
		return &ks[0]
	}
	return nil
}

// Names lists the kernels Use accepts on this CPU, fastest first (the first
// is the default): the assembly kernels, "gonum" (gonum's native Sgemm) and
// "go" (the portable reference kernel).
func Names() []string {
	var s []string
	for _, k := range asmKernels() {
		s = append(s, k.name)
	}
	return append(s, "gonum", goKernel.name)
}

// Use selects the kernel Sgemm runs by name (one of Names()); "" selects the
// default, the first of Names(). It is meant for program start-up and tests:
// it must not run concurrently with Sgemm.
func Use(name string) error {
	if name == "" {
		active = defaultKernel()
		return nil
	}
	if name == "gonum" {
		active = nil
		return nil
	}
	for _, k := range kernelsAvailable() {
		if k.name == name {
			active = &k
			return nil
		}
	}
	return fmt.Errorf("kernels: no kernel %q on this CPU, want one of %v", name, Names())
}

// Name names the kernel Sgemm runs: "avx512", "avx2", "go" or "gonum".
func Name() string {
	if active == nil {
		return "gonum"
	}
	return active.name
}
