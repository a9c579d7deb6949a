//go:build amd64 && !purego

#include "textflag.h"

// STEP6x16 adds one packed column of A (6 values at ao(AX)) times one packed
// row of B (16 values at bo(BX)) to the accumulators Y0-Y11 (row i in Y2i, Y2i+1).
#define STEP6x16(ao, bo) \
	VMOVUPS (bo)(BX), Y12; \
	VMOVUPS (bo+32)(BX), Y13; \
	VBROADCASTSS (ao+0)(AX), Y14; \
	VFMADD231PS Y12, Y14, Y0; \
	VFMADD231PS Y13, Y14, Y1; \
	VBROADCASTSS (ao+4)(AX), Y15; \
	VFMADD231PS Y12, Y15, Y2; \
	VFMADD231PS Y13, Y15, Y3; \
	VBROADCASTSS (ao+8)(AX), Y14; \
	VFMADD231PS Y12, Y14, Y4; \
	VFMADD231PS Y13, Y14, Y5; \
	VBROADCASTSS (ao+12)(AX), Y15; \
	VFMADD231PS Y12, Y15, Y6; \
	VFMADD231PS Y13, Y15, Y7; \
	VBROADCASTSS (ao+16)(AX), Y14; \
	VFMADD231PS Y12, Y14, Y8; \
	VFMADD231PS Y13, Y14, Y9; \
	VBROADCASTSS (ao+20)(AX), Y15; \
	VFMADD231PS Y12, Y15, Y10; \
	VFMADD231PS Y13, Y15, Y11

// ROW16 stores row r0:r1 of the tile: alpha*acc + beta*C (Y14 = alpha, Y15 = beta).
#define ROW16(r0, r1) \
	VMULPS Y14, r0, r0; \
	VMULPS Y14, r1, r1; \
	VFMADD231PS (DI), Y15, r0; \
	VFMADD231PS 32(DI), Y15, r1; \
	VMOVUPS r0, (DI); \
	VMOVUPS r1, 32(DI); \
	ADDQ DX, DI

// ROW16Z stores row r0:r1 of the tile as alpha*acc, without reading C.
#define ROW16Z(r0, r1) \
	VMULPS Y14, r0, r0; \
	VMULPS Y14, r1, r1; \
	VMOVUPS r0, (DI); \
	VMOVUPS r1, 32(DI); \
	ADDQ DX, DI

// func microAVX2(k int, a, b, c *float32, ldc int, alpha, beta float32)
// The 6×16 tile C (row stride ldc) = alpha*Σ_p a[6p:6p+6]⊗b[16p:16p+16] + beta*C;
// with beta == ±0, C is not read.
TEXT ·microAVX2(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ b+16(FP), BX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), DX
	SHLQ $2, DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	MOVQ CX, R9
	SHRQ $2, CX
	JZ   avx2tail

avx2loop4:
	STEP6x16(0, 0)
	STEP6x16(24, 64)
	STEP6x16(48, 128)
	STEP6x16(72, 192)
	ADDQ $96, AX
	ADDQ $256, BX
	DECQ CX
	JNZ  avx2loop4

avx2tail:
	ANDQ $3, R9
	JZ   avx2store

avx2loop1:
	STEP6x16(0, 0)
	ADDQ $24, AX
	ADDQ $64, BX
	DECQ R9
	JNZ  avx2loop1

avx2store:
	VBROADCASTSS alpha+40(FP), Y14
	MOVL beta+44(FP), R8
	ANDL $0x7fffffff, R8
	JZ   avx2store0
	VBROADCASTSS beta+44(FP), Y15
	ROW16(Y0, Y1)
	ROW16(Y2, Y3)
	ROW16(Y4, Y5)
	ROW16(Y6, Y7)
	ROW16(Y8, Y9)
	ROW16(Y10, Y11)
	VZEROUPPER
	RET

avx2store0:
	ROW16Z(Y0, Y1)
	ROW16Z(Y2, Y3)
	ROW16Z(Y4, Y5)
	ROW16Z(Y6, Y7)
	ROW16Z(Y8, Y9)
	ROW16Z(Y10, Y11)
	VZEROUPPER
	RET

// STEP12x32 adds one packed column of A (12 values at ao(AX)) times one packed
// row of B (32 values at bo(BX)) to the accumulators Z0-Z23 (row i in Z2i, Z2i+1).
#define STEP12x32(ao, bo) \
	VMOVUPS (bo)(BX), Z24; \
	VMOVUPS (bo+64)(BX), Z25; \
	VBROADCASTSS (ao+0)(AX), Z26; \
	VFMADD231PS Z24, Z26, Z0; \
	VFMADD231PS Z25, Z26, Z1; \
	VBROADCASTSS (ao+4)(AX), Z27; \
	VFMADD231PS Z24, Z27, Z2; \
	VFMADD231PS Z25, Z27, Z3; \
	VBROADCASTSS (ao+8)(AX), Z28; \
	VFMADD231PS Z24, Z28, Z4; \
	VFMADD231PS Z25, Z28, Z5; \
	VBROADCASTSS (ao+12)(AX), Z29; \
	VFMADD231PS Z24, Z29, Z6; \
	VFMADD231PS Z25, Z29, Z7; \
	VBROADCASTSS (ao+16)(AX), Z26; \
	VFMADD231PS Z24, Z26, Z8; \
	VFMADD231PS Z25, Z26, Z9; \
	VBROADCASTSS (ao+20)(AX), Z27; \
	VFMADD231PS Z24, Z27, Z10; \
	VFMADD231PS Z25, Z27, Z11; \
	VBROADCASTSS (ao+24)(AX), Z28; \
	VFMADD231PS Z24, Z28, Z12; \
	VFMADD231PS Z25, Z28, Z13; \
	VBROADCASTSS (ao+28)(AX), Z29; \
	VFMADD231PS Z24, Z29, Z14; \
	VFMADD231PS Z25, Z29, Z15; \
	VBROADCASTSS (ao+32)(AX), Z26; \
	VFMADD231PS Z24, Z26, Z16; \
	VFMADD231PS Z25, Z26, Z17; \
	VBROADCASTSS (ao+36)(AX), Z27; \
	VFMADD231PS Z24, Z27, Z18; \
	VFMADD231PS Z25, Z27, Z19; \
	VBROADCASTSS (ao+40)(AX), Z28; \
	VFMADD231PS Z24, Z28, Z20; \
	VFMADD231PS Z25, Z28, Z21; \
	VBROADCASTSS (ao+44)(AX), Z29; \
	VFMADD231PS Z24, Z29, Z22; \
	VFMADD231PS Z25, Z29, Z23

// ROW32 stores row r0:r1 of the tile: alpha*acc + beta*C (Z26 = alpha, Z27 = beta).
#define ROW32(r0, r1) \
	VMULPS Z26, r0, r0; \
	VMULPS Z26, r1, r1; \
	VFMADD231PS (DI), Z27, r0; \
	VFMADD231PS 64(DI), Z27, r1; \
	VMOVUPS r0, (DI); \
	VMOVUPS r1, 64(DI); \
	ADDQ DX, DI

// ROW32Z stores row r0:r1 of the tile as alpha*acc, without reading C.
#define ROW32Z(r0, r1) \
	VMULPS Z26, r0, r0; \
	VMULPS Z26, r1, r1; \
	VMOVUPS r0, (DI); \
	VMOVUPS r1, 64(DI); \
	ADDQ DX, DI

// func microAVX512(k int, a, b, c *float32, ldc int, alpha, beta float32)
// The 12×32 tile C (row stride ldc) = alpha*Σ_p a[12p:12p+12]⊗b[32p:32p+32] + beta*C;
// with beta == ±0, C is not read.
TEXT ·microAVX512(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ b+16(FP), BX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), DX
	SHLQ $2, DX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	MOVQ CX, R9
	SHRQ $2, CX
	JZ   avx512tail

avx512loop4:
	STEP12x32(0, 0)
	STEP12x32(48, 128)
	STEP12x32(96, 256)
	STEP12x32(144, 384)
	ADDQ $192, AX
	ADDQ $512, BX
	DECQ CX
	JNZ  avx512loop4

avx512tail:
	ANDQ $3, R9
	JZ   avx512store

avx512loop1:
	STEP12x32(0, 0)
	ADDQ $48, AX
	ADDQ $128, BX
	DECQ R9
	JNZ  avx512loop1

avx512store:
	VBROADCASTSS alpha+40(FP), Z26
	MOVL beta+44(FP), R8
	ANDL $0x7fffffff, R8
	JZ   avx512store0
	VBROADCASTSS beta+44(FP), Z27
	ROW32(Z0, Z1)
	ROW32(Z2, Z3)
	ROW32(Z4, Z5)
	ROW32(Z6, Z7)
	ROW32(Z8, Z9)
	ROW32(Z10, Z11)
	ROW32(Z12, Z13)
	ROW32(Z14, Z15)
	ROW32(Z16, Z17)
	ROW32(Z18, Z19)
	ROW32(Z20, Z21)
	ROW32(Z22, Z23)
	VZEROUPPER
	RET

avx512store0:
	ROW32Z(Z0, Z1)
	ROW32Z(Z2, Z3)
	ROW32Z(Z4, Z5)
	ROW32Z(Z6, Z7)
	ROW32Z(Z8, Z9)
	ROW32Z(Z10, Z11)
	ROW32Z(Z12, Z13)
	ROW32Z(Z14, Z15)
	ROW32Z(Z16, Z17)
	ROW32Z(Z18, Z19)
	ROW32Z(Z20, Z21)
	ROW32Z(Z22, Z23)
	VZEROUPPER
	RET
