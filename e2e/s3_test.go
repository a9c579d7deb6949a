package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startS3Process runs `dsae s3 serve` as a separate process on a free
// loopback port and returns its endpoint; the process is stopped with
// SIGTERM when the test ends. Credentials go through the environment.
func startS3Process(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(dsaeBin, "s3", "serve", "--dir", filepath.Join(dir, "s3data"), "--addr", "127.0.0.1:0", "--no-sync")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=e2e-access", "AWS_SECRET_ACCESS_KEY=e2e-secret-key")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`listening on https?://(\S+),`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("dsae s3 serve did not report its address within 30s")
		return ""
	}
}

// A dataset put into the embedded S3 server is trained on with
// --data s3://BUCKET/NAME, each process a real one; a wrong secret is refused.
func TestTrainFromS3Dataset(t *testing.T) {
	dir := t.TempDir()
	endpoint := startS3Process(t, dir)
	t.Setenv("AWS_ACCESS_KEY_ID", "e2e-access")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "e2e-secret-key")
	_, data := writeCSV(t, dir, "x.csv", 300, 6, 21)
	s3 := []string{"--s3-endpoint", endpoint, "--s3-retry-timeout", "5s"}
	mustRun(t, dir, append([]string{"dataset", "put", "toy", data, "--shard-rows", "128"}, s3...)...)
	r := mustRun(t, dir, append([]string{"train", "--data", "s3://dsae/toy", "--hidden", "4", "--activation", "relu",
		"--output", "linear", "--sparsity", "l1", "--l1", "1e-3", "--steps", "150", "--lr", "0.02", "--batch", "32", "--out", "m", "--progress", "0"}, s3...)...)
	if !strings.Contains(r.stderr, "(300 rows)") {
		t.Errorf("train did not report the dataset's 300 rows:\n%s", r.stderr)
	}
	m := readMetrics(t, filepath.Join(dir, "m", "metrics.json"))
	if m.Train == nil || m.Train.FVU == nil || !(*m.Train.FVU > 0 && *m.Train.FVU < 1) {
		t.Fatalf("metrics.json train fvu missing or absurd: %v", *m.Train.FVU)
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	bad := run(t, dir, append([]string{"train", "--data", "s3://dsae/toy", "--steps", "1", "--out", "m2", "--progress", "0"}, s3...)...)
	if bad.code == 0 || strings.Contains(bad.stderr, "not-the-secret") {
		t.Fatalf("training with a wrong secret: exit %d, stderr %q", bad.code, bad.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "m2")); err == nil {
		t.Error("a failed run created its output directory")
	}
}
