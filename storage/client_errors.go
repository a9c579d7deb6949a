package storage

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
)

// Sentinel errors of package storage, the S3 client. Test with errors.Is;
// messages wrap them with the bucket, key or endpoint concerned. Packages
// built on the client (dataset, artifact) pass them through, wrapped.
var (
	// ErrNotFound: the object does not exist (package artifact also
	// reports a missing checkpoint or model with it).
	ErrNotFound = errors.New("object not found")
	// ErrBucketNotFound: the configured bucket does not exist.
	ErrBucketNotFound = errors.New("bucket not found")
	// ErrAccessDenied: the store refused the credentials (unknown access
	// key, wrong secret, or no permission). Never retried.
	ErrAccessDenied = errors.New("access denied (check the S3 access key and secret key)")
	// ErrUnreachable: the store could not be reached, or kept failing with
	// transient errors, for longer than ClientConfig.RetryTimeout.
	ErrUnreachable = errors.New("S3 endpoint unreachable")
	// ErrInvalidConfig: a ClientConfig field is missing or malformed. The
	// command line maps it to exit code 2.
	ErrInvalidConfig = errors.New("invalid S3 configuration")
)

// errorClass says what to do with a failed call.
type errorClass int

const (
	permanent errorClass = iota // give up, report as is
	transient                   // retry with backoff
)

// retryableCodes are the S3 error codes that mean "try again later".
var retryableCodes = map[string]bool{
	"InternalError":              true,
	"ServiceUnavailable":         true,
	"SlowDown":                   true,
	"SlowDownRead":               true,
	"SlowDownWrite":              true,
	"RequestTimeout":             true,
	"Throttling":                 true,
	"ThrottlingException":        true,
	"RequestThrottled":           true,
	"RequestLimitExceeded":       true,
	"RequestTimeTooSkewed":       false, // a clock problem does not heal by waiting
	"XMinioServerNotInitialized": true,
}

// retryableStatus are HTTP statuses retried whatever the error code.
var retryableStatus = map[int]bool{
	http.StatusRequestTimeout:      true,
	http.StatusTooManyRequests:     true,
	http.StatusInternalServerError: true,
	http.StatusBadGateway:          true,
	http.StatusServiceUnavailable:  true,
	http.StatusGatewayTimeout:      true,
}

// deniedCodes are the S3 error codes that mean the credentials are wrong.
var deniedCodes = map[string]bool{
	"AccessDenied":          true,
	"InvalidAccessKeyId":    true,
	"SignatureDoesNotMatch": true,
	"InvalidToken":          true,
	"ExpiredToken":          true,
	"InvalidSecurity":       true,
}

// translate maps a minio-go error to this package's sentinels (keeping the
// original reachable) and classifies it.
func translate(err error, what string) (error, errorClass) {
	if err == nil {
		return nil, permanent
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err, permanent
	}
	var pe permanentError
	if errors.As(err, &pe) {
		e, _ := translate(pe.err, what)
		if pe.reason != "" {
			e = fmt.Errorf("%w (%s)", e, pe.reason)
		}
		return e, permanent
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey":
		return fmt.Errorf("%s: %w", what, ErrNotFound), permanent
	case resp.Code == "NoSuchBucket":
		return fmt.Errorf("%s: %w", what, ErrBucketNotFound), permanent
	case deniedCodes[resp.Code] || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: %w: %s %s", what, ErrAccessDenied, resp.Code, resp.Message), permanent
	case retryableCodes[resp.Code] || retryableStatus[resp.StatusCode]:
		return fmt.Errorf("%s: %w", what, err), transient
	case resp.Code != "" || resp.StatusCode != 0:
		return fmt.Errorf("%s: %w", what, err), permanent
	}
	if isNetworkError(err) {
		return fmt.Errorf("%s: %w", what, err), transient
	}
	return fmt.Errorf("%s: %w", what, err), permanent
}

// isNetworkError reports connection-level failures worth retrying. TLS
// failures (untrusted certificate, wrong host name, plain HTTP on a TLS
// port) are configuration problems and are not retried.
func isNetworkError(err error) bool {
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recErr tls.RecordHeaderError
	if errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) ||
		errors.As(err, &invalidCert) || errors.As(err, &recErr) {
		return false
	}
	var oe *net.OpError
	var ne net.Error
	return errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout()) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// retrier runs an operation until it succeeds, fails permanently, ctx ends
// or the retry budget is spent.
type retrier struct {
	timeout, base, cap time.Duration
	endpoint           string
	onRetry            func(RetryEvent) // nil: silent
	sleep              func(ctx context.Context, d time.Duration) error
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff returns the wait before retry number attempt (0-based): uniform
// in [0, min(cap, base·2^attempt)].
func (r retrier) backoff(attempt int) time.Duration {
	d := r.cap
	if attempt < 30 && r.base<<attempt < r.cap {
		d = r.base << attempt
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// do calls op until it returns nil or a permanent error. what names the
// operation in errors ("get datasets/x/manifest.json").
func (r retrier) do(ctx context.Context, what string, op func(ctx context.Context) error) error {
	start := time.Now()
	deadline := start.Add(r.timeout)
	for attempt := 0; ; attempt++ {
		raw := op(ctx)
		err, class := translate(raw, what)
		if err == nil || class == permanent {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := r.backoff(attempt)
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%w: %s: gave up after %d attempts in %s: %w",
				ErrUnreachable, r.endpoint, attempt+1, time.Since(start).Round(time.Millisecond), err)
		}
		if r.onRetry != nil {
			r.onRetry(RetryEvent{Endpoint: r.endpoint, Op: what, Attempt: attempt + 1, Elapsed: time.Since(start),
				Wait: wait, Budget: r.timeout, Err: err})
		}
		if serr := r.sleep(ctx, wait); serr != nil {
			return serr
		}
	}
}
