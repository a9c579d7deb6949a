package storage

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// ClientConfig says where the object store is and how to reach it.
// Credentials never appear in String, GoString or LogValue.
type ClientConfig struct {
	// Endpoint is host:port, or a URL http://host:port / https://host:port
	// (the scheme then sets UseTLS).
	Endpoint string
	// Region is used for signing. Default "us-east-1".
	Region string
	// Bucket holds all of dsae's objects.
	Bucket string
	// PathStyle addresses buckets as https://host/bucket/key rather than
	// https://bucket.host/key. Default true (what MinIO, Ceph, SeaweedFS and
	// the embedded server expect); AWS accepts both.
	PathStyle bool
	// UseTLS selects https.
	UseTLS bool
	// CAFile is a PEM bundle of certificate authorities to trust for https
	// in addition to the system's (for a store with a private CA or a
	// self-signed certificate).
	CAFile string
	// AccessKey, SecretKey and (optional) SessionToken sign requests.
	// FillFromEnv takes them from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
	// and AWS_SESSION_TOKEN when empty.
	AccessKey    string
	SecretKey    string
	SessionToken string

	// RetryTimeout bounds the time one call spends retrying transient
	// failures (connection refused, timeouts, 5xx, SlowDown). After it the
	// call fails with ErrUnreachable. Default 30s.
	RetryTimeout time.Duration
	// RetryBase and RetryCap shape the backoff: the n-th wait is uniform in
	// [0, min(RetryCap, RetryBase·2^n)] ("full jitter"). Defaults 100ms, 5s.
	RetryBase time.Duration
	RetryCap  time.Duration
	// OnRetry, when set, is called before each wait of a call that is
	// retrying a transient failure (see RetryEvent), from the caller's
	// goroutine; it must not block. The command line uses it to say, within
	// a few seconds, that an endpoint does not answer.
	OnRetry func(RetryEvent)
	// DialTimeout bounds connecting to the endpoint. Default 10s.
	DialTimeout time.Duration
	// PartSize is the multipart part size for large uploads; uploads
	// larger than it use multipart. Default 16 MiB, minimum 5 MiB.
	PartSize uint64
	// ListPageSize is the number of keys asked for per list request.
	// Default 1000 (the S3 maximum).
	ListPageSize int
}

// RetryEvent describes one retry of a call (ClientConfig.OnRetry).
type RetryEvent struct {
	Endpoint string        // the store's URL, as ClientConfig.URL
	Op       string        // the operation, e.g. "get datasets/x/manifest.json"
	Attempt  int           // the attempts that failed so far, from 1
	Elapsed  time.Duration // time spent on the call so far
	Wait     time.Duration // the wait before the next attempt
	Budget   time.Duration // ClientConfig.RetryTimeout: the call gives up after it
	Err      error         // the last transient failure
}

// DefaultClientConfig returns the defaults for everything but the
// endpoint, bucket and credentials.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		Region:       "us-east-1",
		PathStyle:    true,
		RetryTimeout: 30 * time.Second,
		RetryBase:    100 * time.Millisecond,
		RetryCap:     5 * time.Second,
		DialTimeout:  10 * time.Second,
		PartSize:     16 << 20,
		ListPageSize: 1000,
	}
}

// FillFromEnv sets empty credentials (and an empty region) from the
// standard AWS variables, read through getenv (os.Getenv in production).
func (c *ClientConfig) FillFromEnv(getenv func(string) string) {
	if c.AccessKey == "" {
		c.AccessKey = getenv("AWS_ACCESS_KEY_ID")
	}
	if c.SecretKey == "" {
		c.SecretKey = getenv("AWS_SECRET_ACCESS_KEY")
	}
	if c.SessionToken == "" {
		c.SessionToken = getenv("AWS_SESSION_TOKEN")
	}
	if c.Region == "" {
		c.Region = getenv("AWS_REGION")
	}
}

// Validate checks the config and normalises the endpoint (a URL's scheme
// sets UseTLS). Errors wrap ErrInvalidConfig and name the field.
func (c *ClientConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if c.Endpoint == "" {
		return bad("S3 endpoint is empty (want host:port or http(s)://host:port)")
	}
	if strings.Contains(c.Endpoint, "://") {
		u, err := url.Parse(c.Endpoint)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return bad("S3 endpoint %q is not a URL of the form http(s)://host:port", c.Endpoint)
		}
		switch u.Scheme {
		case "http":
			c.UseTLS = false
		case "https":
			c.UseTLS = true
		default:
			return bad("S3 endpoint %q: scheme must be http or https", c.Endpoint)
		}
		c.Endpoint = u.Host
	}
	if strings.ContainsAny(c.Endpoint, "/?# ") {
		return bad("S3 endpoint %q is not host:port", c.Endpoint)
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.CAFile != "" && !c.UseTLS {
		return bad("a CA file (%s) needs an https endpoint", c.CAFile)
	}
	if !validBucket(c.Bucket) {
		return bad("S3 bucket %q is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-')", c.Bucket)
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return bad("S3 credentials need both an access key and a secret key (flags or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
	}
	if c.AccessKey == "" {
		return bad("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or pass them as flags")
	}
	if c.RetryTimeout <= 0 || c.RetryBase <= 0 || c.RetryCap < c.RetryBase || c.DialTimeout <= 0 {
		return bad("retry timeout, base, cap and dial timeout must be positive, with cap >= base")
	}
	if c.PartSize < 5<<20 || c.PartSize > 5<<30 {
		return bad("part size %d outside [5 MiB, 5 GiB]", c.PartSize)
	}
	if c.ListPageSize < 1 || c.ListPageSize > 1000 {
		return bad("list page size %d outside [1, 1000]", c.ListPageSize)
	}
	return nil
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 || strings.Contains(b, "..") {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || (c == '.' || c == '-') && i > 0 && i < len(b)-1
		if !ok {
			return false
		}
	}
	return true
}

// URL returns the endpoint as a URL (scheme + host), for messages.
func (c ClientConfig) URL() string {
	if strings.Contains(c.Endpoint, "://") {
		return c.Endpoint
	}
	if c.UseTLS {
		return "https://" + c.Endpoint
	}
	return "http://" + c.Endpoint
}

// String describes the config with credentials redacted.
func (c ClientConfig) String() string {
	return fmt.Sprintf("storage.ClientConfig{Endpoint:%s Region:%s Bucket:%s PathStyle:%v AccessKey:%s SecretKey:%s SessionToken:%s RetryTimeout:%s}",
		c.URL(), c.Region, c.Bucket, c.PathStyle, redacted(c.AccessKey), redacted(c.SecretKey), redacted(c.SessionToken), c.RetryTimeout)
}

// GoString keeps %#v from printing credentials.
func (c ClientConfig) GoString() string { return c.String() }

// LogValue keeps credentials out of structured logs.
func (c ClientConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.URL()), slog.String("region", c.Region), slog.String("bucket", c.Bucket),
		slog.String("access_key", redacted(c.AccessKey)), slog.String("secret_key", redacted(c.SecretKey)))
}

func redacted(s string) string {
	if s == "" {
		return "(unset)"
	}
	return "[redacted]"
}
