//go:build !purego

#include "textflag.h"

// func axpyAVX2(alpha float32, x, y []float32)
// y[i] += alpha*x[i] for i < len(x)&^7 (len(y) >= len(x)), with FMA.
TEXT ·axpyAVX2(SB), NOSPLIT, $0-56
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ x_base+8(FP), SI
	MOVQ x_len+16(FP), CX
	MOVQ y_base+32(FP), DI
	MOVQ CX, DX
	SHRQ $5, CX
	JZ   tail8

loop32:
	VMOVUPS (SI), Y1
	VMOVUPS 32(SI), Y2
	VMOVUPS 64(SI), Y3
	VMOVUPS 96(SI), Y4
	VFMADD213PS (DI), Y0, Y1
	VFMADD213PS 32(DI), Y0, Y2
	VFMADD213PS 64(DI), Y0, Y3
	VFMADD213PS 96(DI), Y0, Y4
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	VMOVUPS Y3, 64(DI)
	VMOVUPS Y4, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  loop32

tail8:
	ANDQ $31, DX
	SHRQ $3, DX
	JZ   done

loop8:
	VMOVUPS (SI), Y1
	VFMADD213PS (DI), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ DX
	JNZ  loop8

done:
	VZEROUPPER
	RET

// func dotAVX2(x, y []float32) float32
// Σ x[i]*y[i] for i < len(x)&^7 (len(y) >= len(x)), four FMA accumulators.
TEXT ·dotAVX2(SB), NOSPLIT, $0-52
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ y_base+24(FP), DI
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	MOVQ CX, DX
	SHRQ $5, CX
	JZ   dtail8

dloop32:
	VMOVUPS (DI), Y5
	VMOVUPS 32(DI), Y6
	VMOVUPS 64(DI), Y7
	VMOVUPS 96(DI), Y8
	VFMADD231PS (SI), Y5, Y1
	VFMADD231PS 32(SI), Y6, Y2
	VFMADD231PS 64(SI), Y7, Y3
	VFMADD231PS 96(SI), Y8, Y4
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  dloop32

dtail8:
	ANDQ $31, DX
	SHRQ $3, DX
	JZ   dsum

dloop8:
	VMOVUPS (DI), Y5
	VFMADD231PS (SI), Y5, Y1
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ DX
	JNZ  dloop8

dsum:
	VADDPS Y2, Y1, Y1
	VADDPS Y4, Y3, Y3
	VADDPS Y3, Y1, Y1
	VEXTRACTF128 $1, Y1, X2
	VADDPS X2, X1, X1
	VHADDPS X1, X1, X1
	VHADDPS X1, X1, X1
	VZEROUPPER
	MOVSS X1, ret+48(FP)
	RET

// func scaleAVX2(alpha float32, x []float32)
// x[i] *= alpha for i < len(x)&^7.
TEXT ·scaleAVX2(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ x_base+8(FP), DI
	MOVQ x_len+16(FP), CX
	MOVQ CX, DX
	SHRQ $5, CX
	JZ   stail8

sloop32:
	VMULPS (DI), Y0, Y1
	VMULPS 32(DI), Y0, Y2
	VMULPS 64(DI), Y0, Y3
	VMULPS 96(DI), Y0, Y4
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	VMOVUPS Y3, 64(DI)
	VMOVUPS Y4, 96(DI)
	ADDQ $128, DI
	DECQ CX
	JNZ  sloop32

stail8:
	ANDQ $31, DX
	SHRQ $3, DX
	JZ   sdone

sloop8:
	VMULPS (DI), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, DI
	DECQ DX
	JNZ  sloop8

sdone:
	VZEROUPPER
	RET

// func sumSquaresAVX2(g []float32, acc *[16]float64)
// acc[k] += float64(g[i])² (product and sum each rounded, no FMA) for every
// i ≡ k (mod 16), i < len(g)&^15: sixteen interleaved float64 accumulators
// in four registers, the order sumSquaresGo follows.
TEXT ·sumSquaresAVX2(SB), NOSPLIT, $0-32
	MOVQ g_base+0(FP), SI
	MOVQ g_len+8(FP), CX
	MOVQ acc+24(FP), DI
	VMOVUPD (DI), Y0
	VMOVUPD 32(DI), Y1
	VMOVUPD 64(DI), Y2
	VMOVUPD 96(DI), Y3
	SHRQ $4, CX
	JZ   qdone

qloop16:
	VCVTPS2PD (SI), Y4
	VCVTPS2PD 16(SI), Y5
	VCVTPS2PD 32(SI), Y6
	VCVTPS2PD 48(SI), Y7
	VMULPD Y4, Y4, Y4
	VMULPD Y5, Y5, Y5
	VMULPD Y6, Y6, Y6
	VMULPD Y7, Y7, Y7
	VADDPD Y4, Y0, Y0
	VADDPD Y5, Y1, Y1
	VADDPD Y6, Y2, Y2
	VADDPD Y7, Y3, Y3
	ADDQ $64, SI
	DECQ CX
	JNZ  qloop16

qdone:
	VMOVUPD Y0, (DI)
	VMOVUPD Y1, 32(DI)
	VMOVUPD Y2, 64(DI)
	VMOVUPD Y3, 96(DI)
	VZEROUPPER
	RET
