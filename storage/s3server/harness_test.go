package s3server

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const (
	testAK = "test-access-key"
	testSK = "test-secret-key-abcdefgh"
)

// testServer is a Server on a real loopback listener.
type testServer struct {
	*Server
	Endpoint string
	Dir      string
	stop     func()
}

// startServer serves dir (a new temp dir if "") until the test ends or
// stop is called.
func startServer(t testing.TB, dir string) *testServer {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	srv, err := New(Config{Dir: dir, AccessKey: testAK, SecretKey: testSK, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	ts := &testServer{Server: srv, Endpoint: ln.Addr().String(), Dir: dir}
	stopped := false
	ts.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	t.Cleanup(ts.stop)
	return ts
}

// core returns a minio-go client for the server signing with secret.
func (ts *testServer) core(t testing.TB, secret string) minio.Core {
	t.Helper()
	mc, err := minio.New(ts.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(testAK, secret, ""),
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return minio.Core{Client: mc}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
