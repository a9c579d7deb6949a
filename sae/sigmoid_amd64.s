//go:build !purego

#include "textflag.h"

DATA sigConst<>+0(SB)/4, $0x42b00000  // 88.0 (upper clamp of -z)
DATA sigConst<>+4(SB)/4, $0xc2ae0000  // -87.0 (lower clamp of -z)
DATA sigConst<>+8(SB)/4, $0x3fb8aa3b  // log2(e)
DATA sigConst<>+12(SB)/4, $0x3f318000 // ln2 high part 0.693359375
DATA sigConst<>+16(SB)/4, $0xb95e8083 // ln2 low part -2.12194440e-4
DATA sigConst<>+20(SB)/4, $0x3ab60b61 // 1/720
DATA sigConst<>+24(SB)/4, $0x3c088889 // 1/120
DATA sigConst<>+28(SB)/4, $0x3d2aaaab // 1/24
DATA sigConst<>+32(SB)/4, $0x3e2aaaab // 1/6
DATA sigConst<>+36(SB)/4, $0x3f000000 // 1/2
DATA sigConst<>+40(SB)/4, $0x3f800000 // 1
DATA sigConst<>+44(SB)/4, $0x0000007f // 127 (exponent bias)
GLOBL sigConst<>(SB), RODATA|NOPTR, $48

// func sigmoidBiasAVX2(dst, x, b []float32)
// dst[i] = 1/(1+exp(-(x[i]+b[i]))) for i < len(dst)&^7; the same algorithm
// as expf (clamp, n = round(t·log2e), r = t − n·ln2, degree-6 polynomial,
// scale by 2^n), eight lanes at a time with AVX2 and FMA.
TEXT ·sigmoidBiasAVX2(SB), NOSPLIT, $0-72
	MOVQ dst_base+0(FP), DI
	MOVQ dst_len+8(FP), CX
	MOVQ x_base+24(FP), SI
	MOVQ b_base+48(FP), DX
	SHRQ $3, CX
	JZ   done

	VBROADCASTSS sigConst<>+0(SB), Y4   // hi clamp
	VBROADCASTSS sigConst<>+4(SB), Y5   // lo clamp
	VBROADCASTSS sigConst<>+8(SB), Y6   // log2e
	VBROADCASTSS sigConst<>+12(SB), Y7  // ln2hi
	VBROADCASTSS sigConst<>+16(SB), Y8  // ln2lo
	VBROADCASTSS sigConst<>+20(SB), Y9  // 1/720
	VBROADCASTSS sigConst<>+24(SB), Y10 // 1/120
	VBROADCASTSS sigConst<>+28(SB), Y11 // 1/24
	VBROADCASTSS sigConst<>+32(SB), Y12 // 1/6
	VBROADCASTSS sigConst<>+36(SB), Y13 // 1/2
	VBROADCASTSS sigConst<>+40(SB), Y14 // 1
	VPBROADCASTD sigConst<>+44(SB), Y15 // 127

loop:
	VMOVUPS (SI), Y0
	VADDPS  (DX), Y0, Y0      // z = x + b
	VXORPS  Y1, Y1, Y1
	VSUBPS  Y0, Y1, Y0        // t = -z
	VMINPS  Y0, Y4, Y0        // t = min(t, 88); a NaN t is kept (second source)
	VMAXPS  Y0, Y5, Y0        // t = max(t, -87), NaN kept
	VMULPS  Y6, Y0, Y1        // t·log2e
	VROUNDPS $0, Y1, Y1       // n = round to nearest
	VFNMADD231PS Y7, Y1, Y0   // r = t − n·ln2hi
	VFNMADD231PS Y8, Y1, Y0   // r −= n·ln2lo
	VMOVAPS Y9, Y2            // p = 1/720
	VFMADD213PS Y10, Y0, Y2   // p = p·r + 1/120
	VFMADD213PS Y11, Y0, Y2   // p = p·r + 1/24
	VFMADD213PS Y12, Y0, Y2   // p = p·r + 1/6
	VFMADD213PS Y13, Y0, Y2   // p = p·r + 1/2
	VFMADD213PS Y14, Y0, Y2   // p = p·r + 1
	VFMADD213PS Y14, Y0, Y2   // p = p·r + 1
	VCVTPS2DQ Y1, Y3          // integer n
	VPADDD  Y15, Y3, Y3       // n + 127
	VPSLLD  $23, Y3, Y3       // 2^n as float bits
	VMULPS  Y3, Y2, Y2        // e^t
	VADDPS  Y14, Y2, Y2       // 1 + e^t
	VDIVPS  Y2, Y14, Y2       // 1 / (1 + e^t)
	VMOVUPS Y2, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ  loop
	VZEROUPPER

done:
	RET
