package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// seededReader yields n deterministic pseudo-random bytes from seed, and
// hashes what it yields, so large payloads never sit in memory.
type seededReader struct {
	rng  *rand.ChaCha8
	left int64
	sum  hash.Hash
}

func newSeededReader(seed uint64, n int64) *seededReader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return &seededReader{rng: rand.NewChaCha8(s), left: n, sum: sha256.New()}
}

func (r *seededReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, _ := r.rng.Read(p)
	r.sum.Write(p[:n])
	r.left -= int64(n)
	return n, nil
}

func seededBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	io.ReadFull(newSeededReader(seed, int64(n)), b)
	return b
}

// objectStoreContract checks the behaviour every ObjectStore must share,
// whatever is behind it, under keys starting with prefix.
func objectStoreContract(t *testing.T, s ObjectStore, prefix string) {
	ctx := context.Background()
	key := func(name string) string { return prefix + name }

	t.Run("put get stat", func(t *testing.T) {
		data := seededBytes(1, 100_000)
		if err := s.Put(ctx, key("obj/a.bin"), bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		rc, err := s.Get(ctx, key("obj/a.bin"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get returned %d bytes (err %v), want the %d put", len(got), err, len(data))
		}
		if info, err := s.Stat(ctx, key("obj/a.bin")); err != nil || info.Size != int64(len(data)) || info.Key != key("obj/a.bin") {
			t.Fatalf("Stat = %+v, %v", info, err)
		}
		// Overwrite with a shorter object.
		if err := s.Put(ctx, key("obj/a.bin"), strings.NewReader("short"), 5); err != nil {
			t.Fatal(err)
		}
		if info, _ := s.Stat(ctx, key("obj/a.bin")); info.Size != 5 {
			t.Fatalf("size after overwrite = %d, want 5", info.Size)
		}
		if err := s.Put(ctx, key("obj/empty"), bytes.NewReader(nil), 0); err != nil {
			t.Fatal(err)
		}
		rc, err = s.Get(ctx, key("obj/empty"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(rc); err != nil || len(got) != 0 {
			t.Fatalf("empty object read %d bytes, err %v", len(got), err)
		}
		rc.Close()
	})

	t.Run("ranged get", func(t *testing.T) {
		data := seededBytes(2, 1<<20+13)
		if err := s.Put(ctx, key("range.bin"), bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		for _, r := range []struct{ off, n int64 }{
			{0, 1}, {0, 128}, {4096, 65536}, {int64(len(data)) - 1, 1}, {1000, int64(len(data)) - 1000},
			{int64(len(data)) - 10, 100}, // runs past the end: cut at the end
		} {
			rc, err := s.GetRange(ctx, key("range.bin"), r.off, r.n)
			if err != nil {
				t.Fatalf("GetRange(%d, %d): %v", r.off, r.n, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			want := data[r.off:min(r.off+r.n, int64(len(data)))]
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("GetRange(%d, %d): %d bytes (err %v), want %d", r.off, r.n, len(got), err, len(want))
			}
		}
		if _, err := s.GetRange(ctx, key("range.bin"), int64(len(data))+5, 10); err == nil {
			t.Fatal("range starting past the end: no error")
		}
		if _, err := s.GetRange(ctx, key("missing"), 0, 10); !errors.Is(err, ErrNotFound) {
			t.Fatalf("range of a missing key: %v, want ErrNotFound", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		var want []string
		for i := range 12 {
			k := key(fmt.Sprintf("lst/d%d/k%03d", i%3, i))
			want = append(want, k)
			if err := s.Put(ctx, k, strings.NewReader("v"), 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Put(ctx, key("lstx"), strings.NewReader("v"), 1); err != nil {
			t.Fatal(err)
		}
		objs, err := s.List(ctx, key("lst/"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range objs {
			got = append(got, o.Key)
			if o.Size != 1 {
				t.Fatalf("%s size %d, want 1", o.Key, o.Size)
			}
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("List returned %v, want %v", got, want)
		}
		if objs, err := s.List(ctx, key("nothing-here/")); err != nil || len(objs) != 0 {
			t.Fatalf("empty listing = %v, %v", objs, err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := s.Put(ctx, key("del"), strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, key("del")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, key("del")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Stat after delete: %v, want ErrNotFound", err)
		}
		if _, err := s.Get(ctx, key("del")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after delete: %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, key("del")); err != nil {
			t.Fatalf("deleting a missing key: %v", err)
		}
	})
}

// TestConformance checks the S3 surface dsae uses, through the Client,
// against the embedded server or the store named by DSAE_TEST_S3_ENDPOINT:
// the ObjectStore contract plus buckets, ETags, paginated and delimited
// listing, a 200 MB multipart round trip and refused credentials.
func TestConformance(t *testing.T) {
	ts := newTestStore(t)
	ctx := context.Background()
	c := ts.client(t)
	key := func(name string) string { return ts.prefix + name }

	t.Run("object store contract", func(t *testing.T) { objectStoreContract(t, c, ts.prefix+"contract/") })

	t.Run("bucket create and exists", func(t *testing.T) {
		cfg := ts.cfg
		cfg.Bucket = "dsae-conf-" + randHex(6)
		other, err := NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := other.BucketExists(ctx)
		if err != nil || ok {
			t.Fatalf("BucketExists before create = %v, %v; want false, nil", ok, err)
		}
		err = other.Put(ctx, "x", strings.NewReader("x"), 1)
		if !errors.Is(err, ErrBucketNotFound) {
			t.Fatalf("Put into missing bucket: %v, want ErrBucketNotFound", err)
		}
		if err := other.EnsureBucket(ctx); err != nil {
			t.Fatal(err)
		}
		if err := other.EnsureBucket(ctx); err != nil {
			t.Fatalf("second EnsureBucket: %v", err)
		}
		ok, err = other.BucketExists(ctx)
		if err != nil || !ok {
			t.Fatalf("BucketExists after create = %v, %v", ok, err)
		}
		if err := other.RemoveBucket(ctx); err != nil {
			t.Fatal(err)
		}
		if ok, _ := other.BucketExists(ctx); ok {
			t.Fatal("bucket still exists after RemoveBucket")
		}
	})

	t.Run("etag and unknown size", func(t *testing.T) {
		data := seededBytes(4, 70_000)
		if err := c.Put(ctx, key("etag.bin"), bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		info, err := c.Stat(ctx, key("etag.bin"))
		sum := md5.Sum(data)
		if err != nil || info.ETag != hex.EncodeToString(sum[:]) {
			t.Fatalf("Stat = %+v, %v; want etag %x", info, err, sum)
		}
		if err := c.Put(ctx, key("nosize"), io.MultiReader(strings.NewReader("abc")), -1); err != nil {
			t.Fatal(err)
		}
		if info, err := c.Stat(ctx, key("nosize")); err != nil || info.Size != 3 {
			t.Fatalf("unknown-size put: %+v, %v", info, err)
		}
		if ok, err := c.Exists(ctx, key("nosize")); !ok || err != nil {
			t.Fatalf("Exists = %v, %v", ok, err)
		}
	})

	t.Run("list with pagination", func(t *testing.T) {
		cfg := ts.cfg
		cfg.ListPageSize = 7
		pc, err := NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := range 30 {
			k := key(fmt.Sprintf("list/d%d/k%03d", i%3, i))
			want = append(want, k)
			if err := pc.Put(ctx, k, strings.NewReader("v"), 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := pc.Put(ctx, key("listx"), strings.NewReader("v"), 1); err != nil {
			t.Fatal(err)
		}
		objs, err := pc.List(ctx, key("list/"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range objs {
			got = append(got, o.Key)
			if o.Size != 1 {
				t.Fatalf("%s size %d, want 1", o.Key, o.Size)
			}
		}
		slices.Sort(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("List returned %d keys:\n%v\nwant %d:\n%v", len(got), got, len(want), want)
		}
		dirs, err := pc.ListDirs(ctx, key("list/"))
		if err != nil {
			t.Fatal(err)
		}
		wantDirs := []string{key("list/d0/"), key("list/d1/"), key("list/d2/")}
		if strings.Join(dirs, ",") != strings.Join(wantDirs, ",") {
			t.Fatalf("ListDirs = %v, want %v", dirs, wantDirs)
		}
		if objs, err := pc.List(ctx, key("nothing-here/")); err != nil || len(objs) != 0 {
			t.Fatalf("empty listing = %v, %v", objs, err)
		}
	})

	t.Run("multipart 200MB sha256", func(t *testing.T) {
		const size = 200 << 20
		src := newSeededReader(3, size)
		// A plain io.Reader (no Seek/ReadAt): minio-go streams it in
		// 16 MiB parts, each aws-chunked and signed over plain HTTP.
		if err := c.Put(ctx, key("big.bin"), struct{ io.Reader }{src}, size); err != nil {
			t.Fatal(err)
		}
		info, err := c.Stat(ctx, key("big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != size || !strings.HasSuffix(info.ETag, "-13") {
			t.Fatalf("Stat = %+v, want size %d and a 13-part multipart ETag", info, size)
		}
		rc, err := c.Get(ctx, key("big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil || n != size {
			t.Fatalf("read back %d bytes, err %v", n, err)
		}
		if got, want := hex.EncodeToString(h.Sum(nil)), hex.EncodeToString(src.sum.Sum(nil)); got != want {
			t.Fatalf("sha256 read back %s, uploaded %s", got, want)
		}
	})

	t.Run("wrong secret refused", func(t *testing.T) {
		for name, mod := range map[string]func(*ClientConfig){
			"wrong secret":       func(c *ClientConfig) { c.SecretKey += "x" },
			"unknown access key": func(c *ClientConfig) { c.AccessKey = "nobody-" + randHex(4) },
		} {
			cfg := ts.cfg
			mod(&cfg)
			cfg.RetryTimeout = 5 * time.Second // a retried refusal would end in ErrUnreachable
			bad, err := NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var before int64
			if ts.embedded != nil {
				before = ts.embedded.Requests.Load()
			}
			err = bad.Put(ctx, key("denied"), strings.NewReader("x"), 1)
			if !errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrUnreachable) {
				t.Fatalf("%s: Put error %v, want ErrAccessDenied at once", name, err)
			}
			if ts.embedded != nil {
				if n := ts.embedded.Requests.Load() - before; n != 1 {
					t.Fatalf("%s: %d requests, want 1 (refusals are not retried)", name, n)
				}
			}
			if _, err := bad.Get(ctx, key("obj/a.bin")); !errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrUnreachable) {
				t.Fatalf("%s: Get error %v, want ErrAccessDenied", name, err)
			}
			if _, err := bad.Stat(ctx, key("obj/a.bin")); !errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrUnreachable) {
				t.Fatalf("%s: Stat error %v, want ErrAccessDenied", name, err)
			}
		}
		if ok, _ := c.Exists(ctx, key("denied")); ok {
			t.Fatal("an upload with bad credentials was stored")
		}
	})
}

// TestObjectStoreContractMemStore holds the in-memory test store to the
// same contract as the real client.
func TestObjectStoreContractMemStore(t *testing.T) {
	objectStoreContract(t, newMemStore(), "")
}
