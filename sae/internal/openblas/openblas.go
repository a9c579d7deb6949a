//go:build openblas

// Package openblas switches gonum's blas32 and blas64 to OpenBLAS through
// gonum's cgo netlib bindings when imported (for its side effect) in a build
// with the openblas tag. It links -lopenblas itself, so building needs only
// libopenblas-dev and cgo, no environment variable. It is a separate package
// because a cgo package cannot hold the Go assembly kernels of package sae.
package openblas

// #cgo LDFLAGS: -lopenblas
// void openblas_set_num_threads(int);
import "C"

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"
)

func init() {
	blas32.Use(netlib.Implementation{})
	blas64.Use(netlib.Implementation{})
}

// SetThreads sets the number of threads OpenBLAS uses for one call. With 1,
// OpenBLAS starts no worker threads of its own, so none spin between calls;
// callers then split large products across goroutines themselves (OpenBLAS
// calls from several threads at once are safe).
func SetThreads(n int) {
	C.openblas_set_num_threads(C.int(n))
}
