package kernels

import (
	"runtime"
	"sync/atomic"
)

// threads is the goroutine budget of one product; 0 means GOMAXPROCS.
var threads atomic.Int32

// SetThreads sets the most goroutines one product runs on; n ≤ 0 restores
// the default, runtime.GOMAXPROCS(0). It may be called at any time; products
// already running keep the budget they started with.
func SetThreads(n int) {
	if n < 0 {
		n = 0
	}
	threads.Store(int32(min(n, 1<<20)))
}

// Threads returns the goroutine budget of one product: the value given to
// SetThreads, or runtime.GOMAXPROCS(0) if none was.
func Threads() int {
	if n := threads.Load(); n > 0 {
		return int(n)
	}
	return runtime.GOMAXPROCS(0)
}
