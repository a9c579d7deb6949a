package datafile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// The .npy format (numpy's NEP 1): the magic "\x93NUMPY", a major and minor
// version byte, a little-endian header length (uint16 for version 1, uint32
// for versions 2 and 3), then a Python dict literal with the keys 'descr',
// 'fortran_order' and 'shape', padded with spaces and ended by '\n'; then the
// array data.
//
// The header is parsed here rather than by npyio's reader because dsae
// streams arrays larger than memory and must reject every malformed header
// with an error; npyio (used by the tests as an independent reader and
// writer) decodes whole arrays only.

// npyMagic starts every .npy file.
const npyMagic = "\x93NUMPY"

// MaxNPYHeaderLen bounds the header dict a reader accepts (numpy's own
// default limit is 10,000 bytes); a dataset manifest's data offsets are
// checked against it.
const MaxNPYHeaderLen = 1 << 16

// npyHeader is a parsed .npy header.
type npyHeader struct {
	Descr      string  // dtype, e.g. "<f4"
	Fortran    bool    // column-major data
	Shape      []int64 // dimensions
	DataOffset int64   // bytes before the data
}

// npyDtype describes an element type dsae reads from .npy files.
type npyDtype struct {
	size  int
	order binary.ByteOrder
	kind  byte // 'f' float, 'u' unsigned
}

// parseNPYDtype accepts float32, float64 and uint8 in either byte order.
func parseNPYDtype(descr string) (npyDtype, error) {
	bad := fmt.Errorf("dtype %q not supported; want float32 '<f4', float64 '<f8' or uint8 '|u1'", descr)
	if len(descr) != 3 {
		return npyDtype{}, bad
	}
	var order binary.ByteOrder
	switch descr[0] {
	case '<', '|':
		order = binary.LittleEndian
	case '>':
		order = binary.BigEndian
	default:
		return npyDtype{}, bad
	}
	switch descr[1:] {
	case "f4":
		return npyDtype{4, order, 'f'}, nil
	case "f8":
		return npyDtype{8, order, 'f'}, nil
	case "u1":
		return npyDtype{1, order, 'u'}, nil
	}
	return npyDtype{}, bad
}

// readNPYHeader reads and validates a .npy preamble and header from r,
// leaving r at the first data byte. Its errors do not name the file.
func readNPYHeader(r io.Reader) (npyHeader, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return npyHeader{}, errors.New("not a .npy file: too short")
	}
	if string(pre[:6]) != npyMagic {
		return npyHeader{}, errors.New("not a .npy file: bad magic")
	}
	var hlen, off int64
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return npyHeader{}, errors.New("malformed .npy header: truncated")
		}
		hlen, off = int64(binary.LittleEndian.Uint16(b[:])), 10
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return npyHeader{}, errors.New("malformed .npy header: truncated")
		}
		hlen, off = int64(binary.LittleEndian.Uint32(b[:])), 12
	default:
		return npyHeader{}, fmt.Errorf("unsupported .npy format version %d.%d", pre[6], pre[7])
	}
	if hlen > MaxNPYHeaderLen {
		return npyHeader{}, fmt.Errorf("malformed .npy header: length %d exceeds %d", hlen, MaxNPYHeaderLen)
	}
	buf := make([]byte, hlen)
	if _, err := io.ReadFull(r, buf); err != nil {
		return npyHeader{}, errors.New("malformed .npy header: truncated")
	}
	h, err := parseNPYDict(string(buf))
	if err != nil {
		return npyHeader{}, fmt.Errorf("malformed .npy header: %w", err)
	}
	h.DataOffset = off + hlen
	return h, nil
}

// parseNPYDict parses the header dict literal, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
func parseNPYDict(s string) (npyHeader, error) {
	p := dictParser{s: s}
	var h npyHeader
	seen := map[string]bool{}
	p.space()
	if !p.eat('{') {
		return h, errors.New("want '{'")
	}
	for {
		p.space()
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return h, err
		}
		if seen[key] {
			return h, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		p.space()
		if !p.eat(':') {
			return h, fmt.Errorf("want ':' after key %q", key)
		}
		p.space()
		switch key {
		case "descr":
			if h.Descr, err = p.str(); err != nil {
				return h, fmt.Errorf("descr: %w", err)
			}
		case "fortran_order":
			if h.Fortran, err = p.boolean(); err != nil {
				return h, fmt.Errorf("fortran_order: %w", err)
			}
		case "shape":
			if h.Shape, err = p.tuple(); err != nil {
				return h, fmt.Errorf("shape: %w", err)
			}
		default:
			return h, fmt.Errorf("unknown key %q", key)
		}
		p.space()
		if p.eat(',') {
			continue
		}
		p.space()
		if !p.eat('}') {
			return h, errors.New("want ',' or '}'")
		}
		break
	}
	if strings.TrimRight(p.s[p.i:], " \t\r\n\x00") != "" {
		return h, errors.New("trailing bytes after '}'")
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return h, fmt.Errorf("missing key %q", k)
		}
	}
	return h, nil
}

// dictParser is a cursor over the small Python literal subset .npy headers use.
type dictParser struct {
	s string
	i int
}

func (p *dictParser) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *dictParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str parses a quoted string without escapes.
func (p *dictParser) str() (string, error) {
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("want a quoted string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, nil
}

func (p *dictParser) boolean() (bool, error) {
	switch {
	case strings.HasPrefix(p.s[p.i:], "True"):
		p.i += 4
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "False"):
		p.i += 5
		return false, nil
	}
	return false, errors.New("want True or False")
}

// tuple parses a tuple of non-negative integers such as (), (3,) or (3, 4).
func (p *dictParser) tuple() ([]int64, error) {
	if !p.eat('(') {
		return nil, errors.New("want '('")
	}
	dims := []int64{}
	for {
		p.space()
		if p.eat(')') {
			return dims, nil
		}
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		if j == p.i {
			return nil, errors.New("want a non-negative integer")
		}
		v, err := strconv.ParseInt(p.s[p.i:j], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("dimension %s out of range", p.s[p.i:j])
		}
		dims = append(dims, v)
		p.i = j
		p.eat('L') // Python 2 long suffix
		p.space()
		if p.eat(')') {
			return dims, nil
		}
		if !p.eat(',') {
			return nil, errors.New("want ',' or ')'")
		}
	}
}

// shapeString formats a shape the way Python prints a tuple.
func shapeString(shape []int64) string {
	parts := make([]string, len(shape))
	for i, v := range shape {
		parts[i] = strconv.FormatInt(v, 10)
	}
	if len(parts) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// WriteNPY writes data, rows×cols float32 values in row-major order, to w
// as a .npy file numpy.load reads as it is: version 1.0, dtype '<f4', C
// order, shape (rows, cols), the data starting at a multiple of 64 bytes.
// ReadNPY and the dataset readers read it back. It panics if rows or cols
// is negative or len(data) != rows*cols (a caller bug); its errors are w's.
func WriteNPY(w io.Writer, rows, cols int, data []float32) error {
	if rows < 0 || cols < 0 || len(data) != rows*cols {
		panic(fmt.Sprintf("datafile: WriteNPY of %d values as %d×%d", len(data), rows, cols))
	}
	if err := WriteNPYHeader(w, "<f4", false, int64(rows), int64(cols)); err != nil {
		return err
	}
	buf := make([]byte, 0, 4*min(len(data), 1<<16))
	for len(data) > 0 {
		n := min(len(data), cap(buf)/4)
		buf = buf[:0]
		for _, v := range data[:n] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// WriteNPYHeader writes the preamble and header of a version 1.0 .npy file
// to w: the magic, the version, the header length and the dict of descr,
// fortran and shape as numpy's repr writes it, padded with spaces and
// ended by '\n' so that the data starts at a multiple of 64 bytes (numpy's
// alignment; numpy 1.24 and later pad a little more, to leave room for a
// shape that grows in place, which no reader minds). The
// caller writes the array data next: prod(shape) elements of descr, a numpy
// dtype string such as "<f4", ">f8", "<i4" or "|u1", in C order, or
// column-major with fortran. Any rank is allowed, 0 included (shape ()).
// It panics if descr is empty or holds a quote, or a dimension is negative
// (a caller bug); its errors are w's.
func WriteNPYHeader(w io.Writer, descr string, fortran bool, shape ...int64) error {
	_, err := w.Write(EncodeNPYHeader(descr, fortran, shape...))
	return err
}

// EncodeNPYHeader returns what WriteNPYHeader writes, for a caller that
// puts the header in front of data it holds (ingest's labels objects).
func EncodeNPYHeader(descr string, fortran bool, shape ...int64) []byte {
	return npyPreamble(npyDict(descr, fortran, shape), 0)
}

// EncodeNPYHeaderSize is EncodeNPYHeader for a C-order array, padded to
// exactly size bytes: dataset.Ingest writes a shard's header, of a fixed
// size, once the shard's rows are known. It panics if the header does not
// fit (a caller bug: size is a constant chosen to fit any 2-D shape).
func EncodeNPYHeaderSize(size int, descr string, shape ...int64) []byte {
	return npyPreamble(npyDict(descr, false, shape), size)
}

// npyPreamble frames a header dict: magic, version 1.0, the little-endian
// uint16 header length, dict, spaces and '\n', size bytes in all, or with
// size 0 the smallest multiple of 64 that holds them. It is the one place
// dsae writes .npy framing; the tests use it for the malformed dicts they
// feed the reader.
func npyPreamble(dict string, size int) []byte {
	const fixed = len(npyMagic) + 2 + 2 // magic, version, header length
	if size == 0 {
		size = (fixed + len(dict) + 1 + 63) / 64 * 64
	}
	pad := size - (fixed + len(dict) + 1)
	if pad < 0 || size-fixed > math.MaxUint16 {
		panic(fmt.Sprintf("datafile: .npy header %s does not fit in %d bytes", dict, size))
	}
	b := make([]byte, 0, size)
	b = append(b, npyMagic...)
	b = append(b, 1, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(size-fixed))
	b = append(b, dict...)
	b = append(b, bytes.Repeat([]byte{' '}, pad)...)
	return append(b, '\n')
}

// npyDict is the header dict numpy writes for the array (its repr of the
// dict, keys sorted, with a trailing ", ").
func npyDict(descr string, fortran bool, shape []int64) string {
	if descr == "" || strings.ContainsAny(descr, `'"\`) {
		panic(fmt.Sprintf("datafile: .npy dtype %q", descr))
	}
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("datafile: .npy shape %v has a negative dimension", shape))
		}
	}
	order := "False"
	if fortran {
		order = "True"
	}
	return fmt.Sprintf("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, order, shapeString(shape))
}

// npySource streams the rows of a 2-D .npy array as float32. C-order data is
// read sequentially; Fortran-order data is read in blocks of rows (about
// fortranBlockBytes), one ranged read per column per block.
type npySource struct {
	fileCloser
	name string
	ra   io.ReaderAt
	h    npyHeader
	dt   npyDtype
	rows int64
	d    int
	next int64         // next row to return
	seq  *bufio.Reader // C order: sequential data reader
	raw  []byte
	// Fortran order: rows [fStart, fStart+fRows), row-major.
	fBlock []float32
	fStart int64
	fRows  int
}

// openNPYFile opens path as a streaming row source.
func openNPYFile(path string) (*npySource, error) {
	f, err := openInputFile(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, openErr(path, err)
	}
	s, err := newNPYSource(path, f, fi.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	s.closer = f
	return s, nil
}

// newNPYSource validates the header of the .npy data in ra (size bytes) and
// returns a source of its rows. name is used in error messages.
func newNPYSource(name string, ra io.ReaderAt, size int64) (*npySource, error) {
	h, err := readNPYHeader(io.NewSectionReader(ra, 0, size))
	if err != nil {
		return nil, badInputCause(err, "%s: %v", name, err)
	}
	dt, err := parseNPYDtype(h.Descr)
	if err != nil {
		return nil, badInput("%s: %v", name, err)
	}
	if len(h.Shape) != 2 {
		return nil, badInput("%s: shape %s has rank %d; want a 2-D array (rows, features)",
			name, shapeString(h.Shape), len(h.Shape))
	}
	rows, d := h.Shape[0], h.Shape[1]
	if rows == 0 || d == 0 {
		return nil, badInput("%s: shape %s is empty", name, shapeString(h.Shape))
	}
	if err := checkDim(name, d); err != nil {
		return nil, err
	}
	if rows > math.MaxInt64/d/int64(dt.size) {
		return nil, badInput("%s: shape %s is too large", name, shapeString(h.Shape))
	}
	if want := h.DataOffset + rows*d*int64(dt.size); size < want {
		return nil, badInput("%s: truncated: shape %s of %s needs %d bytes, file has %d",
			name, shapeString(h.Shape), h.Descr, want, size)
	}
	s := &npySource{name: name, ra: ra, h: h, dt: dt, rows: rows, d: int(d)}
	if !h.Fortran {
		s.seq = bufio.NewReaderSize(io.NewSectionReader(ra, h.DataOffset, rows*d*int64(dt.size)), 1<<20)
	}
	return s, nil
}

func (s *npySource) Name() string   { return s.name }
func (s *npySource) Dim() int       { return s.d }
func (s *npySource) NumRows() int64 { return s.rows }

// ReadRows implements RowSource.
func (s *npySource) ReadRows(dst []float32) (int, error) {
	k := min(int64(len(dst)/s.d), s.rows-s.next)
	if k <= 0 {
		return 0, io.EOF
	}
	if s.seq == nil {
		return s.readFortran(dst)
	}
	n := int(k) * s.d
	if cap(s.raw) < n*s.dt.size {
		s.raw = make([]byte, n*s.dt.size)
	}
	raw := s.raw[:n*s.dt.size]
	if _, err := io.ReadFull(s.seq, raw); err != nil {
		return 0, fmt.Errorf("%s: read row %d: %w", s.name, s.next, err)
	}
	s.decode(dst[:n], raw)
	if err := checkFinite(s.name, s.next, s.d, dst[:n]); err != nil {
		return 0, err
	}
	s.next += k
	return int(k), nil
}

// fortranBlockBytes is the size of the blocks of rows a Fortran-order array
// is read in: one ranged read per column per block, so blocks must be large
// for wide arrays to be read in few calls. A variable so tests can shrink it.
var fortranBlockBytes = 32 << 20

// readFortran serves rows of a Fortran-order array from a block of rows
// read column by column (each column of a block is contiguous) and
// transposed.
func (s *npySource) readFortran(dst []float32) (int, error) {
	if s.next >= s.fStart+int64(s.fRows) {
		rows := min(s.rows-s.next, max(int64(len(dst)/s.d), int64(fortranBlockBytes/(s.d*s.dt.size)), 1))
		col := int(rows) * s.dt.size
		if cap(s.raw) < col*s.d {
			s.raw = make([]byte, col*s.d)
		}
		raw := s.raw[:col*s.d]
		for j := 0; j < s.d; j++ {
			off := s.h.DataOffset + (int64(j)*s.rows+s.next)*int64(s.dt.size)
			if _, err := s.ra.ReadAt(raw[j*col:(j+1)*col], off); err != nil {
				return 0, fmt.Errorf("%s: read column %d: %w", s.name, j, err)
			}
		}
		if cap(s.fBlock) < int(rows)*s.d {
			s.fBlock = make([]float32, int(rows)*s.d)
		}
		s.fBlock = s.fBlock[:int(rows)*s.d]
		column := make([]float32, rows)
		for j := 0; j < s.d; j++ {
			s.decode(column, raw[j*col:(j+1)*col])
			for i, v := range column {
				s.fBlock[i*s.d+j] = v
			}
		}
		s.fStart, s.fRows = s.next, int(rows)
	}
	from := int(s.next - s.fStart)
	k := min(len(dst)/s.d, s.fRows-from)
	n := k * s.d
	copy(dst[:n], s.fBlock[from*s.d:])
	if err := checkFinite(s.name, s.next, s.d, dst[:n]); err != nil {
		return 0, err
	}
	s.next += int64(k)
	return k, nil
}

// decode converts raw elements of s's dtype into float32 values.
func (s *npySource) decode(dst []float32, raw []byte) {
	bo := s.dt.order
	switch {
	case s.dt.kind == 'u':
		for i := range dst {
			dst[i] = float32(raw[i])
		}
	case s.dt.size == 4:
		for i := range dst {
			dst[i] = math.Float32frombits(bo.Uint32(raw[4*i:]))
		}
	default:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(bo.Uint64(raw[8*i:])))
		}
	}
}

// ReadNPY loads a 2-D .npy file into memory. Supported dtypes are float32,
// float64 (converted to float32) and uint8 (kept as its value 0..255, not
// scaled), little- or big-endian, C or Fortran order. A rank other than 2,
// an empty shape, another dtype, a malformed or truncated file, a missing
// file, and NaN or Inf anywhere (named by row and column index) are errors
// wrapping ErrBadInput. Labels is nil.
func ReadNPY(path string) (*Matrix, error) {
	src, err := openNPYFile(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return readAll(path, src)
}
