package e2e

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The first things a newcomer meets, through the real binary: a dataset
// name that is almost right is answered with the names that exist, and a
// dataset put over an existing one asks for --overwrite without calling
// the input bad data.
func TestMissingDatasetListsCloseNames(t *testing.T) {
	dir := t.TempDir()
	endpoint := startS3Process(t, dir)
	t.Setenv("AWS_ACCESS_KEY_ID", "e2e-access")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "e2e-secret-key")
	s3 := []string{"--s3-endpoint", endpoint, "--s3-retry-timeout", "5s"}
	_, data := writeCSV(t, dir, "x.csv", 40, 4, 5)
	for _, name := range []string{"mnist-train", "mnist-test", "acts"} {
		mustRun(t, dir, append([]string{"dataset", "put", name, data}, s3...)...)
	}
	r := run(t, dir, append([]string{"train", "--data", "s3://mnist", "--out", "m", "--progress", "0"}, s3...)...)
	msg := strings.TrimSpace(r.stderr)
	if r.code != 2 || !strings.HasPrefix(msg, "dsae: --data s3://mnist: ") || !strings.Contains(msg, "did you mean mnist-test, mnist-train?") {
		t.Errorf("train --data s3://mnist: exit %d, stderr %q; want exit 2 naming --data and suggesting mnist-test, mnist-train", r.code, msg)
	}
	r = run(t, dir, append([]string{"dataset", "show", "minst-test"}, s3...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "did you mean mnist-test?") {
		t.Errorf("dataset show minst-test: exit %d, stderr %q", r.code, r.stderr)
	}
	r = run(t, dir, append([]string{"dataset", "put", "acts", data}, s3...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "use --overwrite to replace it") || strings.Contains(r.stderr, "bad input data") {
		t.Errorf("dataset put over an existing name: exit %d, stderr %q; want exit 2 asking for --overwrite, not bad input data", r.code, r.stderr)
	}
}

// An S3 endpoint that does not answer is named on stderr within a few
// seconds, saying that dsae is retrying, long before --s3-retry-timeout.
func TestUnreachableS3SaysItIsRetrying(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cmd := exec.Command(dsaeBin, "dataset", "ls", "--s3-endpoint", addr, "--s3-retry-timeout", "60s")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=e2e-access", "AWS_SECRET_ACCESS_KEY=e2e-secret-key")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("dsae dataset ls ended without saying it was retrying")
			}
			if strings.Contains(l, "http://"+addr) && strings.Contains(l, "retrying") {
				t.Logf("after %s: %s", time.Since(start).Round(time.Millisecond), l)
				return
			}
		case <-deadline:
			t.Fatalf("no line naming %s and retrying on stderr within 5 s", addr)
		}
	}
}

// --out is checked before anything else: a file in its place fails in
// under a second, even with --data mnist (whose loading alone takes
// longer); a non-empty directory is refused with dataset put's wording
// unless --overwrite.
func TestTrainChecksOutFirst(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "out"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := run(t, dir, "train", "--data", "mnist", "--out", "out")
	if took := time.Since(start); r.code != 2 || !strings.Contains(r.stderr, "--out out is a file") || took > time.Second {
		t.Errorf("--out a file: exit %d after %s, stderr %q; want exit 2 naming --out in under a second", r.code, took, r.stderr)
	}
	_, data := writeCSV(t, dir, "x.csv", 16, 4, 9)
	train := []string{"train", "--data", data, "--hidden", "2", "--steps", "2", "--batch", "8", "--progress", "0", "--out", "m"}
	mustRun(t, dir, train...)
	r = run(t, dir, train...)
	if r.code != 2 || !strings.Contains(r.stderr, "--out m is not empty") || !strings.Contains(r.stderr, "use --overwrite to replace") {
		t.Errorf("second run into m: exit %d, stderr %q; want exit 2 asking for --overwrite", r.code, r.stderr)
	}
	mustRun(t, dir, append(train, "--overwrite")...)
}

// The conventions of a CLI: dsae version and dsae --version, shell
// completion scripts, train --json for scripts with the progress on
// stderr, a metrics.json that defines what it measures and a cfg.json
// without the settings that do not apply, which loads back (--init).
func TestConventions(t *testing.T) {
	dir := t.TempDir()
	v, vflag := mustRun(t, dir, "version"), mustRun(t, dir, "--version")
	if v.stdout != vflag.stdout {
		t.Errorf("dsae version %q and dsae --version %q differ", v.stdout, vflag.stdout)
	}
	for _, want := range []string{"dsae ", " commit ", " go1.", " blas "} {
		if !strings.Contains(v.stdout, want) {
			t.Errorf("dsae version %q lacks %q", v.stdout, want)
		}
	}
	for shell, want := range map[string]string{"bash": "__start_dsae", "zsh": "#compdef dsae", "fish": "complete -c dsae"} {
		if r := mustRun(t, dir, "completion", shell); !strings.Contains(r.stdout, want) {
			t.Errorf("dsae completion %s does not print a %s completion script (no %q)", shell, shell, want)
		}
	}

	_, data := writeCSV(t, dir, "x.csv", 64, 4, 3)
	_, test := writeCSV(t, dir, "t.csv", 16, 4, 4)
	r := mustRun(t, dir, "train", "--data", data, "--test", test, "--hidden", "3", "--output", "linear", "--steps", "20",
		"--batch", "16", "--out", "m", "--progress", "1ns", "--json")
	var res struct {
		Out     string
		Metrics struct {
			Steps       int
			Test        map[string]any
			Definitions map[string]string
		}
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(&res); err != nil || dec.More() {
		t.Fatalf("train --json stdout is not one JSON document (%v):\n%s", err, r.stdout)
	}
	if res.Out != "m" || res.Metrics.Steps != 20 || res.Metrics.Test == nil || !strings.Contains(r.stderr, "step 20/20") {
		t.Errorf("train --json: %+v; stderr:\n%s", res, r.stderr)
	}
	if d := res.Metrics.Definitions; !strings.Contains(d["l0"], "above 0.5 (sigmoid") || d["fvu"] == "" || !strings.Contains(d["dead_fraction"], "dead_window") {
		t.Errorf("metrics.json definitions: %v", d)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "m", "cfg.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct{ DSAE map[string]any }
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k", "aux_k", "aux_coef", "l1"} {
		if _, ok := cfg.DSAE[k]; ok {
			t.Errorf("cfg.json of a KL model writes %s:\n%s", k, raw)
		}
	}
	if cfg.DSAE["rho"] != 0.1 {
		t.Errorf("cfg.json of a KL model lacks rho:\n%s", raw)
	}
	mustRun(t, dir, "train", "--data", data, "--init", "m", "--steps", "2", "--batch", "16", "--out", "m2", "--progress", "0")
	mustRun(t, dir, "model", "features", "m", "--png", "f.png", "--tile", "2x2", "--loss-png", "loss.png", "--loss-scale", "linear")
	if r := run(t, dir, "model", "features", "m", "--loss-png", "l.png", "--loss-scale", "cubic"); r.code != 2 || !strings.Contains(r.stderr, "--loss-scale") {
		t.Errorf("--loss-scale cubic: exit %d, stderr %q", r.code, r.stderr)
	}
}
