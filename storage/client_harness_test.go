package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/dsae/dsae/storage/s3server/s3test"
)

const (
	testAccessKey = "dsae-test-access"
	testSecretKey = "dsae-test-secret-0123456789"
)

// startEmbeddedS3 serves dir (a fresh temp dir if empty) with the test
// credentials on 127.0.0.1 until the test ends or Stop is called.
func startEmbeddedS3(t testing.TB, dir string) *s3test.Server {
	t.Helper()
	return s3test.Start(t, s3test.Options{Dir: dir, AccessKey: testAccessKey, SecretKey: testSecretKey})
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
	embedded *s3test.Server // nil for an external store
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
