package storage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/s3server/s3test"
	"github.com/dsae/dsae/storage/storetest"
)

func TestClientConfigValidate(t *testing.T) {
	good := storetest.ClientConfig("127.0.0.1:9000", "dsae")
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*storage.ClientConfig){
		"no endpoint":       func(c *storage.ClientConfig) { c.Endpoint = "" },
		"bad scheme":        func(c *storage.ClientConfig) { c.Endpoint = "ftp://x:1" },
		"endpoint path":     func(c *storage.ClientConfig) { c.Endpoint = "http://x:1/bucket" },
		"bad bucket":        func(c *storage.ClientConfig) { c.Bucket = "Has_Upper" },
		"short bucket":      func(c *storage.ClientConfig) { c.Bucket = "ab" },
		"only access key":   func(c *storage.ClientConfig) { c.SecretKey = "" },
		"no credentials":    func(c *storage.ClientConfig) { c.AccessKey, c.SecretKey = "", "" },
		"zero retry budget": func(c *storage.ClientConfig) { c.RetryTimeout = 0 },
		"tiny parts":        func(c *storage.ClientConfig) { c.PartSize = 1 << 20 },
		"big list page":     func(c *storage.ClientConfig) { c.ListPageSize = 5000 },
	} {
		c := good
		mod(&c)
		err := c.Validate()
		if !errors.Is(err, storage.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
		if _, err := storage.NewClient(c); !errors.Is(err, storage.ErrInvalidConfig) {
			t.Errorf("%s: NewClient %v, want ErrInvalidConfig", name, err)
		}
	}
	c := good
	c.Endpoint = "https://s3.example.com:8443"
	if err := c.Validate(); err != nil || !c.UseTLS || c.Endpoint != "s3.example.com:8443" {
		t.Fatalf("https URL: %v, tls=%v endpoint=%q", err, c.UseTLS, c.Endpoint)
	}
}

func TestClientConfigRedactsCredentials(t *testing.T) {
	cfg := storetest.ClientConfig("127.0.0.1:9000", "dsae")
	cfg.AccessKey, cfg.SecretKey, cfg.SessionToken = "AKIDVISIBLE", "SECRETVISIBLE", "TOKENVISIBLE"
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "s3", cfg)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "s3", cfg)
	outs := []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%s", &cfg), logged.String()}
	for _, out := range outs {
		for _, secret := range []string{"AKIDVISIBLE", "SECRETVISIBLE", "TOKENVISIBLE"} {
			if strings.Contains(out, secret) {
				t.Errorf("credential %s printed: %s", secret, out)
			}
		}
		if !strings.Contains(out, "127.0.0.1:9000") {
			t.Errorf("endpoint missing from %s", out)
		}
	}
}

func TestClientConfigFillFromEnv(t *testing.T) {
	env := map[string]string{"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk", "AWS_REGION": "eu-west-1"}
	var c storage.ClientConfig
	c.FillFromEnv(func(k string) string { return env[k] })
	if c.AccessKey != "ak" || c.SecretKey != "sk" || c.Region != "eu-west-1" {
		t.Fatalf("from env: %q %q %q", c.AccessKey, c.SecretKey, c.Region)
	}
	c = storage.ClientConfig{AccessKey: "flag-ak", SecretKey: "flag-sk", Region: "us-east-1"}
	c.FillFromEnv(func(k string) string { return env[k] })
	if c.AccessKey != "flag-ak" || c.SecretKey != "flag-sk" || c.Region != "us-east-1" {
		t.Fatal("environment overrode explicit values")
	}
}

// TestUnreachableBounded: a server that is down fails the call with
// ErrUnreachable once the retry budget is spent, after several attempts.
func TestUnreachableBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := storetest.ClientConfig(addr, "dsae")
	cfg.RetryTimeout = 300 * time.Millisecond
	c, err := storage.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"put":    func() error { return c.Put(ctx, "k", strings.NewReader("x"), 1) },
		"get":    func() error { _, err := c.Get(ctx, "k"); return err },
		"list":   func() error { _, err := c.List(ctx, ""); return err },
		"bucket": func() error { _, err := c.BucketExists(ctx); return err },
	} {
		err := call()
		if !errors.Is(err, storage.ErrUnreachable) {
			t.Fatalf("%s: %v, want ErrUnreachable", name, err)
		}
		if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "attempts") {
			t.Fatalf("%s: error %q should name the endpoint and the attempts", name, err)
		}
	}
	// Cancellation wins over the retry budget.
	cfg.RetryTimeout = 20 * time.Second // far beyond the cancellation below
	c, _ = storage.NewClient(cfg)
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.Stat(cctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v, want context.Canceled", err)
	}
}

// TestOnRetry: every retry of a call to a server that is down is reported
// to OnRetry with the endpoint, the operation and growing attempt counts.
func TestOnRetry(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var evs []storage.RetryEvent
	cfg := storetest.ClientConfig(addr, "dsae")
	cfg.RetryTimeout = 300 * time.Millisecond
	cfg.OnRetry = func(e storage.RetryEvent) { evs = append(evs, e) }
	c, err := storage.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(context.Background(), "k"); !errors.Is(err, storage.ErrUnreachable) {
		t.Fatalf("Stat: %v, want ErrUnreachable", err)
	}
	if len(evs) == 0 {
		t.Fatal("OnRetry was not called")
	}
	for i, e := range evs {
		if e.Attempt != i+1 || e.Endpoint != "http://"+addr || e.Op != "stat k" || e.Budget != cfg.RetryTimeout || e.Err == nil {
			t.Errorf("event %d: %+v", i, e)
		}
	}
}

// faultyProxy sits in front of an embedded server and injects failures.
type faultyProxy struct {
	failFirst atomic.Int64 // answer this many requests with 503 SlowDown
	cutGets   atomic.Int64 // cut this many GET bodies after cutAt bytes
	cutAt     int64
	requests  atomic.Int64
	proxy     *httputil.ReverseProxy
}

func (p *faultyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	if p.failFirst.Add(-1) >= 0 {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>slow down</Message></Error>`)
		return
	}
	if r.Method == http.MethodGet && r.URL.RawQuery == "" && p.cutGets.Add(-1) >= 0 {
		p.proxy.ModifyResponse = nil
		rec := &cuttingWriter{ResponseWriter: w, left: p.cutAt}
		defer func() {
			if rec.cut {
				panic(http.ErrAbortHandler) // drop the connection mid-body
			}
		}()
		p.proxy.ServeHTTP(rec, r)
		return
	}
	p.proxy.ServeHTTP(w, r)
}

type cuttingWriter struct {
	http.ResponseWriter
	left int64
	cut  bool
}

func (c *cuttingWriter) Write(b []byte) (int, error) {
	if int64(len(b)) > c.left {
		b = b[:c.left]
		c.cut = true
	}
	n, _ := c.ResponseWriter.Write(b)
	c.left -= int64(n)
	if c.cut {
		c.ResponseWriter.(http.Flusher).Flush()
		return n, errors.New("cut")
	}
	return n, nil
}

func startFaultyProxy(t *testing.T) (*faultyProxy, *s3test.Server) {
	t.Helper()
	backend := storetest.StartS3(t, "")
	u, _ := url.Parse("http://" + backend.Endpoint)
	p := &faultyProxy{proxy: httputil.NewSingleHostReverseProxy(u)}
	p.proxy.ErrorLog = nil
	ln := s3test.Listen(t)
	s3test.Serve(t, ln, p)
	backend.Endpoint = ln.Addr().String() // clients talk to the proxy
	return p, backend
}

func TestRetriesTransientErrors(t *testing.T) {
	p, backend := startFaultyProxy(t)
	c, err := storage.NewClient(storetest.ClientConfig(backend.Endpoint, "dsae"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p.failFirst.Store(3)
	if err := c.EnsureBucket(ctx); err != nil {
		t.Fatalf("EnsureBucket through 3 SlowDowns: %v", err)
	}
	data := storetest.SeededBytes(11, 3<<20)
	p.failFirst.Store(2)
	if err := c.Put(ctx, "obj", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put through 2 SlowDowns: %v", err)
	}
	if p.failFirst.Load() >= 0 {
		t.Fatal("the injected failures were not all hit")
	}
	// A GET whose body is cut twice is resumed from where it broke.
	p.cutAt = 1 << 20
	p.cutGets.Store(2)
	before := p.requests.Load()
	rc, err := c.Get(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("resumed GET: %d bytes, err %v; want %d", len(got), err, len(data))
	}
	if n := p.requests.Load() - before; n != 3 {
		t.Fatalf("resumed GET used %d requests, want 3 (1 + 2 resumes)", n)
	}
	// A server that keeps failing gives ErrUnreachable within the budget.
	p.failFirst.Store(1 << 30)
	cfg := storetest.ClientConfig(backend.Endpoint, "dsae")
	cfg.RetryTimeout = 300 * time.Millisecond
	c, _ = storage.NewClient(cfg)
	if _, err := c.Stat(ctx, "obj"); !errors.Is(err, storage.ErrUnreachable) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("persistent SlowDown: %v", err)
	}
}

func TestPutNonRewindableNotRetriedAfterRead(t *testing.T) {
	p, backend := startFaultyProxy(t)
	cfg := storetest.ClientConfig(backend.Endpoint, "dsae")
	c, _ := storage.NewClient(cfg)
	ctx := context.Background()
	if err := c.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	p.failFirst.Store(1)
	// The 503 arrives after the body was sent: a plain reader cannot be replayed.
	err := c.Put(ctx, "once", struct{ io.Reader }{strings.NewReader("payload")}, 7)
	if err == nil || errors.Is(err, storage.ErrUnreachable) || !strings.Contains(err.Error(), "not retried") {
		t.Fatalf("non-rewindable put after a 503: %v", err)
	}
}

func TestObjectInfoJSON(t *testing.T) {
	// ObjectInfo is plain data: it must survive JSON (the CLI prints it).
	in := storage.ObjectInfo{Key: "k", Size: 3, ETag: "e", LastModified: time.Unix(5, 0).UTC()}
	b, _ := json.Marshal(in)
	var out storage.ObjectInfo
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("round trip %+v -> %+v (%v)", in, out, err)
	}
}

// TestPutFromOffset: a reader already advanced is uploaded from where it
// stands, also for io.ReaderAt sources large enough for multipart.
func TestPutFromOffset(t *testing.T) {
	e := storetest.StartS3(t, "")
	cfg := storetest.ClientConfig(e.Endpoint, "dsae")
	cfg.PartSize = 5 << 20
	c, _ := storage.NewClient(cfg)
	ctx := context.Background()
	if err := c.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	data := storetest.SeededBytes(60, 11<<20)
	for _, off := range []int64{0, 100, 3 << 20} {
		r := bytes.NewReader(data)
		r.Seek(off, io.SeekStart)
		n := int64(len(data)) - off
		if err := c.Put(ctx, "off", r, n); err != nil {
			t.Fatal(err)
		}
		rc, err := c.Get(ctx, "off")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data[off:]) {
			t.Fatalf("offset %d: read back %d bytes that differ from the %d after the offset", off, len(got), n)
		}
	}
}
