// Package s3test runs the embedded S3 server (storage/s3server) on a
// loopback socket for the length of a test, so that tests of the storage
// client, the workers and the command line talk to a real S3 endpoint
// without starting one each in their own way. Only tests import it.
//
// It depends on s3server and the standard library alone, so that any
// test, storage/storetest's helpers and package storage's own included,
// can import it without a cycle.
package s3test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsae/dsae/storage/s3server"
)

// The credentials of a server started without keys of its own.
const (
	DefaultAccessKey = "s3test-access"
	DefaultSecretKey = "s3test-secret-0123456789"
)

// Options says how Start runs the server. The zero value serves a fresh
// temporary directory over plain HTTP with the default credentials.
type Options struct {
	// Dir holds the buckets; a new t.TempDir() when empty. A server started
	// on the Dir of a stopped one sees what the first one stored.
	Dir string
	// AccessKey and SecretKey are the key pair requests must be signed
	// with; DefaultAccessKey and DefaultSecretKey when empty.
	AccessKey, SecretKey string
	// TLS, when set, makes the server speak HTTPS with this configuration.
	TLS *tls.Config
	// Wrap, when set, wraps the S3 handler, for a test that holds or fails
	// some requests; it receives every request the server counts.
	Wrap func(http.Handler) http.Handler
}

// Server is an embedded S3 server started by Start.
type Server struct {
	// Endpoint is the server's host:port, without a scheme.
	Endpoint string
	// Dir is the directory that holds the buckets.
	Dir string
	// AccessKey and SecretKey are the key pair the server accepts.
	AccessKey, SecretKey string
	// Requests counts the requests received, for tests that check how
	// often a client retried.
	Requests atomic.Int64

	stop func()
}

// Start serves an embedded S3 server on 127.0.0.1 until the test ends or
// Stop is called. Objects are not fsynced (s3server.Config.NoSync): tests
// need no crash safety and run faster without it.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	s := &Server{Dir: opt.Dir, AccessKey: opt.AccessKey, SecretKey: opt.SecretKey}
	if s.Dir == "" {
		s.Dir = t.TempDir()
	}
	if s.AccessKey == "" {
		s.AccessKey = DefaultAccessKey
	}
	if s.SecretKey == "" {
		s.SecretKey = DefaultSecretKey
	}
	srv, err := s3server.New(s3server.Config{Dir: s.Dir, AccessKey: s.AccessKey, SecretKey: s.SecretKey, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = srv
	if opt.Wrap != nil {
		h = opt.Wrap(h)
	}
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Requests.Add(1)
		h.ServeHTTP(w, r)
	})
	ln := Listen(t)
	s.Endpoint = ln.Addr().String()
	if opt.TLS != nil {
		ln = tls.NewListener(ln, opt.TLS)
	}
	s.stop = Serve(t, ln, counted)
	return s
}

// Stop closes the server and its connections at once and waits for it to
// end, so that a test can restart a server on the same Dir or see what
// clients do without one. It is safe to call twice.
func (s *Server) Stop() { s.stop() }

// Listen opens a TCP listener on a free loopback port.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Serve answers requests on ln with h until the test ends or the returned
// stop function is called, which closes the server and waits for it. It
// serves what a test puts in front of a Start-ed server, such as a proxy
// that injects faults. The HTTP server's own errors (a failed TLS
// handshake, a panic in h) go to the test log.
func Serve(t testing.TB, ln net.Listener, h http.Handler) (stop func()) {
	tl := &testLog{t: t}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(tl, "", 0)}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	stop = sync.OnceFunc(func() {
		hs.Close()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("s3test: serve %s: %v", ln.Addr(), err)
		}
		tl.close()
	})
	t.Cleanup(stop)
	return stop
}

// testLog passes the HTTP server's error log to t.Log until the server has
// stopped; connections that end later must not log after the test.
type testLog struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Logf("s3test: %s", bytes.TrimSuffix(p, []byte("\n")))
	}
	return len(p), nil
}

func (l *testLog) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}
