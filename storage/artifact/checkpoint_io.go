package artifact

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"unsafe"
)

// sectionReader reads the concatenation of byte slices without copying
// them; it is an io.ReadSeeker and io.ReaderAt so uploads can be retried
// and split into parallel parts.
type sectionReader struct {
	parts [][]byte
	size  int64
	off   int64
}

func newSectionReader(parts ...[]byte) *sectionReader {
	r := &sectionReader{parts: parts}
	for _, p := range parts {
		r.size += int64(len(p))
	}
	return r
}

// Size is the total length.
func (r *sectionReader) Size() int64 { return r.size }

func (r *sectionReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("sectionReader: negative offset")
	}
	n := 0
	for _, part := range r.parts {
		if off >= int64(len(part)) {
			off -= int64(len(part))
			continue
		}
		c := copy(p[n:], part[off:])
		n += c
		off = 0
		if n == len(p) {
			return n, nil
		}
	}
	return n, io.EOF
}

func (r *sectionReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *sectionReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("sectionReader: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("sectionReader: negative position")
	}
	r.off = offset
	return offset, nil
}

// byteCount counts the bytes written to it: Load counts a data object's
// bytes as it hashes them.
type byteCount int64

func (c *byteCount) Write(p []byte) (int, error) {
	*c += byteCount(len(p))
	return len(p), nil
}

// littleEndian reports whether the machine stores float32 little-endian,
// in which case parameters are uploaded from their own memory.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// float32Bytes returns v as little-endian bytes: a view of v's memory on
// little-endian machines (no copy), a converted copy otherwise.
func float32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// randHexID returns n random bytes in hex.
func randHexID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
