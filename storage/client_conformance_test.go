package storage_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/storetest"
)

// TestConformance checks the S3 surface dsae uses, through the Client,
// against the embedded server or the store named by DSAE_TEST_S3_ENDPOINT:
// the ObjectStore contract plus buckets, ETags, paginated and delimited
// listing, a 200 MB multipart round trip and refused credentials.
func TestConformance(t *testing.T) {
	ts := storetest.NewStore(t)
	ctx := context.Background()
	c := ts.Client(t)
	key := func(name string) string { return ts.Prefix + name }

	t.Run("object store contract", func(t *testing.T) { storetest.ObjectStoreContract(t, c, ts.Prefix+"contract/") })

	t.Run("bucket create and exists", func(t *testing.T) {
		cfg := ts.Config
		cfg.Bucket = "dsae-conf-" + storetest.RandHex(6)
		other, err := storage.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := other.BucketExists(ctx)
		if err != nil || ok {
			t.Fatalf("BucketExists before create = %v, %v; want false, nil", ok, err)
		}
		err = other.Put(ctx, "x", strings.NewReader("x"), 1)
		if !errors.Is(err, storage.ErrBucketNotFound) {
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
		data := storetest.SeededBytes(4, 70_000)
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
		cfg := ts.Config
		cfg.ListPageSize = 7
		pc, err := storage.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		storetest.CheckList(t, pc, key("list/"), 30) // more than four pages
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
		src := storetest.NewSeededReader(3, size)
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
		if got, want := hex.EncodeToString(h.Sum(nil)), hex.EncodeToString(src.Sum()); got != want {
			t.Fatalf("sha256 read back %s, uploaded %s", got, want)
		}
	})

	t.Run("wrong secret refused", func(t *testing.T) {
		for name, mod := range map[string]func(*storage.ClientConfig){
			"wrong secret":       func(c *storage.ClientConfig) { c.SecretKey += "x" },
			"unknown access key": func(c *storage.ClientConfig) { c.AccessKey = "nobody-" + storetest.RandHex(4) },
		} {
			cfg := ts.Config
			mod(&cfg)
			cfg.RetryTimeout = 5 * time.Second // a retried refusal would end in ErrUnreachable
			bad, err := storage.NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var before int64
			if ts.Embedded != nil {
				before = ts.Embedded.Requests.Load()
			}
			err = bad.Put(ctx, key("denied"), strings.NewReader("x"), 1)
			if !errors.Is(err, storage.ErrAccessDenied) || errors.Is(err, storage.ErrUnreachable) {
				t.Fatalf("%s: Put error %v, want ErrAccessDenied at once", name, err)
			}
			if ts.Embedded != nil {
				if n := ts.Embedded.Requests.Load() - before; n != 1 {
					t.Fatalf("%s: %d requests, want 1 (refusals are not retried)", name, n)
				}
			}
			if _, err := bad.Get(ctx, key("obj/a.bin")); !errors.Is(err, storage.ErrAccessDenied) || errors.Is(err, storage.ErrUnreachable) {
				t.Fatalf("%s: Get error %v, want ErrAccessDenied", name, err)
			}
			if _, err := bad.Stat(ctx, key("obj/a.bin")); !errors.Is(err, storage.ErrAccessDenied) || errors.Is(err, storage.ErrUnreachable) {
				t.Fatalf("%s: Stat error %v, want ErrAccessDenied", name, err)
			}
		}
		if ok, _ := c.Exists(ctx, key("denied")); ok {
			t.Fatal("an upload with bad credentials was stored")
		}
	})
}
