package kernels

import (
	"runtime"
	"testing"
)

// TestThreadsBudget: the budget is GOMAXPROCS until SetThreads chooses one,
// follows GOMAXPROCS again after SetThreads(0), and ignores negative values.
func TestThreadsBudget(t *testing.T) {
	defer SetThreads(0)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(3)
	SetThreads(0)
	if got := Threads(); got != 3 {
		t.Fatalf("default Threads() = %d, want GOMAXPROCS = 3", got)
	}
	SetThreads(1)
	if got := Threads(); got != 1 {
		t.Fatalf("after SetThreads(1): Threads() = %d, want 1", got)
	}
	runtime.GOMAXPROCS(2)
	if got := Threads(); got != 1 {
		t.Fatalf("SetThreads(1) then GOMAXPROCS(2): Threads() = %d, want 1 (the budget is apart from GOMAXPROCS)", got)
	}
	SetThreads(-4)
	if got := Threads(); got != 2 {
		t.Fatalf("after SetThreads(-4): Threads() = %d, want the default GOMAXPROCS = 2", got)
	}
}
