// Package cpuset binds a worker process to a set of CPUs.
//
// Several workers sharing one machine train fastest when each has cores of
// its own: a synchronous step waits for the slowest rank, and a rank whose
// threads the kernel moves onto another rank's core (or whose wake-ups queue
// behind another rank's compute) delays every rank. `dsae worker --cpus`
// applies Pin at start-up, and `dsae demo` gives each worker a disjoint set
// when the workers' shares fit on the machine (docs/benchmarks/cluster.md
// has the measurements).
package cpuset

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Sentinel errors of package cpuset.
var (
	// ErrInvalid: a CPU list that does not parse or names a CPU this
	// process may not run on; the message names the part.
	ErrInvalid = errors.New("invalid CPU list")
	// ErrUnsupported: binding is implemented on Linux only (Supported).
	ErrUnsupported = errors.New("binding to CPUs is supported on Linux only")
)

// maxCPU bounds the CPU numbers Parse accepts.
const maxCPU = 1 << 14

// Parse reads a CPU list in the kernel's notation ("0", "0-3", "0-3,8,10-11",
// as in /proc/*/status Cpus_allowed_list and taskset -c) and returns the
// CPUs sorted, without repeats.
func Parse(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalid)
	}
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		p := strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(p, "-")
		a, err := parseCPU(lo)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrInvalid, p, err)
		}
		b := a
		if isRange {
			if b, err = parseCPU(hi); err != nil {
				return nil, fmt.Errorf("%w: %q: %v", ErrInvalid, p, err)
			}
			if b < a {
				return nil, fmt.Errorf("%w: %q: range ends before it starts", ErrInvalid, p)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	slices.Sort(cpus)
	return slices.Compact(cpus), nil
}

func parseCPU(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n >= maxCPU {
		return 0, fmt.Errorf("want a CPU number in [0, %d)", maxCPU)
	}
	return n, nil
}

// Format writes cpus (sorted) in the notation Parse reads, with ranges.
func Format(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Split cuts avail into n disjoint sets of per CPUs each, in order, or
// returns nil when they do not fit (n·per > len(avail)) or n or per is
// not positive.
func Split(avail []int, n, per int) [][]int {
	if n < 1 || per < 1 || n*per > len(avail) {
		return nil
	}
	sets := make([][]int, n)
	for i := range sets {
		sets[i] = slices.Clone(avail[i*per : (i+1)*per])
	}
	return sets
}

// check reports a CPU of cpus that is not in avail.
func check(cpus, avail []int) error {
	if len(cpus) == 0 {
		return fmt.Errorf("%w: no CPU given", ErrInvalid)
	}
	for _, c := range cpus {
		if !slices.Contains(avail, c) {
			return fmt.Errorf("%w: CPU %d is not one this process may run on (%s)", ErrInvalid, c, Format(avail))
		}
	}
	return nil
}
