package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
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
