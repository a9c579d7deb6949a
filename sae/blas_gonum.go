//go:build gonumblas && !openblas

package sae

// BLASBackend names the BLAS implementation behind blas32 in this build:
// gonum's pure-Go implementation with the gonumblas build tag.
const BLASBackend = "gonum"

// Backend names the implementation that runs the matrix products.
func Backend() string { return "gonum" }
