//go:build amd64 && !purego

#include "textflag.h"

// func packT512(dst, src *float32, idx *int32, k, ds int, m1, m2 uint32)
// Transposing pack with AVX-512 gathers: dst[p*ds+j] = src[idx[j]/4 + p]
// for p < k and the lanes j < 32 set in the masks (m1: lanes 0-15, m2:
// lanes 16-31; m2 == 0 skips the second gather). idx holds 32 byte offsets;
// lanes not set are neither read nor written.
TEXT ·packT512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ idx+16(FP), BX
	MOVQ k+24(FP), CX
	MOVQ ds+32(FP), DX
	SHLQ $2, DX
	VMOVDQU32 (BX), Z30
	VMOVDQU32 64(BX), Z31
	MOVL m1+40(FP), AX
	KMOVW AX, K1
	MOVL m2+44(FP), AX
	KMOVW AX, K2
	TESTQ CX, CX
	JZ   tdone
	TESTL AX, AX
	JZ   tone1

ttwo:
	KMOVW K1, K3
	KMOVW K2, K4
	VGATHERDPS (SI)(Z30*1), K3, Z0
	VGATHERDPS (SI)(Z31*1), K4, Z1
	VMOVUPS Z0, K1, (DI)
	VMOVUPS Z1, K2, 64(DI)
	ADDQ $4, SI
	ADDQ DX, DI
	DECQ CX
	JNZ  ttwo
	JMP  tdone

tone1:
	KMOVW K1, K3
	VGATHERDPS (SI)(Z30*1), K3, Z0
	VMOVUPS Z0, K1, (DI)
	ADDQ $4, SI
	ADDQ DX, DI
	DECQ CX
	JNZ  tone1

tdone:
	VZEROUPPER
	RET

// func packN512(dst, src *float32, ld, k, ds int, m1, m2 uint32)
// Row pack with masked AVX-512 moves: dst[p*ds+j] = src[p*ld+j] for p < k
// and the lanes j < 32 set in the masks (m1: lanes 0-15, m2: lanes 16-31;
// m2 == 0 skips the second half); lanes not set are neither read nor written.
TEXT ·packN512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), BX
	SHLQ $2, BX
	MOVQ k+24(FP), CX
	MOVQ ds+32(FP), DX
	SHLQ $2, DX
	MOVL m1+40(FP), AX
	KMOVW AX, K1
	MOVL m2+44(FP), AX
	KMOVW AX, K2
	TESTQ CX, CX
	JZ   ndone
	TESTL AX, AX
	JZ   none1

ntwo:
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	VMOVUPS Z0, K1, (DI)
	VMOVUPS Z1, K2, 64(DI)
	ADDQ BX, SI
	ADDQ DX, DI
	DECQ CX
	JNZ  ntwo
	JMP  ndone

none1:
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS Z0, K1, (DI)
	ADDQ BX, SI
	ADDQ DX, DI
	DECQ CX
	JNZ  none1

ndone:
	VZEROUPPER
	RET

// func packT256(dst, src *float32, tab *int32, k, ds, halves int)
// Transposing pack with AVX2 gathers: dst[p*ds+j] = src[idx[j]/4 + p] for
// p < k and the lanes j < 8*halves set in the masks. tab holds idx (16 byte
// offsets) then the masks of lanes 0-7 and 8-15 (all bits set: lane on);
// lanes not set are neither read nor written.
TEXT ·packT256(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ tab+16(FP), BX
	MOVQ k+24(FP), CX
	MOVQ ds+32(FP), DX
	SHLQ $2, DX
	MOVQ halves+40(FP), R8
	VMOVDQU (BX), Y8
	VMOVDQU 32(BX), Y9
	VMOVDQU 64(BX), Y10
	VMOVDQU 96(BX), Y11
	TESTQ CX, CX
	JZ   t2done
	CMPQ R8, $2
	JLT  t2one

t2two:
	VMOVDQU Y10, Y2
	VMOVDQU Y11, Y3
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VGATHERDPS Y2, (SI)(Y8*1), Y0
	VGATHERDPS Y3, (SI)(Y9*1), Y1
	VMASKMOVPS Y0, Y10, (DI)
	VMASKMOVPS Y1, Y11, 32(DI)
	ADDQ $4, SI
	ADDQ DX, DI
	DECQ CX
	JNZ  t2two
	JMP  t2done

t2one:
	VMOVDQU Y10, Y2
	VPXOR Y0, Y0, Y0
	VGATHERDPS Y2, (SI)(Y8*1), Y0
	VMASKMOVPS Y0, Y10, (DI)
	ADDQ $4, SI
	ADDQ DX, DI
	DECQ CX
	JNZ  t2one

t2done:
	VZEROUPPER
	RET

// func packN256(dst, src *float32, tab *int32, ld, k, ds, halves int)
// Row pack with AVX2 masked moves: dst[p*ds+j] = src[p*ld+j] for p < k and
// the lanes j < 8*halves set in the masks at tab[16:32] (as for packT256);
// lanes not set are neither read nor written.
TEXT ·packN256(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ tab+16(FP), BX
	MOVQ ld+24(FP), R9
	SHLQ $2, R9
	MOVQ k+32(FP), CX
	MOVQ ds+40(FP), DX
	SHLQ $2, DX
	MOVQ halves+48(FP), R8
	VMOVDQU 64(BX), Y10
	VMOVDQU 96(BX), Y11
	TESTQ CX, CX
	JZ   n2done
	CMPQ R8, $2
	JLT  n2one

n2two:
	VMASKMOVPS (SI), Y10, Y0
	VMASKMOVPS 32(SI), Y11, Y1
	VMASKMOVPS Y0, Y10, (DI)
	VMASKMOVPS Y1, Y11, 32(DI)
	ADDQ R9, SI
	ADDQ DX, DI
	DECQ CX
	JNZ  n2two
	JMP  n2done

n2one:
	VMASKMOVPS (SI), Y10, Y0
	VMASKMOVPS Y0, Y10, (DI)
	ADDQ R9, SI
	ADDQ DX, DI
	DECQ CX
	JNZ  n2one

n2done:
	VZEROUPPER
	RET
