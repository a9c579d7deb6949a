//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

//go:noescape
func microAVX2(k int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func microAVX512(k int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func microAVX512N16(k int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func packT512(dst, src *float32, idx *int32, k, ds int, m1, m2 uint32)

//go:noescape
func packN512(dst, src *float32, ld, k, ds int, m1, m2 uint32)

//go:noescape
func packT256(dst, src *float32, tab *int32, k, ds, halves int)

//go:noescape
func packN256(dst, src *float32, tab *int32, ld, k, ds, halves int)

// tab256 returns the AVX2 packing table for w <= 16 lanes (byte offsets
// j*ld*4, then lane masks) and the number of 8-lane halves used.
func tab256(w, ld int) (tab [32]int32, halves int) {
	for j := range w {
		tab[j] = int32(j * ld * 4)
		tab[16+j] = -1
	}
	return tab, (w + 7) / 8
}

// packTAVX2 is packTGo with AVX2 gathers (for w <= 16 and byte offsets that
// fit the gathers' int32 indices).
func packTAVX2(dst, src []float32, ld, k, w, ds int) {
	if k == 0 || w == 0 {
		return
	}
	if w > 16 || ld >= 1<<25 {
		packTGo(dst, src, ld, k, w, ds)
		return
	}
	_ = src[(w-1)*ld+k-1]
	_ = dst[(k-1)*ds+w-1]
	tab, halves := tab256(w, ld)
	packT256(&dst[0], &src[0], &tab[0], k, ds, halves)
}

// packNAVX2 is packNGo with AVX2 masked moves (for w <= 16).
func packNAVX2(dst, src []float32, ld, k, w, ds int) {
	if k == 0 || w == 0 {
		return
	}
	if w > 16 {
		packNGo(dst, src, ld, k, w, ds)
		return
	}
	_ = src[(k-1)*ld+w-1]
	_ = dst[(k-1)*ds+w-1]
	tab, halves := tab256(w, 0)
	packN256(&dst[0], &src[0], &tab[0], ld, k, ds, halves)
}

// masks512 returns the AVX-512 lane masks of the first w <= 32 lanes.
func masks512(w int) (m1, m2 uint32) {
	return uint32(1)<<min(w, 16) - 1, uint32(1)<<max(w-16, 0) - 1
}

// packTAVX512 is packTGo with AVX-512 gathers (for w <= 32 and byte offsets
// that fit the gathers' int32 indices).
func packTAVX512(dst, src []float32, ld, k, w, ds int) {
	if k == 0 || w == 0 {
		return
	}
	if w > 32 || ld >= 1<<24 {
		packTGo(dst, src, ld, k, w, ds)
		return
	}
	_ = src[(w-1)*ld+k-1]
	_ = dst[(k-1)*ds+w-1]
	var idx [32]int32
	for j := range w {
		idx[j] = int32(j * ld * 4)
	}
	m1, m2 := masks512(w)
	packT512(&dst[0], &src[0], &idx[0], k, ds, m1, m2)
}

// packNAVX512 is packNGo with masked AVX-512 moves (for w <= 32).
func packNAVX512(dst, src []float32, ld, k, w, ds int) {
	if k == 0 || w == 0 {
		return
	}
	if w > 32 {
		packNGo(dst, src, ld, k, w, ds)
		return
	}
	_ = src[(k-1)*ld+w-1]
	_ = dst[(k-1)*ds+w-1]
	m1, m2 := masks512(w)
	packN512(&dst[0], &src[0], ld, k, ds, m1, m2)
}

// asmKernels lists the assembly micro-kernels this CPU supports, best first.
// The AVX2 B micro-panel (kc×16) is 16 KiB and the AVX-512 one (kc×32)
// 32 KiB, within a 32-48 KiB L1; the packed A block is well within L2.
func asmKernels() []kernel {
	var ks []kernel
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
		ks = append(ks, kernel{name: "avx512", mr: 12, nr: 32, mc: 96, kc: 256, nc: 4096, fn: microAVX512, half: microAVX512N16, packT: packTAVX512, packN: packNAVX512})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, kernel{name: "avx2", mr: 6, nr: 16, mc: 144, kc: 256, nc: 4096, fn: microAVX2, packT: packTAVX2, packN: packNAVX2})
	}
	return ks
}
