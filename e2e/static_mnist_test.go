package e2e

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A statically linked binary (CGO_ENABLED=0, as the container image has it)
// trains on MNIST and ingests it into S3 on a machine without the Go
// toolchain: no go on PATH, an empty HOME and module cache, no
// $DSAE_MNIST_DIR. The data set comes from inside the binary.
func TestStaticBinaryMNISTWithoutGo(t *testing.T) {
	skipSlow(t, "the static-binary build and its full MNIST training")
	work := t.TempDir()
	bin := filepath.Join(work, "dsae-static")
	build := exec.Command("go", "build", "-o", bin, "github.com/dsae/dsae/cmd/dsae")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s has a program interpreter: not statically linked", bin)
		}
	}
	f.Close()

	empty := t.TempDir()
	bare := []string{
		"PATH=/nonexistent-dir", "HOME=" + empty, "GOMODCACHE=" + empty, "GOPATH=" + empty,
		"TMPDIR=" + t.TempDir(),
	}
	runBare := func(dir string, extraEnv []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(bare[:len(bare):len(bare)], extraEnv...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("dsae %s (env %v): %v\nstderr:\n%s", strings.Join(args, " "), cmd.Env, err, stderr.String())
		}
		return stdout.String()
	}

	dir := t.TempDir()
	runBare(dir, nil, "train", "--data", "mnist", "--steps", "3", "--out", "out", "--progress", "0")
	fi, err := os.Stat(filepath.Join(dir, "out", "sae.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	// 784×196 weights each way plus biases, float32.
	if least := int64(4 * (2*784*196 + 196 + 784)); fi.Size() < least {
		t.Errorf("sae.safetensors is %d bytes, want at least %d", fi.Size(), least)
	}
	m := readMetrics(t, filepath.Join(dir, "out", "metrics.json"))
	if m.Steps == nil || *m.Steps != 3 || m.Test == nil {
		t.Errorf("metrics.json: steps %v, test %v; want 3 steps and a test split (the built-in MNIST test set)", m.Steps, m.Test)
	}

	// The S3 server needs no data set; the ingest does.
	endpoint := startS3Process(t, t.TempDir())
	creds := []string{"AWS_ACCESS_KEY_ID=e2e-access", "AWS_SECRET_ACCESS_KEY=e2e-secret-key"}
	out := runBare(dir, creds, "dataset", "put", "mnist", "--builtin", "mnist", "--s3-endpoint", endpoint)
	for _, want := range []string{"published dataset mnist-train: 60000 rows × 784", "published dataset mnist-test: 10000 rows × 784"} {
		if !strings.Contains(out, want) {
			t.Errorf("dataset put --builtin mnist printed %q, want a line with %q", out, want)
		}
	}
}
