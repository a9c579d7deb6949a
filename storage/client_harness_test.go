package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsae/dsae/storage/s3server"
)

const (
	testAccessKey = "dsae-test-access"
	testSecretKey = "dsae-test-secret-0123456789"
)

// embeddedS3 is an in-process s3server on a real loopback socket.
type embeddedS3 struct {
	Endpoint string
	Dir      string
	Requests atomic.Int64 // requests received, for retry assertions
	cancel   context.CancelFunc
	done     chan error
}

// startEmbeddedS3 serves dir (a fresh temp dir if empty) on 127.0.0.1:0
// until the test ends or Stop is called.
func startEmbeddedS3(t testing.TB, dir string) *embeddedS3 {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	srv, err := s3server.New(s3server.Config{Dir: dir, AccessKey: testAccessKey, SecretKey: testSecretKey, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &embeddedS3{Endpoint: ln.Addr().String(), Dir: dir, cancel: cancel, done: make(chan error, 1)}
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.Requests.Add(1)
		srv.ServeHTTP(w, r)
	})
	go func() { e.done <- serveHandler(ctx, ln, counted) }()
	t.Cleanup(e.Stop)
	return e
}

// serveHandler is s3server.Server.Serve for an arbitrary handler.
func serveHandler(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Stop shuts the server down and waits for it; safe to call twice.
func (e *embeddedS3) Stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	<-e.done
	e.cancel = nil
}

// testClientConfig returns a config for the embedded server with a small
// retry budget.
func testClientConfig(endpoint, bucket string) ClientConfig {
	cfg := DefaultClientConfig()
	cfg.Endpoint = endpoint
	cfg.Bucket = bucket
	cfg.AccessKey, cfg.SecretKey = testAccessKey, testSecretKey
	cfg.RetryTimeout = 2 * time.Second
	cfg.RetryBase = 10 * time.Millisecond
	cfg.RetryCap = 200 * time.Millisecond
	cfg.DialTimeout = time.Second
	return cfg
}

// testStore is the S3 the conformance suite runs against: the store named
// by DSAE_TEST_S3_ENDPOINT (+ _ACCESS_KEY, _SECRET_KEY, _BUCKET) if set,
// else an embedded server. prefix isolates this run's keys.
type testStore struct {
	cfg      ClientConfig
	embedded *embeddedS3 // nil for an external store
	prefix   string
}

func newTestStore(t testing.TB) *testStore {
	t.Helper()
	ts := &testStore{prefix: "conformance-" + randHex(4) + "/"}
	if ep := os.Getenv("DSAE_TEST_S3_ENDPOINT"); ep != "" {
		cfg := DefaultClientConfig()
		cfg.Endpoint = ep
		cfg.AccessKey = os.Getenv("DSAE_TEST_S3_ACCESS_KEY")
		cfg.SecretKey = os.Getenv("DSAE_TEST_S3_SECRET_KEY")
		cfg.Bucket = os.Getenv("DSAE_TEST_S3_BUCKET")
		if r := os.Getenv("DSAE_TEST_S3_REGION"); r != "" {
			cfg.Region = r
		}
		if cfg.Bucket == "" {
			cfg.Bucket = "dsae-test"
		}
		cfg.FillFromEnv(os.Getenv)
		ts.cfg = cfg
	} else {
		ts.embedded = startEmbeddedS3(t, "")
		ts.cfg = testClientConfig(ts.embedded.Endpoint, "dsae-test")
	}
	c := ts.client(t)
	if err := c.EnsureBucket(context.Background()); err != nil {
		t.Fatalf("ensure bucket: %v", err)
	}
	t.Cleanup(func() {
		if _, err := c.DeletePrefix(context.Background(), ts.prefix); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return ts
}

func (ts *testStore) client(t testing.TB) *Client {
	t.Helper()
	c, err := NewClient(ts.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
