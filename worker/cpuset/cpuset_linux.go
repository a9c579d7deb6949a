package cpuset

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Supported reports whether Pin can bind this process: on Linux, yes.
const Supported = true

// Available returns the CPUs this process could run on when it started
// (its affinity mask then, inherited from its parent): the CPUs Pin
// accepts, also after an earlier Pin narrowed the mask.
func Available() ([]int, error) {
	if startErr != nil {
		return nil, startErr
	}
	return slices.Clone(startCPUs), nil
}

var startCPUs, startErr = readMask()

func readMask() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("reading the CPU affinity: %w", err)
	}
	var cpus []int
	for c := range len(set) * 64 {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// Pin restricts every thread of this process, and so every thread it
// starts later (threads inherit their creator's mask), to cpus. Each CPU
// must be one the process could run on when it started (Available).
func Pin(cpus []int) error {
	avail, err := Available()
	if err != nil {
		return err
	}
	if err := check(cpus, avail); err != nil {
		return err
	}
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	// A thread the runtime starts while the loop runs may copy the old mask
	// from a thread not yet pinned: repeat until a pass finds no new one.
	done := map[int]bool{}
	for pass := 0; ; pass++ {
		tids, err := threads()
		if err != nil {
			return err
		}
		fresh := 0
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("pinning thread %d to CPUs %s: %w", tid, Format(cpus), err)
			}
			done[tid] = true
			fresh++
		}
		if fresh == 0 {
			return nil
		}
		if pass > 100 {
			return fmt.Errorf("pinning to CPUs %s: the process keeps starting threads", Format(cpus))
		}
	}
}

// threads lists the thread ids of this process.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("listing this process's threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	slices.Sort(tids)
	return tids, nil
}
