//go:build !openblas

package sae

// BLASBackend names the BLAS implementation behind blas32 in this build:
// gonum's pure-Go implementation unless built with the openblas tag.
const BLASBackend = "gonum"
