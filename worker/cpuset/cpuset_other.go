//go:build !linux

package cpuset

import "runtime"

// Supported reports whether Pin can bind this process: not on this system.
const Supported = false

// Available returns CPUs 0 … runtime.NumCPU()-1.
func Available() ([]int, error) {
	cpus := make([]int, runtime.NumCPU())
	for i := range cpus {
		cpus[i] = i
	}
	return cpus, nil
}

// Pin fails with ErrUnsupported.
func Pin(cpus []int) error { return ErrUnsupported }
