package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsae/dsae/worker/cpuset"
)

// demoSummary is the part of the demo's summary.json the tests read.
type demoSummary struct {
	JobID              string     `json:"job_id"`
	State              string     `json:"state"`
	Workers            *int       `json:"workers"`
	Coordinators       *int       `json:"coordinators"`
	Steps              *int64     `json:"steps"`
	SamplesPerSec      *float64   `json:"samples_per_sec"`
	TestFVU            *float64   `json:"test_fvu"`
	TestMeanActivation *float64   `json:"test_mean_activation"`
	RecoverySeconds    *[]float64 `json:"recovery_seconds"`
	TimeBreakdown      *struct {
		Data, StatsReduce, Compute, GradReduce, Update, Step float64
	} `json:"time_breakdown"`
	Kills []struct {
		Worker      string `json:"worker"`
		Step        int64  `json:"step"`
		Replacement string `json:"replacement"`
	} `json:"kills"`
	Generations []struct {
		ID      uint64   `json:"id"`
		Members []string `json:"members"`
	} `json:"generations"`
	WorkerCPUs map[string]string `json:"worker_cpus"`
	PinNote    string            `json:"pin_note"`
}

func readDemoSummary(t *testing.T, dir string) demoSummary {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s demoSummary
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("summary.json: %v\n%s", err, raw)
	}
	if s.Workers == nil || s.Coordinators == nil || s.Steps == nil || s.SamplesPerSec == nil || s.TestFVU == nil ||
		s.TestMeanActivation == nil || s.RecoverySeconds == nil || s.TimeBreakdown == nil || s.JobID == "" {
		t.Fatalf("summary.json lacks a field:\n%s", raw)
	}
	return s
}

// demoProcesses are the pids of the children the demo listed in
// processes.json.
func demoProcesses(t *testing.T, dir string) map[string]int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "processes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var recs []struct {
		Name string `json:"name"`
		PID  int    `json:"pid"`
	}
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatalf("processes.json: %v", err)
	}
	out := map[string]int{}
	for _, r := range recs {
		out[r.Name] = r.PID
	}
	return out
}

// checkNoneLeft fails if any child of the demo is still running.
func checkNoneLeft(t *testing.T, procs map[string]int) {
	t.Helper()
	for name, pid := range procs {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("demo child %s (pid %d) is still there after the demo exited (kill -0: %v)", name, pid, err)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// The README's first command with its defaults: a real cluster of child
// processes trains the demo job to the MNIST bar (test FVU ≤ 0.45, mean
// activation within 15% of ρ), writes the model, the pictures and
// summary.json, and leaves no process behind.
func TestDemo(t *testing.T) {
	skipSlow(t, "a full demo run (a cluster of processes trains MNIST)")
	dir := t.TempDir()
	out := filepath.Join(dir, "demo")
	start := time.Now()
	r := run(t, dir, "demo", "--out", out)
	t.Logf("dsae demo (%v):\n%s\n%s", time.Since(start).Round(time.Second), r.stdout, r.stderr)
	procs := demoProcesses(t, out)
	checkNoneLeft(t, procs)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for _, name := range []string{"s3", "ingest", "c1", "w1", "w2", "w3"} {
		if _, ok := procs[name]; !ok {
			t.Errorf("processes.json has no %s: %v", name, procs)
		}
	}
	// Each of the 3 workers runs its kernels, and its Go scheduler, on its
	// share of the cores.
	share := max(1, runtime.NumCPU()/3)
	wantThreads := fmt.Sprintf(", %d kernel threads (GOMAXPROCS %d)", share, share)
	for _, w := range []string{"w1", "w2", "w3"} {
		if b, err := os.ReadFile(filepath.Join(out, "logs", w+".log")); err != nil || !strings.Contains(string(b), wantThreads) {
			t.Errorf("%s's log does not say %q (%v):\n%.500s", w, wantThreads, err, b)
		}
	}
	s := readDemoSummary(t, out)
	if s.State != "completed" || *s.Workers != 3 || *s.Coordinators != 1 || *s.Steps < 1 {
		t.Errorf("summary: state %s, %d workers, %d coordinators, %d steps; want completed, 3, 1, some", s.State, *s.Workers, *s.Coordinators, *s.Steps)
	}
	if fvu, act := *s.TestFVU, *s.TestMeanActivation; fvu > 0.45 || math.Abs(act-0.1)/0.1 > 0.15 {
		t.Errorf("demo misses the MNIST bar: test FVU %.4f (want ≤ 0.45), mean activation %.4f (want within 15%% of ρ = 0.1)", fvu, act)
	}
	if *s.SamplesPerSec <= 0 || *s.TestFVU <= 0 || *s.TestMeanActivation <= 0 || *s.TestMeanActivation >= 1 {
		t.Errorf("summary: %.0f samples/s, test FVU %g, test mean activation %g", *s.SamplesPerSec, *s.TestFVU, *s.TestMeanActivation)
	}
	if len(*s.RecoverySeconds) != 0 || len(s.Kills) != 0 {
		t.Errorf("recoveries without a kill: %v %v", *s.RecoverySeconds, s.Kills)
	}
	tb := s.TimeBreakdown
	if parts := tb.Data + tb.StatsReduce + tb.Compute + tb.GradReduce + tb.Update; tb.Step <= 0 || tb.Compute <= 0 || parts > tb.Step*1.01 {
		t.Errorf("time breakdown %+v: parts sum to %g", *tb, parts)
	}
	if len(s.Generations) == 0 || len(s.Generations[0].Members) == 0 {
		t.Errorf("no generation in the summary: %+v", s.Generations)
	}
	if final := fmt.Sprintf("step %d/%d", *s.Steps, *s.Steps); !strings.Contains(r.stdout, final) || !strings.Contains(r.stdout, "test FVU") {
		t.Errorf("no final progress line or summary on stdout")
	}
	f, err := os.Open(filepath.Join(out, "features.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 196 latents: a 14×14 grid of 28×28 tiles at scale 2 with one-pixel
	// borders, under a title band of one to three 13-pixel lines (the
	// model, its sparsity, its steps).
	if b := img.Bounds(); b.Dx() != 14*57+1 || b.Dy() <= 14*57+1 || b.Dy() > 14*57+1+3*15+4 {
		t.Errorf("features.png is %v, want %d wide and %d high plus a title band", b, 14*57+1, 14*57+1)
	}
	if fi, err := os.Stat(filepath.Join(out, "loss.png")); err != nil || fi.Size() < 1000 {
		t.Errorf("loss.png missing or empty: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "model", "cfg.json")); err != nil {
		t.Errorf("no model pulled: %v", err)
	}
	// A second run into the same directory is refused without --overwrite.
	if r := run(t, dir, "demo", "--steps", "10", "--out", out); r.code != 2 || !strings.Contains(r.stderr, "--overwrite") {
		t.Errorf("demo into a used --out: exit %d, %s", r.code, r.stderr)
	}
}

// --kill-worker-at: one worker is SIGKILLed mid-training, a replacement
// starts, the job still completes and the summary reports the recovery.
func TestDemoKillWorker(t *testing.T) {
	skipSlow(t, "a demo run that kills a worker process")
	dir := t.TempDir()
	out := filepath.Join(dir, "demo")
	start := time.Now()
	// Enough steps that the job outlasts the kill, the replacement's 2 s
	// delay and its join (~120 steps/s here with 3 workers).
	r := run(t, dir, "demo", "--workers", "3", "--steps", "1000", "--kill-worker-at", "60", "--out", out)
	t.Logf("dsae demo (%v):\n%s\n%s", time.Since(start).Round(time.Second), r.stdout, r.stderr)
	checkNoneLeft(t, demoProcesses(t, out))
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	s := readDemoSummary(t, out)
	if s.State != "completed" || *s.Steps != 1000 {
		t.Errorf("state %s at step %d, want completed at 1000", s.State, *s.Steps)
	}
	if len(s.Kills) != 1 || s.Kills[0].Worker == "w1" || s.Kills[0].Step < 60 || s.Kills[0].Replacement == "" {
		t.Fatalf("kills: %+v; want one, not w1, at step >= 60, with a replacement", s.Kills)
	}
	if rs := *s.RecoverySeconds; len(rs) != 1 || rs[0] <= 0 || rs[0] > 60 {
		t.Errorf("recovery_seconds %v, want one value in (0, 60]", rs)
	}
	if len(s.Generations) < 2 {
		t.Errorf("generations %+v: want a new one after the kill", s.Generations)
	}
	killed := s.Kills[0].Worker
	last := s.Generations[len(s.Generations)-1]
	for _, m := range last.Members {
		if m == killed {
			t.Errorf("last generation %d still lists the killed worker %s", last.ID, killed)
		}
	}
}

// The demo binds each worker to CPUs of its own when the workers fit (here
// 2 workers need 2 CPUs), gives a killed worker's CPUs to its replacement,
// and binds nothing with --pin=false or when the workers do not fit.
func TestDemoPinsWorkers(t *testing.T) {
	skipSlow(t, "two demo runs, one of which kills a worker")
	dir := t.TempDir()
	out := filepath.Join(dir, "demo")
	r := run(t, dir, "demo", "--workers", "2", "--steps", "800", "--kill-worker-at", "40", "--out", out)
	checkNoneLeft(t, demoProcesses(t, out))
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	s := readDemoSummary(t, out)
	logCPUs := func(out, w string) string {
		b, err := os.ReadFile(filepath.Join(out, "logs", w+".log"))
		if err != nil {
			t.Fatal(err)
		}
		_, after, ok := strings.Cut(string(b), "), CPUs ")
		if !ok {
			return ""
		}
		return strings.SplitN(after, ",", 2)[0]
	}
	if runtime.NumCPU() < 2 {
		if s.WorkerCPUs != nil || !strings.Contains(s.PinNote, "do not fit") {
			t.Fatalf("on %d CPU: worker_cpus %v, pin_note %q; want none bound, and why", runtime.NumCPU(), s.WorkerCPUs, s.PinNote)
		}
		return
	}
	if len(s.Kills) != 1 || s.Kills[0].Replacement == "" {
		t.Fatalf("kills %+v: want one, with a replacement", s.Kills)
	}
	killed, repl := s.Kills[0].Worker, s.Kills[0].Replacement
	share := runtime.NumCPU() / 2
	if len(s.WorkerCPUs) != 2 || s.WorkerCPUs["w1"] == "" || s.WorkerCPUs[repl] == "" {
		t.Fatalf("worker_cpus %v: want w1 and the replacement %s", s.WorkerCPUs, repl)
	}
	seen := map[int]string{}
	for w, list := range s.WorkerCPUs {
		if got := logCPUs(out, w); got != list {
			t.Errorf("%s's log says CPUs %q, summary %q", w, got, list)
		}
		cpus, err := cpuset.Parse(list)
		if err != nil {
			t.Fatalf("worker_cpus of %s: %v", w, err)
		}
		for _, c := range cpus {
			if other, dup := seen[c]; dup {
				t.Errorf("CPU %d is bound to both %s and %s", c, other, w)
			}
			seen[c] = w
		}
	}
	if len(seen) != 2*share {
		t.Errorf("worker_cpus %v: want %d CPUs each", s.WorkerCPUs, share)
	}
	if k := logCPUs(out, killed); k != s.WorkerCPUs[repl] {
		t.Errorf("killed %s had CPUs %q, its replacement %s got %q; want the same", killed, k, repl, s.WorkerCPUs[repl])
	}

	out2 := filepath.Join(dir, "nopin")
	r = run(t, dir, "demo", "--workers", "2", "--steps", "20", "--pin=false", "--out", out2)
	if r.code != 0 {
		t.Fatalf("--pin=false: exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if s := readDemoSummary(t, out2); s.WorkerCPUs != nil || !strings.Contains(s.PinNote, "--pin=false") {
		t.Errorf("--pin=false: worker_cpus %v, pin_note %q; want none bound, and why", s.WorkerCPUs, s.PinNote)
	}
	if c := logCPUs(out2, "w1"); c != "" {
		t.Errorf("--pin=false: w1 is bound to CPUs %s", c)
	}
}

// An interrupted demo stops every child it started.
func TestDemoInterrupted(t *testing.T) {
	skipSlow(t, "a demo run interrupted by SIGINT")
	dir := t.TempDir()
	out := filepath.Join(dir, "demo")
	cmd := exec.Command(dsaeBin, "demo", "--workers", "2", "--steps", "100000", "--out", out)
	var stdout, stderr syncBuf
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	// Interrupt it mid-training: once a progress line shows a loss.
	for !strings.Contains(stdout.String(), " loss ") {
		select {
		case err := <-done:
			t.Fatalf("demo exited before training: %v\n%s\n%s", err, stdout.String(), stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("demo did not start training:\n%s\n%s", stdout.String(), stderr.String())
		}
	}
	procs := demoProcesses(t, out)
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("interrupted demo: %v, want exit 1", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("demo did not stop within 30 s of SIGINT")
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if len(procs) < 5 {
		t.Errorf("processes.json lists %v, want s3, ingest, c1, w1, w2", procs)
	}
	checkNoneLeft(t, procs)
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr does not say the demo was interrupted: %s", stderr.String())
	}
}

func TestDemoBadFlagsExit2(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--coordinators", "2"}, "--coordinators"},
		{[]string{"--workers", "0"}, "--workers"},
		{[]string{"--workers", "1", "--kill-worker-at", "5"}, "--kill-worker-at"},
		{[]string{"--steps", "10", "--kill-worker-at", "10"}, "--kill-worker-at"},
		{[]string{"--hidden", "0"}, "--hidden = 0 out of range"},
		{[]string{"--epochs", "0"}, "--epochs 0: want > 0"},
	} {
		out := filepath.Join(dir, "never")
		r := run(t, dir, append([]string{"demo", "--out", out}, c.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("demo %v: exit %d, stderr %q; want exit 2, one line naming %s", c.args, r.code, r.stderr, c.want)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("demo %v created --out before refusing", c.args)
		}
	}
}

// syncBuf is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
