package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// memStore is an in-memory ObjectStore for tests. failAfterPuts > 0 makes
// every operation fail once that many puts have succeeded, as if the
// process had died there.
type memStore struct {
	mu            sync.Mutex
	objs          map[string][]byte
	puts          int
	failAfterPuts int
	rangeBytes    atomic.Int64
	rangeGets     atomic.Int64
}

func newMemStore() *memStore { return &memStore{objs: map[string][]byte{}} }

var _ ObjectStore = (*memStore)(nil)

var errMemDead = errors.New("memstore: store is gone")

func (s *memStore) dead() bool { return s.failAfterPuts > 0 && s.puts >= s.failAfterPuts }

func (s *memStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
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
		return errMemDead
	}
	s.objs[key] = data
	s.puts++
	return nil
}

func (s *memStore) get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead() {
		return nil, errMemDead
	}
	b, ok := s.objs[key]
	if !ok {
		return nil, fmt.Errorf("memstore: %s: %w", key, ErrNotFound)
	}
	return b, nil
}

func (s *memStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	b, err := s.get(key)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (s *memStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
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

func (s *memStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	b, err := s.get(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{Key: key, Size: int64(len(b))}, nil
}

func (s *memStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead() {
		return nil, errMemDead
	}
	var out []ObjectInfo
	for k, v := range s.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, ObjectInfo{Key: k, Size: int64(len(v))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *memStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead() {
		return errMemDead
	}
	delete(s.objs, key)
	return nil
}

// keys returns the stored keys, sorted.
func (s *memStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.objs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *memStore) object(t testing.TB, key string) []byte {
	t.Helper()
	b, err := s.get(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// prefixStore confines an ObjectStore to keys under prefix, so tests can
// share a bucket.
type prefixStore struct {
	inner  ObjectStore
	prefix string
}

func (p prefixStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return p.inner.Put(ctx, p.prefix+key, r, size)
}
func (p prefixStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return p.inner.Get(ctx, p.prefix+key)
}
func (p prefixStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	return p.inner.GetRange(ctx, p.prefix+key, off, n)
}
func (p prefixStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	info, err := p.inner.Stat(ctx, p.prefix+key)
	info.Key = strings.TrimPrefix(info.Key, p.prefix)
	return info, err
}
func (p prefixStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	objs, err := p.inner.List(ctx, p.prefix+prefix)
	for i := range objs {
		objs[i].Key = strings.TrimPrefix(objs[i].Key, p.prefix)
	}
	return objs, err
}
func (p prefixStore) Delete(ctx context.Context, key string) error {
	return p.inner.Delete(ctx, p.prefix+key)
}

var le = binary.LittleEndian
