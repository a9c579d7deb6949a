//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

//go:noescape
func microAVX2(k int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func microAVX512(k int, a, b, c *float32, ldc int, alpha, beta float32)

// asmKernels lists the assembly micro-kernels this CPU supports, best first.
// The AVX2 B micro-panel (kc×16) is 16 KiB and the AVX-512 one (kc×32)
// 32 KiB, within a 32-48 KiB L1; the packed A block is well within L2.
func asmKernels() []kernel {
	var ks []kernel
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
		ks = append(ks, kernel{name: "avx512", mr: 12, nr: 32, mc: 192, kc: 256, nc: 4096, fn: microAVX512})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, kernel{name: "avx2", mr: 6, nr: 16, mc: 144, kc: 256, nc: 4096, fn: microAVX2})
	}
	return ks
}
