//go:build !purego

#include "textflag.h"

// REDUCE2PD sums the doubles of a and b into the low lane of a's X register.
#define REDUCE2PD(a, b, xa, xb) \
	VADDPD b, a, a; \
	VEXTRACTF128 $1, a, xb; \
	VADDPD xb, xa, xa; \
	VHADDPD xa, xa, xa

// func residSigAVX2(out, x []float32) (recon, xx float64)
// For f < len(out)&^7 (len(x) >= len(out)), with v = out[f] and
// diff = v - x[f]: recon = Σ diff², xx = Σ x[f]² (squares and sums in
// float64) and out[f] = diff·(v·(1-v)).
TEXT ·residSigAVX2(SB), NOSPLIT, $0-64
	MOVQ out_base+0(FP), DI
	MOVQ out_len+8(FP), CX
	MOVQ x_base+24(FP), SI
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	VXORPD Y12, Y12, Y12
	VXORPD Y13, Y13, Y13
	MOVL $0x3f800000, AX
	VMOVD AX, X15
	VBROADCASTSS X15, Y15
	SHRQ $3, CX
	JZ   sigdone

sigloop:
	VMOVUPS (DI), Y1
	VMOVUPS (SI), Y2
	VSUBPS Y2, Y1, Y4
	VCVTPS2PD X4, Y5
	VEXTRACTF128 $1, Y4, X6
	VCVTPS2PD X6, Y6
	VFMADD231PD Y5, Y5, Y10
	VFMADD231PD Y6, Y6, Y11
	VCVTPS2PD X2, Y5
	VEXTRACTF128 $1, Y2, X6
	VCVTPS2PD X6, Y6
	VFMADD231PD Y5, Y5, Y12
	VFMADD231PD Y6, Y6, Y13
	VSUBPS Y1, Y15, Y7
	VMULPS Y7, Y1, Y7
	VMULPS Y7, Y4, Y4
	VMOVUPS Y4, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	DECQ CX
	JNZ  sigloop

sigdone:
	REDUCE2PD(Y10, Y11, X10, X11)
	REDUCE2PD(Y12, Y13, X12, X13)
	VZEROUPPER
	MOVSD X10, recon+48(FP)
	MOVSD X12, xx+56(FP)
	RET

// func residLinAVX2(out, x, b []float32) (recon, xx float64)
// For f < len(out)&^7 (x and b at least as long as out), with
// v = out[f] + b[f] and diff = v - x[f]: recon = Σ diff², xx = Σ x[f]²
// (squares and sums in float64) and out[f] = diff.
TEXT ·residLinAVX2(SB), NOSPLIT, $0-88
	MOVQ out_base+0(FP), DI
	MOVQ out_len+8(FP), CX
	MOVQ x_base+24(FP), SI
	MOVQ b_base+48(FP), BX
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	VXORPD Y12, Y12, Y12
	VXORPD Y13, Y13, Y13
	SHRQ $3, CX
	JZ   lindone

linloop:
	VMOVUPS (DI), Y1
	VADDPS (BX), Y1, Y1
	VMOVUPS (SI), Y2
	VSUBPS Y2, Y1, Y4
	VCVTPS2PD X4, Y5
	VEXTRACTF128 $1, Y4, X6
	VCVTPS2PD X6, Y6
	VFMADD231PD Y5, Y5, Y10
	VFMADD231PD Y6, Y6, Y11
	VCVTPS2PD X2, Y5
	VEXTRACTF128 $1, Y2, X6
	VCVTPS2PD X6, Y6
	VFMADD231PD Y5, Y5, Y12
	VFMADD231PD Y6, Y6, Y13
	VMOVUPS Y4, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, BX
	DECQ CX
	JNZ  linloop

lindone:
	REDUCE2PD(Y10, Y11, X10, X11)
	REDUCE2PD(Y12, Y13, X12, X13)
	VZEROUPPER
	MOVSD X10, recon+72(FP)
	MOVSD X12, xx+80(FP)
	RET

// func addF64AVX2(acc []float64, v []float32)
// acc[j] += float64(v[j]) for j < len(v)&^7 (len(acc) >= len(v)).
TEXT ·addF64AVX2(SB), NOSPLIT, $0-48
	MOVQ acc_base+0(FP), DI
	MOVQ v_base+24(FP), SI
	MOVQ v_len+32(FP), CX
	SHRQ $3, CX
	JZ   adddone

addloop:
	VCVTPS2PD (SI), Y1
	VCVTPS2PD 16(SI), Y2
	VADDPD (DI), Y1, Y1
	VADDPD 32(DI), Y2, Y2
	VMOVUPD Y1, (DI)
	VMOVUPD Y2, 32(DI)
	ADDQ $32, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  addloop

adddone:
	VZEROUPPER
	RET

// func sigGradKLAVX2(g, a, extra []float32)
// g[j] = (g[j] + extra[j]) * (a[j]*(1-a[j])) for j < len(g)&^7 (a and extra
// at least as long as g): the KL term added to δa, times sigmoid's derivative.
TEXT ·sigGradKLAVX2(SB), NOSPLIT, $0-72
	MOVQ g_base+0(FP), DI
	MOVQ g_len+8(FP), CX
	MOVQ a_base+24(FP), SI
	MOVQ extra_base+48(FP), BX
	MOVL $0x3f800000, AX
	VMOVD AX, X15
	VBROADCASTSS X15, Y15
	SHRQ $3, CX
	JZ   sgdone

sgloop:
	VMOVUPS (SI), Y1
	VSUBPS Y1, Y15, Y2
	VMULPS Y2, Y1, Y2
	VMOVUPS (DI), Y0
	VADDPS (BX), Y0, Y0
	VMULPS Y2, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, BX
	DECQ CX
	JNZ  sgloop

sgdone:
	VZEROUPPER
	RET

// func colSumsFiredAVX2(sa []float64, sf []uint32, row []float32, tb uint32)
// For j < len(row)&^7 (sa and sf at least as long as row):
// sa[j] += float64(row[j]) and sf[j] += 1 if the bits of row[j], unsigned,
// exceed tb.
TEXT ·colSumsFiredAVX2(SB), NOSPLIT, $0-76
	MOVQ sa_base+0(FP), DI
	MOVQ sf_base+24(FP), BX
	MOVQ row_base+48(FP), SI
	MOVQ row_len+56(FP), CX
	MOVL tb+72(FP), AX
	XORL $0x80000000, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x80000000, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	SHRQ $3, CX
	JZ   csdone

csloop:
	VMOVUPS (SI), Y0
	VCVTPS2PD X0, Y1
	VEXTRACTF128 $1, Y0, X2
	VCVTPS2PD X2, Y2
	VADDPD (DI), Y1, Y1
	VADDPD 32(DI), Y2, Y2
	VMOVUPD Y1, (DI)
	VMOVUPD Y2, 32(DI)
	VPXOR Y14, Y0, Y3
	VPCMPGTD Y15, Y3, Y3
	VMOVDQU (BX), Y4
	VPSUBD Y3, Y4, Y4
	VMOVDQU Y4, (BX)
	ADDQ $32, SI
	ADDQ $64, DI
	ADDQ $32, BX
	DECQ CX
	JNZ  csloop

csdone:
	VZEROUPPER
	RET
