package s3server

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/minio/minio-go/v7/pkg/signer"
)

// FuzzServeHTTP sends signed requests with arbitrary method, path, query,
// headers and body to a server holding one bucket, one object and one
// multipart upload. Whatever the request, the server must answer (no
// panic) with a client error, a success or NotImplemented: a 500 would mean
// untrusted input reached a code path that failed.
func FuzzServeHTTP(f *testing.F) {
	seeds := []struct {
		method      uint8
		path, query string
		rangeHdr    string
		body        []byte
	}{
		{0, "/fzz/obj", "", "bytes=0-3", nil},
		{0, "/fzz", "list-type=2&max-keys=1&delimiter=/&prefix=o", "", nil},
		{0, "/fzz", "list-type=2&continuation-token=b2Jq", "", nil},
		{1, "/fzz/new", "", "", []byte("hello")},
		{1, "/fzz/obj", "partNumber=1&uploadId=UPLOAD", "", []byte("part")},
		{2, "/fzz/obj", "uploadId=UPLOAD", "", []byte(`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"x"</ETag></Part></CompleteMultipartUpload>`)},
		{2, "/fzz", "delete", "", []byte(`<Delete><Object><Key>obj</Key></Object></Delete>`)},
		{2, "/fzz/obj", "uploads", "", nil},
		{3, "/fzz/obj", "uploadId=UPLOAD", "", nil},
		{4, "/fzz/obj", "", "", nil},
		{0, "/fzz", "uploads&max-uploads=1", "", nil},
		{0, "/fzz/obj", "uploadId=UPLOAD&max-parts=1", "", nil},
		{1, "/zzz", "", "", []byte("<CreateBucketConfiguration/>")},
		{3, "/fzz", "", "", nil},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.rangeHdr, s.body)
	}
	srv, err := New(Config{Dir: f.TempDir(), AccessKey: testAK, SecretKey: testSK, NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	srv.store.createBucket("fzz")
	srv.store.putObject("fzz", "obj", bytes.NewReader([]byte("object data")), bodyCheck{size: 11, max: maxPutSize}, objMeta{})
	upload, _ := srv.store.createUpload("fzz", "obj", objMeta{})
	methods := []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodHead}
	f.Fuzz(func(t *testing.T, m uint8, path, query, rangeHdr string, body []byte) {
		u := &url.URL{Scheme: "http", Host: "s3.test", Path: path, RawQuery: replaceUpload(query, upload)}
		req, err := http.NewRequestWithContext(context.Background(), methods[int(m)%len(methods)], u.String(), bytes.NewReader(body))
		if err != nil {
			return
		}
		if rangeHdr != "" {
			req.Header.Set("Range", rangeHdr)
		}
		req.Header.Set("X-Amz-Content-Sha256", unsignedPayload)
		req = signer.SignV4(*req, testAK, testSK, "", "us-east-1")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusNotImplemented {
			t.Fatalf("%s %s?%s: status %d: %s", req.Method, path, query, rec.Code, rec.Body.String())
		}
	})
}

// replaceUpload substitutes the real upload ID for the placeholder UPLOAD.
func replaceUpload(q, id string) string {
	return string(bytes.ReplaceAll([]byte(q), []byte("UPLOAD"), []byte(id)))
}
