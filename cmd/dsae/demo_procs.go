package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process tiers of the demo cluster, stopped from the highest down: the
// workers go before the coordinators they report to, and those before the
// object store they read from.
const (
	tierStore = iota
	tierCoordinator
	tierWorker
)

// child is one process of the demo cluster.
type child struct {
	name string
	tier int
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been waited for
	err  error         // its exit status, valid after done
	// expected is set for a task, and for a server stopped or killed on
	// purpose: its exit is not a failure.
	expected bool
}

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// failure describes an unexpected exit, with the last line of its log.
func (c *child) failure() error {
	msg := fmt.Sprintf("%s exited (%v)", c.name, c.err)
	if last := lastLogLine(c.log); last != "" {
		msg += ": " + last
	}
	return fmt.Errorf("%s; see %s", msg, c.log)
}

// lastLogLine is the last non-empty line of the file at path, shortened.
func lastLogLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			last = s
		}
	}
	if len(last) > 300 {
		last = last[:300] + "…"
	}
	return last
}

// procGroup runs the processes of the demo: the dsae binary re-run with a
// subcommand, each with its output in its own log file, all stopped by
// Stop. Children also get SIGKILL if the demo itself dies (Linux), so none
// is left behind. Safe for concurrent use.
type procGroup struct {
	exe     string   // the binary to run
	logDir  string   // one NAME.log per child
	env     []string // environment of every child
	listing string   // JSON file listing the children (name, pid, log); empty: none

	mu       sync.Mutex
	children []*child
	stopped  bool
}

// procRecord is one line of the listing file.
type procRecord struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	Log  string `json:"log"`
	Args string `json:"args"`
}

// Start runs exe with args as child name in tier, a server expected to run
// until stopped. It fails once Stop has been called.
func (g *procGroup) Start(name string, tier int, args ...string) (*child, error) {
	return g.start(name, tier, false, nil, args)
}

// StartEnv is Start with extra environment settings (KEY=VALUE, overriding
// the group's) for this child only.
func (g *procGroup) StartEnv(env []string, name string, tier int, args ...string) (*child, error) {
	return g.start(name, tier, false, env, args)
}

// Run runs exe with args as child name, a task, to its end, and returns its
// failure if it did not exit 0. Stop ends it like the workers.
func (g *procGroup) Run(name string, args ...string) error {
	c, err := g.start(name, tierWorker, true, nil, args)
	if err != nil {
		return err
	}
	<-c.done
	if c.err != nil {
		return c.failure()
	}
	return nil
}

func (g *procGroup) start(name string, tier int, task bool, env, args []string) (*child, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return nil, errors.New("demo is stopping")
	}
	logPath := filepath.Join(g.logDir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(g.exe, args...)
	cmd.Env = append(append([]string(nil), g.env...), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, tier: tier, log: logPath, cmd: cmd, done: make(chan struct{}), expected: task}
	go func() {
		c.err = cmd.Wait()
		lf.Close()
		close(c.done)
	}()
	g.children = append(g.children, c)
	return c, g.writeListing()
}

// writeListing records the children in g.listing; g.mu is held.
func (g *procGroup) writeListing() error {
	if g.listing == "" {
		return nil
	}
	recs := make([]procRecord, 0, len(g.children))
	for _, c := range g.children {
		recs = append(recs, procRecord{Name: c.name, PID: c.cmd.Process.Pid, Log: c.log, Args: strings.Join(c.cmd.Args[1:], " ")})
	}
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(g.listing, append(b, '\n'), 0o644)
}

// Check returns the failure of the first server child that exited without
// being stopped or killed, or nil. Tasks (Run) are not checked.
func (g *procGroup) Check() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.children {
		if c.exited() && !c.expected {
			return c.failure()
		}
	}
	return nil
}

// Kill sends SIGKILL to c and waits for it to end.
func (g *procGroup) Kill(c *child) {
	g.mu.Lock()
	c.expected = true
	g.mu.Unlock()
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// Stop ends every child, tier by tier from the workers down: SIGTERM, then
// SIGKILL for those still running after grace. It returns once all have
// been waited for; later calls to Start fail.
func (g *procGroup) Stop(grace time.Duration) {
	g.mu.Lock()
	g.stopped = true
	children := append([]*child(nil), g.children...)
	for _, c := range children {
		c.expected = true
	}
	g.mu.Unlock()
	for tier := tierWorker; tier >= tierStore; tier-- {
		var alive []*child
		for _, c := range children {
			if c.tier == tier && !c.exited() {
				c.cmd.Process.Signal(syscall.SIGTERM)
				alive = append(alive, c)
			}
		}
		deadline := time.After(grace)
		for _, c := range alive {
			select {
			case <-c.done:
			case <-deadline:
				c.cmd.Process.Signal(syscall.SIGKILL)
				<-c.done
			}
		}
	}
}

// freeAddrs returns n distinct loopback host:port addresses that are free
// for both TCP and UDP (gossip uses both on one port) at the time of the
// call.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for tries := 0; len(addrs) < n; tries++ {
		if tries > 20*n {
			return nil, errors.New("no free loopback ports")
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { ln.Close() })
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		closers = append(closers, func() { pc.Close() })
		addrs = append(addrs, addr)
	}
	return addrs, nil
}
