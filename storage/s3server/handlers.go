package s3server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// unsupportedSubresources are query parameters naming S3 features this
// server does not implement; requests carrying them get NotImplemented
// rather than being mistaken for plain object or bucket requests.
var unsupportedSubresources = []string{
	"acl", "tagging", "versioning", "versions", "policy", "lifecycle", "cors", "encryption",
	"object-lock", "retention", "legal-hold", "replication", "notification", "website",
	"logging", "accelerate", "requestPayment", "attributes", "torrent", "restore", "select",
	"versionId", "policyStatus", "ownershipControls", "publicAccessBlock", "analytics",
	"inventory", "metrics", "intelligent-tiering",
}

// ServeHTTP authenticates and answers one S3 request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	reqID := strings.ToUpper(randomID()[:16])
	w.Header().Set("X-Amz-Request-Id", reqID)
	w.Header().Set("Server", "dsae-s3")
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	op, bucket, key := operation(r)
	body := &countingBody{r: r.Body}
	r.Body = body
	var err error
	auth, aerr := s.authenticate(r, start)
	if aerr != nil {
		err = aerr
	} else {
		err = s.route(rec, r, auth, op, bucket, key)
	}
	if err != nil {
		ae := toAPIError(err)
		if ae == errInternal {
			s.log.Error("s3 request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		s.writeError(rec, r, ae, reqID)
	}
	dur := s.now().Sub(start)
	s.metrics.observe(op, rec.status, body.n, rec.bytes, dur)
	s.log.Debug("s3 request", "op", op, "path", r.URL.Path, "status", rec.status,
		"in", body.n, "out", rec.bytes, "dur", dur, "req", reqID)
}

// countingBody counts the request body bytes read, for metrics.
type countingBody struct {
	r io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *countingBody) Close() error { return b.r.Close() }

// statusRecorder remembers the status and body size for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the kernel copy path (sendfile) of the wrapped writer.
func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	n, err := io.Copy(r.ResponseWriter, src)
	r.bytes += n
	return n, err
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, ae *apiError, reqID string) {
	if r.Method == http.MethodHead || ae.Status == http.StatusNotModified {
		w.WriteHeader(ae.Status)
		return
	}
	writeXML(w, ae.Status, errorResponse{Code: ae.Code, Message: ae.Message, Resource: r.URL.Path, RequestID: reqID})
}

// splitPath splits a path-style URL path into bucket and key.
func splitPath(p string) (bucket, key string) {
	p = strings.TrimPrefix(p, "/")
	bucket, key, _ = strings.Cut(p, "/")
	return bucket, key
}

// The S3 operations this server implements, as named in the S3 API; they
// also label the request metrics.
const (
	opListBuckets       = "ListBuckets"
	opCreateBucket      = "CreateBucket"
	opHeadBucket        = "HeadBucket"
	opDeleteBucket      = "DeleteBucket"
	opGetBucketLocation = "GetBucketLocation"
	opListObjectsV2     = "ListObjectsV2"
	opListObjects       = "ListObjects"
	opDeleteObjects     = "DeleteObjects"
	opPutObject         = "PutObject"
	opUploadPart        = "UploadPart"
	opGetObject         = "GetObject"
	opListParts         = "ListParts"
	opHeadObject        = "HeadObject"
	opDeleteObject      = "DeleteObject"
	opAbortMultipart    = "AbortMultipartUpload"
	opCreateMultipart   = "CreateMultipartUpload"
	opCompleteMultipart = "CompleteMultipartUpload"
	opListMultipart     = "ListMultipartUploads"
	opUnsupported       = "Unsupported"
	opMethodNotAllowed  = "MethodNotAllowed"
)

// operation names the S3 operation a request asks for, from its method,
// path and query.
func operation(r *http.Request) (op, bucket, key string) {
	q := r.URL.Query()
	for _, sub := range unsupportedSubresources {
		if q.Has(sub) {
			return opUnsupported, "", ""
		}
	}
	bucket, key = splitPath(r.URL.Path)
	m := r.Method
	switch {
	case bucket == "" && m == http.MethodGet:
		return opListBuckets, "", ""
	case bucket == "":
		return opMethodNotAllowed, "", ""
	case key == "" && m == http.MethodPut:
		return opCreateBucket, bucket, ""
	case key == "" && m == http.MethodHead:
		return opHeadBucket, bucket, ""
	case key == "" && m == http.MethodDelete:
		return opDeleteBucket, bucket, ""
	case key == "" && m == http.MethodGet && q.Has("location"):
		return opGetBucketLocation, bucket, ""
	case key == "" && m == http.MethodGet && q.Has("uploads"):
		return opListMultipart, bucket, ""
	case key == "" && m == http.MethodGet && q.Get("list-type") == "2":
		return opListObjectsV2, bucket, ""
	case key == "" && m == http.MethodGet:
		return opListObjects, bucket, ""
	case key == "" && m == http.MethodPost && q.Has("delete"):
		return opDeleteObjects, bucket, ""
	case key == "":
		return opMethodNotAllowed, bucket, ""
	case m == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "":
		return opUnsupported, bucket, key
	case m == http.MethodPut && q.Has("uploadId"):
		return opUploadPart, bucket, key
	case m == http.MethodPut:
		return opPutObject, bucket, key
	case m == http.MethodGet && q.Has("uploadId"):
		return opListParts, bucket, key
	case m == http.MethodGet:
		return opGetObject, bucket, key
	case m == http.MethodHead:
		return opHeadObject, bucket, key
	case m == http.MethodDelete && q.Has("uploadId"):
		return opAbortMultipart, bucket, key
	case m == http.MethodDelete:
		return opDeleteObject, bucket, key
	case m == http.MethodPost && q.Has("uploads"):
		return opCreateMultipart, bucket, key
	case m == http.MethodPost && q.Has("uploadId"):
		return opCompleteMultipart, bucket, key
	}
	return opMethodNotAllowed, bucket, key
}

// route runs operation op.
func (s *Server) route(w http.ResponseWriter, r *http.Request, auth *authContext, op, bucket, key string) error {
	if key != "" {
		if aerr := validKey(key); aerr != nil {
			return aerr
		}
	}
	q := r.URL.Query()
	switch op {
	case opListBuckets:
		return s.listBuckets(w)
	case opCreateBucket:
		return s.createBucket(w, r, auth, bucket)
	case opHeadBucket:
		_, err := s.store.bucket(bucket)
		return err
	case opDeleteBucket:
		return noContent(w, s.store.deleteBucket(bucket))
	case opGetBucketLocation:
		return s.bucketLocation(w, bucket)
	case opListObjectsV2:
		return s.listObjectsV2(w, r, bucket)
	case opListObjects:
		return s.listObjectsV1(w, r, bucket)
	case opDeleteObjects:
		return s.deleteObjects(w, r, auth, bucket)
	case opPutObject:
		return s.putObject(w, r, auth, bucket, key)
	case opUploadPart:
		return s.uploadPart(w, r, auth, bucket, key)
	case opGetObject:
		return s.getObject(w, r, bucket, key, true)
	case opHeadObject:
		return s.getObject(w, r, bucket, key, false)
	case opListParts:
		return s.listParts(w, r, bucket, key)
	case opDeleteObject:
		return noContent(w, s.store.deleteObject(bucket, key))
	case opAbortMultipart:
		return noContent(w, s.store.abortUpload(bucket, key, q.Get("uploadId")))
	case opCreateMultipart:
		return s.createUpload(w, r, bucket, key)
	case opCompleteMultipart:
		return s.completeUpload(w, r, auth, bucket, key)
	case opListMultipart:
		return s.listUploads(w, r, bucket)
	case opUnsupported:
		return errNotImplemented
	}
	return errMethodNotAllowed
}

// noContent answers 204 unless err is set.
func noContent(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// payload returns the decoded request body and the checks it must pass,
// according to the payload mode the request was signed with.
func payload(r *http.Request, auth *authContext, maxSize int64) (io.Reader, bodyCheck, error) {
	chk := bodyCheck{size: r.ContentLength, max: maxSize}
	if v := r.Header.Get("Content-Md5"); v != "" {
		sum, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(sum) != 16 {
			return nil, chk, errInvalidDigest
		}
		chk.md5 = sum
	}
	switch auth.payload {
	case streamingPayload, streamingPayloadSigned, streamingUnsignedTrail:
		n := int64(-1) // some clients leave it out of unsigned-trailer uploads
		if dl := r.Header.Get("X-Amz-Decoded-Content-Length"); dl != "" {
			v, err := strconv.ParseInt(dl, 10, 64)
			if err != nil || v < 0 {
				return nil, chk, errInvalidArgument.withMessage("x-amz-decoded-content-length must be a non-negative integer.")
			}
			n = v
		}
		cr, aerr := newChunkedReader(r.Body, auth.payload, auth, r.Header.Get("X-Amz-Trailer"), n)
		if aerr != nil {
			return nil, chk, aerr
		}
		chk.size = n
		return cr, chk, nil
	case unsignedPayload:
	default:
		chk.sha256 = auth.payload
	}
	if chk.size < 0 && len(r.TransferEncoding) == 0 {
		return nil, chk, errMissingContentLength
	}
	return r.Body, chk, nil
}

// readSmallBody reads a request body of at most limit bytes (XML
// documents), verifying a signed payload hash.
func readSmallBody(r *http.Request, auth *authContext, limit int64) ([]byte, error) {
	body, chk, err := payload(r, auth, limit)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, bodyError(err)
	}
	if int64(len(b)) > limit {
		return nil, errEntityTooLarge
	}
	if chk.size >= 0 && int64(len(b)) != chk.size {
		return nil, errIncompleteBody
	}
	if chk.sha256 != "" {
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != chk.sha256 {
			return nil, errContentSHA256Mismatch
		}
	}
	return b, nil
}

// bodyError maps an error met while storing a request body: S3 errors
// (bad signature, digest, length) as they are, local disk failures as
// themselves (an InternalError, logged), anything else (the client went
// away mid-body) as IncompleteBody.
func bodyError(err error) error {
	var ae *apiError
	var de *diskError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &de):
		return err
	}
	return errIncompleteBody
}

// userMeta collects x-amz-meta-* headers.
func userMeta(h http.Header) map[string]string {
	var m map[string]string
	for k, v := range h {
		lk := strings.ToLower(k)
		if name, ok := strings.CutPrefix(lk, "x-amz-meta-"); ok && len(v) > 0 {
			if m == nil {
				m = map[string]string{}
			}
			m[name] = v[0]
		}
	}
	return m
}

func (s *Server) putObject(w http.ResponseWriter, r *http.Request, auth *authContext, bucket, key string) error {
	body, chk, err := payload(r, auth, maxPutSize)
	if err != nil {
		return err
	}
	meta := objMeta{ContentType: r.Header.Get("Content-Type"), UserMeta: userMeta(r.Header)}
	meta, err = s.store.putObject(bucket, key, body, chk, meta)
	if err != nil {
		return bodyError(err)
	}
	w.Header().Set("ETag", `"`+meta.ETag+`"`)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getObject(w http.ResponseWriter, r *http.Request, bucket, key string, withBody bool) error {
	f, meta, err := s.store.openObject(bucket, key)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := checkPreconditions(r, meta); err != nil {
		return err
	}
	start, length, partial, aerr := parseRange(r.Header.Get("Range"), meta.Size)
	if aerr != nil {
		w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(meta.Size, 10))
		return aerr
	}
	if !partial {
		start, length = 0, meta.Size
	}
	h := w.Header()
	h.Set("ETag", `"`+meta.ETag+`"`)
	h.Set("Last-Modified", meta.Modified.UTC().Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	ct := meta.ContentType
	if ct == "" {
		ct = "binary/octet-stream"
	}
	h.Set("Content-Type", ct)
	for k, v := range meta.UserMeta {
		h.Set("X-Amz-Meta-"+k, v)
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", "bytes "+strconv.FormatInt(start, 10)+"-"+
			strconv.FormatInt(start+length-1, 10)+"/"+strconv.FormatInt(meta.Size, 10))
	}
	w.WriteHeader(status)
	if !withBody || length == 0 {
		return nil
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		s.log.Error("s3 get: seek", "key", key, "err", err)
		return nil
	}
	// A LimitedReader over the *os.File lets net/http use sendfile.
	if _, err := io.Copy(w, &io.LimitedReader{R: f, N: length}); err != nil {
		s.log.Debug("s3 get: client went away", "key", key, "err", err)
	}
	return nil
}

// checkPreconditions applies If-Match, If-None-Match, If-Modified-Since and
// If-Unmodified-Since.
func checkPreconditions(r *http.Request, meta objMeta) error {
	etagMatches := func(list string) bool {
		for _, e := range strings.Split(list, ",") {
			e = strings.TrimSpace(e)
			if e == "*" || strings.Trim(strings.TrimPrefix(e, "W/"), `"`) == meta.ETag {
				return true
			}
		}
		return false
	}
	mod := meta.Modified.Truncate(time.Second)
	if v := r.Header.Get("If-Match"); v != "" {
		if !etagMatches(v) {
			return errPreconditionFailed
		}
	} else if v := r.Header.Get("If-Unmodified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && mod.After(t) {
			return errPreconditionFailed
		}
	}
	if v := r.Header.Get("If-None-Match"); v != "" {
		if etagMatches(v) {
			return errNotModified
		}
	} else if v := r.Header.Get("If-Modified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && !mod.After(t) {
			return errNotModified
		}
	}
	return nil
}

func (s *Server) deleteObjects(w http.ResponseWriter, r *http.Request, auth *authContext, bucket string) error {
	body, err := readSmallBody(r, auth, 2<<20)
	if err != nil {
		return err
	}
	var req deleteRequest
	if err := xml.Unmarshal(body, &req); err != nil || len(req.Objects) > 1000 {
		return errMalformedXML
	}
	if _, err := s.store.bucket(bucket); err != nil {
		return err
	}
	res := deleteResult{NS: s3NS}
	for _, o := range req.Objects {
		if aerr := validKey(o.Key); aerr != nil {
			res.Errors = append(res.Errors, deleteErrItem{o.Key, aerr.Code, aerr.Message})
			continue
		}
		if err := s.store.deleteObject(bucket, o.Key); err != nil {
			ae := toAPIError(err)
			res.Errors = append(res.Errors, deleteErrItem{o.Key, ae.Code, ae.Message})
			continue
		}
		if !req.Quiet {
			res.Deleted = append(res.Deleted, deletedEntry{o.Key})
		}
	}
	writeXML(w, http.StatusOK, res)
	return nil
}
