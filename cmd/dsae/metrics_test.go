package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeMetrics GETs http://addr/metrics; err is set when nothing answers.
func scrapeMetrics(addr string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New(resp.Status)
	}
	return string(b), err
}

// waitMetrics polls addr's /metrics until it holds every line prefix of
// want, and fails the test after a deadline with what it last saw.
func waitMetrics(t *testing.T, role, addr string, want ...string) {
	t.Helper()
	var body string
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		body, err = scrapeMetrics(addr)
		if err == nil && containsAll(body, want) {
			return
		}
	}
	t.Fatalf("%s /metrics on %s: err %v; want lines starting %q in\n%s", role, addr, err, want, body)
}

func containsAll(body string, want []string) bool {
	for _, w := range want {
		if !strings.HasPrefix(body, w) && !strings.Contains(body, "\n"+w) {
			return false
		}
	}
	return true
}

// TestMetricsEveryRole starts each long-running role with --metrics-addr
// and scrapes it: every role serves, through startRoleMetrics, the Go
// runtime and process metrics and its own.
func TestMetricsEveryRole(t *testing.T) {
	addrs, err := freeAddrs(4)
	if err != nil {
		t.Fatal(err)
	}
	s3Metrics, coordMetrics, workerMetrics, workerGossip := addrs[0], addrs[1], addrs[2], addrs[3]
	runtime := []string{"go_goroutines ", "process_cpu_seconds_total "}

	endpoint := startS3Serve(t, t.TempDir(), "--metrics-addr", s3Metrics)
	waitMetrics(t, "s3 serve", s3Metrics, append(runtime, "dsae_s3server_received_bytes_total ")...)

	coord := startCoordinator(t, "--metrics-addr", coordMetrics)
	waitMetrics(t, "coordinator", coordMetrics, append(runtime, "dsae_coordinator_raft_leader 1", `dsae_coordinator_jobs{state="running"} 0`)...)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := runCmd(ctx, "worker", "--id", "w1", "--coordinators", coord, "--grpc-addr", "127.0.0.1:0",
			"--gossip-addr", workerGossip, "--data-dir", t.TempDir(), "--s3-endpoint", endpoint,
			"--metrics-addr", workerMetrics, "--log-level", "error")
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	waitMetrics(t, "worker", workerMetrics, append(runtime, "dsae_worker_steps_total 0", `dsae_worker_step_seconds_total{part="compute"} 0`)...)
	waitMetrics(t, "coordinator", coordMetrics, "dsae_coordinator_workers_alive 1")
}

// TestServeMetricsPortTaken: an address in use is the caller's error at
// once, naming the flag; `dsae s3 serve` still exits 2 for it.
func TestServeMetricsPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	if _, ms, err := startRoleMetrics(taken); err == nil || !strings.Contains(err.Error(), "--metrics-addr "+taken) ||
		!strings.Contains(err.Error(), "address already in use") {
		ms.Close()
		t.Fatalf("metrics on a taken port: %v", err)
	}
	_, err = runCmd(context.Background(), "s3", "serve", "--dir", t.TempDir(), "--access-key", "a", "--secret-key", "b",
		"--addr", "127.0.0.1:0", "--metrics-addr", taken, "--log-level", "error")
	if err == nil || exitCode(err) != exitInvalid || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Fatalf("s3 serve --metrics-addr %s (taken): %v (exit %d), want exit 2 naming the flag", taken, err, exitCode(err))
	}
}

// TestServeMetricsClose: Close returns once the port is free again, and a
// nil server (metrics off) closes as a no-op.
func TestServeMetricsClose(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "dsae_test_gauge", Help: "A test gauge."})
	g.Set(7)
	reg.MustRegister(g)
	ms, err := serveMetrics("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	addr := ms.Addr()
	if body, err := scrapeMetrics(addr); err != nil || !strings.Contains(body, "dsae_test_gauge 7\n") {
		t.Fatalf("scrape: %v\n%s", err, body)
	}
	ms.Close()
	if _, err := scrapeMetrics(addr); err == nil {
		t.Fatal("scrape answered after Close")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still held after Close: %v", err)
	}
	ln.Close()

	reg2, off, err := startRoleMetrics("")
	if reg2 != nil || off != nil || err != nil {
		t.Fatalf("metrics off: %v %v %v", reg2, off, err)
	}
	off.Close()
	if off.Addr() != "" {
		t.Fatal("a nil server has an address")
	}
}

// TestMetricsAddrChecked: a malformed --metrics-addr is invalid input
// (exit 2) in every role, refused before anything listens.
func TestMetricsAddrChecked(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"9090", "want host:port"},
		{"127.0.0.1:70000", `port "70000" is not a number in [0, 65535]`},
		{"127.0.0.1:http", `port "http" is not a number`},
		{":9090", ""},
		{"127.0.0.1:0", ""},
		{"[::1]:9090", ""},
	} {
		err := checkListenAddr(c.addr)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%q: %v, want %q", c.addr, err, c.want)
		}
	}
	t.Setenv("DSAE_CLUSTER_SECRET", cliSecret)
	_, err := runCmd(context.Background(), "coordinator", "--id", "c1", "--data-dir", t.TempDir(), "--raft-addr", "127.0.0.1:0",
		"--grpc-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--metrics-addr", "9090", "--log-level", "error")
	if err == nil || exitCode(err) != exitInvalid || !strings.Contains(err.Error(), `--metrics-addr "9090": want host:port`) {
		t.Fatalf("coordinator --metrics-addr 9090: %v (exit %d), want exit 2 naming the flag", err, exitCode(err))
	}
}
