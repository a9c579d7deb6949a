package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dsae/dsae/storage"
)

// SeededReader yields n deterministic pseudo-random bytes from seed, and
// hashes what it yields, so large payloads never sit in memory.
type SeededReader struct {
	rng  *rand.ChaCha8
	left int64
	sum  hash.Hash
}

// NewSeededReader returns a reader of n bytes from seed.
func NewSeededReader(seed uint64, n int64) *SeededReader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return &SeededReader{rng: rand.NewChaCha8(s), left: n, sum: sha256.New()}
}

func (r *SeededReader) Read(p []byte) (int, error) {
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

// Sum is the SHA-256 of the bytes read so far.
func (r *SeededReader) Sum() []byte { return r.sum.Sum(nil) }

// SeededBytes returns the n bytes a SeededReader of seed yields.
func SeededBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	io.ReadFull(NewSeededReader(seed, int64(n)), b)
	return b
}

// ObjectStoreContract checks the behaviour every storage.ObjectStore must
// share, whatever is behind it, under keys starting with prefix: the
// Client's conformance test and MemStore's own test run it.
func ObjectStoreContract(t *testing.T, s storage.ObjectStore, prefix string) {
	ctx := context.Background()
	key := func(name string) string { return prefix + name }

	t.Run("put get stat", func(t *testing.T) {
		data := SeededBytes(1, 100_000)
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
		data := SeededBytes(2, 1<<20+13)
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
		if _, err := s.GetRange(ctx, key("missing"), 0, 10); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("range of a missing key: %v, want storage.ErrNotFound", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		CheckList(t, s, prefix+"lst/", 12)
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
		if _, err := s.Stat(ctx, key("del")); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Stat after delete: %v, want storage.ErrNotFound", err)
		}
		if _, err := s.Get(ctx, key("del")); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get after delete: %v, want storage.ErrNotFound", err)
		}
		if err := s.Delete(ctx, key("del")); err != nil {
			t.Fatalf("deleting a missing key: %v", err)
		}
	})
}

// CheckList puts n one-byte objects under dir (in three subfolders) and
// one beside it whose name only starts like dir, and requires List(dir) to
// return exactly the n, in key order, with their sizes.
func CheckList(t *testing.T, s storage.ObjectStore, dir string, n int) {
	t.Helper()
	ctx := context.Background()
	var want []string
	for i := range n {
		k := fmt.Sprintf("%sd%d/k%03d", dir, i%3, i)
		want = append(want, k)
		if err := s.Put(ctx, k, strings.NewReader("v"), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, strings.TrimSuffix(dir, "/")+"x", strings.NewReader("v"), 1); err != nil {
		t.Fatal(err)
	}
	objs, err := s.List(ctx, dir)
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
		t.Fatalf("List(%s) returned %d keys:\n%v\nwant %d:\n%v", dir, len(got), got, len(want), want)
	}
}
