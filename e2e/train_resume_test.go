package e2e

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// SIGINT in the middle of `dsae train` keeps the work: exit 130, a loadable
// model of the last completed step and a checkpoint in --out, and `dsae
// train --resume` from that checkpoint ends with a model and loss history
// bitwise equal to an uninterrupted run's. A checkpoint kept every N steps
// (--checkpoint-every) resumes the same way.
func TestTrainInterruptResume(t *testing.T) {
	skipSlow(t, "SIGINT of dsae train on MNIST and --resume")
	dir := t.TempDir()
	const steps = "600"
	args := []string{"train", "--data", "mnist", "--steps", steps, "--hidden", "64"}
	if r := run(t, dir, append(args, "--out", "full", "--progress", "0")...); r.code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", r.code, r.stderr)
	}

	// Interrupt once training has passed step 20.
	cmd := exec.Command(dsaeBin, append(args, "--out", "cut", "--progress", "50ms")...)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	stepRe := regexp.MustCompile(`^step (\d+)/`)
	sc := bufio.NewScanner(stderr)
	signalled := false
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if m := stepRe.FindStringSubmatch(sc.Text()); m != nil && !signalled {
			if n, _ := strconv.Atoi(m[1]); n >= 20 {
				cmd.Process.Signal(syscall.SIGINT)
				signalled = true
			}
		}
	}
	err = cmd.Wait()
	if !signalled {
		t.Fatalf("no progress line past step 20:\n%s", log.String())
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("interrupted dsae train: %v, want exit 130\n%s", err, log.String())
	}
	ckpt := filepath.Join("cut", "checkpoint")
	if !strings.Contains(log.String(), "dsae train --resume "+ckpt) || !strings.Contains(log.String(), "training interrupted after step") {
		t.Errorf("the interrupted run does not say where its work is:\n%s", log.String())
	}
	// The model so far loads (as the start of another run).
	if r := run(t, dir, "train", "--data", "mnist", "--init", "cut", "--steps", "1", "--out", "from-cut", "--progress", "0"); r.code != 0 {
		t.Errorf("the interrupted run's model does not load: exit %d\n%s", r.code, r.stderr)
	}
	// Settings come from the checkpoint; flags that would change them are refused by name.
	if r := run(t, dir, "train", "--resume", ckpt, "--hidden", "32", "--out", "x"); r.code != 2 || !strings.Contains(r.stderr, "--hidden") {
		t.Errorf("--resume with --hidden: exit %d, %s", r.code, r.stderr)
	}
	if r := run(t, dir, "train", "--resume", ckpt, "--out", "resumed", "--progress", "0"); r.code != 0 {
		t.Fatalf("--resume: exit %d\n%s", r.code, r.stderr)
	}
	sameFiles(t, dir, "full", "resumed", "sae.safetensors", "history.json")

	// Periodic checkpoints: the last one (step 500 of 600) resumes to the same end.
	if r := run(t, dir, append(args, "--out", "every", "--checkpoint-every", "250", "--progress", "0")...); r.code != 0 {
		t.Fatalf("--checkpoint-every: exit %d\n%s", r.code, r.stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "every", "checkpoint", "checkpoint.json"))
	if err != nil || !strings.Contains(string(b), `"completed": 500`) {
		t.Fatalf("--checkpoint-every 250 over 600 steps: checkpoint.json %v\n%.300s", err, b)
	}
	if r := run(t, dir, "train", "--resume", filepath.Join("every", "checkpoint"), "--out", "every-resumed", "--progress", "0"); r.code != 0 {
		t.Fatalf("--resume of a periodic checkpoint: exit %d\n%s", r.code, r.stderr)
	}
	sameFiles(t, dir, "full", "every-resumed", "sae.safetensors", "history.json")
}

func sameFiles(t *testing.T, dir, a, b string, names ...string) {
	t.Helper()
	for _, n := range names {
		x, err1 := os.ReadFile(filepath.Join(dir, a, n))
		y, err2 := os.ReadFile(filepath.Join(dir, b, n))
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Errorf("%s/%s and %s/%s differ (%v, %v; %d and %d bytes)", a, n, b, n, err1, err2, len(x), len(y))
		}
	}
}
