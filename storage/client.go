package storage

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Client is dsae's handle on one bucket of an S3-compatible store. Every
// method takes a context, retries transient failures with capped
// exponential backoff and jitter for at most ClientConfig.RetryTimeout, and
// returns errors wrapping the package sentinels (ErrNotFound,
// ErrAccessDenied, ErrUnreachable, ...). Safe for concurrent use.
type Client struct {
	cfg   ClientConfig
	mc    *minio.Client
	core  minio.Core
	retry retrier
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string
	Size         int64
	ETag         string // without quotes
	LastModified time.Time
}

// NewClient validates cfg and returns a client. It does not contact the
// store; use EnsureBucket or BucketExists for that.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr, err := minio.DefaultTransport(cfg.UseTLS)
	if err != nil {
		return nil, fmt.Errorf("storage: transport: %w", err)
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %v", ErrInvalidConfig, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrInvalidConfig, cfg.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	tr.DialContext = (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = 0 // large multipart completes may take a while
	lookup := minio.BucketLookupDNS
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	mc, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure:       cfg.UseTLS,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    tr,
		MaxRetries:   1, // retries happen here, bounded in time
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return &Client{
		cfg:  cfg,
		mc:   mc,
		core: minio.Core{Client: mc},
		retry: retrier{timeout: cfg.RetryTimeout, base: cfg.RetryBase, cap: cfg.RetryCap,
			endpoint: cfg.URL(), onRetry: cfg.OnRetry, sleep: sleepCtx},
	}, nil
}

// Config returns the client's configuration (credentials included: do not
// log it other than through its String/LogValue).
func (c *Client) Config() ClientConfig { return c.cfg }

// Bucket returns the bucket the client works in.
func (c *Client) Bucket() string { return c.cfg.Bucket }

// BucketExists reports whether the bucket exists.
func (c *Client) BucketExists(ctx context.Context) (bool, error) {
	var ok bool
	err := c.retry.do(ctx, "bucket "+c.cfg.Bucket, func(ctx context.Context) error {
		var err error
		ok, err = c.mc.BucketExists(ctx, c.cfg.Bucket)
		return err
	})
	return ok, err
}

// EnsureBucket creates the bucket unless it exists.
func (c *Client) EnsureBucket(ctx context.Context) error {
	ok, err := c.BucketExists(ctx)
	if err != nil || ok {
		return err
	}
	return c.retry.do(ctx, "create bucket "+c.cfg.Bucket, func(ctx context.Context) error {
		err := c.mc.MakeBucket(ctx, c.cfg.Bucket, minio.MakeBucketOptions{Region: c.cfg.Region})
		if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			return nil // created concurrently (or by an earlier attempt)
		}
		return err
	})
}

// RemoveBucket deletes the (empty) bucket.
func (c *Client) RemoveBucket(ctx context.Context) error {
	return c.retry.do(ctx, "remove bucket "+c.cfg.Bucket, func(ctx context.Context) error {
		return c.mc.RemoveBucket(ctx, c.cfg.Bucket)
	})
}

// countingReader counts bytes read, so a failed upload of a non-seekable
// reader is retried only if nothing was consumed.
type countingReader struct {
	r io.Reader
	n int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	return n, err
}

// Put stores size bytes read from r under key, replacing any object there.
// size may be -1 if unknown (the upload then buffers one part at a time).
// Objects larger than the part size go up as multipart uploads. A
// transient failure restarts the upload if r is an io.Seeker (it is
// rewound) or if nothing had been read yet; otherwise it is returned.
func (c *Client) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	seeker, _ := r.(io.Seeker)
	var startPos int64
	if seeker != nil {
		p, err := seeker.Seek(0, io.SeekCurrent)
		if err != nil {
			seeker = nil
		}
		startPos = p
	}
	attempt := 0
	return c.retry.do(ctx, "put "+key, func(ctx context.Context) error {
		if attempt > 0 && seeker != nil {
			if _, err := seeker.Seek(startPos, io.SeekStart); err != nil {
				return fmt.Errorf("rewind for retry: %w", err)
			}
		}
		attempt++
		cr := &countingReader{r: r}
		var body io.Reader = cr
		if seeker != nil {
			body = r // keep io.ReaderAt/Seeker visible for parallel multipart
			if startPos != 0 {
				// minio-go reads an io.ReaderAt from offset 0: rebase it.
				if ra, ok := r.(io.ReaderAt); ok && size >= 0 {
					body = io.NewSectionReader(ra, startPos, size)
				} else {
					body = struct{ io.Reader }{r}
				}
			}
		}
		_, err := c.mc.PutObject(ctx, c.cfg.Bucket, key, body, size, minio.PutObjectOptions{
			PartSize:    c.cfg.PartSize,
			ContentType: "application/octet-stream",
		})
		if err != nil && seeker == nil && cr.n > 0 {
			return permanentError{err, "body not rewindable; not retried"}
		}
		return err
	})
}

// permanentError stops the retry loop for an error that would otherwise
// be retried (an upload whose body cannot be replayed).
type permanentError struct {
	err    error
	reason string // why it is not retried, for the message; may be empty
}

func (e permanentError) Error() string {
	if e.reason == "" {
		return e.err.Error()
	}
	return e.err.Error() + " (" + e.reason + ")"
}
func (e permanentError) Unwrap() error { return e.err }

// Get opens the whole object for reading. The caller must Close it. A
// connection that breaks mid-read is resumed (ranged GET from the current
// offset, pinned to the same ETag) within the retry budget.
func (c *Client) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return c.open(ctx, key, 0, -1)
}

// GetRange opens n bytes of the object starting at off. n must be >= 1;
// a range that ends past the object is cut at its end (a range that starts
// past it is an error). The caller must Close it.
func (c *Client) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 || n < 1 {
		return nil, fmt.Errorf("get %s: invalid range offset %d length %d", key, off, n)
	}
	return c.open(ctx, key, off, n)
}

// ReadRange reads exactly len(p) bytes of the object at off into p.
func (c *Client) ReadRange(ctx context.Context, key string, off int64, p []byte) error {
	rc, err := c.GetRange(ctx, key, off, int64(len(p)))
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, p); err != nil {
		return fmt.Errorf("get %s [%d, %d): %w", key, off, off+int64(len(p)), err)
	}
	return nil
}

// open starts a GET of [off, off+n) (n < 0: to the end).
func (c *Client) open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	or := &objectReader{c: c, ctx: ctx, key: key, off: off, end: -1}
	if n >= 0 {
		or.end = off + n
	}
	if err := c.retry.do(ctx, "get "+key, or.request); err != nil {
		return nil, err
	}
	return or, nil
}

// objectReader streams an object and resumes after transient failures.
type objectReader struct {
	c    *Client
	ctx  context.Context
	key  string
	off  int64 // next byte to return
	end  int64 // one past the last byte wanted, or -1
	etag string
	body io.ReadCloser
}

// request (re)opens the body at r.off.
func (r *objectReader) request(ctx context.Context) error {
	opts := minio.GetObjectOptions{}
	var err error
	switch {
	case r.end >= 0:
		err = opts.SetRange(r.off, r.end-1)
	case r.off > 0:
		err = opts.SetRange(r.off, 0)
	}
	if err != nil {
		return err
	}
	if r.etag != "" {
		if err := opts.SetMatchETag(r.etag); err != nil {
			return err
		}
	}
	body, info, _, err := r.c.core.GetObject(ctx, r.c.cfg.Bucket, r.key, opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			return permanentError{fmt.Errorf("range starts at %d, past the end of the object", r.off), ""}
		}
		return err
	}
	// Size is the length of what this response carries; a range that
	// runs past the object is cut at its end.
	if r.end < 0 || info.Size < r.end-r.off {
		r.end = r.off + info.Size
	}
	r.etag = strings.Trim(info.ETag, `"`)
	r.body = body
	return nil
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.body == nil {
		return 0, errors.New("storage: read after close")
	}
	if r.off >= r.end {
		return 0, io.EOF
	}
	if int64(len(p)) > r.end-r.off {
		p = p[:r.end-r.off]
	}
	n, err := r.body.Read(p)
	r.off += int64(n)
	if err == nil || (err == io.EOF && r.off >= r.end) {
		return n, err
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	// The stream broke: resume from r.off if the failure is transient.
	r.body.Close()
	r.body = io.NopCloser(strings.NewReader(""))
	if _, class := translate(err, "read"); class != transient {
		return n, fmt.Errorf("get %s at offset %d: %w", r.key, r.off, err)
	}
	if rerr := r.c.retry.do(r.ctx, "get "+r.key, r.request); rerr != nil {
		return n, rerr
	}
	return n, nil
}

func (r *objectReader) Close() error {
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body = nil
	return err
}

// Stat returns the object's size and ETag.
func (c *Client) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	var out ObjectInfo
	err := c.retry.do(ctx, "stat "+key, func(ctx context.Context) error {
		info, err := c.mc.StatObject(ctx, c.cfg.Bucket, key, minio.StatObjectOptions{})
		if err != nil {
			return err
		}
		out = ObjectInfo{Key: key, Size: info.Size, ETag: strings.Trim(info.ETag, `"`), LastModified: info.LastModified}
		return nil
	})
	return out, err
}

// Exists reports whether key exists.
func (c *Client) Exists(ctx context.Context, key string) (bool, error) {
	_, err := c.Stat(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// List returns every object whose key starts with prefix, in key order.
// Pages of ClientConfig.ListPageSize keys are fetched in turn; a page that
// fails transiently is retried from where the listing stopped.
func (c *Client) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	objs, _, err := c.list(ctx, prefix, true)
	return objs, err
}

// ListDirs returns the distinct "directories" directly under prefix: the
// common prefixes up to the next '/' (each ending in '/'), in order.
func (c *Client) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	_, dirs, err := c.list(ctx, prefix, false)
	return dirs, err
}

func (c *Client) list(ctx context.Context, prefix string, recursive bool) ([]ObjectInfo, []string, error) {
	var objs []ObjectInfo
	var dirs []string
	after := ""
	err := c.retry.do(ctx, "list "+prefix, func(ctx context.Context) error {
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for o := range c.mc.ListObjects(lctx, c.cfg.Bucket, minio.ListObjectsOptions{
			Prefix: prefix, Recursive: recursive, MaxKeys: c.cfg.ListPageSize, StartAfter: after,
		}) {
			if o.Err != nil {
				return o.Err
			}
			after = o.Key
			if !recursive && o.ETag == "" && strings.HasSuffix(o.Key, "/") {
				// A common prefix (minio-go reports it with only Key set).
				if len(dirs) == 0 || dirs[len(dirs)-1] != o.Key {
					dirs = append(dirs, o.Key)
				}
				continue
			}
			objs = append(objs, ObjectInfo{Key: o.Key, Size: o.Size, ETag: strings.Trim(o.ETag, `"`), LastModified: o.LastModified})
		}
		return nil
	})
	return objs, dirs, err
}

// Delete removes key. Deleting a key that does not exist is not an error.
func (c *Client) Delete(ctx context.Context, key string) error {
	return c.retry.do(ctx, "delete "+key, func(ctx context.Context) error {
		return c.mc.RemoveObject(ctx, c.cfg.Bucket, key, minio.RemoveObjectOptions{})
	})
}

// DeletePrefix removes every object whose key starts with prefix and
// returns how many it removed.
func (c *Client) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	objs, err := c.List(ctx, prefix)
	if err != nil {
		return 0, err
	}
	for i, o := range objs {
		if err := c.Delete(ctx, o.Key); err != nil {
			return i, err
		}
	}
	return len(objs), nil
}
