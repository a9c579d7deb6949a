package cpuset

import (
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// allowed returns each thread's Cpus_allowed_list from /proc.
func allowed(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/status")
		if err != nil {
			continue // the thread exited
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				m[e.Name()] = strings.TrimSpace(v)
			}
		}
	}
	return m
}

// TestPinEveryThread pins the test process to its last CPU and checks, in
// /proc, that every thread — those that existed and threads started
// afterwards — may run on that CPU only; then it restores the mask.
func TestPinEveryThread(t *testing.T) {
	avail, err := Available()
	if err != nil {
		t.Fatal(err)
	}
	if len(avail) != runtime.NumCPU() { // the runtime counts the same mask
		t.Fatalf("Available() = %v, but runtime.NumCPU() = %d", avail, runtime.NumCPU())
	}
	defer func() {
		if err := Pin(avail); err != nil {
			t.Fatalf("restoring the mask: %v", err)
		}
	}()
	one := avail[len(avail)-1:]
	if err := Pin(one); err != nil {
		t.Fatal(err)
	}
	// New threads: goroutines locked to their own OS threads while blocked.
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			<-release
		}()
	}
	runtime.Gosched()
	for tid, list := range allowed(t) {
		if list != Format(one) {
			t.Errorf("thread %s may run on CPUs %s, want %s", tid, list, Format(one))
		}
	}
	close(release)
	wg.Wait()
	if err := Pin(avail); err != nil {
		t.Fatal(err)
	}
	for tid, list := range allowed(t) {
		if got, err := Parse(list); err != nil || !slices.Equal(got, avail) {
			t.Errorf("after restoring, thread %s may run on %s, want %s", tid, list, Format(avail))
		}
	}
}

func TestPinRefusesUnavailableCPU(t *testing.T) {
	avail, err := Available()
	if err != nil {
		t.Fatal(err)
	}
	bad := avail[len(avail)-1] + 1
	err = Pin([]int{bad})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "CPU "+Format([]int{bad})) || !strings.Contains(err.Error(), Format(avail)) {
		t.Fatalf("Pin([%d]) = %v; want ErrInvalid naming CPU %d and the available %s", bad, err, bad, Format(avail))
	}
	if err := Pin(nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Pin(nil) = %v, want ErrInvalid", err)
	}
}
