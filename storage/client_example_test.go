package storage_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/artifact"
	"github.com/dsae/dsae/storage/s3server"
)

// Example runs an embedded S3 server on a temporary directory, then stores,
// reads and checkpoints through a Client, as dsae's roles do.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, _ := os.MkdirTemp("", "dsae-example-")
	defer os.RemoveAll(dir)
	srv, err := s3server.New(s3server.Config{Dir: dir, AccessKey: "example", SecretKey: "example-secret"})
	if err != nil {
		panic(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	cfg := storage.DefaultClientConfig()
	cfg.Endpoint, cfg.Bucket = "http://"+ln.Addr().String(), "dsae"
	cfg.AccessKey, cfg.SecretKey = "example", "example-secret" // or cfg.FillFromEnv(os.Getenv)
	c, err := storage.NewClient(cfg)
	if err != nil {
		panic(err)
	}
	if err := c.EnsureBucket(ctx); err != nil {
		panic(err)
	}
	if err := c.Put(ctx, "notes/hello.txt", strings.NewReader("hello, S3"), 9); err != nil {
		panic(err)
	}
	rc, _ := c.GetRange(ctx, "notes/hello.txt", 7, 2)
	b, _ := io.ReadAll(rc)
	rc.Close()
	fmt.Printf("range: %s\n", b)

	cs, _ := artifact.NewCheckpointStore(c, "job-1")
	for step := int64(100); step <= 300; step += 100 {
		cs.Save(ctx, &artifact.Checkpoint{Step: step, Params: []float32{float32(step), 2}})
	}
	cs.Prune(ctx, 2)
	ck, info, err := cs.LoadLatest(ctx)
	if err != nil {
		panic(err)
	}
	all, _ := cs.List(ctx)
	fmt.Printf("latest step %d, params %v, kept %d\n", info.Step, ck.Params, len(all))
	// Output:
	// range: S3
	// latest step 300, params [300 2], kept 2
}
