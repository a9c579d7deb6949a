package s3server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// store keeps buckets and objects under root:
//
//	root/buckets/<bucket>/bucket.json          creation time; its presence makes the bucket
//	root/buckets/<bucket>/obj/<hh>/<sha256(key)> object file (see objfile.go)
//	root/uploads/<uploadID>/upload.json        a multipart upload in progress
//	root/uploads/<uploadID>/part-<n>           its parts
//	root/tmp/                                  files being written; emptied at start
//
// Object files are named by the hash of the key, so any key is a valid file
// name and "a" and "a/b" never collide. The sorted key index of each bucket
// is rebuilt from the files at start and kept in memory for listings.
type store struct {
	root   string
	noSync bool

	mu      sync.RWMutex
	buckets map[string]*bucket

	uploadMu sync.Mutex // serialises part commits with upload completion/abort

	// skipped lists unreadable object files found at start (reported by New).
	skipped []string
}

type bucket struct {
	name    string
	created time.Time
	dir     string

	mu      sync.RWMutex
	keys    []string // sorted
	objs    map[string]objMeta
	deleted bool
}

const (
	maxKeyLen      = 1024
	maxObjectSize  = 5 << 40 // 5 TiB
	maxPutSize     = 5 << 30 // 5 GiB in one PUT
	minPartSize    = 5 << 20 // all parts but the last
	maxPartNumber  = 10000
	bucketMetaFile = "bucket.json"
)

var bucketNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func validBucketName(name string) bool {
	return bucketNameRE.MatchString(name) && !strings.Contains(name, "..")
}

func validKey(key string) *apiError {
	if key == "" || !utf8.ValidString(key) {
		return errInvalidObjectName
	}
	if len(key) > maxKeyLen {
		return errKeyTooLong
	}
	return nil
}

// openStore opens (creating if needed) the store at root and rebuilds the
// in-memory indexes from the object files.
func openStore(root string, noSync bool) (*store, error) {
	s := &store{root: root, noSync: noSync, buckets: map[string]*bucket{}}
	for _, d := range []string{"buckets", "uploads", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	// Leftovers of writes interrupted by a crash.
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.tmpDir(), 0o755); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(root, "buckets"))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() || !validBucketName(e.Name()) {
			continue
		}
		b, err := s.loadBucket(e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue // never finished creating
		}
		if err != nil {
			return nil, err
		}
		s.buckets[b.name] = b
	}
	return s, nil
}

func (s *store) tmpDir() string { return filepath.Join(s.root, "tmp") }

func (s *store) loadBucket(name string) (*bucket, error) {
	dir := filepath.Join(s.root, "buckets", name)
	raw, err := os.ReadFile(filepath.Join(dir, bucketMetaFile))
	if err != nil {
		return nil, err
	}
	b := &bucket{name: name, dir: dir, objs: map[string]objMeta{}}
	var bm struct{ Created time.Time }
	if err := json.Unmarshal(raw, &bm); err != nil {
		return nil, fmt.Errorf("bucket %s: %w", name, err)
	}
	b.created = bm.Created
	err = filepath.WalkDir(filepath.Join(dir, "obj"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, meta, err := openObjectFile(path)
		if err == nil {
			f.Close()
			if b.objectPath(meta.Key) != path {
				err = fmt.Errorf("%s holds key %q, which belongs elsewhere", path, meta.Key)
			}
		}
		if err != nil {
			// Keep serving the rest of the bucket; the file stays for inspection.
			s.skipped = append(s.skipped, fmt.Sprintf("bucket %s: %v", name, err))
			return nil
		}
		b.objs[meta.Key] = meta
		b.keys = append(b.keys, meta.Key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(b.keys)
	return b, nil
}

func (b *bucket) objectPath(key string) string {
	h := sha256.Sum256([]byte(key))
	x := hex.EncodeToString(h[:])
	return filepath.Join(b.dir, "obj", x[:2], x)
}

type bucketInfo struct {
	Name    string
	Created time.Time
}

func (s *store) listBuckets() []bucketInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]bucketInfo, 0, len(s.buckets))
	for _, b := range s.buckets {
		out = append(out, bucketInfo{b.name, b.created})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *store) bucket(name string) (*bucket, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.buckets[name]
	if !ok {
		return nil, errNoSuchBucket
	}
	return b, nil
}

func (s *store) createBucket(name string) error {
	if !validBucketName(name) {
		return errInvalidBucketName
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.buckets[name]; ok {
		return errBucketAlreadyOwned
	}
	dir := filepath.Join(s.root, "buckets", name)
	if err := os.MkdirAll(filepath.Join(dir, "obj"), 0o755); err != nil {
		return err
	}
	now := time.Now().UTC()
	raw, _ := json.Marshal(struct{ Created time.Time }{now})
	f, err := createTemp(s.tmpDir())
	if err != nil {
		return err
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := syncClose(f, s.noSync); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, bucketMetaFile)); err != nil {
		return err
	}
	if err := s.syncDir(dir); err != nil {
		return err
	}
	s.buckets[name] = &bucket{name: name, dir: dir, created: now, objs: map[string]objMeta{}}
	return nil
}

func (s *store) deleteBucket(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[name]
	if !ok {
		return errNoSuchBucket
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.keys) > 0 {
		return errBucketNotEmpty
	}
	// Move the directory aside first so the bucket disappears in one step.
	trash := filepath.Join(s.tmpDir(), randomID()+".bucket")
	if err := os.Rename(b.dir, trash); err != nil {
		return err
	}
	b.deleted = true
	delete(s.buckets, name)
	return os.RemoveAll(trash)
}

// commit renames the finished temp file into place as key's object and
// updates the index. The bucket may have been deleted meanwhile.
func (s *store) commit(b *bucket, tmp string, meta objMeta) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.deleted {
		os.Remove(tmp)
		return errNoSuchBucket
	}
	dst := b.objectPath(meta.Key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := s.syncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	if _, ok := b.objs[meta.Key]; !ok {
		i := sort.SearchStrings(b.keys, meta.Key)
		b.keys = append(b.keys, "")
		copy(b.keys[i+1:], b.keys[i:])
		b.keys[i] = meta.Key
	}
	b.objs[meta.Key] = meta
	return nil
}

// putObject stores the body under key, replacing any previous object.
func (s *store) putObject(bucketName, key string, body io.Reader, chk bodyCheck, meta objMeta) (objMeta, error) {
	b, err := s.bucket(bucketName)
	if err != nil {
		return meta, err
	}
	f, n, sum, err := writeTemp(s.tmpDir(), body, chk)
	if err != nil {
		return meta, err
	}
	meta.Key, meta.Size, meta.ETag = key, n, hex.EncodeToString(sum)
	meta.Modified = time.Now().UTC()
	if err := finishObject(f, meta, s.noSync); err != nil {
		os.Remove(f.Name())
		return meta, err
	}
	return meta, s.commit(b, f.Name(), meta)
}

// openObject opens key for reading; the metadata comes from the file
// itself, so it always matches the data even if the key is being replaced.
func (s *store) openObject(bucketName, key string) (*os.File, objMeta, error) {
	b, err := s.bucket(bucketName)
	if err != nil {
		return nil, objMeta{}, err
	}
	f, meta, err := openObjectFile(b.objectPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, meta, errNoSuchKey
	}
	return f, meta, err
}

func (s *store) deleteObject(bucketName, key string) error {
	b, err := s.bucket(bucketName)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := os.Remove(b.objectPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, ok := b.objs[key]; ok {
		delete(b.objs, key)
		i := sort.SearchStrings(b.keys, key)
		b.keys = append(b.keys[:i], b.keys[i+1:]...)
	}
	return nil
}

// listResult is one page of a listing.
type listResult struct {
	Objects   []objMeta
	Prefixes  []string
	Truncated bool
	// Next is the last key or common prefix returned when Truncated; the
	// next page starts after it.
	Next string
}

// list returns up to max keys and common prefixes, in key order, that start
// with prefix and sort after `after`. With a delimiter, keys sharing the
// part of their name up to the first delimiter after prefix are rolled up
// into one common prefix, which counts as one entry.
func (s *store) list(bucketName, prefix, delim, after string, max int) (listResult, error) {
	var res listResult
	b, err := s.bucket(bucketName)
	if err != nil {
		return res, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	start := prefix
	if after > start {
		start = after
	}
	i := sort.SearchStrings(b.keys, start)
	lastPrefix := ""
	if delim != "" && strings.HasPrefix(after, prefix) && strings.HasSuffix(after, delim) &&
		strings.Contains(after[len(prefix):], delim) {
		lastPrefix = after // resuming after a common prefix: skip its keys
	}
	for ; i < len(b.keys); i++ {
		k := b.keys[i]
		if !strings.HasPrefix(k, prefix) {
			break
		}
		if k <= after || (lastPrefix != "" && strings.HasPrefix(k, lastPrefix)) {
			continue
		}
		if delim != "" {
			if j := strings.Index(k[len(prefix):], delim); j >= 0 {
				cp := k[:len(prefix)+j+len(delim)]
				if len(res.Objects)+len(res.Prefixes) >= max {
					res.Truncated = true
					return res, nil
				}
				res.Prefixes = append(res.Prefixes, cp)
				res.Next, lastPrefix = cp, cp
				continue
			}
		}
		if len(res.Objects)+len(res.Prefixes) >= max {
			res.Truncated = true
			return res, nil
		}
		res.Objects = append(res.Objects, b.objs[k])
		res.Next = k
	}
	return res, nil
}

// syncDir makes a rename into dir durable (unless noSync).
func (s *store) syncDir(dir string) error {
	if s.noSync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncClose(f *os.File, noSync bool) error {
	if !noSync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
