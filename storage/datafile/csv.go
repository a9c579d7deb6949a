package datafile

import (
	"bufio"
	"encoding/csv"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
)

// csvSource streams the rows of a numeric CSV file.
//
// Contract: comma-separated, one row per line, every row with the same
// number of fields; a field is a decimal or scientific-notation number
// (surrounding spaces ignored) that fits float32 and is finite. The first
// line is a header, and skipped, only if every one of its fields is
// non-numeric; a first line mixing numbers and text is an error at its first
// non-numeric field. Blank lines are skipped. Positions in errors are 1-based
// line and column numbers as an editor shows them.
type csvSource struct {
	fileCloser
	name  string
	r     *csv.Reader
	d     int
	first []float32 // the first data row, read while detecting the header
	line  int       // line of the last record read
}

// openCSVFile opens path as a streaming row source.
func openCSVFile(path string) (*csvSource, error) {
	f, err := openInputFile(path)
	if err != nil {
		return nil, err
	}
	s, err := newCSVSource(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.closer = f
	return s, nil
}

// newCSVSource reads the header (if any) and first row of the CSV in r.
// name is used in error messages.
func newCSVSource(name string, r io.Reader) (*csvSource, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 1<<20))
	cr.FieldsPerRecord = -1 // ragged rows are reported with our own message
	cr.ReuseRecord = true
	s := &csvSource{name: name, r: cr}
	rec, err := s.record()
	if errors.Is(err, io.EOF) {
		return nil, badInput("%s: no rows", name)
	}
	if err != nil {
		return nil, err
	}
	numeric := 0
	for _, f := range rec {
		if _, err := strconv.ParseFloat(strings.TrimSpace(f), 64); err == nil {
			numeric++
		}
	}
	if numeric == 0 {
		// A header line: read the first data row after it.
		if rec, err = s.record(); errors.Is(err, io.EOF) {
			return nil, badInput("%s: no rows after the header line", name)
		} else if err != nil {
			return nil, err
		}
	}
	s.d = len(rec)
	s.first = make([]float32, s.d)
	if err := s.parse(rec, s.first); err != nil {
		return nil, err
	}
	return s, nil
}

// record reads the next CSV record, turning syntax errors into bad input.
func (s *csvSource) record() ([]string, error) {
	rec, err := s.r.Read()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, badInputCause(err, "%s: line %d, column %d: %v", s.name, pe.Line, pe.Column, pe.Err)
		}
		return nil, badInputCause(err, "%s: %v", s.name, err)
	}
	s.line, _ = s.r.FieldPos(0)
	return rec, nil
}

// parse converts one record into dst, checking width and values.
func (s *csvSource) parse(rec []string, dst []float32) error {
	if s.d != 0 && len(rec) != s.d {
		return badInput("%s: line %d: %d fields, want %d like the first row", s.name, s.line, len(rec), s.d)
	}
	for j, f := range rec {
		f = strings.TrimSpace(f)
		v, err := strconv.ParseFloat(f, 32)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return badInput("%s: line %d, column %d: %q is not a number", s.name, s.line, j+1, f)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return badInput("%s: line %d, column %d: %q is not a finite float32", s.name, s.line, j+1, f)
		}
		dst[j] = float32(v)
	}
	return nil
}

func (s *csvSource) Name() string   { return s.name }
func (s *csvSource) Dim() int       { return s.d }
func (s *csvSource) NumRows() int64 { return -1 }

// ReadRows implements RowSource.
func (s *csvSource) ReadRows(dst []float32) (int, error) {
	k := len(dst) / s.d
	n := 0
	if s.first != nil && k > 0 {
		copy(dst, s.first)
		s.first = nil
		n++
	}
	for n < k {
		rec, err := s.record()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		if err := s.parse(rec, dst[n*s.d:(n+1)*s.d]); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// ReadCSV loads a numeric CSV file into memory: comma-separated, one row
// per line, every row with the same number of fields, each field a decimal
// or scientific-notation number (surrounding spaces ignored) that is finite
// as a float32. The first line is a header, and skipped, only if every one
// of its fields is non-numeric; a first line mixing numbers and text is an
// error. Blank lines are skipped. A ragged row (named by line), a
// non-numeric, NaN, Inf or out-of-range field (line and column, 1-based), a
// file with no data rows, and a missing file are errors wrapping
// ErrBadInput. Labels is nil.
func ReadCSV(path string) (*Matrix, error) {
	src, err := openCSVFile(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return readAll(path, src)
}
