//go:build !linux

package cpuset

import (
	"errors"
	"runtime"
)

// ErrUnsupported: CPU binding is implemented on Linux only.
var ErrUnsupported = errors.New("binding to CPUs is supported on Linux only")

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
