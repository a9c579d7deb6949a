// Package e2e runs the dsae binary as a user would: real processes, real
// files, real sockets. TestMain builds the binary once per test run.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dsaeBin is the path of the binary built by TestMain.
var dsaeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dsae-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dsaeBin = filepath.Join(dir, "dsae")
	build := exec.Command("go", "build", "-o", dsaeBin, "github.com/dsae/dsae/cmd/dsae")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building dsae:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// skipSlow skips a slow test (full MNIST training, a multi-process
// cluster under chaos, a demo run, the static build) under -short, so that
// `go test -short ./...` runs the fast tests in under a minute. Without
// -short, as in CI, every test runs.
func skipSlow(t *testing.T, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short skips %s; run it with: go test -run '^%s$' ./e2e/", what, t.Name())
	}
}

// result is the outcome of one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// run runs dsae with args in dir and returns its exit code and output.
func run(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return runEnv(t, dir, nil, args...)
}

// runEnv is run with the environment env (nil: the test's own).
func runEnv(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(dsaeBin, args...)
	cmd.Dir, cmd.Env = dir, env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("dsae %s: %v", strings.Join(args, " "), err)
	}
	return result{code, out.String(), errb.String()}
}

// mustRun runs dsae and fails the test unless it exits 0.
func mustRun(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r := run(t, dir, args...)
	if r.code != 0 {
		t.Fatalf("dsae %s: exit %d\nstderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}
