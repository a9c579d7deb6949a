package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dsae/dsae/storage"
)

// MemStore is an in-memory storage.ObjectStore for tests. FailAfterPuts > 0
// makes every operation fail with ErrDead once that many puts have
// succeeded, as if the process had died there; set it before the store is
// used concurrently.
type MemStore struct {
	FailAfterPuts int

	mu         sync.Mutex
	objs       map[string][]byte
	puts       int
	rangeBytes atomic.Int64
	rangeGets  atomic.Int64
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{objs: map[string][]byte{}} }

var _ storage.ObjectStore = (*MemStore)(nil)

// ErrDead is what a MemStore past its FailAfterPuts returns.
var ErrDead = errors.New("memstore: store is gone")

func (s *MemStore) dead() bool { return s.FailAfterPuts > 0 && s.puts >= s.FailAfterPuts }

func (s *MemStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	var buf bytes.Buffer
	if size > 0 {
		buf.Grow(int(size))
	}
	if _, err := buf.ReadFrom(r); err != nil {
		return err
	}
	data := buf.Bytes()
	if size >= 0 && int64(len(data)) != size {
		return fmt.Errorf("memstore: put %s: %d bytes, size says %d", key, len(data), size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead() {
		return ErrDead
	}
	s.objs[key] = data
	s.puts++
	return nil
}

func (s *MemStore) get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead() {
		return nil, ErrDead
	}
	b, ok := s.objs[key]
	if !ok {
		return nil, fmt.Errorf("memstore: %s: %w", key, storage.ErrNotFound)
	}
	return b, nil
}

func (s *MemStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	b, err := s.get(key)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (s *MemStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	b, err := s.get(key)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 1 || off >= int64(len(b)) {
		return nil, fmt.Errorf("memstore: bad range [%d, +%d) of %s (%d bytes)", off, n, key, len(b))
	}
	end := min(int64(len(b)), off+n)
	s.rangeGets.Add(1)
	s.rangeBytes.Add(end - off)
	return io.NopCloser(bytes.NewReader(b[off:end])), nil
}

func (s *MemStore) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	b, err := s.get(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	return storage.ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

func (s *MemStore) List(ctx context.Context, prefix string) ([]storage.ObjectInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead() {
		return nil, ErrDead
	}
	var out []storage.ObjectInfo
	for k, v := range s.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, storage.ObjectInfo{Key: k, Size: int64(len(v))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *MemStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead() {
		return ErrDead
	}
	delete(s.objs, key)
	return nil
}

// Keys returns the stored keys, sorted.
func (s *MemStore) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.objs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Object returns the object at key (the stored bytes, not a copy), failing
// the test if there is none.
func (s *MemStore) Object(t testing.TB, key string) []byte {
	t.Helper()
	b, err := s.get(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Update replaces the object at key (absent: nil) with what edit returns;
// edit may change the bytes in place. It runs under the store's lock, so
// a test can corrupt or replace an object while readers run.
func (s *MemStore) Update(key string, edit func(b []byte) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[key] = edit(s.objs[key])
}

// PrefixStore confines an ObjectStore to keys under Prefix, so tests can
// share a bucket.
type PrefixStore struct {
	Inner  storage.ObjectStore
	Prefix string
}

func (p PrefixStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return p.Inner.Put(ctx, p.Prefix+key, r, size)
}
func (p PrefixStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return p.Inner.Get(ctx, p.Prefix+key)
}
func (p PrefixStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	return p.Inner.GetRange(ctx, p.Prefix+key, off, n)
}
func (p PrefixStore) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	info, err := p.Inner.Stat(ctx, p.Prefix+key)
	info.Key = strings.TrimPrefix(info.Key, p.Prefix)
	return info, err
}
func (p PrefixStore) List(ctx context.Context, prefix string) ([]storage.ObjectInfo, error) {
	objs, err := p.Inner.List(ctx, p.Prefix+prefix)
	for i := range objs {
		objs[i].Key = strings.TrimPrefix(objs[i].Key, p.Prefix)
	}
	return objs, err
}
func (p PrefixStore) Delete(ctx context.Context, key string) error {
	return p.Inner.Delete(ctx, p.Prefix+key)
}
