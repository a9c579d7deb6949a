package sae

import (
	"fmt"
	"testing"

	"gonum.org/v1/gonum/blas/blas32"
)

// TestBLASBackend: the build tag really switches blas32's implementation.
func TestBLASBackend(t *testing.T) {
	want := map[string]string{"gonum": "gonum.Implementation", "openblas": "netlib.Implementation", "kernels": "kernels.Implementation"}[BLASBackend]
	if got := fmt.Sprintf("%T", blas32.Implementation()); got != want {
		t.Fatalf("backend %s uses %s, want %s", BLASBackend, got, want)
	}
}
