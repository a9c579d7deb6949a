package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/dsae/dsae/sae"
)

// threadsFlag is --threads of the commands that train: the goroutine budget
// of the matrix kernels (sae.SetThreads), apart from GOMAXPROCS.
type threadsFlag struct{ n int }

func addThreadsFlag(f *pflag.FlagSet) *threadsFlag {
	t := &threadsFlag{}
	f.IntVar(&t.n, "threads", 0, "goroutines one matrix product or elementwise pass runs on (0: GOMAXPROCS); "+
		"processes sharing a machine set it to their share of the cores")
	return t
}

// apply validates the flag and sets the budget for this process.
func (t *threadsFlag) apply() error {
	if t.n < 0 {
		return invalid(fmt.Errorf("--threads = %d out of range [0, …) (0: GOMAXPROCS)", t.n))
	}
	sae.SetThreads(t.n)
	return nil
}
