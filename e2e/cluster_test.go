package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// A cluster of real dsae processes on loopback: one `dsae s3 serve`,
// coordinators and workers, each its own process with its own log file
// under the test's directory. Workers write a row trace (--trace-rows).
type cluster struct {
	t      *testing.T
	dir    string
	env    []string
	secret string
	s3     string
	coords []*proc
	ctl    pb.ControlClient

	mu      sync.Mutex
	workers map[string]*proc
	seq     int
}

// proc is one child process.
type proc struct {
	name    string
	cmd     *exec.Cmd
	grpc    string
	trace   string
	metrics string // host:port of a worker's Prometheus /metrics
	done    chan struct{}
	mu      sync.Mutex
	dead    bool
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// clusterOpts shape a test cluster.
type clusterOpts struct {
	coordinators int
	workers      int
}

func startCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, workers: map[string]*proc{}}
	c.secret = filepath.Join(dir, "secret")
	if err := os.WriteFile(c.secret, []byte("e2e-cluster-secret-0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.s3 = startS3Process(t, dir)
	c.env = append(os.Environ(), "AWS_ACCESS_KEY_ID=e2e-access", "AWS_SECRET_ACCESS_KEY=e2e-secret-key", "DSAE_S3_ENDPOINT="+c.s3)
	var first string
	for i := 1; i <= o.coordinators; i++ {
		grpcAddr := freePort(t)
		args := []string{"coordinator", "--id", fmt.Sprintf("c%d", i), "--data-dir", filepath.Join(dir, fmt.Sprintf("c%d", i)),
			"--raft-addr", freePort(t), "--grpc-addr", grpcAddr, "--gossip-addr", freePort(t), "--secret-file", c.secret,
		}
		if first != "" {
			args = append(args, "--join", first)
		} else {
			first = grpcAddr
		}
		p := c.start(fmt.Sprintf("c%d", i), args...)
		p.grpc = grpcAddr
		c.coords = append(c.coords, p)
	}
	conn, err := client.Dial(c.coordAddrs(), auth.Config{Secret: []byte("e2e-cluster-secret-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c.ctl = pb.NewControlClient(conn)
	c.waitFor(30*time.Second, fmt.Sprintf("%d coordinators with a leader", o.coordinators), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := c.ctl.GetCluster(ctx, &pb.GetClusterRequest{})
		return err == nil && r.LeaderId != "" && len(r.Coordinators) == o.coordinators
	})
	for range o.workers {
		c.addWorker()
	}
	return c
}

func (c *cluster) coordAddrs() []string {
	var out []string
	for _, p := range c.coords {
		out = append(out, p.grpc)
	}
	return out
}

// start runs dsae with args as a child process logging to dir/name.log; it
// is killed when the test ends.
func (c *cluster) start(name string, args ...string) *proc {
	c.t.Helper()
	log, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(dsaeBin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr, cmd.Dir = c.env, log, log, c.dir
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); log.Close(); close(p.done) }()
	c.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// addWorker starts a new worker process with a fresh id.
func (c *cluster) addWorker() *proc {
	c.mu.Lock()
	c.seq++
	id := fmt.Sprintf("w%d", c.seq)
	c.mu.Unlock()
	grpcAddr, metrics := freePort(c.t), freePort(c.t)
	trace := filepath.Join(c.dir, id+".trace")
	p := c.start(id, "worker", "--id", id, "--coordinators", strings.Join(c.coordAddrs(), ","), "--grpc-addr", grpcAddr,
		"--gossip-addr", freePort(c.t), "--data-dir", filepath.Join(c.dir, id), "--secret-file", c.secret, "--trace-rows", trace,
		"--metrics-addr", metrics)
	p.grpc, p.trace, p.metrics = grpcAddr, trace, metrics
	c.mu.Lock()
	c.workers[id] = p
	c.mu.Unlock()
	return p
}

// kill SIGKILLs p and returns when it is gone.
func (c *cluster) kill(p *proc) time.Time {
	p.mu.Lock()
	p.dead = true
	p.mu.Unlock()
	p.cmd.Process.Signal(syscall.SIGKILL)
	at := time.Now()
	<-p.done
	return at
}

// dsae runs the CLI with the cluster's environment.
func (c *cluster) dsae(args ...string) result {
	c.t.Helper()
	return runEnv(c.t, c.dir, c.env, args...)
}

func (c *cluster) mustDsae(args ...string) result {
	c.t.Helper()
	r := c.dsae(args...)
	if r.code != 0 {
		c.t.Fatalf("dsae %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// submit submits a job with the given flags through the CLI and returns its id.
func (c *cluster) submit(flags ...string) string {
	c.t.Helper()
	args := append([]string{"job", "submit", "--coordinator", strings.Join(c.coordAddrs(), ","), "--secret-file", c.secret, "--json"}, flags...)
	r := c.mustDsae(args...)
	var j struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.ID == "" {
		c.t.Fatalf("job submit printed %q: %v", r.stdout, err)
	}
	return j.ID
}

func (c *cluster) job(id string) *pb.Job {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.ctl.GetJob(ctx, &pb.GetJobRequest{JobId: id})
	if err != nil {
		return nil
	}
	return r.Job
}

// waitJob polls until cond holds for job id.
func (c *cluster) waitJob(id string, timeout time.Duration, what string, cond func(*pb.Job) bool) *pb.Job {
	c.t.Helper()
	var j *pb.Job
	c.waitFor(timeout, what, func() bool {
		j = c.job(id)
		if j != nil && client.Terminal(j.State) && j.State != pb.JobState_JOB_STATE_COMPLETED {
			c.t.Fatalf("job %s ended %s: %s (waiting for %s)", id, j.State, j.Reason, what)
		}
		return j != nil && cond(j)
	})
	return j
}

func (c *cluster) waitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s (logs in %s)", timeout, what, c.dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// traceEvent is one line of a worker's --trace-rows file.
type traceEvent struct {
	Ev   string    `json:"ev"`
	Job  string    `json:"job"`
	Gen  uint64    `json:"gen"`
	Rank int       `json:"rank"`
	Size int       `json:"size"`
	Step int64     `json:"step"`
	X0   []float32 `json:"x0"`
	Sum  string    `json:"sum"`
	T    int64     `json:"t"`
	who  string
}

// traces reads every worker's trace of job.
func (c *cluster) traces(job string) []traceEvent {
	c.t.Helper()
	var out []traceEvent
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, p := range c.workers {
		f, err := os.Open(p.trace)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			c.t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var e traceEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				// a SIGKILLed worker may leave a torn last line
				continue
			}
			if e.Job == job {
				e.who = id
				out = append(out, e)
			}
		}
		f.Close()
	}
	return out
}

// checkApplied checks that every step 1..steps was applied, by every rank
// of one generation with the same parameter checksum after it, and in one
// generation only — except that a step applied in an earlier generation by
// workers that were all SIGKILLed before handing their state on (killed)
// is redone by the survivors. It returns, per step, the generation whose
// application counts.
func checkApplied(t *testing.T, evs []traceEvent, steps int64, killed map[string]bool) map[int64]uint64 {
	t.Helper()
	by := map[int64]map[uint64][]traceEvent{}
	for _, e := range evs {
		if e.Ev != "apply" {
			continue
		}
		if by[e.Step] == nil {
			by[e.Step] = map[uint64][]traceEvent{}
		}
		by[e.Step][e.Gen] = append(by[e.Step][e.Gen], e)
	}
	gen := map[int64]uint64{}
	for s, gs := range by {
		var last uint64
		for g, es := range gs {
			last = max(last, g)
			for _, e := range es[1:] {
				if e.Sum != es[0].Sum {
					t.Fatalf("step %d generation %d: ranks hold different parameters after it (%s rank %d: %s, %s rank %d: %s)",
						s, g, es[0].who, es[0].Rank, es[0].Sum, e.who, e.Rank, e.Sum)
				}
			}
		}
		for g, es := range gs {
			if g == last {
				continue
			}
			for _, e := range es {
				if !killed[e.who] {
					t.Fatalf("step %d applied in generation %d (by %s, which lived on) and again in generation %d", s, g, e.who, last)
				}
			}
		}
		gen[s] = last
	}
	for s := int64(1); s <= steps; s++ {
		if _, ok := gen[s]; !ok {
			t.Fatalf("step %d never applied", s)
		}
	}
	if int64(len(gen)) != steps {
		t.Fatalf("%d distinct steps applied, want %d", len(gen), steps)
	}
	return gen
}
