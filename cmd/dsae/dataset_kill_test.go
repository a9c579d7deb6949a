package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/s3server"
)

// helperArgsEnv makes TestHelperDsae run the dsae command line with the
// JSON-encoded arguments it holds, in a child process.
const helperArgsEnv = "DSAE_TEST_HELPER_ARGS"

// TestHelperDsae is the entry point of child processes started by the tests
// below (the test binary re-executed); it does nothing in a normal run.
func TestHelperDsae(t *testing.T) {
	raw := os.Getenv(helperArgsEnv)
	if raw == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		os.Exit(100)
	}
	_, err := runCmd(context.Background(), args...)
	os.Exit(exitCode(err))
}

// TestDatasetPutKilledMidway kills a `dsae dataset put` process while it
// uploads (the server holds the upload of the fourth shard, so the kill
// lands midway every time), checks that nothing is published, and reruns
// the ingest to completion.
func TestDatasetPutKilledMidway(t *testing.T) {
	const ak, sk = "kill-test-ak", "kill-test-secret"
	t.Setenv("AWS_ACCESS_KEY_ID", ak)
	t.Setenv("AWS_SECRET_ACCESS_KEY", sk)
	srv, err := s3server.New(s3server.Config{Dir: t.TempDir(), AccessKey: ak, SecretKey: sk, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	arrived := make(chan struct{})
	release := make(chan struct{})
	var held atomic.Bool
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/datasets/killed/shard-00003.npy") && held.CompareAndSwap(false, true) {
			close(arrived)
			<-release
			http.Error(w, "held", http.StatusServiceUnavailable)
			return
		}
		srv.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: handler}
	go hs.Serve(ln)
	defer hs.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	endpoint := ln.Addr().String()

	dir := t.TempDir()
	data := filepath.Join(dir, "x.npy")
	writeF32NPY(t, data, 1000, 16)
	args := []string{"dataset", "put", "killed", data, "--shard-rows", "100", "--chunk-rows", "10", "--s3-endpoint", endpoint}
	raw, _ := json.Marshal(args)
	child := exec.Command(os.Args[0], "-test.run=^TestHelperDsae$")
	child.Env = append(os.Environ(), helperArgsEnv+"="+string(raw))
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(2 * time.Minute):
		child.Process.Kill()
		child.Wait()
		t.Fatal("the ingest never reached shard 3")
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	close(release)

	ctx := context.Background()
	cfg := storage.DefaultClientConfig()
	cfg.Endpoint, cfg.Bucket = endpoint, "dsae"
	cfg.FillFromEnv(os.Getenv)
	c, err := storage.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := c.List(ctx, "datasets/killed/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, strings.TrimPrefix(o.Key, "datasets/killed/"))
	}
	if !slices.Equal(keys, []string{"shard-00000.npy", "shard-00001.npy", "shard-00002.npy"}) {
		t.Fatalf("after the kill the store holds %v; want shards 0-2 and no manifest", keys)
	}
	if _, err := storage.LoadManifest(ctx, c, "killed"); !errors.Is(err, storage.ErrDatasetNotFound) {
		t.Fatalf("killed dataset visible: %v", err)
	}
	if out, err := runCmd(ctx, "dataset", "ls", "--s3-endpoint", endpoint); err != nil || strings.Contains(out, "killed") {
		t.Fatalf("ls after the kill: %q, %v", out, err)
	}

	// The rerun cleans up and publishes the whole dataset.
	if out, err := runCmd(ctx, args...); err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	ds, err := storage.LoadDataset(ctx, c, "killed")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range ds.X {
		if v != float32(i) {
			t.Fatalf("value %d = %v after the rerun", i, v)
		}
	}
	if objs, _ := c.List(ctx, "datasets/killed/"); len(objs) != 11 {
		t.Fatalf("%d objects after the rerun, want 10 shards + manifest", len(objs))
	}
}
