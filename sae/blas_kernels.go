//go:build !gonumblas && !openblas

package sae

import (
	"fmt"
	"os"

	"github.com/dsae/dsae/sae/internal/kernels"
	"gonum.org/v1/gonum/blas/blas32"
)

// BLASBackend names the BLAS implementation behind blas32 in this build:
// the packed kernels of sae/internal/kernels (the default; the gonumblas
// build tag selects gonum's pure Go, openblas OpenBLAS).
const BLASBackend = "kernels"

// KernelEnv names the environment variable that overrides the GEMM
// micro-kernel picked from the CPU's features: one of avx512, avx2, go (the
// portable Go kernel) or gonum (gonum's native Sgemm). It is read once, when
// the package is initialised; an unknown or unsupported name panics then.
// The default is the fastest kernel the CPU supports.
const KernelEnv = "DSAE_KERNEL"

// The kernels run every product on up to Threads() goroutines themselves,
// so gemm does not split products (gemmSplit stays false).
func init() {
	if name := os.Getenv(KernelEnv); name != "" {
		if err := kernels.Use(name); err != nil {
			panic(fmt.Sprintf("sae: %s=%s: %v", KernelEnv, name, err))
		}
	}
	blas32.Use(kernels.Implementation{})
}

// Backend names the implementation that runs the matrix products:
// "kernels/avx512", "kernels/avx2", "kernels/go" or "kernels/gonum" (gonum's
// native Sgemm, the fallback on CPUs without AVX2 and FMA).
func Backend() string { return "kernels/" + kernels.Name() }
