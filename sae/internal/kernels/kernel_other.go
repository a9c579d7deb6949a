//go:build !amd64 || purego

package kernels

// asmKernels: no assembly micro-kernel on this platform.
func asmKernels() []kernel { return nil }
