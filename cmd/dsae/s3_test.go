package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/artifact"
)

// syncBuffer is a bytes.Buffer safe for one writer and one poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runCmd runs the dsae command line with args and returns its output.
func runCmd(ctx context.Context, args ...string) (string, error) {
	var out syncBuffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// startS3Serve runs `dsae s3 serve` on a free port, with extra flags, until
// the test ends and returns its endpoint.
func startS3Serve(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "cli-test-ak")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "cli-test-secret")
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		root := newRootCmd()
		root.SetArgs(append([]string{"s3", "serve", "--dir", dir, "--addr", "127.0.0.1:0", "--no-sync", "--log-level", "error"}, extra...))
		root.SetOut(&out)
		done <- root.ExecuteContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("s3 serve: %v", err)
		}
	})
	re := regexp.MustCompile(`listening on https?://(\S+),`)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("s3 serve exited: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("s3 serve did not report its address")
	return ""
}

func TestS3ServeAndModelPull(t *testing.T) {
	endpoint := startS3Serve(t, t.TempDir())
	ctx := context.Background()
	cfg := storage.DefaultClientConfig()
	cfg.Endpoint, cfg.Bucket = endpoint, "dsae"
	cfg.FillFromEnv(os.Getenv)
	c, err := storage.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	files := map[string]string{"sae.safetensors": "weights", "cfg.json": `{"d_in":4}`, "metrics.json": "{}"}
	for n, d := range files {
		os.WriteFile(filepath.Join(src, n), []byte(d), 0o644)
	}
	if _, err := artifact.UploadModel(ctx, c, "job1", src); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "pulled")
	out, err := runCmd(ctx, "model", "pull", "job1", dest, "--s3-endpoint", endpoint)
	if err != nil {
		t.Fatalf("model pull: %v\n%s", err, out)
	}
	if !strings.Contains(out, "3 files") {
		t.Fatalf("pull output %q", out)
	}
	for n, d := range files {
		got, err := os.ReadFile(filepath.Join(dest, n))
		if err != nil || string(got) != d {
			t.Fatalf("%s: %q, %v", n, got, err)
		}
	}
	// Errors and their exit codes.
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"exists", []string{"model", "pull", "job1", dest, "--s3-endpoint", endpoint}, exitInvalid, "not empty"},
		{"bad job id", []string{"model", "pull", "a/b", dest + "2", "--s3-endpoint", endpoint}, exitInvalid, "invalid job ID"},
		{"no endpoint", []string{"model", "pull", "job1", dest + "2", "--s3-endpoint", ""}, exitInvalid, "endpoint"},
		{"no model", []string{"model", "pull", "job2", dest + "2", "--s3-endpoint", endpoint}, exitFailure, "no model for job job2"},
		{"wrong secret", []string{"model", "pull", "job1", dest + "2", "--s3-endpoint", endpoint, "--s3-secret-key", "wrong"}, exitFailure, "access denied"},
		{"args", []string{"model", "pull", "job1"}, exitInvalid, "accepts 2 arg"},
		{"server down", []string{"model", "pull", "job1", dest + "2", "--s3-endpoint", closedAddr(t), "--s3-retry-timeout", "300ms"}, exitFailure, "unreachable"},
	} {
		_, err := runCmd(ctx, tc.args...)
		if err == nil || exitCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v (exit %d), want exit %d mentioning %q", tc.name, err, exitCode(err), tc.code, tc.want)
		}
	}
	if _, err := os.Stat(dest + "2"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed pull created its destination")
	}
}

func TestS3ServeBadInput(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"s3", "serve", "--addr", "127.0.0.1:0"}, "--dir"},
		{[]string{"s3", "serve", "--dir", t.TempDir(), "--addr", "127.0.0.1:0"}, "credentials required"},
		{[]string{"s3", "serve", "--dir", t.TempDir(), "--access-key", "a", "--secret-key", "b", "--addr", "not-an-addr"}, "--addr"},
		{[]string{"s3", "serve", "--dir", t.TempDir(), "--access-key", "a", "--secret-key-file", "/nonexistent"}, "secret key file"},
	} {
		_, err := runCmd(ctx, tc.args...)
		if err == nil || exitCode(err) != exitInvalid || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v (exit %d), want exit 2 mentioning %q", tc.args, err, exitCode(err), tc.want)
		}
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A call that keeps retrying says so once it has retried for a second,
// naming the endpoint and the cause, then at most every 5 s; a short
// hiccup stays silent.
func TestRetryNotice(t *testing.T) {
	var out bytes.Buffer
	n := newRetryNotice(&out)
	now := time.Unix(0, 0)
	n.now = func() time.Time { return now }
	cause := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	ev := func(elapsed time.Duration) storage.RetryEvent {
		return storage.RetryEvent{Endpoint: "http://127.0.0.1:1", Op: "stat k", Attempt: 3, Elapsed: elapsed, Budget: 30 * time.Second,
			Err: fmt.Errorf("stat k: Get \"http://127.0.0.1:1/b/k\": %w", cause)}
	}
	n.report(ev(300 * time.Millisecond))
	if out.Len() != 0 {
		t.Fatalf("a retry after 0.3 s printed %q", out.String())
	}
	n.report(ev(1200 * time.Millisecond))
	now = now.Add(time.Second)
	n.report(ev(2200 * time.Millisecond)) // within 5 s of the first notice
	now = now.Add(5 * time.Second)
	n.report(ev(7200 * time.Millisecond))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d notices, want 2:\n%s", len(lines), out.String())
	}
	for _, want := range []string{"http://127.0.0.1:1", "connection refused", "retrying for up to 30s", "--s3-retry-timeout"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("notice %q lacks %q", lines[0], want)
		}
	}
	if strings.Contains(lines[0], "/b/k") {
		t.Errorf("notice %q repeats the request URL", lines[0])
	}
}
