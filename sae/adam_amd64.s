//go:build !purego

#include "textflag.h"

// func adamAVX2(param, grad, mom, vel *float32, n int, c *adamCoef)
// c: b1, omb1, b2, omb2, step, invBC2, eps (float32 each).
TEXT ·adamAVX2(SB), NOSPLIT, $0-48
	MOVQ param+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ mom+16(FP), R8
	MOVQ vel+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), AX
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	VBROADCASTSS 8(AX), Y10
	VBROADCASTSS 12(AX), Y11
	VBROADCASTSS 16(AX), Y12
	VBROADCASTSS 20(AX), Y13
	VBROADCASTSS 24(AX), Y14
	XORQ BX, BX

loop:
	CMPQ BX, CX
	JGE  done
	VMOVUPS (SI)(BX*4), Y0         // g
	VMOVUPS (R8)(BX*4), Y1         // m
	VMULPS  Y1, Y8, Y1             // b1*m
	VMULPS  Y0, Y9, Y2             // omb1*g
	VADDPS  Y2, Y1, Y1             // m' = b1*m + omb1*g
	VMULPS  Y0, Y0, Y3             // g*g
	VMULPS  Y3, Y11, Y3            // omb2*(g*g)
	VMOVUPS (R9)(BX*4), Y4         // v
	VMULPS  Y4, Y10, Y4            // b2*v
	VADDPS  Y3, Y4, Y4             // v' = b2*v + omb2*g*g
	VMOVUPS Y1, (R8)(BX*4)
	VMOVUPS Y4, (R9)(BX*4)
	VSQRTPS Y4, Y5                 // sqrt(v')
	VMULPS  Y5, Y13, Y5            // sqrt(v')*invBC2
	VADDPS  Y14, Y5, Y5            // den = ... + eps
	VDIVPS  Y5, Y1, Y6             // m'/den
	VMULPS  Y6, Y12, Y6            // step*(m'/den)
	VMOVUPS (DI)(BX*4), Y7
	VSUBPS  Y6, Y7, Y7             // p - step*(m'/den)
	VMOVUPS Y7, (DI)(BX*4)
	ADDQ    $8, BX
	JMP     loop

done:
	VZEROUPPER
	RET
