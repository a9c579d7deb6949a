package sae

import (
	"math"
	"runtime"
	"testing"
)

// TestSetThreads: the budget reaches the Step's elementwise workers and the
// matrix kernels' Threads(), and a step computed under a budget of 1 with
// GOMAXPROCS 2 equals one computed under the default budget.
func TestSetThreads(t *testing.T) {
	defer SetThreads(0)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	SetThreads(1)
	if Threads() != 1 || defaultWorkers() != 1 {
		t.Fatalf("SetThreads(1): Threads() = %d, defaultWorkers() = %d, want 1 and 1", Threads(), defaultWorkers())
	}
	SetThreads(0)
	if Threads() != 2 || defaultWorkers() != 2 {
		t.Fatalf("SetThreads(0) with GOMAXPROCS 2: Threads() = %d, defaultWorkers() = %d, want 2 and 2", Threads(), defaultWorkers())
	}

	cfg := DefaultConfig()
	cfg.D, cfg.H = 64, 48
	grads := [2][]float32{}
	for i, n := range []int{1, 0} {
		SetThreads(n)
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		st := m.NewStep(96)
		x := randVec(11, 96*64, 1)
		for j := range x {
			x[j] = float32(math.Abs(float64(x[j]))) / 2 // sigmoid output wants [0, 1]
		}
		grads[i] = make([]float32, m.NumParams())
		st.Compute(x, 96, grads[i])
	}
	for j := range grads[0] {
		if d := math.Abs(float64(grads[0][j] - grads[1][j])); d > 1e-6*(1+math.Abs(float64(grads[1][j]))) {
			t.Fatalf("grad[%d] = %v with 1 thread, %v with 2", j, grads[0][j], grads[1][j])
		}
	}
}
