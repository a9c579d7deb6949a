package datafile

import (
	"bufio"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// LabelSource streams integer labels, one per row of a data file
// (OpenLabels, OpenMNIST).
type LabelSource interface {
	// ReadLabels fills dst with the next labels and returns how many it
	// wrote; at the end it returns 0 and io.EOF.
	ReadLabels(dst []int32) (int, error)
	Close() error
}

// OpenLabels opens a labels file, chosen by format ("npy", "csv",
// "idx", or "" for the extension, see FormatOf):
//
//	.npy  shape (n,) or (n, 1), any integer dtype ('|u1', '<i4', '<i8', ...)
//	.csv  one integer per line, optionally under a non-numeric header line
//	IDX   rank 1 (or (n, 1)), an integer element type
//
// Every label must fit in an int32.
func OpenLabels(path, format string) (LabelSource, error) {
	if format == "" {
		var err error
		if format, err = FormatOf(path); err != nil {
			return nil, err
		}
	}
	f, err := openInputFile(path)
	if err != nil {
		return nil, err
	}
	var src LabelSource
	switch format {
	case "npy":
		src, err = newNPYLabels(path, f)
	case "csv":
		src, err = newCSVLabels(path, f)
	case "idx":
		src, err = newIDXLabels(path, f)
	default:
		err = badInput("format %q unknown; want npy, csv or idx", format)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return closerLabels{src, f}, nil
}

// closerLabels closes the file under a label source.
type closerLabels struct {
	LabelSource
	f io.Closer
}

func (c closerLabels) Close() error { return c.f.Close() }

// intLabels decodes fixed-size integers from a byte stream.
type intLabels struct {
	name   string
	r      io.Reader
	size   int
	order  binary.ByteOrder
	signed bool
	rows   int64
	next   int64
	raw    []byte
}

func (s *intLabels) ReadLabels(dst []int32) (int, error) {
	k := min(int64(len(dst)), s.rows-s.next)
	if k <= 0 {
		return 0, io.EOF
	}
	n := int(k) * s.size
	if cap(s.raw) < n {
		s.raw = make([]byte, n)
	}
	raw := s.raw[:n]
	if _, err := io.ReadFull(s.r, raw); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, badInput("%s: truncated: labels end before row %d of %d", s.name, s.next+k, s.rows)
		}
		return 0, badInputCause(err, "%s: %v", s.name, err)
	}
	for i := range dst[:k] {
		var v int64
		b := raw[i*s.size:]
		switch s.size {
		case 1:
			v = int64(b[0])
			if s.signed {
				v = int64(int8(b[0]))
			}
		case 2:
			v = int64(s.order.Uint16(b))
			if s.signed {
				v = int64(int16(v))
			}
		case 4:
			v = int64(s.order.Uint32(b))
			if s.signed {
				v = int64(int32(v))
			}
		case 8:
			u := s.order.Uint64(b)
			if !s.signed && u > math.MaxInt64 {
				return 0, badInput("%s: label of row %d is %d, outside int32", s.name, s.next+int64(i), u)
			}
			v = int64(u)
		}
		if v < math.MinInt32 || v > math.MaxInt32 {
			return 0, badInput("%s: label of row %d is %d, outside int32", s.name, s.next+int64(i), v)
		}
		dst[i] = int32(v)
	}
	s.next += k
	return int(k), nil
}

func (s *intLabels) Close() error { return nil }

// readAllLabels drains a label source.
func readAllLabels(src LabelSource) ([]int32, error) {
	var out []int32
	buf := make([]int32, 1<<16)
	for {
		n, err := src.ReadLabels(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// newNPYLabels validates a .npy labels header.
func newNPYLabels(name string, f *os.File) (LabelSource, error) {
	br := bufio.NewReaderSize(f, 1<<20)
	h, err := readNPYHeader(br)
	if err != nil {
		return nil, badInputCause(err, "%s: %v", name, err)
	}
	bad := badInput("%s: labels dtype %q not supported; want an integer type such as '|u1', '<i4' or '<i8'", name, h.Descr)
	if len(h.Descr) != 3 || strings.IndexByte("<>|", h.Descr[0]) < 0 || (h.Descr[1] != 'i' && h.Descr[1] != 'u') {
		return nil, bad
	}
	size := int(h.Descr[2] - '0')
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return nil, bad
	}
	order := binary.ByteOrder(binary.LittleEndian)
	if h.Descr[0] == '>' {
		order = binary.BigEndian
	}
	if len(h.Shape) == 0 || len(h.Shape) > 2 || (len(h.Shape) == 2 && h.Shape[1] != 1) {
		return nil, badInput("%s: labels shape %s; want (rows,) or (rows, 1)", name, shapeString(h.Shape))
	}
	return &intLabels{name: name, r: br, size: size, order: order, signed: h.Descr[1] == 'i', rows: h.Shape[0]}, nil
}

// newIDXLabels validates an IDX labels header (gzip allowed).
func newIDXLabels(name string, r io.Reader) (LabelSource, error) {
	src, err := newIDXSource(name, r)
	if err != nil {
		return nil, err
	}
	t := src.h.Type
	if src.d != 1 || (t != 0x08 && t != 0x09 && t != 0x0B && t != 0x0C) {
		return nil, badInput("%s: IDX labels must be integers of shape (rows,), got shape %s type 0x%02x",
			name, shapeString(src.h.Dims), t)
	}
	return &intLabels{name: name, r: src.r, size: idxElemSize(t), order: binary.BigEndian, signed: t != 0x08, rows: src.rows}, nil
}

// csvLabels reads one integer per CSV line.
type csvLabels struct {
	name  string
	r     *csv.Reader
	first *int32
	line  int
}

func newCSVLabels(name string, f *os.File) (LabelSource, error) {
	cr := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	s := &csvLabels{name: name, r: cr}
	v, err := s.next(true)
	if errors.Is(err, io.EOF) {
		return nil, badInput("%s: no labels", name)
	}
	if err != nil {
		return nil, err
	}
	s.first = &v
	return s, nil
}

// next parses the next label; header allows one non-numeric first line.
func (s *csvLabels) next(header bool) (int32, error) {
	for {
		rec, err := s.r.Read()
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return 0, badInputCause(err, "%s: line %d: %v", s.name, pe.Line, pe.Err)
			}
			return 0, badInputCause(err, "%s: %v", s.name, err)
		}
		s.line, _ = s.r.FieldPos(0)
		if len(rec) != 1 {
			return 0, badInput("%s: line %d: %d fields; a labels CSV has one per line", s.name, s.line, len(rec))
		}
		f := strings.TrimSpace(rec[0])
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			if header {
				if _, ferr := strconv.ParseFloat(f, 64); ferr != nil {
					header = false
					continue // a header line
				}
			}
			return 0, badInput("%s: line %d: %q is not an int32 label", s.name, s.line, f)
		}
		return int32(v), nil
	}
}

func (s *csvLabels) ReadLabels(dst []int32) (int, error) {
	n := 0
	if s.first != nil && len(dst) > 0 {
		dst[0] = *s.first
		s.first = nil
		n++
	}
	for n < len(dst) {
		v, err := s.next(false)
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		dst[n] = v
		n++
	}
	return n, nil
}

func (s *csvLabels) Close() error { return nil }
