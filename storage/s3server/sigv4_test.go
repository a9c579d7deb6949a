package s3server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The AWS documentation's Signature V4 examples for S3 (example bucket,
// AKIAIOSFODNN7EXAMPLE), so a pass means the server agrees with AWS, not
// merely with itself.
const (
	awsAK   = "AKIAIOSFODNN7EXAMPLE"
	awsSK   = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	awsDate = "20130524T000000Z"
)

func awsServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Config{Dir: t.TempDir(), AccessKey: awsAK, SecretKey: awsSK, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Date(2013, 5, 24, 0, 1, 0, 0, time.UTC) }
	return s
}

func awsGetRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://examplebucket.s3.amazonaws.com/test.txt", nil)
	r.Header.Set("Range", "bytes=0-9")
	r.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	r.Header.Set("X-Amz-Date", awsDate)
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+awsAK+"/20130524/us-east-1/s3/aws4_request,"+
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"+
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
	return r
}

func TestAuthAWSGetExample(t *testing.T) {
	s := awsServer(t)
	if _, aerr := s.authenticate(awsGetRequest(), s.now()); aerr != nil {
		t.Fatalf("AWS example GET refused: %v", aerr)
	}
	cases := []struct {
		name string
		mod  func(r *http.Request)
		want *apiError
	}{
		{"tampered signed header", func(r *http.Request) { r.Header.Set("Range", "bytes=0-10") }, errSignatureDoesNotMatch},
		{"tampered path", func(r *http.Request) { r.URL.Path = "/test2.txt" }, errSignatureDoesNotMatch},
		{"added query", func(r *http.Request) { r.URL.RawQuery = "acl=" }, errSignatureDoesNotMatch},
		{"unknown key", func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), awsAK, "AKIAOTHER", 1))
		}, errInvalidAccessKeyID},
		{"no auth", func(r *http.Request) { r.Header.Del("Authorization") }, errAccessDenied},
		{"signature v2", func(r *http.Request) { r.Header.Set("Authorization", "AWS "+awsAK+":abc") }, errUnsupportedSignature},
		{"garbled", func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 nonsense") }, errAuthHeaderMalformed},
		{"missing payload hash", func(r *http.Request) { r.Header.Del("X-Amz-Content-Sha256") }, errInvalidArgument},
	}
	for _, c := range cases {
		r := awsGetRequest()
		c.mod(r)
		_, aerr := s.authenticate(r, s.now())
		if aerr == nil || aerr.Code != c.want.Code {
			t.Errorf("%s: got %v, want %s", c.name, aerr, c.want.Code)
		}
	}
	// Same request a day later: clock skew.
	if _, aerr := s.authenticate(awsGetRequest(), s.now().Add(24*time.Hour)); aerr == nil || aerr.Code != "RequestTimeTooSkewed" {
		t.Errorf("skewed request: got %v", aerr)
	}
	// Same request checked with another secret.
	other, _ := New(Config{Dir: t.TempDir(), AccessKey: awsAK, SecretKey: awsSK + "x", NoSync: true})
	if _, aerr := other.authenticate(awsGetRequest(), s.now()); aerr == nil || aerr.Code != "SignatureDoesNotMatch" {
		t.Errorf("wrong secret: got %v", aerr)
	}
}

// awsChunkedBody is AWS's documented streaming upload: 66560 bytes of 'a'
// as chunks of 65536, 1024 and 0 bytes with the published signatures.
func awsChunkedBody(corrupt bool) []byte {
	var b bytes.Buffer
	for _, c := range []struct {
		n   int
		sig string
	}{
		{65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"},
		{1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"},
		{0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"},
	} {
		b.WriteString(strconv.FormatInt(int64(c.n), 16) + ";chunk-signature=" + c.sig + "\r\n")
		data := bytes.Repeat([]byte("a"), c.n)
		if corrupt && c.n == 1024 {
			data[7] = 'b'
		}
		b.Write(data)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func awsChunkedRequest(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPut, "http://s3.amazonaws.com/examplebucket/chunkObject.txt", bytes.NewReader(body))
	r.Header.Set("Content-Encoding", "aws-chunked")
	r.Header.Set("Content-Length", "66824") // as signed, even for truncated bodies
	r.Header.Set("X-Amz-Content-Sha256", streamingPayload)
	r.Header.Set("X-Amz-Date", awsDate)
	r.Header.Set("X-Amz-Decoded-Content-Length", "66560")
	r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+awsAK+"/20130524/us-east-1/s3/aws4_request,"+
		"SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"+
		"Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")
	return r
}

func decodeAWSChunked(t *testing.T, s *Server, body []byte, readSize int) ([]byte, error) {
	t.Helper()
	r := awsChunkedRequest(body)
	auth, aerr := s.authenticate(r, s.now())
	if aerr != nil {
		t.Fatalf("AWS example streaming PUT refused: %v", aerr)
	}
	cr, aerr := newChunkedReader(r.Body, auth.payload, auth, "", 66560)
	if aerr != nil {
		t.Fatal(aerr)
	}
	var out []byte
	buf := make([]byte, readSize)
	for {
		n, err := cr.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestChunkedAWSExample(t *testing.T) {
	s := awsServer(t)
	for _, rs := range []int{1, 333, 65536, 1 << 20} {
		got, err := decodeAWSChunked(t, s, awsChunkedBody(false), rs)
		if err != nil {
			t.Fatalf("read size %d: %v", rs, err)
		}
		if !bytes.Equal(got, bytes.Repeat([]byte("a"), 66560)) {
			t.Fatalf("read size %d: decoded %d bytes, want 66560 'a'", rs, len(got))
		}
	}
	_, err := decodeAWSChunked(t, s, awsChunkedBody(true), 4096)
	if ae := (*apiError)(nil); !errors.As(err, &ae) || ae.Code != "SignatureDoesNotMatch" {
		t.Fatalf("corrupted chunk: %v, want SignatureDoesNotMatch", err)
	}
	body := awsChunkedBody(false)
	for _, cut := range []int{10, 65600, len(body) - 3} {
		_, err := decodeAWSChunked(t, s, body[:cut], 4096)
		if err == nil {
			t.Fatalf("body cut at %d decoded without error", cut)
		}
	}
}

func TestURIEncode(t *testing.T) {
	for in, want := range map[string]string{
		"/a b/c~d_e-f.g": "/a%20b/c~d_e-f.g",
		"/x+y=z&ü":       "/x%2By%3Dz%26%C3%BC",
	} {
		if got := uriEncode(in, false); got != want {
			t.Errorf("uriEncode(%q) = %q, want %q", in, got, want)
		}
	}
	if got := uriEncode("a/b", true); got != "a%2Fb" {
		t.Errorf("uriEncode with slash = %q", got)
	}
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
