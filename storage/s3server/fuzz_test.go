package s3server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	const size = 1000
	for _, c := range []struct {
		h             string
		start, length int64
		ok            bool
		invalid       bool
	}{
		{"", 0, 0, false, false},
		{"bytes=0-0", 0, 1, true, false},
		{"bytes=0-999", 0, 1000, true, false},
		{"bytes=10-", 10, 990, true, false},
		{"bytes=990-5000", 990, 10, true, false},
		{"bytes=-10", 990, 10, true, false},
		{"bytes=-5000", 0, 1000, true, false},
		{"bytes=1000-", 0, 0, false, true},
		{"bytes=1000-1001", 0, 0, false, true},
		{"bytes=-0", 0, 0, false, true},
		{"bytes=5-2", 0, 0, false, false},     // malformed: ignored
		{"bytes=0-1,5-6", 0, 0, false, false}, // multiple ranges: ignored
		{"bytes=a-b", 0, 0, false, false},
		{"items=0-1", 0, 0, false, false},
		{"bytes=+1-2", 0, 0, false, false},
		{"bytes=99999999999999999999-", 0, 0, false, false},
	} {
		start, length, ok, aerr := parseRange(c.h, size)
		if ok != c.ok || (aerr != nil) != c.invalid || (ok && (start != c.start || length != c.length)) {
			t.Errorf("parseRange(%q) = %d, %d, %v, %v; want %d, %d, %v, invalid=%v",
				c.h, start, length, ok, aerr, c.start, c.length, c.ok, c.invalid)
		}
	}
	if _, _, ok, aerr := parseRange("bytes=0-", 0); ok || aerr == nil {
		t.Error("a range of an empty object must be unsatisfiable")
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=-5", "bytes=7-", "bytes=3-2", "bytes=0-1,2-3", "bytes= 1 - 2 "} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		start, length, ok, aerr := parseRange(h, size)
		if ok && aerr != nil {
			t.Fatal("both a range and an error")
		}
		if ok && (start < 0 || length < 1 || start+length > size) {
			t.Fatalf("parseRange(%q, %d) = [%d, +%d) outside the object", h, size, start, length)
		}
	})
}

// FuzzChunkedReader feeds arbitrary bodies to the aws-chunked decoder in
// every mode: it must never panic or loop, and whenever it reports success
// the output must have exactly the declared length.
func FuzzChunkedReader(f *testing.F) {
	f.Add(awsChunkedBody(false), uint8(0))
	f.Add(awsChunkedBody(true), uint8(0))
	f.Add([]byte("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"), uint8(2))
	f.Add([]byte("5;chunk-signature=00\r\nhello\r\n0;chunk-signature=00\r\nx-amz-checksum-crc32:NhCmhg==\n\r\nx-amz-trailer-signature:00\r\n\r\n"), uint8(1))
	f.Add([]byte("fffffffffffffff\r\n"), uint8(2))
	f.Add([]byte("0\r\n"+strings.Repeat("a:b\r\n", 40)), uint8(2))
	s, err := New(Config{Dir: f.TempDir(), AccessKey: awsAK, SecretKey: awsSK, NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	r := awsChunkedRequest(nil)
	auth, aerr := s.authHeader(r, r.Header.Get("Authorization"), mustTime("2013-05-24T00:00:00Z"))
	if aerr != nil {
		f.Fatal(aerr)
	}
	modes := []string{streamingPayload, streamingPayloadSigned, streamingUnsignedTrail}
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		m := modes[int(mode)%len(modes)]
		trailer := ""
		if m != streamingPayload {
			trailer = "x-amz-checksum-crc32"
		}
		limit := int64(-1)
		if m == streamingPayload {
			limit = 66560
		}
		cr, aerr := newChunkedReader(bytes.NewReader(body), m, auth, trailer, limit)
		if aerr != nil {
			t.Fatal(aerr)
		}
		n, err := io.Copy(io.Discard, cr)
		if err == nil && limit >= 0 && n != limit {
			t.Fatalf("decoded %d bytes without error, declared %d", n, limit)
		}
		if err == nil && n > int64(len(body)) {
			t.Fatalf("decoded %d bytes from a %d-byte body", n, len(body))
		}
	})
}

func FuzzParseAuthHeader(f *testing.F) {
	f.Add(awsGetRequest().Header.Get("Authorization"))
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=00")
	f.Add("AWS4-HMAC-SHA256 Credential=////")
	f.Fuzz(func(t *testing.T, h string) {
		hdr, aerr := parseAuthHeader(h)
		if aerr == nil && (hdr.accessKey == "" || hdr.signature == "" || len(hdr.signedHeaders) == 0) {
			t.Fatalf("accepted %q with empty fields", h)
		}
	})
}

func newSHA256() hash.Hash      { return sha256.New() }
func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }
