//go:build openblas

// Package openblas switches gonum's blas32 and blas64 to OpenBLAS through
// gonum's cgo netlib bindings when imported (for its side effect) in a build
// with the openblas tag. It links -lopenblas itself, so building needs only
// libopenblas-dev and cgo, no environment variable. It is a separate package
// because a cgo package cannot hold the Go assembly kernels of package sae.
package openblas

// #cgo LDFLAGS: -lopenblas
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
