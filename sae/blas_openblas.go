//go:build openblas

package sae

// With the openblas build tag every matrix product of the package (and of
// any package using gonum's blas32 or blas64 in the same binary) runs on
// OpenBLAS; see package sae/internal/openblas.
import "github.com/dsae/dsae/sae/internal/openblas"

// OpenBLAS runs single-threaded per call and gemm splits each product across
// goroutines: OpenBLAS's own worker threads busy-wait between calls and
// would compete with the elementwise work that runs between products.
func init() {
	openblas.SetThreads(1)
	gemmSplit = true
}

// BLASBackend names the BLAS implementation behind blas32 in this build.
const BLASBackend = "openblas"

// Backend names the implementation that runs the matrix products.
func Backend() string { return "openblas" }
