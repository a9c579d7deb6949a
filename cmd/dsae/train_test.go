package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dsae/dsae/storage/s3server/s3test"
)

// `dsae train --data s3://...` computes the final train metrics by streaming
// the dataset through its training reader, not by loading it: the manifest
// is read once (loading the dataset opens a second reader, which reads it
// again), and metrics.json holds bitwise the train metrics of the same
// training on the same rows from a local file with the same layout (one
// shard in chunks of 1024 rows, the in-memory chunking).
func TestTrainFromS3StreamsFinalTrainMetrics(t *testing.T) {
	const ak, sk = "train-test-ak", "train-test-secret"
	t.Setenv("AWS_ACCESS_KEY_ID", ak)
	t.Setenv("AWS_SECRET_ACCESS_KEY", sk)
	var manifestGets atomic.Int64
	count := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/datasets/toy/manifest.json") {
				manifestGets.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	}
	srv := s3test.Start(t, s3test.Options{AccessKey: ak, SecretKey: sk, Wrap: count})
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "x.npy")
	writeF32NPY(t, data, 2100, 4) // three chunks: 1024, 1024 and 52 rows
	if out, err := runCmd(ctx, "dataset", "put", "toy", data, "--chunk-rows", "1024", "--s3-endpoint", srv.Endpoint); err != nil {
		t.Fatalf("dataset put: %v\n%s", err, out)
	}
	train := []string{"train", "--hidden", "6", "--activation", "relu", "--output", "linear", "--sparsity", "l1", "--l1", "1e-3",
		"--lr", "1e-4", "--steps", "40", "--batch", "64", "--progress", "0"}
	before := manifestGets.Load()
	s3Out, memOut := filepath.Join(dir, "s3"), filepath.Join(dir, "mem")
	if out, err := runCmd(ctx, append(train, "--data", "s3://dsae/toy", "--out", s3Out, "--s3-endpoint", srv.Endpoint)...); err != nil {
		t.Fatalf("train from S3: %v\n%s", err, out)
	}
	if n := manifestGets.Load() - before; n != 1 {
		t.Fatalf("training from S3 read the manifest %d times, want once (the dataset was loaded besides being streamed)", n)
	}
	if out, err := runCmd(ctx, append(train, "--data", data, "--out", memOut)...); err != nil {
		t.Fatalf("train from the local file: %v\n%s", err, out)
	}
	fromS3, fromMem := trainMetricsJSON(t, s3Out), trainMetricsJSON(t, memOut)
	if !bytes.Equal(fromS3, fromMem) {
		t.Fatalf("final train metrics from S3 %s, from the local file %s", fromS3, fromMem)
	}
	var met struct{ Rows int }
	if err := json.Unmarshal(fromS3, &met); err != nil || met.Rows != 2100 {
		t.Fatalf("final train metrics %s (%v): want 2100 rows", fromS3, err)
	}
}

// trainMetricsJSON returns the "train" object of dir's metrics.json.
func trainMetricsJSON(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("metrics.json: %v", err)
	}
	if m["train"] == nil {
		t.Fatalf("metrics.json has no train metrics:\n%s", b)
	}
	return m["train"]
}

// `dsae train --json` prints one JSON document on stdout, the model
// directory and its metrics.json, while the progress stays on stderr; and
// metrics.json defines every number it holds, for this model (L0 above 0
// for a relu encoder).
func TestTrainJSONAndMetricDefinitions(t *testing.T) {
	dir := t.TempDir()
	data, test := filepath.Join(dir, "x.npy"), filepath.Join(dir, "t.npy")
	writeF32NPY(t, data, 64, 4)
	writeF32NPY(t, test, 16, 4)
	out := filepath.Join(dir, "m")
	stdout, stderr, err := runCmdSplit(context.Background(), "train", "--data", data, "--test", test, "--hidden", "3", "--activation", "relu",
		"--output", "linear", "--sparsity", "l1", "--l1", "1e-3", "--lr", "1e-4", "--steps", "5", "--batch", "16", "--out", out,
		"--progress", "1ns", "--json")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "step 5/5") {
		t.Errorf("progress is not on stderr:\n%s", stderr)
	}
	var res struct {
		Out     string
		Metrics map[string]json.RawMessage
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&res); err != nil || dec.More() || res.Out != out {
		t.Fatalf("stdout is not one JSON document naming %s (%v):\n%s", out, err, stdout)
	}
	file, err := os.ReadFile(filepath.Join(out, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fromFile map[string]json.RawMessage
	if err := json.Unmarshal(file, &fromFile); err != nil {
		t.Fatal(err)
	}
	var a, b any
	mj, _ := json.Marshal(res.Metrics)
	if json.Unmarshal(file, &a) != nil || json.Unmarshal(mj, &b) != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("--json metrics differ from metrics.json:\n%s\n%s", mj, file)
	}
	var defs map[string]string
	if err := json.Unmarshal(fromFile["definitions"], &defs); err != nil {
		t.Fatalf("metrics.json has no definitions: %v\n%s", err, file)
	}
	keys := func(raw json.RawMessage) []string {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		return ks
	}
	all := append(append(keys(file), keys(fromFile["train"])...), keys(fromFile["test"])...)
	for _, k := range all {
		if k != "definitions" && defs[k] == "" {
			t.Errorf("metrics.json has %q but no definition of it", k)
		}
	}
	if !strings.Contains(defs["l0"], "above 0 (relu") || !strings.Contains(defs["dead_fraction"], "dead_window = 1000 steps") {
		t.Errorf("definitions do not describe this model: l0 %q, dead_fraction %q", defs["l0"], defs["dead_fraction"])
	}
	// With a test split, history.json holds the test loss too, at the last
	// step among others, for the loss curve.
	hist, err := readHistory(filepath.Join(out, historyFile))
	if err != nil || len(hist) == 0 {
		t.Fatalf("history.json: %v", err)
	}
	if last := hist[len(hist)-1]; last.Step != 5 || last.Test == nil || last.Test.Rows != 16 || !(last.Test.Loss > 0) {
		t.Errorf("last history point %+v: want step 5 with the test loss on 16 rows", last)
	}
}

// --out is checked before training: a file in its place or a non-empty
// directory is refused at once (exit 2, naming --out); --overwrite writes
// into the directory.
func TestTrainChecksOut(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "x.npy")
	writeF32NPY(t, data, 32, 4)
	train := []string{"train", "--data", data, "--hidden", "2", "--output", "linear", "--steps", "2", "--batch", "8", "--progress", "0"}
	file := filepath.Join(dir, "afile")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, err := runCmd(context.Background(), append(train, "--out", file)...); err == nil || exitCode(err) != exitInvalid ||
		!strings.Contains(err.Error(), "--out "+file+" is a file") {
		t.Errorf("--out a file: %v", err)
	}
	full := filepath.Join(dir, "full")
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "notes.txt"), []byte("mine"), 0o644)
	if _, err := runCmd(context.Background(), append(train, "--out", full)...); err == nil || exitCode(err) != exitInvalid ||
		!strings.Contains(err.Error(), "is not empty (notes.txt)") || !strings.Contains(err.Error(), "use --overwrite to replace") {
		t.Errorf("--out non-empty: %v", err)
	}
	if out, err := runCmd(context.Background(), append(train, "--out", full, "--overwrite")...); err != nil {
		t.Fatalf("--overwrite: %v\n%s", err, out)
	}
	for _, f := range []string{"notes.txt", "sae.safetensors", "metrics.json"} {
		if _, err := os.Stat(filepath.Join(full, f)); err != nil {
			t.Errorf("after --overwrite: %v", err)
		}
	}
	// A run that fails after the check leaves no directory behind.
	gone := filepath.Join(dir, "new", "deeper")
	if _, err := runCmd(context.Background(), append(train, "--out", gone, "--batch", "1000")...); err == nil {
		t.Fatal("--batch beyond the rows: no error")
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
		t.Error("a failed run left the --out directories it created")
	}
}
