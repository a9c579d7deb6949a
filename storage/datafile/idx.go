package datafile

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// The IDX format (used by MNIST): two zero bytes, a type byte, a rank byte,
// rank big-endian uint32 dimensions, then the big-endian elements in C order.
// Files may be gzip-compressed; that is detected from the content.

// idxHeader is a parsed IDX header.
type idxHeader struct {
	Type byte    // element type code
	Dims []int64 // dimensions
}

// idxElemSize returns the size in bytes of an IDX element type, or 0 for an
// unknown type.
func idxElemSize(t byte) int {
	switch t {
	case 0x08, 0x09: // unsigned byte, signed byte
		return 1
	case 0x0B: // int16
		return 2
	case 0x0C, 0x0D: // int32, float32
		return 4
	case 0x0E: // float64
		return 8
	}
	return 0
}

// maxIDXElems bounds the element count an IDX header may declare (1<<40,
// i.e. one tebi-element) so that size arithmetic cannot overflow.
const maxIDXElems = 1 << 40

// readIDXHeader reads and validates an IDX header from r. Its errors do not
// name the file.
func readIDXHeader(r io.Reader) (idxHeader, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return idxHeader{}, errors.New("not an IDX file: too short")
	}
	if magic[0] != 0 || magic[1] != 0 {
		return idxHeader{}, errors.New("not an IDX file: bad magic")
	}
	h := idxHeader{Type: magic[2]}
	if idxElemSize(h.Type) == 0 {
		return idxHeader{}, fmt.Errorf("IDX element type 0x%02x not supported", h.Type)
	}
	rank := int(magic[3])
	if rank == 0 {
		return idxHeader{}, errors.New("IDX rank 0 not supported")
	}
	buf := make([]byte, 4*rank)
	if _, err := io.ReadFull(r, buf); err != nil {
		return idxHeader{}, errors.New("malformed IDX header: truncated dimensions")
	}
	total := int64(1)
	for i := 0; i < rank; i++ {
		v := int64(binary.BigEndian.Uint32(buf[4*i:]))
		h.Dims = append(h.Dims, v)
		if v != 0 && total > maxIDXElems/v {
			return idxHeader{}, fmt.Errorf("IDX shape %s is too large", shapeString(h.Dims))
		}
		total *= v
	}
	return h, nil
}

// idxSource streams an IDX file as rows: dimension 0 is the row, the product
// of the others the width (a rank-1 file has width 1, as labels do). Values
// are kept as they are (bytes 0..255 are not scaled).
type idxSource struct {
	fileCloser
	name string
	r    *bufio.Reader
	h    idxHeader
	rows int64
	d    int
	next int64
	raw  []byte
}

// openIDXFile opens path (optionally gzip-compressed) as a row source.
func openIDXFile(path string) (*idxSource, error) {
	f, err := openInputFile(path)
	if err != nil {
		return nil, err
	}
	s, err := newIDXSource(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.closer = f
	return s, nil
}

// newIDXSource reads the IDX header from r, decompressing gzip if the
// content starts with the gzip magic. name is used in error messages.
func newIDXSource(name string, r io.Reader) (*idxSource, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	if b, err := br.Peek(2); err == nil && b[0] == 0x1f && b[1] == 0x8b {
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, badInputCause(err, "%s: %v", name, err)
		}
		br = bufio.NewReaderSize(z, 1<<20)
	}
	h, err := readIDXHeader(br)
	if err != nil {
		return nil, badInputCause(err, "%s: %v", name, err)
	}
	rows, d := h.Dims[0], int64(1)
	for _, v := range h.Dims[1:] {
		d *= v
	}
	if rows == 0 || d == 0 {
		return nil, badInput("%s: IDX shape %s is empty", name, shapeString(h.Dims))
	}
	if err := checkDim(name, d); err != nil {
		return nil, err
	}
	return &idxSource{name: name, r: br, h: h, rows: rows, d: int(d)}, nil
}

func (s *idxSource) Name() string   { return s.name }
func (s *idxSource) Dim() int       { return s.d }
func (s *idxSource) NumRows() int64 { return s.rows }

// ReadRows implements RowSource.
func (s *idxSource) ReadRows(dst []float32) (int, error) {
	k := min(int64(len(dst)/s.d), s.rows-s.next)
	if k <= 0 {
		return 0, io.EOF
	}
	size := idxElemSize(s.h.Type)
	n := int(k) * s.d
	if cap(s.raw) < n*size {
		s.raw = make([]byte, n*size)
	}
	raw := s.raw[:n*size]
	if _, err := io.ReadFull(s.r, raw); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return 0, badInput("%s: truncated: shape %s, data ends before row %d",
				s.name, shapeString(s.h.Dims), s.next+k)
		}
		return 0, badInputCause(err, "%s: row %d: %v", s.name, s.next, err)
	}
	for i := range dst[:n] {
		switch s.h.Type {
		case 0x08:
			dst[i] = float32(raw[i])
		case 0x09:
			dst[i] = float32(int8(raw[i]))
		case 0x0B:
			dst[i] = float32(int16(binary.BigEndian.Uint16(raw[2*i:])))
		case 0x0C:
			dst[i] = float32(int32(binary.BigEndian.Uint32(raw[4*i:])))
		case 0x0D:
			dst[i] = math.Float32frombits(binary.BigEndian.Uint32(raw[4*i:]))
		case 0x0E:
			dst[i] = float32(math.Float64frombits(binary.BigEndian.Uint64(raw[8*i:])))
		}
	}
	if err := checkFinite(s.name, s.next, s.d, dst[:n]); err != nil {
		return 0, err
	}
	s.next += k
	return int(k), nil
}
