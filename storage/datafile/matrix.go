package datafile

import (
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Matrix is a data set held in memory: Rows rows of D float32 features,
// row-major in X (len(X) == Rows*D), with optional integer labels
// (len(Labels) == Rows, or nil when the source has none). It is not a
// dataset in the object store (package dataset), though
// dataset.LoadDataset reads one into a Matrix.
type Matrix struct {
	Name    string
	Rows, D int
	X       []float32
	Labels  []int32
}

// Row returns row i of X (a slice into X, not a copy).
func (ds *Matrix) Row(i int) []float32 { return ds.X[i*ds.D : (i+1)*ds.D] }

// Open loads a local data reference into memory:
//
//	"mnist", "mnist:train"  the 60,000 MNIST training images (see LoadMNIST)
//	"mnist:test"            the 10,000 MNIST test images
//	PATH.npy                a 2-D .npy file (see ReadNPY)
//	PATH.csv                a numeric CSV file (see ReadCSV)
//
// The extension is matched case-insensitively; any other reference is an
// error wrapping ErrBadInput.
func Open(ref string) (*Matrix, error) {
	switch {
	case ref == "mnist" || ref == "mnist:train":
		return LoadMNIST("train")
	case ref == "mnist:test":
		return LoadMNIST("test")
	}
	switch strings.ToLower(filepath.Ext(ref)) {
	case ".npy":
		return ReadNPY(ref)
	case ".csv":
		return ReadCSV(ref)
	}
	return nil, badInput("data %q: unknown kind; want mnist, mnist:train, mnist:test, a .npy or a .csv file", ref)
}

// MaxDim is the largest number of features per row that dsae reads
// (4 Mi float32 values, 16 MiB per row); wider inputs are rejected as bad
// input before any buffer is allocated.
const MaxDim = 1 << 22

// checkDim validates a row width declared by a file header.
func checkDim(file string, d int64) error {
	if d > MaxDim {
		return badInput("%s: rows of %d values exceed the maximum width %d", file, d, MaxDim)
	}
	return nil
}

// RowSource streams the rows of a data file in order (OpenRows, OpenMNIST),
// for a reader that does not hold the whole file in memory, such as
// dataset.Ingest. Implementations check every value (NaN and Inf are errors
// naming the position) so that callers receive only finite data.
type RowSource interface {
	// Name is the file as error messages name it.
	Name() string
	// Dim is the number of features per row, known once the source is open.
	Dim() int
	// NumRows is the number of rows, or -1 if unknown before the end (CSV).
	NumRows() int64
	// ReadRows fills dst (whose length is a positive multiple of Dim) with
	// whole rows and returns how many it wrote. At the end it returns 0 and
	// io.EOF; it may return n > 0 together with io.EOF.
	ReadRows(dst []float32) (n int, err error)
	// Close releases the underlying file.
	Close() error
}

// OpenRows opens path as a stream of rows in format: "npy", "csv" or "idx"
// (IDX optionally gzip-compressed), or "" to tell it from the name
// (FormatOf). It returns the source and the format it was read as. The
// formats are those ReadNPY and ReadCSV read, and IDX: dimension 0 is the
// row, the product of the others the width, values kept as they are.
// Errors wrap ErrBadInput.
func OpenRows(path, format string) (RowSource, string, error) {
	if format == "" {
		var err error
		if format, err = FormatOf(path); err != nil {
			return nil, "", err
		}
	}
	var src RowSource
	var err error
	switch format {
	case "npy":
		src, err = openNPYFile(path)
	case "csv":
		src, err = openCSVFile(path)
	case "idx":
		src, err = openIDXFile(path)
	default:
		return nil, "", badInput("format %q unknown; want npy, csv or idx", format)
	}
	if err != nil {
		return nil, "", err
	}
	return src, format, nil
}

// FormatOf guesses a file's format from its name: "npy" for .npy, "csv" for
// .csv, and "idx" for .idx, *-ubyte or *-ubyte.gz (case-insensitively). A
// name it cannot tell is an error wrapping ErrBadInput.
func FormatOf(path string) (string, error) {
	lower := strings.ToLower(path)
	switch {
	case strings.HasSuffix(lower, ".npy"):
		return "npy", nil
	case strings.HasSuffix(lower, ".csv"):
		return "csv", nil
	case strings.HasSuffix(lower, ".idx"), strings.HasSuffix(lower, "-ubyte"), strings.HasSuffix(lower, "-ubyte.gz"):
		return "idx", nil
	}
	return "", badInput("%s: cannot tell the format from the name; give --format npy, csv or idx", path)
}

// readAll drains src into a Matrix named name. An input with no rows is an
// error wrapping ErrBadInput.
func readAll(name string, src RowSource) (*Matrix, error) {
	d := src.Dim()
	var x []float32
	if n := src.NumRows(); n > 0 {
		// A header's row count is a hint, not a promise (an IDX stream may
		// be truncated), so preallocate at most 16 MiB up front.
		x = make([]float32, 0, min(n*int64(d), 1<<22))
	}
	buf := make([]float32, d*max(1, (1<<16)/d))
	for {
		n, err := src.ReadRows(buf)
		x = append(x, buf[:n*d]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(x) == 0 {
		return nil, badInput("%s: no rows", name)
	}
	return &Matrix{Name: name, Rows: len(x) / d, D: d, X: x}, nil
}

// checkFinite returns an error naming the first NaN or Inf in rows, which
// are row-major with d columns; firstRow is the index of rows[0] in the file.
// Row and column are 0-based indices, as numpy counts them.
func checkFinite(file string, firstRow int64, d int, rows []float32) error {
	for i, v := range rows {
		// NaN and ±Inf are the values whose exponent bits are all ones.
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
			return badInput("%s: row %d, column %d: %v is not a finite number",
				file, firstRow+int64(i/d), i%d, v)
		}
	}
	return nil
}

// openInputFile opens a local input file, failing with bad input (naming
// the path) if it is missing, unreadable or a directory.
func openInputFile(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, openErr(path, err)
	}
	if fi, err := f.Stat(); err != nil || fi.IsDir() {
		f.Close()
		if err != nil {
			return nil, openErr(path, err)
		}
		return nil, badInput("data file %s: is a directory", path)
	}
	return f, nil
}

// fileCloser gives a source built over a reader the Close of the file
// under it, if any.
type fileCloser struct{ closer io.Closer }

func (c fileCloser) Close() error {
	if c.closer != nil {
		return c.closer.Close()
	}
	return nil
}

// openErr turns an error from opening a data file into a one-line bad-input
// error that names the path.
func openErr(path string, err error) error {
	return badInputCause(err, "data file %s: %v", path, unwrapPathErr(err))
}

// unwrapPathErr drops the "open PATH:" prefix of a *fs.PathError, whose
// path the caller already names.
func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
