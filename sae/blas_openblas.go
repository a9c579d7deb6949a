//go:build openblas

package sae

// #cgo LDFLAGS: -lopenblas
import "C"

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/netlib/blas/netlib"
)

// With the openblas build tag, every matrix product of the package (and of
// any other package using blas32 in the same binary) runs on OpenBLAS
// through gonum's cgo netlib bindings. Building needs libopenblas-dev (the
// Debian package) and cgo; no environment variable is needed because the
// link flag is set here.
func init() {
	blas32.Use(netlib.Implementation{})
}

// BLASBackend names the BLAS implementation behind blas32 in this build.
const BLASBackend = "openblas"
