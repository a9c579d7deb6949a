package s3server

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"time"
)

// On disk every object (and every multipart part) is one file: the data,
// then its metadata as JSON, then the JSON length (uint32 little endian) and
// a magic. Metadata and data are thus replaced together by one rename.
var objMagic = [8]byte{'D', 'S', 'A', 'E', 'O', 'B', 'J', '1'}

const (
	objFooterLen = 4 + 8
	maxMetaLen   = 1 << 20
)

// objMeta is the metadata stored with an object or part.
type objMeta struct {
	Key         string            `json:"key"`
	Size        int64             `json:"size"`
	ETag        string            `json:"etag"` // without quotes
	ContentType string            `json:"content_type,omitempty"`
	Modified    time.Time         `json:"modified"`
	UserMeta    map[string]string `json:"user_meta,omitempty"`
	PartMD5s    []string          `json:"part_md5s,omitempty"` // hex MD5 of each part (multipart objects)
}

// bodyCheck names digests the client declared for a body; empty fields are
// not checked.
type bodyCheck struct {
	md5    []byte // Content-MD5
	sha256 string // hex x-amz-content-sha256
	size   int64  // declared length, -1 if unknown
	max    int64  // largest accepted size
}

// writeTemp streams r into a new temporary file in dir, checking the
// declared digests and length, and returns the open file (positioned after
// the data), the data size and MD5. On error the file is removed.
func writeTemp(dir string, r io.Reader, chk bodyCheck) (*os.File, int64, []byte, error) {
	f, err := createTemp(dir)
	if err != nil {
		return nil, 0, nil, err
	}
	fail := func(err error) (*os.File, int64, []byte, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, nil, err
	}
	md := md5.New()
	fw := diskWriter{f}
	w := io.Writer(io.MultiWriter(fw, md))
	var sh hash.Hash
	if chk.sha256 != "" {
		sh = sha256.New()
		w = io.MultiWriter(fw, md, sh)
	}
	limit := chk.max
	if chk.size >= 0 && chk.size < limit {
		limit = chk.size
	}
	n, err := io.Copy(w, io.LimitReader(r, limit+1))
	if err != nil {
		return fail(err)
	}
	if n > limit {
		if chk.size >= 0 && n > chk.size {
			return fail(errIncompleteBody.withMessage("the body is longer than declared"))
		}
		return fail(errEntityTooLarge)
	}
	if chk.size >= 0 && n != chk.size {
		return fail(errIncompleteBody)
	}
	sum := md.Sum(nil)
	if chk.md5 != nil && string(chk.md5) != string(sum) {
		return fail(errBadDigest)
	}
	if sh != nil && hex.EncodeToString(sh.Sum(nil)) != chk.sha256 {
		return fail(errContentSHA256Mismatch)
	}
	return f, n, sum, nil
}

// diskError marks a failure of the local disk (as opposed to the request
// body) while storing an object.
type diskError struct{ err error }

func (e *diskError) Error() string { return "disk: " + e.err.Error() }
func (e *diskError) Unwrap() error { return e.err }

// diskWriter wraps file write errors in diskError.
type diskWriter struct{ f *os.File }

func (w diskWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = &diskError{err}
	}
	return n, err
}

// finishObject appends meta to f, syncs (unless noSync) and closes it.
func finishObject(f *os.File, meta objMeta, noSync bool) error {
	b, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	var foot [objFooterLen]byte
	binary.LittleEndian.PutUint32(foot[:4], uint32(len(b)))
	copy(foot[4:], objMagic[:])
	if _, err := f.Write(append(b, foot[:]...)); err != nil {
		return err
	}
	if !noSync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return f.Close()
}

// readMeta reads the metadata trailer of an open object file.
func readMeta(f *os.File) (objMeta, error) {
	var meta objMeta
	fi, err := f.Stat()
	if err != nil {
		return meta, err
	}
	if fi.Size() < objFooterLen {
		return meta, fmt.Errorf("%s: object file too short", f.Name())
	}
	var foot [objFooterLen]byte
	if _, err := f.ReadAt(foot[:], fi.Size()-objFooterLen); err != nil {
		return meta, err
	}
	if [8]byte(foot[4:]) != objMagic {
		return meta, fmt.Errorf("%s: bad object file magic", f.Name())
	}
	n := int64(binary.LittleEndian.Uint32(foot[:4]))
	if n > maxMetaLen || n > fi.Size()-objFooterLen {
		return meta, fmt.Errorf("%s: bad object metadata length", f.Name())
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, fi.Size()-objFooterLen-n); err != nil {
		return meta, err
	}
	if err := json.Unmarshal(buf, &meta); err != nil {
		return meta, fmt.Errorf("%s: object metadata: %w", f.Name(), err)
	}
	if meta.Size != fi.Size()-objFooterLen-n {
		return meta, fmt.Errorf("%s: object size %d does not match file", f.Name(), meta.Size)
	}
	return meta, nil
}

// openObjectFile opens an object file and reads its metadata.
func openObjectFile(path string) (*os.File, objMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, objMeta{}, err
	}
	meta, err := readMeta(f)
	if err != nil {
		f.Close()
		return nil, objMeta{}, err
	}
	return f, meta, nil
}

// createTemp creates a uniquely named file in dir.
func createTemp(dir string) (*os.File, error) {
	return os.OpenFile(dir+"/"+randomID()+".tmp", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
}

// randomID returns 16 random bytes in hex.
func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}
