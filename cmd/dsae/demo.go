package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/dsae/dsae/coordinator"
	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/worker/cpuset"
	"github.com/dsae/dsae/worker/jobspec"
)

// demoFlags are the settings of `dsae demo`.
type demoFlags struct {
	workers, coordinators int
	steps                 int64
	epochs                float64
	seed                  uint64
	hidden, batch         int
	out                   string
	overwrite             bool
	killAt                int64
	keepRunning, pin      bool
	progress, timeout     time.Duration
}

const (
	// demoDefaultEpochs keeps the default demo under 3 minutes on 2 cores.
	demoDefaultEpochs = 5
	// demoReplaceDelay is how long after killing a worker its replacement
	// is started.
	demoReplaceDelay = 2 * time.Second
	// demoStopGrace is how long a child has to exit after SIGTERM.
	demoStopGrace = 5 * time.Second
)

func newDemoCmd() *cobra.Command {
	f := demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole cluster on this machine and train a sparse autoencoder on MNIST",
		Long: `Start a real cluster on loopback, as child processes of this one: the
embedded S3 server in --out/s3, one coordinator (--coordinators 3 for a raft
group) and --workers workers, on free ports, with a generated cluster secret
(--out/secret) and S3 credentials. MNIST is ingested, a KL sparse autoencoder
(784→--hidden, ρ = 0.1, β = 3) is trained with a live progress bar, then the
model (--out/model), its features (--out/features.png), the loss curve
(--out/loss.png) and a summary (--out/summary.json) are written. Each process
logs to --out/logs/NAME.log; all are stopped when the demo ends or is
interrupted.

With --kill-worker-at STEP the demo SIGKILLs one worker when the job reaches
STEP, starts a replacement 2 s later, and reports how long training took to
move past the step of the kill. Exits 0 only if the job completed.`,
		Example: `  dsae demo
  dsae demo --workers 4 --coordinators 3 --kill-worker-at 300 --out /tmp/demo --overwrite`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.workers, "workers", 3, "worker processes, in [1, 16]")
	fl.IntVar(&f.coordinators, "coordinators", 1, "coordinator processes: 1, 3 or 5")
	fl.Int64Var(&f.steps, "steps", 0, "training steps (overrides --epochs)")
	fl.Float64Var(&f.epochs, "epochs", demoDefaultEpochs, "passes over the 60,000 training images (when --steps is 0)")
	fl.Uint64Var(&f.seed, "seed", 1, "initialisation and data-order seed")
	fl.IntVar(&f.hidden, "hidden", 196, "latents of the autoencoder")
	fl.IntVar(&f.batch, "batch", jobspec.DefaultBatch, "global batch size, split over the workers")
	fl.StringVar(&f.out, "out", "dsae-demo", "directory for the model, pictures, summary, logs and cluster state; must be empty or absent")
	fl.BoolVar(&f.overwrite, "overwrite", false, "replace the contents of --out if it holds a previous demo")
	fl.Int64Var(&f.killAt, "kill-worker-at", 0, "SIGKILL one worker at this step and start a replacement (0: never)")
	fl.BoolVar(&f.keepRunning, "keep-running", false, "keep the cluster running after the job until interrupted")
	fl.BoolVar(&f.pin, "pin", true, "bind each worker to CPUs of its own (dsae worker --cpus) when the workers' shares fit on this machine")
	fl.DurationVar(&f.progress, "progress", 2*time.Second, "interval between progress lines when the output is not a terminal")
	fl.DurationVar(&f.timeout, "timeout", 20*time.Minute, "give up when the job has not ended after this long")
	return cmd
}

// demoSpec is the job the demo submits: the defaults of the job vocabulary
// (jobspec.Default: the classic KL sparse autoencoder, ρ = 0.1, β = 3,
// weight decay 3e-3, Adam at lr 3e-3) on MNIST with the demo's flags,
// validated as `dsae job submit` validates it.
func demoSpec(f demoFlags) (*pb.JobSpec, error) {
	s := jobspec.Default()
	s.Name, s.Data, s.Test = "demo-mnist-kl", "mnist-train", "mnist-test"
	s.Model.D, s.Model.H, s.Model.Seed = 784, f.hidden, f.seed
	s.Batch, s.Steps, s.Epochs = f.batch, f.steps, f.epochs
	if f.steps > 0 {
		s.Epochs = 0 // --steps overrides --epochs; the job's spec says so
	}
	s.MinWorkers, s.MaxWorkers = 1, f.workers
	if f.killAt > 0 {
		// A checkpoint before the kill lets the job resume even if the
		// surviving workers cannot donate their state.
		s.CheckpointEvery = max(1, f.killAt/2)
	}
	if err := s.Validate(); err != nil {
		// The settings the demo takes are flags of the same names.
		return nil, fmt.Errorf("demo job: %w", jobspec.Explain(err, jobspec.Flags))
	}
	p := s.Proto()
	if err := coordinator.ValidateSpec(p); err != nil {
		return nil, fmt.Errorf("demo job: %w", err)
	}
	return p, nil
}

func (f demoFlags) validate() error {
	switch {
	case f.workers < 1 || f.workers > 16:
		return fmt.Errorf("--workers %d out of range [1, 16]", f.workers)
	case f.coordinators != 1 && f.coordinators != 3 && f.coordinators != 5:
		return fmt.Errorf("--coordinators %d: want 1, 3 or 5", f.coordinators)
	case f.steps < 0:
		return fmt.Errorf("--steps %d is negative", f.steps)
	case f.steps == 0 && !(f.epochs > 0):
		return fmt.Errorf("--epochs %g: want > 0 (or give --steps)", f.epochs)
	case f.killAt < 0:
		return fmt.Errorf("--kill-worker-at %d is negative", f.killAt)
	case f.killAt > 0 && f.workers < 2:
		return fmt.Errorf("--kill-worker-at needs --workers >= 2 (one to kill, one to carry on), got %d", f.workers)
	case f.killAt > 0 && f.steps > 0 && f.killAt >= f.steps:
		return fmt.Errorf("--kill-worker-at %d: want below --steps %d", f.killAt, f.steps)
	case f.progress <= 0:
		return fmt.Errorf("--progress %v: want > 0", f.progress)
	case f.timeout <= 0:
		return fmt.Errorf("--timeout %v: want > 0", f.timeout)
	case f.out == "":
		return errors.New("--out is empty")
	}
	return nil
}

// demoMarkers are the entries by which --overwrite recognises a directory
// a previous demo wrote.
var demoMarkers = []string{"logs", "secret", "summary.json", "processes.json"}

// prepareOut makes dir an empty directory: it must be absent or empty, or
// hold a previous demo and overwrite be set.
func prepareOut(dir string, overwrite bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return invalid(fmt.Errorf("--out %s: %w", dir, err))
	}
	if len(entries) == 0 {
		return nil
	}
	if !overwrite {
		return invalid(fmt.Errorf("--out %s is not empty: choose another directory or give --overwrite", dir))
	}
	isDemo := false
	for _, m := range demoMarkers {
		if _, err := os.Stat(filepath.Join(dir, m)); err == nil {
			isDemo = true
		}
	}
	if !isDemo {
		return invalid(fmt.Errorf("--out %s: --overwrite replaces only a previous demo's directory (with one of %s); this one has none, so it is left alone",
			dir, strings.Join(demoMarkers, ", ")))
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// demo is one run of the demo cluster.
type demo struct {
	f      demoFlags
	dir    string // absolute --out
	w      io.Writer
	procs  *procGroup
	secret string // path of the cluster secret file

	s3Addr     string
	store      *storage.Client
	coordAddrs []string // gRPC
	conn       *grpc.ClientConn
	cl         pb.ControlClient

	mu         sync.Mutex // guards the fields below and the output once training runs
	workers    []*child
	workerIDs  []string // parallel to workers
	nextWorker int
	// cpuSlots are the disjoint CPU sets workers are bound to (nil: not
	// bound); slotOf maps a live worker to its slot, and a killed worker's
	// slot goes to its replacement.
	cpuSlots [][]int
	slotOf   map[string]int
	pinNote  string // why the workers are not bound, for the summary
}

func runDemo(ctx context.Context, f demoFlags, w io.Writer) error {
	if err := f.validate(); err != nil {
		return invalid(err)
	}
	spec, err := demoSpec(f)
	if err != nil {
		return invalid(err)
	}
	dir, err := filepath.Abs(f.out)
	if err != nil {
		return invalid(fmt.Errorf("--out %s: %w", f.out, err))
	}
	if err := prepareOut(dir, f.overwrite); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the dsae binary to run: %w", err)
	}
	for _, sub := range []string{"logs", "s3", "coordinators", "workers"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	d := &demo{f: f, dir: dir, w: w, secret: filepath.Join(dir, "secret")}
	if err := os.WriteFile(d.secret, []byte(randomHex(32)+"\n"), 0o600); err != nil {
		return err
	}
	s3Key, s3Secret := "dsae-demo", randomHex(20)
	addrs, err := freeAddrs(1)
	if err != nil {
		return err
	}
	d.s3Addr = addrs[0]
	set := map[string]string{
		"AWS_ACCESS_KEY_ID": s3Key, "AWS_SECRET_ACCESS_KEY": s3Secret, "AWS_REGION": "us-east-1",
		"DSAE_S3_ENDPOINT": d.s3Addr, "DSAE_S3_BUCKET": "dsae",
	}
	d.procs = &procGroup{exe: exe, logDir: filepath.Join(dir, "logs"), listing: filepath.Join(dir, "processes.json"),
		env: childEnv(os.Environ(), set)}
	defer func() {
		fmt.Fprintln(w, "stopping the cluster")
		d.procs.Stop(demoStopGrace)
	}()
	start := time.Now()
	cfg := storage.DefaultClientConfig()
	cfg.Endpoint, cfg.Bucket, cfg.AccessKey, cfg.SecretKey = d.s3Addr, "dsae", s3Key, s3Secret
	if d.store, err = storage.NewClient(cfg); err != nil {
		return err
	}
	if err := d.startStore(ctx); err != nil {
		return err
	}
	ingest := make(chan error, 1)
	go func() {
		ingest <- d.procs.Run("ingest", "dataset", "put", "mnist", "--builtin", "mnist")
	}()
	fmt.Fprintln(w, "ingesting MNIST into the store (mnist-train, mnist-test)")
	if err := d.startCoordinators(ctx); err != nil {
		return err
	}
	defer d.conn.Close()
	d.planCPUs()
	for range f.workers {
		if _, err := d.startWorker(); err != nil {
			return err
		}
	}
	if err := d.waitWorkers(ctx, f.workers); err != nil {
		return err
	}
	if cpus := d.workerCPUs(); cpus != nil {
		fmt.Fprintf(w, "%d workers registered, each bound to its own CPUs: %s\n", f.workers, describeCPUs(d.workerIDs, cpus))
	} else {
		fmt.Fprintf(w, "%d workers registered, %s\n", f.workers, d.pinNote)
	}
	select {
	case err := <-ingest:
		if err != nil {
			return fmt.Errorf("ingesting MNIST: %w", err)
		}
	case <-ctx.Done():
		return interrupted(ctx)
	}
	fmt.Fprintf(w, "cluster ready in %s; logs in %s\n", time.Since(start).Round(100*time.Millisecond), d.procs.logDir)

	res, err := d.train(ctx, spec)
	if err != nil {
		return err
	}
	sum := d.summarize(res, time.Since(start))
	d.mu.Lock()
	sum.WorkerCPUs, sum.PinNote = d.workerCPUs(), d.pinNote
	d.mu.Unlock()
	if res.job.State == pb.JobState_JOB_STATE_COMPLETED {
		if err := d.writeArtifacts(ctx, res, &sum); err != nil {
			return err
		}
	}
	if err := writeJSONFile(filepath.Join(dir, "summary.json"), sum); err != nil {
		return err
	}
	printDemoSummary(w, sum)
	if res.job.State != pb.JobState_JOB_STATE_COMPLETED {
		return fmt.Errorf("%w: %s %s: %s", errJobUnsuccessful, res.job.Id, stateName(res.job.State), res.job.Reason)
	}
	if f.keepRunning {
		fmt.Fprintf(w, "cluster still running; try:\n  dsae job ls --coordinator %s --secret-file %s\npress Ctrl-C to stop it\n",
			strings.Join(d.coordAddrs, ","), d.secret)
		<-ctx.Done()
	}
	return nil
}

// interrupted is the error of a demo whose context ended.
func interrupted(ctx context.Context) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return errors.New("demo interrupted")
}

// childEnv is env without any setting of the keys of set, plus set. The
// children thus see the demo's store and never a cluster secret or
// coordinator of the caller's.
func childEnv(env []string, set map[string]string) []string {
	drop := map[string]bool{auth.EnvSecret: true, envCoordinator: true, "AWS_SESSION_TOKEN": true}
	for k := range set {
		drop[k] = true
	}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// poll calls ready every 100 ms until it returns true, an error, a child
// fails, ctx ends, or timeout passes.
func (d *demo) poll(ctx context.Context, what string, timeout time.Duration, ready func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := d.procs.Check(); err != nil {
			return fmt.Errorf("while waiting for %s: %w", what, err)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		ok, err := ready(cctx)
		cancel()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s; see the logs in %s", timeout, what, d.procs.logDir)
		}
		select {
		case <-ctx.Done():
			return interrupted(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *demo) startStore(ctx context.Context) error {
	if _, err := d.procs.StartEnv(serviceEnv(), "s3", tierStore, "s3", "serve", "--dir", filepath.Join(d.dir, "s3"), "--addr", d.s3Addr, "--no-sync"); err != nil {
		return err
	}
	err := d.poll(ctx, "the S3 server", 20*time.Second, func(ctx context.Context) (bool, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", d.s3Addr)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	})
	if err == nil {
		fmt.Fprintf(d.w, "S3 server on %s, data in %s\n", d.s3Addr, filepath.Join(d.dir, "s3"))
	}
	return err
}

// startCoordinators starts the first coordinator, waits for it to lead,
// then starts the others joining it and waits for the whole group.
func (d *demo) startCoordinators(ctx context.Context) error {
	n := d.f.coordinators
	addrs, err := freeAddrs(3 * n)
	if err != nil {
		return err
	}
	for i := range n {
		d.coordAddrs = append(d.coordAddrs, addrs[3*i+1])
	}
	a, err := auth.Config{}, error(nil)
	if a.Secret, err = auth.LoadSecret(d.secret); err != nil {
		return err
	}
	if d.conn, err = client.Dial(d.coordAddrs, a); err != nil {
		return err
	}
	d.cl = pb.NewControlClient(d.conn)
	start := func(i int) error {
		id := fmt.Sprintf("c%d", i+1)
		args := []string{"coordinator", "--id", id, "--data-dir", filepath.Join(d.dir, "coordinators", id),
			"--raft-addr", addrs[3*i], "--grpc-addr", addrs[3*i+1], "--gossip-addr", addrs[3*i+2], "--secret-file", d.secret}
		if i > 0 {
			args = append(args, "--join", d.coordAddrs[0])
		}
		_, err := d.procs.StartEnv(serviceEnv(), id, tierCoordinator, args...)
		return err
	}
	group := func(want int) func(context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			resp, err := d.cl.GetCluster(ctx, &pb.GetClusterRequest{})
			return err == nil && resp.LeaderId != "" && len(resp.Coordinators) >= want, nil
		}
	}
	if err := start(0); err != nil {
		return err
	}
	if err := d.poll(ctx, "coordinator c1 to lead", 60*time.Second, group(1)); err != nil {
		return err
	}
	for i := 1; i < n; i++ {
		if err := start(i); err != nil {
			return err
		}
	}
	if err := d.poll(ctx, fmt.Sprintf("%d coordinators in the raft group", n), 60*time.Second, group(n)); err != nil {
		return err
	}
	fmt.Fprintf(d.w, "%d coordinator(s), gRPC on %s\n", n, strings.Join(d.coordAddrs, ", "))
	return nil
}

// startWorker starts the next worker on fresh ports.
func (d *demo) startWorker() (string, error) {
	addrs, err := freeAddrs(2)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	d.nextWorker++
	id := fmt.Sprintf("w%d", d.nextWorker)
	d.mu.Unlock()
	// All workers share this machine: each runs its matrix kernels on its
	// share of the cores (--threads) and, unless the user chose GOMAXPROCS,
	// gets that share as GOMAXPROCS too. (Measured here with 2 workers on
	// 2 cores: GOMAXPROCS 1 per worker gives 1.0-1.4x the samples/s of
	// GOMAXPROCS 2 with --threads 1; the idle Ps' spinning costs the other
	// worker more than the network goroutines gain.)
	var env []string
	share := workerThreads(runtime.NumCPU(), d.f.workers)
	if os.Getenv("GOMAXPROCS") == "" {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(share))
	}
	args := []string{"worker", "--id", id, "--coordinators", strings.Join(d.coordAddrs, ","),
		"--grpc-addr", addrs[0], "--gossip-addr", addrs[1], "--data-dir", filepath.Join(d.dir, "workers", id),
		"--secret-file", d.secret, "--threads", strconv.Itoa(share)}
	d.mu.Lock()
	slot := d.takeSlot(id)
	d.mu.Unlock()
	if slot >= 0 {
		args = append(args, "--cpus", cpuset.Format(d.cpuSlots[slot]))
	}
	c, err := d.procs.StartEnv(env, id, tierWorker, args...)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.releaseSlot(id)
		return "", err
	}
	d.workers, d.workerIDs = append(d.workers, c), append(d.workerIDs, id)
	return id, nil
}

// planCPUs decides the workers' CPU sets: with --pin, and when --workers
// shares of workerThreads CPUs fit on the CPUs this process may use, one
// disjoint set per worker. Measured on 2 cores with 2 workers: bound
// workers train 1.1-1.35x faster than the same workers left to the
// kernel's scheduler (docs/benchmarks/cluster.md).
func (d *demo) planCPUs() {
	if !d.f.pin {
		d.pinNote = "not bound to CPUs (--pin=false)"
		return
	}
	avail, err := cpuset.Available()
	if err == nil && !cpuset.Supported {
		err = cpuset.ErrUnsupported
	}
	if err != nil {
		d.pinNote = "not bound to CPUs: " + err.Error()
		return
	}
	share := workerThreads(len(avail), d.f.workers)
	d.cpuSlots = cpuset.Split(avail, d.f.workers, share)
	if d.cpuSlots == nil {
		d.pinNote = fmt.Sprintf("not bound to CPUs: %d workers × %d CPU(s) do not fit on %d CPUs", d.f.workers, share, len(avail))
		return
	}
	d.slotOf = map[string]int{}
}

// takeSlot gives worker id the first free CPU slot and returns it (-1 when
// workers are not bound). d.mu is held.
func (d *demo) takeSlot(id string) int {
	if d.cpuSlots == nil {
		return -1
	}
	used := make([]bool, len(d.cpuSlots))
	for _, s := range d.slotOf {
		used[s] = true
	}
	for s, u := range used {
		if !u {
			d.slotOf[id] = s
			return s
		}
	}
	return -1 // more live workers than slots: leave this one unbound
}

// releaseSlot frees the slot of worker id (killed, or failed to start).
// d.mu is held.
func (d *demo) releaseSlot(id string) { delete(d.slotOf, id) }

// workerCPUs is the CPU set of each bound worker, for the summary. d.mu is
// held.
func (d *demo) workerCPUs() map[string]string {
	if len(d.slotOf) == 0 {
		return nil
	}
	m := make(map[string]string, len(d.slotOf))
	for id, s := range d.slotOf {
		m[id] = cpuset.Format(d.cpuSlots[s])
	}
	return m
}

// waitWorkers waits until n of the demo's workers are registered and alive.
func (d *demo) waitWorkers(ctx context.Context, n int) error {
	return d.poll(ctx, fmt.Sprintf("%d workers to register", n), 60*time.Second, func(ctx context.Context) (bool, error) {
		resp, err := d.cl.GetCluster(ctx, &pb.GetClusterRequest{})
		if err != nil {
			return false, nil
		}
		alive := 0
		for _, wk := range resp.Workers {
			if wk.Alive {
				alive++
			}
		}
		return alive >= n, nil
	})
}

// serviceEnv is the environment of the demo's S3 server and coordinators:
// GOMAXPROCS 1 unless the user chose GOMAXPROCS. Their work is light, and
// on a machine the workers fill, a service's idle Ps spinning for work take
// CPU from the workers (2 workers on 2 cores here: 1.1-1.15x the samples/s).
func serviceEnv() []string {
	if os.Getenv("GOMAXPROCS") != "" {
		return nil
	}
	return []string{"GOMAXPROCS=1"}
}

// workerThreads is the kernel threads (--threads) of each of workers
// processes sharing cpus cores: an equal share, at least 1.
func workerThreads(cpus, workers int) int {
	return max(1, cpus/max(1, workers))
}

// describeCPUs lists "w1 0, w2 1" in the order of ids.
func describeCPUs(ids []string, cpus map[string]string) string {
	var parts []string
	for _, id := range ids {
		if c, ok := cpus[id]; ok {
			parts = append(parts, id+" "+c)
		}
	}
	return strings.Join(parts, ", ")
}
