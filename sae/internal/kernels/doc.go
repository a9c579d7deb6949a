// Package kernels is a float32 GEMM for package sae in pure Go plus Go
// assembly, without cgo: a packed, cache-blocked product in the BLIS/GotoBLAS
// structure (panels of op(A) and op(B) packed into contiguous buffers sized
// for the L2 and L1 caches, then a register-blocked micro-kernel), with an
// AVX-512 micro-kernel (12×32) and an AVX2+FMA one (6×16) on amd64, chosen at
// run time from golang.org/x/sys/cpu. A portable Go micro-kernel (4×8) is the
// reference for the driver and can be selected by name; on CPUs without AVX2
// (and on other architectures) the default is gonum's native Sgemm.
//
// Implementation plugs into gonum's blas32 seam (blas32.Use): it is gonum's
// native implementation with Sgemm replaced.
//
// Threads: one product runs on up to Threads() goroutines (small products on
// one): runtime.GOMAXPROCS(0) unless SetThreads chose another budget.
// Processes sharing a machine set it, or GOMAXPROCS, to their share of the
// cores.
package kernels
