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
