package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/spf13/pflag"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/worker/cpuset"
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

// cpusFlag is --cpus: the CPUs a worker process binds itself to.
type cpusFlag struct{ list string }

func addCPUsFlag(f *pflag.FlagSet) *cpusFlag {
	c := &cpusFlag{}
	f.StringVar(&c.list, "cpus", "", "bind this process to these CPUs, e.g. 0-3,8 (Linux; as taskset -c). "+
		"Workers sharing a machine run fastest on disjoint sets; GOMAXPROCS follows unless set in the environment")
	return c
}

// apply binds the process (every thread, and those started later) to the
// CPUs and, unless $GOMAXPROCS is set, lowers GOMAXPROCS to their number.
// It returns the CPUs, nil when --cpus is not given.
func (c *cpusFlag) apply() ([]int, error) {
	if c.list == "" {
		return nil, nil
	}
	cpus, err := cpuset.Parse(c.list)
	if err == nil {
		err = cpuset.Pin(cpus)
	}
	if err != nil {
		return nil, invalid(fmt.Errorf("--cpus %s: %w", c.list, err))
	}
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) > len(cpus) {
		runtime.GOMAXPROCS(len(cpus))
	}
	return cpus, nil
}
