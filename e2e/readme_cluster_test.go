package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readmeBlock returns the shell block of the README between
// <!-- name --> and <!-- /name -->.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	open, end := "<!-- "+name+" -->", "<!-- /"+name+" -->"
	i, j := strings.Index(s, open), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %s … %s block", open, end)
	}
	block := s[i+len(open) : j]
	block = strings.TrimSpace(block)
	block = strings.TrimPrefix(block, "```sh")
	block = strings.TrimSuffix(block, "```")
	return block
}

// The README's "run a cluster by hand" commands work as written: run in a
// fresh directory with the built dsae first on PATH, they train a job on
// three workers and leave the pulled model behind.
func TestReadmeClusterByHand(t *testing.T) {
	skipSlow(t, "the README's multi-process cluster, run by hand")
	dir := t.TempDir()
	out := runShell(t, dir, readmeBlock(t, "cluster-by-hand"), 8*time.Minute, "the README's cluster commands")
	for _, f := range []string{"sae.safetensors", "cfg.json", "metrics.json", "history.json", "loss.png", "features.png"} {
		if _, err := os.Stat(filepath.Join(dir, "mnist-model", f)); err != nil {
			t.Errorf("pulled model lacks %s: %v", f, err)
		}
	}
	if !strings.Contains(out, "completed") {
		t.Errorf("job wait/status output does not say completed:\n%s", tail(out, 2000))
	}
}

// runShell runs script with bash -euo pipefail in dir, with the built dsae
// first on PATH, and returns its combined output; it fails the test (naming
// what) if the script fails or runs longer than limit. Background jobs
// (`&`) are killed when it ends.
func runShell(t *testing.T, dir, script string, limit time.Duration, what string) string {
	t.Helper()
	script = "set -euo pipefail\ntrap 'jobs -p | xargs -r kill 2>/dev/null; wait' EXIT\n" + script + "\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(dsaeBin)+":"+os.Getenv("PATH"))
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish in %v:\n%s", what, limit, tail(string(out), 3000))
	}
	if err != nil {
		t.Fatalf("%s failed: %v\n%s", what, err, tail(string(out), 3000))
	}
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
