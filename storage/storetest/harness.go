package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/s3server/s3test"
)

// The credentials StartS3 serves and ClientConfig signs with.
const (
	AccessKey = "dsae-test-access"
	SecretKey = "dsae-test-secret-0123456789"
)

// StartS3 serves dir (a fresh temp dir if empty) with the test
// credentials on 127.0.0.1 until the test ends or Stop is called.
func StartS3(t testing.TB, dir string) *s3test.Server {
	t.Helper()
	return s3test.Start(t, s3test.Options{Dir: dir, AccessKey: AccessKey, SecretKey: SecretKey})
}

// ClientConfig returns a config for the embedded server at endpoint with
// a small retry budget.
func ClientConfig(endpoint, bucket string) storage.ClientConfig {
	cfg := storage.DefaultClientConfig()
	cfg.Endpoint = endpoint
	cfg.Bucket = bucket
	cfg.AccessKey, cfg.SecretKey = AccessKey, SecretKey
	cfg.RetryTimeout = 2 * time.Second
	cfg.RetryBase = 10 * time.Millisecond
	cfg.RetryCap = 200 * time.Millisecond
	cfg.DialTimeout = time.Second
	return cfg
}

// Store is the S3 the conformance suite runs against: the store named by
// DSAE_TEST_S3_ENDPOINT (+ _ACCESS_KEY, _SECRET_KEY, _BUCKET) if set, else
// an embedded server. Prefix isolates this run's keys, which are deleted
// when the test ends.
type Store struct {
	Config   storage.ClientConfig
	Embedded *s3test.Server // nil for an external store
	Prefix   string
}

// NewStore returns the store for this test, its bucket created.
func NewStore(t testing.TB) *Store {
	t.Helper()
	ts := &Store{Prefix: "conformance-" + RandHex(4) + "/"}
	if ep := os.Getenv("DSAE_TEST_S3_ENDPOINT"); ep != "" {
		cfg := storage.DefaultClientConfig()
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
		ts.Config = cfg
	} else {
		ts.Embedded = StartS3(t, "")
		ts.Config = ClientConfig(ts.Embedded.Endpoint, "dsae-test")
	}
	c := ts.Client(t)
	if err := c.EnsureBucket(context.Background()); err != nil {
		t.Fatalf("ensure bucket: %v", err)
	}
	t.Cleanup(func() {
		if _, err := c.DeletePrefix(context.Background(), ts.Prefix); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return ts
}

// Client returns a new client of the store.
func (ts *Store) Client(t testing.TB) *storage.Client {
	t.Helper()
	c, err := storage.NewClient(ts.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// RandHex returns n random bytes in hex, for names unique to a run.
func RandHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
