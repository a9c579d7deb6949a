//go:build openblas

package sae

// With the openblas build tag every matrix product of the package (and of
// any package using gonum's blas32 or blas64 in the same binary) runs on
// OpenBLAS; see package sae/internal/openblas.
import _ "github.com/dsae/dsae/sae/internal/openblas"

// BLASBackend names the BLAS implementation behind blas32 in this build.
const BLASBackend = "openblas"
