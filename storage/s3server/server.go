package s3server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Server.
type Config struct {
	// Dir is the directory that holds buckets and objects. Required.
	Dir string
	// AccessKey and SecretKey are the one credential pair requests must be
	// signed with. Required.
	AccessKey string
	SecretKey string
	// Region is reported by GetBucketLocation. Requests signed for any
	// region are accepted. Default "us-east-1".
	Region string
	// NoSync skips fsync before objects are published: faster, but a
	// machine crash (not a process crash) may lose recent writes.
	NoSync bool
	// MaxClockSkew is how far a request's X-Amz-Date may be from the
	// server's clock. Default 15 minutes, as in S3.
	MaxClockSkew time.Duration
	// Logger receives one debug line per request and errors; default slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the server's Prometheus metrics
	// (requests by operation and status, latency, bytes in and out).
	Registerer prometheus.Registerer
	// UploadExpiry is how long an unfinished multipart upload is kept
	// before Serve discards it and its parts. Default 24h.
	UploadExpiry time.Duration
}

// String describes the config without the secret key.
func (c Config) String() string {
	return fmt.Sprintf("s3server.Config{Dir:%q Region:%q AccessKey:%s SecretKey:%s NoSync:%v}",
		c.Dir, c.Region, redact(c.AccessKey), redact(c.SecretKey), c.NoSync)
}

// GoString keeps %#v from printing credentials.
func (c Config) GoString() string { return c.String() }

// LogValue keeps credentials out of structured logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("dir", c.Dir), slog.String("region", c.Region),
		slog.String("access_key", redact(c.AccessKey)), slog.String("secret_key", redact(c.SecretKey)))
}

func redact(s string) string {
	if s == "" {
		return `""`
	}
	return "[redacted]"
}

// Server is an S3-compatible HTTP handler backed by a directory. It is safe
// for concurrent use.
type Server struct {
	cfg     Config
	store   *store
	log     *slog.Logger
	metrics *serverMetrics
	now     func() time.Time
}

// New opens (creating if needed) the directory and returns a server ready
// to serve it.
func New(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: a data directory is required", ErrConfig)
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, fmt.Errorf("%w: an access key and a secret key are required", ErrConfig)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = 15 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.UploadExpiry <= 0 {
		cfg.UploadExpiry = 24 * time.Hour
	}
	m, err := newServerMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("s3server: metrics: %w", err)
	}
	st, err := openStore(cfg.Dir, cfg.NoSync)
	if err != nil {
		return nil, fmt.Errorf("s3server: open %s: %w", cfg.Dir, err)
	}
	for _, msg := range st.skipped {
		cfg.Logger.Warn("s3 server: skipping unreadable object file", "problem", msg)
	}
	return &Server{cfg: cfg, store: st, log: cfg.Logger, metrics: m, now: time.Now}, nil
}

// Serve answers requests on ln until ctx is cancelled, then stops
// accepting, waits up to 10 s for requests in flight, and returns nil. It
// returns other errors from the listener. While serving it discards
// multipart uploads left unfinished for longer than Config.UploadExpiry.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	sweepDone := make(chan struct{})
	defer func() { <-sweepDone }()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	go func() {
		defer close(sweepDone)
		s.sweepUploads(sweepCtx)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		hs.Close()
		err = nil
	}
	return err
}

// sweepUploads discards expired multipart uploads now and then every
// tenth of the expiry (at most hourly) until ctx ends.
func (s *Server) sweepUploads(ctx context.Context) {
	every := min(s.cfg.UploadExpiry/10, time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := s.store.expireUploads(s.now().Add(-s.cfg.UploadExpiry))
		if err != nil {
			s.log.Warn("s3 server: expiring multipart uploads", "err", err)
		} else if n > 0 {
			s.log.Info("s3 server: discarded expired multipart uploads", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
