package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// TestDemoHelperProcess is not a test: procGroup tests run the test binary
// as a child in one of these modes.
func TestDemoHelperProcess(t *testing.T) {
	if os.Getenv("DSAE_DEMO_HELPER") != "1" {
		return
	}
	mode := os.Args[len(os.Args)-1]
	switch mode {
	case "serve": // runs until SIGTERM
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		fmt.Println("serving")
		<-ch
		os.Exit(0)
	case "stubborn": // ignores SIGTERM
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		time.Sleep(time.Hour)
	case "fail":
		fmt.Fprintln(os.Stderr, "helper: disk on fire")
		os.Exit(3)
	case "ok":
		os.Exit(0)
	}
	os.Exit(9)
}

func helperGroup(t *testing.T) *procGroup {
	dir := t.TempDir()
	return &procGroup{exe: os.Args[0], logDir: dir, listing: filepath.Join(dir, "processes.json"),
		env: append(os.Environ(), "DSAE_DEMO_HELPER=1")}
}

func helperArgs(mode string) []string {
	return []string{"-test.run=^TestDemoHelperProcess$", "--", mode}
}

// alive reports whether pid is a live process.
func alive(pid int) bool { return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// waitLog polls c's log until it contains s.
func waitLog(t *testing.T, c *child, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(c.log); strings.Contains(string(b), s) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never logged %q", c.name, s)
}

func TestProcGroupStopsEveryChild(t *testing.T) {
	g := helperGroup(t)
	var pids []int
	var kids []*child
	for i, mode := range []string{"serve", "stubborn", "serve"} {
		c, err := g.Start(fmt.Sprintf("p%d", i), i, helperArgs(mode)...)
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, c)
		pids = append(pids, c.cmd.Process.Pid)
	}
	for _, c := range kids {
		waitLog(t, c, "ing") // serving / ignoring SIGTERM: signal handlers are in place
	}
	if err := g.Check(); err != nil {
		t.Fatalf("Check with all running: %v", err)
	}
	start := time.Now()
	const grace = 3 * time.Second // ample for a clean exit, even under -race
	g.Stop(grace)
	took := time.Since(start)
	for i, pid := range pids {
		if alive(pid) {
			t.Errorf("child %d (pid %d) still alive after Stop", i, pid)
		}
	}
	// The stubborn child costs one grace period, then SIGKILL.
	if took < grace || took > 3*grace {
		t.Errorf("Stop took %v, want about one grace of %v for the stubborn child", took, grace)
	}
	if kids[0].err != nil || kids[2].err != nil {
		t.Errorf("children ending on SIGTERM: %v, %v; want clean exits", kids[0].err, kids[2].err)
	}
	if ws, ok := kids[1].cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Errorf("stubborn child ended by %v, want SIGKILL", kids[1].cmd.ProcessState)
	}
	if err := g.Check(); err != nil {
		t.Errorf("Check after Stop: %v; stopped children are not failures", err)
	}
	if _, err := g.Start("late", tierWorker, helperArgs("serve")...); err == nil {
		t.Error("Start after Stop succeeded")
	}
	raw, _ := os.ReadFile(g.listing)
	for _, pid := range pids {
		if !strings.Contains(string(raw), fmt.Sprintf(`"pid": %d`, pid)) {
			t.Errorf("listing lacks pid %d:\n%s", pid, raw)
		}
	}
}

func TestProcGroupCheckNamesTheFailedChild(t *testing.T) {
	g := helperGroup(t)
	defer g.Stop(time.Second)
	if err := g.Run("task", helperArgs("ok")...); err != nil {
		t.Fatalf("task exiting 0: %v", err)
	}
	if err := g.Run("badtask", helperArgs("fail")...); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("failed task: %v, want its last log line", err)
	}
	c, err := g.Start("srv", tierCoordinator, helperArgs("fail")...)
	if err != nil {
		t.Fatal(err)
	}
	<-c.done
	err = g.Check()
	if err == nil || !strings.Contains(err.Error(), "srv exited (exit status 3): helper: disk on fire; see "+c.log) {
		t.Errorf("Check: %v", err)
	}
	// A child killed on purpose is not a failure.
	g2 := helperGroup(t)
	defer g2.Stop(time.Second)
	k, err := g2.Start("victim", tierWorker, helperArgs("serve")...)
	if err != nil {
		t.Fatal(err)
	}
	g2.Kill(k)
	if alive(k.cmd.Process.Pid) {
		t.Error("killed child alive")
	}
	if err := g2.Check(); err != nil {
		t.Errorf("Check after Kill: %v", err)
	}
}

func TestFreeAddrs(t *testing.T) {
	addrs, err := freeAddrs(10)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] || !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("address %s repeated or not loopback", a)
		}
		seen[a] = true
	}
	if len(addrs) != 10 {
		t.Errorf("%d addresses, want 10", len(addrs))
	}
}

func TestPrepareOut(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "a", "b")
	if err := prepareOut(fresh, false); err != nil {
		t.Fatalf("absent dir: %v", err)
	}
	if err := prepareOut(fresh, false); err != nil {
		t.Fatalf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(fresh, "notes.txt"), []byte("mine"), 0o644)
	err := prepareOut(fresh, false)
	if err == nil || exitCode(err) != exitInvalid || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("non-empty dir without --overwrite: %v", err)
	}
	// --overwrite does not delete a directory that is not a demo's.
	err = prepareOut(fresh, true)
	if err == nil || exitCode(err) != exitInvalid {
		t.Errorf("foreign dir with --overwrite: %v", err)
	}
	if _, err := os.Stat(filepath.Join(fresh, "notes.txt")); err != nil {
		t.Errorf("foreign file deleted: %v", err)
	}
	os.Mkdir(filepath.Join(fresh, "logs"), 0o755)
	if err := prepareOut(fresh, true); err != nil {
		t.Fatalf("previous demo with --overwrite: %v", err)
	}
	if ents, _ := os.ReadDir(fresh); len(ents) != 0 {
		t.Errorf("--overwrite left %d entries", len(ents))
	}
}

func TestChildEnv(t *testing.T) {
	env := childEnv([]string{"PATH=/bin", "DSAE_CLUSTER_SECRET=users", "DSAE_COORDINATOR=10.0.0.1:7100", "AWS_ACCESS_KEY_ID=users", "DSAE_MNIST_DIR=/m"},
		map[string]string{"AWS_ACCESS_KEY_ID": "demo", "DSAE_S3_ENDPOINT": "127.0.0.1:1"})
	got := strings.Join(env, " ")
	for _, want := range []string{"PATH=/bin", "DSAE_MNIST_DIR=/m", "AWS_ACCESS_KEY_ID=demo", "DSAE_S3_ENDPOINT=127.0.0.1:1"} {
		if !strings.Contains(got, want) {
			t.Errorf("env lacks %s: %s", want, got)
		}
	}
	for _, bad := range []string{"DSAE_CLUSTER_SECRET", "DSAE_COORDINATOR", "AWS_ACCESS_KEY_ID=users"} {
		if strings.Contains(got, bad) {
			t.Errorf("env keeps %s: %s", bad, got)
		}
	}
}

func TestDemoSpecIsValidAndDerivedFromFlags(t *testing.T) {
	f := demoFlags{workers: 4, coordinators: 1, epochs: 2, seed: 7, hidden: 64, batch: 128, killAt: 100}
	s, err := demoSpec(f)
	if err != nil {
		t.Fatal(err)
	}
	m := s.Model
	if m.D != 784 || m.Hidden != 64 || m.Seed != 7 || m.Rho != 0.1 || m.Beta != 3 || m.Sparsity != "kl" || m.Output != "sigmoid" ||
		s.Batch != 128 || s.Epochs != 2 || s.Steps != 0 || s.MinWorkers != 1 || s.MaxWorkers != 4 ||
		s.Data != "mnist-train" || s.Test != "mnist-test" || s.CheckpointEvery != 50 {
		t.Errorf("spec %v does not follow the flags", s)
	}
	f.steps = 30
	if s, _ = demoSpec(f); s.Steps != 30 || s.Epochs != 0 {
		t.Errorf("--steps 30: steps %d, epochs %g", s.Steps, s.Epochs)
	}
	f.hidden = 0
	if _, err := demoSpec(f); err == nil || !strings.Contains(err.Error(), "hidden") || exitCode(invalid(err)) != exitInvalid {
		t.Errorf("hidden 0: %v, want sae's error naming hidden", err)
	}
}

func TestTrainResultSummary(t *testing.T) {
	r := &trainResult{}
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	r.observe(&pb.Job{Id: "job-000001", State: pb.JobState_JOB_STATE_QUEUED}, t0) // no generation or metrics yet
	j1 := fakeJob(running, 10, 1, "w1", "w2")                                     // step times: 10 ms, 4 ms of them reducing
	r.observe(j1, t0)
	r.observe(j1, t0.Add(time.Second)) // the same report again: not counted twice
	j2 := fakeJob(running, 30, 1, "w1", "w2")
	j2.LatestMetrics.Values["time_step"], j2.LatestMetrics.Values["time_compute"] = 0.020, 0.014
	r.observe(j2, t0.Add(2*time.Second))
	done := fakeJob(completed, 30, 1, "w1", "w2")
	done.FinalMetrics = &pb.Metrics{Step: 30, Values: map[string]float64{"test_fvu": 0.3, "test_mean_activation": 0.11, "samples_per_sec": 1234}}
	r.observe(done, t0.Add(3*time.Second))
	if len(r.history) != 2 || r.history[0].Step != 10 || r.history[1].Step != 30 {
		t.Errorf("history %+v, want the reports of steps 10 and 30", r.history)
	}
	mt := r.meanTimes()
	// Means over steps: the report of step 10 covers 10 steps, that of step
	// 30 the 20 after it.
	if mt == nil || math.Abs(mt.Step-0.500/30) > 1e-9 || math.Abs(mt.Compute-0.320/30) > 1e-9 || math.Abs(mt.CommFraction-0.24) > 1e-9 {
		t.Errorf("mean times %+v, want step 500/30 ms, compute 320/30 ms, communication 120/500", mt)
	}
	d := &demo{f: demoFlags{workers: 2, coordinators: 1}, procs: &procGroup{logDir: "/x/logs"}}
	s := d.summarize(r, time.Minute)
	// 20 steps of batch 100 between the first (t0) and last (t0+2s) step seen.
	if s.WallSamplesPerSec != 1000 || s.SamplesPerSec != 1234 || s.Steps != 30 || *s.TestFVU != 0.3 || *s.TestMeanActivation != 0.11 {
		t.Errorf("summary %+v", s)
	}
	if s.RecoverySeconds == nil || len(s.RecoverySeconds) != 0 {
		t.Errorf("recovery_seconds %v, want an empty list", s.RecoverySeconds)
	}
	rec := 2.5
	r.kill = &killRecord{Worker: "w2", Step: 12, RecoverySeconds: &rec}
	if s := d.summarize(r, time.Minute); len(s.RecoverySeconds) != 1 || s.RecoverySeconds[0] != 2.5 || len(s.Kills) != 1 {
		t.Errorf("with a kill: %v %v", s.RecoverySeconds, s.Kills)
	}
}

// Workers sharing the machine split its cores and never get fewer than one.
func TestWorkerThreads(t *testing.T) {
	for _, c := range []struct{ cpus, workers, want int }{{2, 1, 2}, {2, 2, 1}, {2, 3, 1}, {8, 3, 2}, {16, 4, 4}, {1, 0, 1}} {
		if got := workerThreads(c.cpus, c.workers); got != c.want {
			t.Errorf("workerThreads(%d cpus, %d workers) = %d, want %d", c.cpus, c.workers, got, c.want)
		}
	}
}
