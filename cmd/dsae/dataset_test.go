package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/datafile"
	"github.com/dsae/dsae/storage/dataset"
)

// writeF32NPY writes a rows×d float32 .npy file whose value (i, j) is i*d+j.
func writeF32NPY(t *testing.T, path string, rows, d int) {
	t.Helper()
	x := make([]float32, rows*d)
	for i := range x {
		x[i] = float32(i)
	}
	var b bytes.Buffer
	if err := datafile.WriteNPY(&b, rows, d, x); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDatasetCommands(t *testing.T) {
	endpoint := startS3Serve(t, t.TempDir())
	ctx := context.Background()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.npy"), filepath.Join(dir, "b.npy")
	writeF32NPY(t, a, 100, 6)
	writeF32NPY(t, b, 30, 6)
	s3 := []string{"--s3-endpoint", endpoint}
	run := func(args ...string) string {
		t.Helper()
		out, err := runCmd(ctx, append(args, s3...)...)
		if err != nil {
			t.Fatalf("dsae %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	la, lb := filepath.Join(dir, "la.csv"), filepath.Join(dir, "lb.csv")
	os.WriteFile(la, []byte(strings.Repeat("1\n", 100)), 0o644)
	os.WriteFile(lb, []byte(strings.Repeat("2\n", 30)), 0o644)
	out := run("dataset", "put", "acts", a, b, "--shard-rows", "40", "--chunk-rows", "8", "--labels", la+","+lb)
	if !strings.Contains(out, "published dataset acts: 130 rows × 6, 4 shards") {
		t.Fatalf("put output %q", out)
	}
	if out := run("dataset", "ls"); !strings.Contains(out, "acts") || !strings.Contains(out, "130") {
		t.Fatalf("ls output %q", out)
	}
	if out := run("dataset", "show", "acts"); !strings.Contains(out, "datasets/acts/shard-00003.npy") || !strings.Contains(out, "rows 130, d 6") {
		t.Fatalf("show output %q", out)
	}
	var m dataset.Manifest
	if err := json.Unmarshal([]byte(run("dataset", "show", "acts", "--json")), &m); err != nil || m.Rows != 130 || len(m.Shards[0].ChunkCRC32C) != 5 {
		t.Fatalf("show --json: %v, %+v", err, m)
	}
	if out := run("dataset", "verify", "acts"); !strings.Contains(out, "dataset acts verified: 4 shards, 130 rows") {
		t.Fatalf("verify output %q", out)
	}
	// The data reads back through the storage reader from the same server.
	cfg := storage.DefaultClientConfig()
	cfg.Endpoint, cfg.Bucket = endpoint, "dsae"
	cfg.FillFromEnv(os.Getenv)
	c, err := storage.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := dataset.OpenReader(ctx, c, "acts", dataset.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := rd.Load(ctx)
	rd.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Labels) != 130 || ds.Labels[99] != 1 || ds.Labels[100] != 2 {
		t.Fatalf("labels %v", ds.Labels)
	}
	for i, v := range ds.X {
		want := float32(i)
		if i >= 600 {
			want = float32(i - 600)
		}
		if v != want {
			t.Fatalf("value %d = %v, want %v", i, v, want)
		}
	}

	ragged := filepath.Join(dir, "r.csv")
	os.WriteFile(ragged, []byte("1,2\n3\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"exists", []string{"dataset", "put", "acts", a}, exitInvalid, "--overwrite"},
		{"missing file", []string{"dataset", "put", "x", filepath.Join(dir, "nope.npy")}, exitInvalid, "nope.npy"},
		{"ragged csv", []string{"dataset", "put", "x", ragged}, exitInvalid, "line 2: 1 fields, want 2"},
		{"different widths", []string{"dataset", "put", "x", a, ragged}, exitInvalid, "columns"},
		{"bad name", []string{"dataset", "put", "A/B", a}, exitInvalid, "dataset name"},
		{"no file", []string{"dataset", "put", "x"}, exitInvalid, "at least one FILE"},
		{"bad builtin", []string{"dataset", "put", "x", "--builtin", "cifar"}, exitInvalid, "--builtin"},
		{"labels count", []string{"dataset", "put", "x", a, "--labels", lb}, exitInvalid, "only 30 labels"},
		{"show unknown", []string{"dataset", "show", "nope"}, exitInvalid, "dataset not found"},
		{"rm unknown", []string{"dataset", "rm", "nope"}, exitInvalid, "dataset not found"},
		{"wrong secret", []string{"dataset", "ls", "--s3-secret-key", "wrong"}, exitFailure, "access denied"},
		{"unreachable", []string{"dataset", "ls", "--s3-endpoint", "127.0.0.1:1", "--s3-retry-timeout", "300ms"}, exitFailure, "unreachable"},
	} {
		args := tc.args
		if !slices.Contains(args, "--s3-endpoint") {
			args = append(args, s3...)
		}
		_, err := runCmd(ctx, args...)
		if err == nil || exitCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v (exit %d), want exit %d mentioning %q", tc.name, err, exitCode(err), tc.code, tc.want)
		}
	}
	if out := run("dataset", "ls"); strings.Contains(out, "x ") || strings.Count(out, "\n") != 2 {
		t.Fatalf("a failed put is listed: %q", out)
	}
	out = run("dataset", "put", "acts", b, "--overwrite")
	if !strings.Contains(out, "30 rows × 6, 1 shards") {
		t.Fatalf("overwrite output %q", out)
	}
	run("dataset", "rm", "acts")
	if objs, err := c.List(ctx, "datasets/"); err != nil || len(objs) != 0 {
		t.Fatalf("after rm: %v, %v", objs, err)
	}
}
