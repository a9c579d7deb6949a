package s3server

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/signer"
	"github.com/prometheus/client_golang/prometheus"
)

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

func s3Code(err error) string { return minio.ToErrorResponse(err).Code }

// TestMultipartPartsStoreDecodedBytes is the regression test for the
// gofakes3 bug: aws-chunked part uploads (what minio-go sends on plain
// HTTP) must store the decoded payload, not the chunk framing and
// signatures, so part sizes, ETags and the assembled object are exact.
func TestMultipartPartsStoreDecodedBytes(t *testing.T) {
	ts := startServer(t, "")
	ctx := testCtx(t)
	c := ts.core(t, testSK)
	if err := c.MakeBucket(ctx, "bk1", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	id, err := c.NewMultipartUpload(ctx, "bk1", "big", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{5<<20 + 17, 5 << 20, 123457}
	var all []byte
	var parts []minio.CompletePart
	for i, n := range sizes {
		data := randBytes(uint64(i+1), n)
		all = append(all, data...)
		p, err := c.PutObjectPart(ctx, "bk1", "big", id, i+1, bytes.NewReader(data), int64(n), minio.PutObjectPartOptions{})
		if err != nil {
			t.Fatalf("part %d: %v", i+1, err)
		}
		sum := md5.Sum(data)
		if p.Size != int64(n) || p.ETag != hex.EncodeToString(sum[:]) {
			t.Fatalf("part %d: size %d etag %s, want %d %x", i+1, p.Size, p.ETag, n, sum)
		}
		parts = append(parts, minio.CompletePart{PartNumber: i + 1, ETag: p.ETag})
	}
	lp, err := c.ListObjectParts(ctx, "bk1", "big", id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range lp.ObjectParts {
		if p.Size != int64(sizes[i]) {
			t.Fatalf("stored part %d holds %d bytes, want %d (chunk framing stored as data?)", i+1, p.Size, sizes[i])
		}
	}
	if _, err := c.CompleteMultipartUpload(ctx, "bk1", "big", id, parts, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, _, _, err := c.GetObject(ctx, "bk1", "big", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(all) {
		t.Fatalf("assembled object: %d bytes, sha256 differs from the %d uploaded", len(got), len(all))
	}
	// The upload is gone once completed.
	if _, err := c.ListObjectParts(ctx, "bk1", "big", id, 0, 100); s3Code(err) != "NoSuchUpload" {
		t.Fatalf("parts after complete: %v", err)
	}
}

func TestMultipartErrors(t *testing.T) {
	ts := startServer(t, "")
	ctx := testCtx(t)
	c := ts.core(t, testSK)
	c.MakeBucket(ctx, "bk1", minio.MakeBucketOptions{})
	id, err := c.NewMultipartUpload(ctx, "bk1", "k", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	small := randBytes(9, 1000)
	p1, err := c.PutObjectPart(ctx, "bk1", "k", id, 1, bytes.NewReader(small), 1000, minio.PutObjectPartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := c.PutObjectPart(ctx, "bk1", "k", id, 2, bytes.NewReader(small), 1000, minio.PutObjectPartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		parts []minio.CompletePart
		code  string
	}{
		{"wrong etag", []minio.CompletePart{{PartNumber: 1, ETag: strings.Repeat("0", 32)}}, "InvalidPart"},
		{"missing part", []minio.CompletePart{{PartNumber: 3, ETag: p1.ETag}}, "InvalidPart"},
		{"out of order", []minio.CompletePart{{PartNumber: 2, ETag: p2.ETag}, {PartNumber: 1, ETag: p1.ETag}}, "InvalidPartOrder"},
		{"part too small", []minio.CompletePart{{PartNumber: 1, ETag: p1.ETag}, {PartNumber: 2, ETag: p2.ETag}}, "EntityTooSmall"},
	} {
		_, err := c.CompleteMultipartUpload(ctx, "bk1", "k", id, tc.parts, minio.PutObjectOptions{})
		if s3Code(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if _, err := c.StatObject(ctx, "bk1", "k", minio.StatObjectOptions{}); s3Code(err) != "NoSuchKey" {
		t.Fatalf("failed completes published an object: %v", err)
	}
	// One small last part alone is fine.
	if _, err := c.CompleteMultipartUpload(ctx, "bk1", "k", id, []minio.CompletePart{{PartNumber: 2, ETag: p2.ETag}}, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	id2, _ := c.NewMultipartUpload(ctx, "bk1", "k2", minio.PutObjectOptions{})
	if err := c.AbortMultipartUpload(ctx, "bk1", "k2", id2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObjectPart(ctx, "bk1", "k2", id2, 1, bytes.NewReader(small), 1000, minio.PutObjectPartOptions{}); s3Code(err) != "NoSuchUpload" {
		t.Fatalf("part after abort: %v", err)
	}
	if _, err := c.PutObjectPart(ctx, "bk1", "k", "../../etc", 1, bytes.NewReader(small), 1000, minio.PutObjectPartOptions{}); s3Code(err) != "NoSuchUpload" {
		t.Fatalf("hostile upload id: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(ts.Dir, "uploads")); len(entries) != 0 {
		t.Fatalf("uploads left on disk: %v", entries)
	}
}

// TestRestartPersistence stops a server and starts another on the same
// directory: buckets, objects, metadata and an unfinished multipart upload
// all survive.
func TestRestartPersistence(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	ctx := testCtx(t)
	c := ts.core(t, testSK)
	c.MakeBucket(ctx, "keep", minio.MakeBucketOptions{})
	data := randBytes(5, 300_000)
	keys := []string{"a", "a/b", "dir/x y+z", "ünïcode/ключ", "a//double"}
	for _, k := range keys {
		if _, err := c.PutObject(ctx, "keep", k, bytes.NewReader(data), int64(len(data)), "", "",
			minio.PutObjectOptions{UserMetadata: map[string]string{"origin": k}}); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
	}
	id, _ := c.NewMultipartUpload(ctx, "keep", "mp", minio.PutObjectOptions{})
	part := randBytes(6, 5<<20)
	p1, err := c.PutObjectPart(ctx, "keep", "mp", id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts.stop()

	ts2 := startServer(t, dir)
	c2 := ts2.core(t, testSK)
	if ok, err := c2.BucketExists(ctx, "keep"); !ok || err != nil {
		t.Fatalf("bucket after restart: %v %v", ok, err)
	}
	for _, k := range keys {
		obj, info, _, err := c2.GetObject(ctx, "keep", k, minio.GetObjectOptions{})
		if err != nil {
			t.Fatalf("get %q after restart: %v", k, err)
		}
		got, _ := io.ReadAll(obj)
		obj.Close()
		if !bytes.Equal(got, data) || info.Metadata.Get("X-Amz-Meta-Origin") != k {
			t.Fatalf("%q after restart: %d bytes, meta %q", k, len(got), info.Metadata.Get("X-Amz-Meta-Origin"))
		}
	}
	res, err := c2.ListObjectsV2("keep", "", "", "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, o := range res.Contents {
		listed = append(listed, o.Key)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Fatalf("listing after restart %q, want %q", listed, want)
	}
	if _, err := c2.CompleteMultipartUpload(ctx, "keep", "mp", id, []minio.CompletePart{{PartNumber: 1, ETag: p1.ETag}}, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("completing an upload begun before the restart: %v", err)
	}
	st, err := c2.StatObject(ctx, "keep", "mp", minio.StatObjectOptions{})
	if err != nil || st.Size != int64(len(part)) {
		t.Fatalf("stat mp: %v %v", st.Size, err)
	}
}

func TestListPagination(t *testing.T) {
	ts := startServer(t, "")
	ctx := testCtx(t)
	c := ts.core(t, testSK)
	c.MakeBucket(ctx, "lst", minio.MakeBucketOptions{})
	var keys []string
	for i := range 25 {
		keys = append(keys, fmt.Sprintf("p/%c/%02d", 'a'+i%4, i))
	}
	keys = append(keys, "p/top1", "p/top2", "q/other")
	for _, k := range keys {
		if _, err := c.PutObject(ctx, "lst", k, strings.NewReader("x"), 1, "", "", minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Delimited listing in pages of 2: prefixes a-d then top1, top2.
	var got []string
	token := ""
	for page := 0; ; page++ {
		res, err := c.ListObjectsV2("lst", "p/", "", token, "/", 2)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(res.Contents) + len(res.CommonPrefixes); n > 2 {
			t.Fatalf("page %d has %d entries, max-keys 2", page, n)
		}
		for _, cp := range res.CommonPrefixes {
			got = append(got, cp.Prefix)
		}
		for _, o := range res.Contents {
			got = append(got, o.Key)
		}
		if !res.IsTruncated {
			break
		}
		token = res.NextContinuationToken
	}
	want := []string{"p/a/", "p/b/", "p/c/", "p/d/", "p/top1", "p/top2"}
	if !slices.Equal(got, want) {
		t.Fatalf("delimited pages %q, want %q", got, want)
	}
	// V1 with marker, no delimiter, pages of 5.
	got = nil
	marker := ""
	for {
		res, err := c.ListObjects("lst", "p/", marker, "", 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Contents {
			got = append(got, o.Key)
		}
		if !res.IsTruncated {
			break
		}
		marker = res.NextMarker
	}
	want = slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return !strings.HasPrefix(k, "p/") })
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("V1 pages %q, want %q", got, want)
	}
	if _, err := c.ListObjectsV2("lst", "", "", "!!notbase64", "", 10); s3Code(err) != "InvalidArgument" {
		t.Fatalf("bad continuation token: %v", err)
	}
}

func TestObjectEdgeCases(t *testing.T) {
	ts := startServer(t, "")
	ctx := testCtx(t)
	c := ts.core(t, testSK)
	if err := c.MakeBucket(ctx, "Bad_Name", minio.MakeBucketOptions{}); err == nil {
		t.Fatal("invalid bucket name accepted")
	}
	c.MakeBucket(ctx, "edge", minio.MakeBucketOptions{})
	if err := c.MakeBucket(ctx, "edge", minio.MakeBucketOptions{}); s3Code(err) != "BucketAlreadyOwnedByYou" {
		t.Fatalf("second create: %v", err)
	}
	data := randBytes(7, 4096)
	// Wrong Content-MD5 is refused and stores nothing.
	badMD5 := md5.Sum([]byte("other"))
	_, err := c.PutObject(ctx, "edge", "m", bytes.NewReader(data), int64(len(data)), base64.StdEncoding.EncodeToString(badMD5[:]), "", minio.PutObjectOptions{})
	if s3Code(err) != "BadDigest" {
		t.Fatalf("bad Content-MD5: %v", err)
	}
	// A declared SHA-256 that does not match is refused.
	_, err = c.PutObject(ctx, "edge", "m", bytes.NewReader(data), int64(len(data)), "", strings.Repeat("ab", 32), minio.PutObjectOptions{DisableContentSha256: true})
	if s3Code(err) != "XAmzContentSHA256Mismatch" {
		t.Fatalf("bad sha256: %v", err)
	}
	if _, err := c.StatObject(ctx, "edge", "m", minio.StatObjectOptions{}); s3Code(err) != "NoSuchKey" {
		t.Fatalf("refused puts stored an object: %v", err)
	}
	sum := sha256.Sum256(data)
	if _, err := c.PutObject(ctx, "edge", "m", bytes.NewReader(data), int64(len(data)), "", hex.EncodeToString(sum[:]), minio.PutObjectOptions{DisableContentSha256: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveBucket(ctx, "edge"); s3Code(err) != "BucketNotEmpty" {
		t.Fatalf("removing a non-empty bucket: %v", err)
	}
	// If-Match pins a version.
	opts := minio.GetObjectOptions{}
	opts.SetMatchETag("0123")
	if _, _, _, err := c.GetObject(ctx, "edge", "m", opts); s3Code(err) != "PreconditionFailed" {
		t.Fatalf("If-Match mismatch: %v", err)
	}
	// Ranges.
	opts = minio.GetObjectOptions{}
	opts.SetRange(0, -100) // last 100 bytes
	obj, _, _, err := c.GetObject(ctx, "edge", "m", opts)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(obj)
	obj.Close()
	if !bytes.Equal(got, data[len(data)-100:]) {
		t.Fatalf("suffix range returned %d bytes", len(got))
	}
	opts.SetRange(5000, 6000)
	if _, _, _, err := c.GetObject(ctx, "edge", "m", opts); s3Code(err) != "InvalidRange" {
		t.Fatalf("range past the end: %v", err)
	}
	// Presigned GET works; tampered or expired presigned URLs do not.
	u, err := c.PresignedGetObject(ctx, "edge", "m", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, data) {
		t.Fatalf("presigned GET: %d, %d bytes", resp.StatusCode, len(got))
	}
	resp, err = http.Get(strings.Replace(u.String(), "/edge/m?", "/edge/n?", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered presigned URL: status %d", resp.StatusCode)
	}
	// Unsupported features say so.
	if _, err := c.CopyObject(ctx, "edge", "m", "edge", "m2", nil, minio.CopySrcOptions{}, minio.PutObjectOptions{}); s3Code(err) != "NotImplemented" {
		t.Fatalf("copy: %v", err)
	}
	// Anonymous requests are refused.
	resp, err = http.Get("http://" + ts.Endpoint + "/edge/m")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("anonymous GET: status %d", resp.StatusCode)
	}
	// Batch delete.
	objs := make(chan minio.ObjectInfo, 2)
	objs <- minio.ObjectInfo{Key: "m"}
	objs <- minio.ObjectInfo{Key: "never-existed"}
	close(objs)
	for e := range c.RemoveObjects(ctx, "edge", objs, minio.RemoveObjectsOptions{}) {
		t.Fatalf("RemoveObjects: %v", e.Err)
	}
	if err := c.RemoveBucket(ctx, "edge"); err != nil {
		t.Fatalf("removing the emptied bucket: %v", err)
	}
	if _, err := c.BucketExists(ctx, "edge"); err != nil {
		t.Fatal(err)
	}
}

func TestWrongSecretRefused(t *testing.T) {
	ts := startServer(t, "")
	ctx := testCtx(t)
	good := ts.core(t, testSK)
	good.MakeBucket(ctx, "sec", minio.MakeBucketOptions{})
	bad := ts.core(t, testSK+"-wrong")
	data := randBytes(8, 70_000)
	_, err := bad.PutObject(ctx, "sec", "k", bytes.NewReader(data), int64(len(data)), "", "", minio.PutObjectOptions{})
	if s3Code(err) != "SignatureDoesNotMatch" {
		t.Fatalf("put with wrong secret: %v", err)
	}
	if _, err := bad.ListObjectsV2("sec", "", "", "", "", 10); s3Code(err) != "SignatureDoesNotMatch" {
		t.Fatalf("list with wrong secret: %v", err)
	}
	if _, err := good.StatObject(ctx, "sec", "k", minio.StatObjectOptions{}); s3Code(err) != "NoSuchKey" {
		t.Fatalf("refused put stored an object: %v", err)
	}
}

// TestStreamingTrailerModes sends aws-chunked bodies in the three streaming
// modes, signed by minio-go's signer, to the live server.
func TestStreamingTrailerModes(t *testing.T) {
	ts := startServer(t, "")
	ctx := testCtx(t)
	c := ts.core(t, testSK)
	c.MakeBucket(ctx, "trl", minio.MakeBucketOptions{})
	data := randBytes(10, 200_000)
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	crc.Write(data)
	goodSum := base64.StdEncoding.EncodeToString(crc.Sum(nil))
	for _, tc := range []struct {
		name, sum string
		signed    bool
		wantCode  int
	}{
		{"signed trailer", goodSum, true, 200},
		{"unsigned trailer", goodSum, false, 200},
		{"signed trailer, bad checksum", "AAAAAA==", true, 400},
		{"unsigned trailer, bad checksum", "AAAAAA==", false, 400},
	} {
		key := strings.ReplaceAll(tc.name, " ", "_")
		req, _ := http.NewRequest(http.MethodPut, "http://"+ts.Endpoint+"/trl/"+key, bytes.NewReader(data))
		req.Trailer = http.Header{"X-Amz-Checksum-Crc32c": {tc.sum}}
		if tc.signed {
			req = signer.StreamingSignV4(req, testAK, testSK, "", "us-east-1", int64(len(data)), time.Now().UTC(), sha256Hasher{sha256.New()})
		} else {
			trailer := req.Trailer
			req.Trailer = nil
			req.Header.Set("X-Amz-Content-Sha256", streamingUnsignedTrail)
			req = signer.SignV4Trailer(*req, testAK, testSK, "", "us-east-1", trailer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.wantCode {
			t.Fatalf("%s: status %d (%s), want %d", tc.name, resp.StatusCode, msg, tc.wantCode)
		}
		obj, _, _, err := c.GetObject(ctx, "trl", key, minio.GetObjectOptions{})
		if tc.wantCode != 200 {
			if s3Code(err) != "NoSuchKey" {
				t.Fatalf("%s: rejected upload stored: %v", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(obj)
		obj.Close()
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes, not the %d sent", tc.name, len(got), len(data))
		}
	}
}

// sha256Hasher adapts hash.Hash to the md5simd.Hasher minio-go's signer takes.
type sha256Hasher struct{ h hashLike }

type hashLike interface {
	io.Writer
	Sum([]byte) []byte
	Reset()
	Size() int
	BlockSize() int
}

func (s sha256Hasher) Write(p []byte) (int, error) { return s.h.Write(p) }
func (s sha256Hasher) Sum(b []byte) []byte         { return s.h.Sum(b) }
func (s sha256Hasher) Reset()                      { s.h.Reset() }
func (s sha256Hasher) Size() int                   { return s.h.Size() }
func (s sha256Hasher) BlockSize() int              { return s.h.BlockSize() }
func (s sha256Hasher) Close()                      {}

// TestConcurrentOverwritesAtomic: readers racing writers of the same key
// always see one whole object (every byte from the same writer, full
// length), never a mix or a partial file.
func TestConcurrentOverwritesAtomic(t *testing.T) {
	ts := startServer(t, "")
	ctx := testCtx(t)
	c := ts.core(t, testSK)
	c.MakeBucket(ctx, "race", minio.MakeBucketOptions{})
	const size = 256 << 10
	put := func(w byte) error {
		_, err := c.PutObject(ctx, "race", "k", bytes.NewReader(bytes.Repeat([]byte{w}, size)), size, "", "", minio.PutObjectOptions{})
		return err
	}
	if err := put(1); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 8)
	for w := byte(2); w < 6; w++ {
		go func() {
			for i := 0; i < 5; i++ {
				if err := put(w); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for r := 0; r < 4; r++ {
		go func() {
			for i := 0; i < 10; i++ {
				obj, _, _, err := c.GetObject(ctx, "race", "k", minio.GetObjectOptions{})
				if err != nil {
					errc <- err
					return
				}
				got, err := io.ReadAll(obj)
				obj.Close()
				if err != nil {
					errc <- err
					return
				}
				if len(got) != size || bytes.Count(got, got[:1]) != size {
					errc <- fmt.Errorf("read %d bytes mixing writers", len(got))
					return
				}
			}
			errc <- nil
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnreadableObjectFileSkipped(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	ctx := testCtx(t)
	c := ts.core(t, testSK)
	c.MakeBucket(ctx, "skp", minio.MakeBucketOptions{})
	for _, k := range []string{"good", "bad"} {
		if _, err := c.PutObject(ctx, "skp", k, strings.NewReader(k), int64(len(k)), "", "", minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ts.stop()
	b := &bucket{dir: filepath.Join(dir, "buckets", "skp")}
	if err := os.WriteFile(b.objectPath("bad"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	c2 := startServer(t, dir).core(t, testSK)
	res, err := c2.ListObjectsV2("skp", "", "", "", "", 10)
	if err != nil || len(res.Contents) != 1 || res.Contents[0].Key != "good" {
		t.Fatalf("listing after corruption: %+v, %v", res.Contents, err)
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{AccessKey: "a", SecretKey: "b"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("no dir: %v", err)
	}
	if _, err := New(Config{Dir: t.TempDir(), AccessKey: "a"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("no secret: %v", err)
	}
	cfg := Config{Dir: "/d", AccessKey: "AKVISIBLE", SecretKey: "SKVISIBLE"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "cfg", cfg)
	for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), logged.String()} {
		if strings.Contains(out, "AKVISIBLE") || strings.Contains(out, "SKVISIBLE") {
			t.Errorf("credentials printed: %s", out)
		}
	}
}

func TestMetricsAndUploadExpiry(t *testing.T) {
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	srv, err := New(Config{Dir: dir, AccessKey: testAK, SecretKey: testSK, NoSync: true, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	ts := &testServer{Server: srv, Endpoint: ln.Addr().String(), Dir: dir}
	c := ts.core(t, testSK)
	c.MakeBucket(ctx, "met", minio.MakeBucketOptions{})
	data := randBytes(50, 1000)
	if _, err := c.PutObject(ctx, "met", "k", bytes.NewReader(data), 1000, "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	c.StatObject(ctx, "met", "missing", minio.StatObjectOptions{})
	ts.core(t, "wrong").StatObject(ctx, "met", "k", minio.StatObjectOptions{})
	for _, tc := range []struct {
		op, code string
		want     float64
	}{
		{opCreateBucket, "200", 1}, {opPutObject, "200", 1}, {opHeadObject, "404", 1}, {opHeadObject, "403", 1},
	} {
		if got := metricValue(t, reg, "dsae_s3server_requests_total", "op", tc.op, "code", tc.code); got != tc.want {
			t.Errorf("requests{%s,%s} = %v, want %v", tc.op, tc.code, got, tc.want)
		}
	}
	if got := metricValue(t, reg, "dsae_s3server_received_bytes_total"); got < 1000 {
		t.Errorf("received bytes %v, want >= 1000", got)
	}

	id, err := c.NewMultipartUpload(ctx, "met", "up", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := srv.store.expireUploads(time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("expiring with a past cutoff removed %d (%v)", n, err)
	}
	os.Mkdir(filepath.Join(dir, "uploads", strings.Repeat("ab", 16)), 0o755) // creation interrupted
	if n, err := srv.store.expireUploads(time.Now().Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("expired %d uploads (%v), want 2", n, err)
	}
	if _, err := c.ListObjectParts(ctx, "met", "up", id, 0, 10); s3Code(err) != "NoSuchUpload" {
		t.Fatalf("expired upload still there: %v", err)
	}
}

// metricValue returns the counter named name whose labels match the
// given name/value pairs, from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestListMultipartUploads(t *testing.T) {
	ts := startServer(t, "")
	ctx := testCtx(t)
	c := ts.core(t, testSK)
	c.MakeBucket(ctx, "lmu", minio.MakeBucketOptions{})
	want := map[string]bool{}
	for _, k := range []string{"a/1", "a/2", "b/1", "a/1"} {
		id, err := c.NewMultipartUpload(ctx, "lmu", k, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(k, "a/") {
			want[k+" "+id] = true
		}
	}
	got := map[string]bool{}
	keyMarker, idMarker := "", ""
	for pages := 0; ; pages++ {
		res, err := c.ListMultipartUploads(ctx, "lmu", "a/", keyMarker, idMarker, "", 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range res.Uploads {
			if got[u.Key+" "+u.UploadID] {
				t.Fatalf("upload %s %s listed twice", u.Key, u.UploadID)
			}
			got[u.Key+" "+u.UploadID] = true
		}
		if !res.IsTruncated || pages > 10 {
			break
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
	if len(got) != len(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for k := range want {
		if !got[k] {
			t.Fatalf("upload %s not listed", k)
		}
	}
	// minio-go's RemoveIncompleteUpload lists, then aborts.
	if err := c.RemoveIncompleteUpload(ctx, "lmu", "a/1"); err != nil {
		t.Fatal(err)
	}
	res, _ := c.ListMultipartUploads(ctx, "lmu", "", "", "", "", 100)
	if len(res.Uploads) != 2 {
		t.Fatalf("%d uploads left after removing a/1's, want 2", len(res.Uploads))
	}
}
