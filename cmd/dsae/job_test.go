package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/dsae/dsae/worker/jobspec"
)

const cliSecret = "cli-test-cluster-secret-123456"

// startCoordinator runs `dsae coordinator` on free loopback ports until the
// test ends and returns its gRPC address.
func startCoordinator(t *testing.T, extra ...string) string {
	t.Helper()
	t.Setenv("DSAE_CLUSTER_SECRET", cliSecret)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		root := newRootCmd()
		root.SetArgs(append([]string{"coordinator", "--id", "c1", "--data-dir", t.TempDir(), "--raft-addr", "127.0.0.1:0",
			"--grpc-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--raft-timeout", "300ms", "--log-level", "error"}, extra...))
		root.SetOut(&out)
		done <- root.ExecuteContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("coordinator: %v", err)
		}
	})
	re := regexp.MustCompile(`grpc (\S+),`)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("coordinator exited: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("coordinator did not report its address")
	return ""
}

func TestJobCommands(t *testing.T) {
	addr := startCoordinator(t)
	ctx := context.Background()
	spec := filepath.Join(t.TempDir(), "job.yaml")
	os.WriteFile(spec, []byte(`
name: cli
data: mnist
hidden: 64
sparsity: kl
rho: 0.05
steps: 100
`), 0o600)
	run := func(args ...string) (string, error) {
		return runCmd(ctx, append(args, "--coordinator", addr, "--log-level", "error")...)
	}
	out, err := run("job", "submit", spec, "--hidden", "128", "--max-workers", "2")
	if err != nil || !strings.Contains(out, "submitted job-000001 (queued)") {
		t.Fatalf("submit: %v\n%s", err, out)
	}
	out, err = run("job", "status", "job-000001", "--json")
	if err != nil || !regexp.MustCompile(`"hidden":\s*"128"`).MatchString(out) || !regexp.MustCompile(`"maxWorkers":\s*2`).MatchString(out) ||
		!regexp.MustCompile(`"rho":\s*0.05`).MatchString(out) || !regexp.MustCompile(`"steps":\s*"100"`).MatchString(out) {
		t.Fatalf("flags did not override the file: %v\n%s", err, out)
	}
	if out, err = run("job", "ls"); err != nil || !regexp.MustCompile(`job-000001\s+cli\s+queued\s+mnist`).MatchString(out) {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	if out, err = run("job", "status", "job-000001"); err != nil || !strings.Contains(out, "job job-000001 (cli): queued") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if out, err = run("job", "cancel", "job-000001", "--reason", "enough"); err != nil || !strings.Contains(out, "canceled job-000001") {
		t.Fatalf("cancel: %v\n%s", err, out)
	}
	out, err = run("job", "wait", "job-000001")
	if err == nil || exitCode(err) != exitFailure || !strings.Contains(out, "canceled") {
		t.Fatalf("wait on a canceled job: %v\n%s", err, out)
	}

	// Bad input exits 2 with the field named.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "submit", spec, "--rho", "2"}, "--rho = 2 out of range (0, 1)"},
		{[]string{"job", "submit", "--steps", "5"}, "data: empty"},
		{[]string{"job", "submit", "--data", "mnist", "--h", "5"}, "unknown flag: --h"},
		{[]string{"job", "status", "job-999999"}, "not found"},
		{[]string{"job", "cancel", "job-000001"}, "finished"},
		{[]string{"job", "submit", filepath.Join(t.TempDir(), "missing.yaml")}, "missing.yaml"},
	} {
		_, err := run(tc.args...)
		if err == nil || exitCode(err) != exitInvalid || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v (exit %d), want exit 2 naming %q", tc.args, err, exitCode(err), tc.want)
		}
	}

	// The wrong secret is refused.
	t.Setenv("DSAE_CLUSTER_SECRET", "some-other-secret-of-length")
	if _, err := run("job", "ls"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("wrong secret: %v", err)
	}
	os.Unsetenv("DSAE_CLUSTER_SECRET")
	if _, err := run("job", "ls"); err == nil || exitCode(err) != exitInvalid || !strings.Contains(err.Error(), "no cluster secret") {
		t.Fatalf("no secret: %v", err)
	}
}

func TestJobSubmitChecksDatasetInStore(t *testing.T) {
	endpoint := startS3Serve(t, t.TempDir())
	addr := startCoordinator(t, "--s3-endpoint", endpoint) // an endpoint turns the check on
	ctx := context.Background()
	npy := filepath.Join(t.TempDir(), "a.npy")
	writeF32NPY(t, npy, 20, 4)
	if out, err := runCmd(ctx, "dataset", "put", "acts", npy, "--s3-endpoint", endpoint, "--log-level", "error"); err != nil {
		t.Fatalf("dataset put: %v\n%s", err, out)
	}
	submit := func(dataset string, args ...string) (string, error) {
		return runCmd(ctx, append([]string{"job", "submit", "--data", dataset, "--hidden", "2", "--batch", "4", "--epochs", "2",
			"--output", "linear", "--coordinator", addr, "--log-level", "error"}, args...)...)
	}
	// writeF32NPY's values leave [0, 1]: a sigmoid output is refused
	// through the manifest's statistics, before any job exists.
	if _, err := submit("acts", "--output", "sigmoid"); err == nil || exitCode(err) != exitInvalid || !strings.Contains(err.Error(), "[0, 1]") {
		t.Fatalf("sigmoid job on data outside [0, 1]: %v (exit %d), want exit 2 naming the range", err, exitCode(err))
	}
	if out, err := submit("acts"); err != nil || !strings.Contains(out, "submitted job-000001") {
		t.Fatalf("submit on a published dataset: %v\n%s", err, out)
	}
	// The coordinator took d from the manifest and steps from 2 epochs of
	// 20 rows in batches of 4.
	out, err := runCmd(ctx, "job", "status", "job-000001", "--coordinator", addr, "--log-level", "error")
	if err != nil || !strings.Contains(out, "data acts, model d=4 hidden=2") || !strings.Contains(out, "batch 4, steps 10, epochs 2") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	// What needs the data is checked by the coordinator, with sae's rules
	// in the API's words: locally the step count is unknown, there it is 10.
	if _, err := submit("acts", "--schedule", "cosine", "--warmup-steps", "10"); err == nil || exitCode(err) != exitInvalid ||
		!strings.Contains(err.Error(), "steps = 10, must be > optimizer.warmup_steps = 10") {
		t.Fatalf("submit with warmup past the end: %v", err)
	}
	_, err = submit("absent")
	if err == nil || exitCode(err) != exitInvalid || !strings.HasSuffix(err.Error(), `data: "absent" not found in the store`) {
		t.Fatalf("submit on a missing dataset: %v", err)
	}
	// A name close to a published one is answered with it.
	_, err = submit("act")
	if err == nil || exitCode(err) != exitInvalid || !strings.Contains(err.Error(), `data: "act" not found in the store; did you mean acts?`) {
		t.Fatalf("submit on a misspelt dataset: %v", err)
	}
}

// TestSubmitHelpExampleIsFullSpec: the YAML spec shown by `dsae job submit
// --help` parses, is valid, and names every setting of the vocabulary.
func TestSubmitHelpExampleIsFullSpec(t *testing.T) {
	s := jobspec.Default()
	if err := jobspec.ParseYAML(strings.NewReader(submitExample), &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, line := range strings.Split(submitExample, "\n") {
		if k, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
			keys[jobspec.FlagName(k)] = true
		}
	}
	fs := pflag.NewFlagSet("all", pflag.ContinueOnError)
	jobspec.AddFlags(fs, &s)
	jobspec.AddDataFlags(fs, &s, "", "")
	jobspec.AddJobFlags(fs, &s)
	fs.VisitAll(func(f *pflag.Flag) {
		if !keys[f.Name] {
			t.Errorf("the help's example spec lacks %s", f.Name)
		}
	})
}

// runCmdSplit runs dsae in-process with args and returns stdout and stderr
// apart.
func runCmdSplit(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var out, errb syncBuffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err = root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// TestJobCommandsJSON: with --json every job command prints exactly one
// JSON document on stdout, for scripts; job wait's progress and summary go
// to stderr then.
func TestJobCommandsJSON(t *testing.T) {
	addr := startCoordinator(t)
	ctx := context.Background()
	run := func(args ...string) (string, string) {
		t.Helper()
		out, errOut, err := runCmdSplit(ctx, append(args, "--coordinator", addr, "--log-level", "error")...)
		if err != nil && !errors.Is(err, errJobUnsuccessful) {
			t.Fatalf("dsae %v: %v\n%s", args, err, errOut)
		}
		return out, errOut
	}
	type job struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	decode := func(what, s string, v any) {
		t.Helper()
		dec := json.NewDecoder(strings.NewReader(s))
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%s: stdout is not JSON: %v\n%s", what, err, s)
		}
		if dec.More() {
			t.Fatalf("%s: stdout holds more than one JSON document:\n%s", what, s)
		}
	}
	var sub job
	out, _ := run("job", "submit", "--data", "mnist", "--steps", "10", "--json")
	decode("submit", out, &sub)
	var list struct{ Jobs []job }
	out, _ = run("job", "ls", "--json")
	decode("ls", out, &list)
	if len(list.Jobs) != 1 || list.Jobs[0].ID != sub.ID {
		t.Fatalf("ls --json: %+v, want the job %s", list, sub.ID)
	}
	var st, canceled, waited job
	out, _ = run("job", "status", sub.ID, "--json")
	decode("status", out, &st)
	out, _ = run("job", "cancel", sub.ID, "--json")
	decode("cancel", out, &canceled)
	out, errOut := run("job", "wait", sub.ID, "--json")
	decode("wait", out, &waited)
	if st.State != "JOB_STATE_QUEUED" || canceled.State != "JOB_STATE_CANCELED" || waited.ID != sub.ID || waited.State != "JOB_STATE_CANCELED" {
		t.Errorf("status %+v, cancel %+v, wait %+v", st, canceled, waited)
	}
	if !strings.Contains(errOut, "job "+sub.ID+" canceled") {
		t.Errorf("job wait --json: the progress is not on stderr:\n%s", errOut)
	}
}
