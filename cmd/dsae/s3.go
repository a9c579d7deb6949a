package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/s3server"
)

func newS3ServeCmd() *cobra.Command {
	var (
		dir, addr, region, accessKey, secretKey, secretKeyFile string
		tlsCert, tlsKey, metricsAddr                           string
		noSync                                                 bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a local directory as an S3-compatible object store",
		Long: `Serve DIR over the S3 REST API (path-style, AWS Signature V4).

Objects are kept on disk under DIR and survive restarts. Every request must
be signed with the access key and secret key given here (flags, a file, or
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); anything else is refused.`,
		Example: `  AWS_ACCESS_KEY_ID=dsae AWS_SECRET_ACCESS_KEY=change-me dsae s3 serve --dir ./s3data --addr 127.0.0.1:9000`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return invalid(errors.New("--dir is required"))
			}
			sk, err := secretFrom(secretKey, secretKeyFile)
			if err != nil {
				return invalid(err)
			}
			cfg := s3server.Config{Dir: dir, Region: region, NoSync: noSync,
				AccessKey: firstNonEmpty(accessKey, os.Getenv("AWS_ACCESS_KEY_ID")),
				SecretKey: firstNonEmpty(sk, os.Getenv("AWS_SECRET_ACCESS_KEY"))}
			if cfg.AccessKey == "" || cfg.SecretKey == "" {
				return invalid(errors.New("credentials required: --access-key and --secret-key (or --secret-key-file), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))
			}
			reg, ms, err := startRoleMetrics(metricsAddr)
			if err != nil {
				return invalid(err)
			}
			defer ms.Close()
			cfg.Registerer = reg
			srv, err := s3server.New(cfg)
			if err != nil {
				return err
			}
			if (tlsCert == "") != (tlsKey == "") {
				return invalid(errors.New("--tls-cert and --tls-key go together"))
			}
			var tlsCfg *tls.Config
			if tlsCert != "" {
				cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					return invalid(fmt.Errorf("--tls-cert/--tls-key: %w", err))
				}
				tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return invalid(fmt.Errorf("--addr %s: %w", addr, err))
			}
			scheme := "http"
			if tlsCfg != nil {
				ln, scheme = tls.NewListener(ln, tlsCfg), "https"
			}
			slog.Info("s3 server listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "config", cfg)
			fmt.Fprintf(cmd.OutOrStdout(), "dsae s3 serve: listening on %s://%s, serving %s\n", scheme, ln.Addr(), dir)
			err = srv.Serve(cmd.Context(), ln)
			slog.Info("s3 server stopped", "addr", ln.Addr().String(), "err", err)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory holding the buckets and objects (created if missing)")
	f.StringVar(&addr, "addr", "127.0.0.1:9000", "host:port to listen on")
	f.StringVar(&region, "region", "us-east-1", "region reported to clients")
	f.StringVar(&accessKey, "access-key", "", "access key clients sign with (default $AWS_ACCESS_KEY_ID)")
	f.StringVar(&secretKey, "secret-key", "", "secret key (default $AWS_SECRET_ACCESS_KEY; prefer --secret-key-file)")
	f.StringVar(&secretKeyFile, "secret-key-file", "", "file holding the secret key")
	f.StringVar(&tlsCert, "tls-cert", "", "PEM certificate: serve https instead of http")
	f.StringVar(&tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	addMetricsFlag(f, &metricsAddr)
	f.BoolVar(&noSync, "no-sync", false, "do not fsync objects before acknowledging them (faster, less durable)")
	return cmd
}

// s3ClientFlags are the flags of every command that talks to the object
// store. Register them with addS3ClientFlags; build the client with client().
type s3ClientFlags struct {
	endpoint, region, bucket         string
	accessKey, secretKey, secretFile string
	caFile                           string
	tls, virtualHost                 bool
	retryTimeout                     time.Duration
}

// addS3ClientFlags registers the --s3-* flags on fs. Defaults come from
// DSAE_S3_ENDPOINT, DSAE_S3_BUCKET and AWS_REGION when set; credentials
// default to AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
func addS3ClientFlags(fs *pflag.FlagSet) *s3ClientFlags {
	f := &s3ClientFlags{}
	fs.StringVar(&f.endpoint, "s3-endpoint", os.Getenv("DSAE_S3_ENDPOINT"), "S3 endpoint, host:port or http(s)://host:port (env DSAE_S3_ENDPOINT)")
	fs.StringVar(&f.bucket, "s3-bucket", firstNonEmpty(os.Getenv("DSAE_S3_BUCKET"), "dsae"), "S3 bucket (env DSAE_S3_BUCKET)")
	fs.StringVar(&f.region, "s3-region", firstNonEmpty(os.Getenv("AWS_REGION"), "us-east-1"), "S3 region (env AWS_REGION)")
	fs.StringVar(&f.accessKey, "s3-access-key", "", "S3 access key (default $AWS_ACCESS_KEY_ID)")
	fs.StringVar(&f.secretKey, "s3-secret-key", "", "S3 secret key (default $AWS_SECRET_ACCESS_KEY; prefer --s3-secret-key-file)")
	fs.StringVar(&f.secretFile, "s3-secret-key-file", "", "file holding the S3 secret key")
	fs.BoolVar(&f.tls, "s3-tls", false, "use https (implied by an https:// endpoint)")
	fs.StringVar(&f.caFile, "s3-ca-file", "", "PEM bundle of extra certificate authorities to trust for https")
	fs.BoolVar(&f.virtualHost, "s3-virtual-host", false, "address buckets as bucket.host instead of host/bucket")
	fs.DurationVar(&f.retryTimeout, "s3-retry-timeout", 30*time.Second, "give up on an unreachable or failing S3 after this long")
	return f
}

// config builds and validates the client configuration.
func (f *s3ClientFlags) config() (storage.ClientConfig, error) {
	cfg := storage.DefaultClientConfig()
	cfg.Endpoint, cfg.Bucket, cfg.Region = f.endpoint, f.bucket, f.region
	cfg.UseTLS, cfg.PathStyle, cfg.CAFile = f.tls, !f.virtualHost, f.caFile
	cfg.RetryTimeout = f.retryTimeout
	cfg.OnRetry = newRetryNotice(os.Stderr).report
	sk, err := secretFrom(f.secretKey, f.secretFile)
	if err != nil {
		return cfg, invalid(err)
	}
	cfg.AccessKey, cfg.SecretKey = f.accessKey, sk
	cfg.FillFromEnv(os.Getenv)
	if err := cfg.Validate(); err != nil {
		return cfg, invalid(err)
	}
	return cfg, nil
}

// client returns a client for the configured store.
func (f *s3ClientFlags) client() (*storage.Client, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	return storage.NewClient(cfg)
}

// secretFrom returns the secret given inline or read from file (not both).
func secretFrom(inline, file string) (string, error) {
	if file == "" {
		return inline, nil
	}
	if inline != "" {
		return "", errors.New("give the secret key inline or as a file, not both")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("secret key file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret key file %s is empty", file)
	}
	return s, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// Retry notices: a call that keeps failing says so on stderr once it has
// retried for retryNoticeAfter, and again every retryNoticeEvery, so that
// an unreachable endpoint is not --s3-retry-timeout of silence. A single
// retried hiccup stays silent.
const (
	retryNoticeAfter = time.Second
	retryNoticeEvery = 5 * time.Second
)

// retryNotice writes the retry notices of one client. Safe for concurrent
// use (a client's calls run on several goroutines).
type retryNotice struct {
	w    io.Writer
	now  func() time.Time
	mu   sync.Mutex
	last time.Time // of the last notice
}

func newRetryNotice(w io.Writer) *retryNotice { return &retryNotice{w: w, now: time.Now} }

// report is a storage.ClientConfig.OnRetry.
func (n *retryNotice) report(e storage.RetryEvent) {
	if e.Elapsed < retryNoticeAfter {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	if !n.last.IsZero() && now.Sub(n.last) < retryNoticeEvery {
		return
	}
	n.last = now
	cause := e.Err.Error()
	if oe := (*net.OpError)(nil); errors.As(e.Err, &oe) {
		cause = oe.Error() // "dial tcp …: connection refused", without the request
	}
	fmt.Fprintf(n.w, "dsae: S3 endpoint %s is not answering (%s; %d attempts in %s); retrying for up to %s in all (--s3-retry-timeout)\n",
		e.Endpoint, oneLine(cause), e.Attempt, e.Elapsed.Round(100*time.Millisecond), e.Budget)
}
