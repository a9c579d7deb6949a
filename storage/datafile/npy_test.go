package datafile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npy"
	"gonum.org/v1/gonum/mat"
)

// npyFile is a .npy file of the given header dict, written as it stands
// (malformed ones included) in the framing WriteNPYHeader writes, which
// TestWriteNPYHeaderBytes checks byte by byte; then data.
func npyFile(dict string, data []byte) []byte {
	return append(npyPreamble(dict, 0), data...)
}

func f32Bytes(order binary.ByteOrder, v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		order.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func f64Bytes(order binary.ByteOrder, v ...float64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		order.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return b
}

func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadNPYGood(t *testing.T) {
	want := []float32{1, 2, 3, 4, 5, 6} // 2 rows × 3 columns
	le, be := binary.LittleEndian, binary.BigEndian
	cases := []struct {
		name string
		file []byte
		want []float32
	}{
		{"f4 C", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f32Bytes(le, 1, 2, 3, 4, 5, 6)), want},
		{"f4 Fortran", npyFile("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f32Bytes(le, 1, 4, 2, 5, 3, 6)), want},
		{"f4 big-endian", npyFile("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", f32Bytes(be, 1, 2, 3, 4, 5, 6)), want},
		{"f8 C", npyFile("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", f64Bytes(le, 1, 2, 3, 4, 5, 6)), want},
		{"f8 Fortran", npyFile("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", f64Bytes(le, 1, 4, 2, 5, 3, 6)), want},
		{"u1 kept as value", npyFile("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", []byte{0, 128, 255, 1, 2, 3}), []float32{0, 128, 255, 1, 2, 3}},
		{"keys in other order, double quotes, no trailing comma", npyFile(`{"shape": (2,3), "descr": "<f4", "fortran_order": False}`, f32Bytes(le, 1, 2, 3, 4, 5, 6)), want},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds, err := ReadNPY(writeTemp(t, "x.npy", c.file))
			if err != nil {
				t.Fatal(err)
			}
			if ds.Rows != 2 || ds.D != 3 || fmt.Sprint(ds.X) != fmt.Sprint(c.want) || ds.Labels != nil {
				t.Fatalf("got rows=%d d=%d X=%v labels=%v, want 2×3 %v", ds.Rows, ds.D, ds.X, ds.Labels, c.want)
			}
		})
	}
}

// TestNPYFortranBlocks reads a Fortran-order array in many small blocks and
// small batches, and compares it with the same array in C order.
func TestNPYFortranBlocks(t *testing.T) {
	const rows, d = 37, 5
	cOrder := make([]float64, rows*d)
	fOrder := make([]float64, rows*d)
	for i := range rows {
		for j := range d {
			v := float64(i*100 + j)
			cOrder[i*d+j] = v
			fOrder[j*rows+i] = v
		}
	}
	defer func(old int) { fortranBlockBytes = old }(fortranBlockBytes)
	fortranBlockBytes = 3 * d * 8 // three rows per block
	read := func(fortran string, data []float64) []float32 {
		file := npyFile("{'descr': '<f8', 'fortran_order': "+fortran+", 'shape': (37, 5), }", f64Bytes(binary.LittleEndian, data...))
		src, err := newNPYSource("x.npy", bytes.NewReader(file), int64(len(file)))
		if err != nil {
			t.Fatal(err)
		}
		var out []float32
		buf := make([]float32, 2*d) // two rows at a time
		for {
			n, err := src.ReadRows(buf)
			out = append(out, buf[:n*d]...)
			if err != nil {
				break
			}
		}
		return out
	}
	c, f := read("False", cOrder), read("True", fOrder)
	if len(c) != rows*d || fmt.Sprint(c) != fmt.Sprint(f) {
		t.Fatalf("Fortran order read %v, C order %v", f, c)
	}
}

// TestReadNPYFromNpyio reads a file written by npyio, an independent writer
// (format version 2.0, float64 C order).
func TestReadNPYFromNpyio(t *testing.T) {
	m := mat.NewDense(3, 2, []float64{0.5, -1, 2.25, 3, 1e-3, 7})
	var b bytes.Buffer
	if err := npy.Write(&b, m); err != nil {
		t.Fatal(err)
	}
	ds, err := ReadNPY(writeTemp(t, "m.npy", b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0.5, -1, 2.25, 3, 1e-3, 7}
	if ds.Rows != 3 || ds.D != 2 || fmt.Sprint(ds.X) != fmt.Sprint(want) {
		t.Fatalf("got %d×%d %v, want 3×2 %v", ds.Rows, ds.D, ds.X, want)
	}
}

// TestWriteNPYReadByNpyio checks that what WriteNPY writes is read by
// npyio, an independent reader, with the same data.
func TestWriteNPYReadByNpyio(t *testing.T) {
	vals := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	var b bytes.Buffer
	if err := WriteNPY(&b, 4, 2, vals); err != nil {
		t.Fatal(err)
	}
	r, err := npy.NewReader(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.Header.Descr.Shape) != "[4 2]" || r.Header.Descr.Type != "'<f4'" || r.Header.Descr.Fortran {
		t.Fatalf("npyio header %v", r.Header)
	}
	var got []float32
	if err := r.Read(&got); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(vals) {
		t.Fatalf("npyio read %v, want %v", got, vals)
	}
}

// TestWriteNPYHeaderBytes checks the header bytes against the format
// (numpy's NEP 1, version 1.0): the magic "\x93NUMPY", major 1, minor 0,
// the header length as a little-endian uint16, then the dict as numpy's
// repr writes it, padded with spaces and ended by '\n' so that preamble
// and header together are a multiple of 64 bytes long.
func TestWriteNPYHeaderBytes(t *testing.T) {
	for _, c := range []struct {
		descr   string
		fortran bool
		shape   []int64
		dict    string
		size    int // preamble and header, a multiple of 64
	}{
		{"<f4", false, []int64{2, 3}, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 128},
		{"<i4", false, []int64{14}, "{'descr': '<i4', 'fortran_order': False, 'shape': (14,), }", 128},
		{"<f8", true, []int64{37, 5}, "{'descr': '<f8', 'fortran_order': True, 'shape': (37, 5), }", 128},
		{"|u1", false, []int64{}, "{'descr': '|u1', 'fortran_order': False, 'shape': (), }", 128},
		{"<f4", false, []int64{2, 2, 2}, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", 128},
		{"<f4", false, []int64{1 << 40, 123456789, 987654321, 5, 1 << 40, 123456789, 987654321}, // past 128 bytes
			"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 123456789, 987654321, 5, 1099511627776, 123456789, 987654321), }", 192},
	} {
		hlen := c.size - 10
		want := "\x93NUMPY" + "\x01\x00" + string([]byte{byte(hlen), byte(hlen >> 8)}) +
			c.dict + strings.Repeat(" ", hlen-len(c.dict)-1) + "\n"
		var b bytes.Buffer
		if err := WriteNPYHeader(&b, c.descr, c.fortran, c.shape...); err != nil {
			t.Fatal(err)
		}
		if b.String() != want {
			t.Errorf("%s %v fortran %v:\n got %q\nwant %q", c.descr, c.shape, c.fortran, b.String(), want)
		}
		if b.Len()%64 != 0 {
			t.Errorf("%s %v: header of %d bytes, not a multiple of 64", c.descr, c.shape, b.Len())
		}
	}
	// The fixed-size shard header ingest writes (128 bytes, its
	// shardHeaderBytes) is the same but for its padding.
	got := EncodeNPYHeaderSize(128, "<f4", 3, 4)
	dict := "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"
	if want := "\x93NUMPY\x01\x00\x76\x00" + dict + strings.Repeat(" ", 118-len(dict)-1) + "\n"; string(got) != want {
		t.Errorf("shard header\n got %q\nwant %q", got, want)
	}
}

// TestWriteNPYRoundTrip reads what WriteNPY and WriteNPYHeader write back
// through the package's own readers: the streaming matrix reader (C and
// Fortran order) and the labels reader.
func TestWriteNPYRoundTrip(t *testing.T) {
	rows, cols := 37, 5
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(i)*0.25 - 7
	}
	var b bytes.Buffer
	if err := WriteNPY(&b, rows, cols, x); err != nil {
		t.Fatal(err)
	}
	if want := 128 + 4*rows*cols; b.Len() != want {
		t.Fatalf("file of %d bytes, want %d", b.Len(), want)
	}
	ds, err := ReadNPY(writeTemp(t, "x.npy", b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if ds.Rows != rows || ds.D != cols || !slices.Equal(ds.X, x) {
		t.Fatalf("read back %d×%d, want %d×%d and the same values", ds.Rows, ds.D, rows, cols)
	}

	// Fortran order, float64: the header says so and the reader transposes.
	b.Reset()
	if err := WriteNPYHeader(&b, "<f8", true, int64(rows), int64(cols)); err != nil {
		t.Fatal(err)
	}
	for j := range cols {
		for i := range rows {
			b.Write(binary.LittleEndian.AppendUint64(nil, math.Float64bits(float64(x[i*cols+j]))))
		}
	}
	if ds, err = ReadNPY(writeTemp(t, "f.npy", b.Bytes())); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ds.X, x) {
		t.Fatal("Fortran-order float64 read back differs")
	}

	// int32 labels, shape (n,).
	labels := []int32{3, -1, 70000, 0, 9}
	b.Reset()
	if err := WriteNPYHeader(&b, "<i4", false, int64(len(labels))); err != nil {
		t.Fatal(err)
	}
	for _, l := range labels {
		b.Write(binary.LittleEndian.AppendUint32(nil, uint32(l)))
	}
	src, err := OpenLabels(writeTemp(t, "l.npy", b.Bytes()), "")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if got, err := readAllLabels(src); err != nil || !slices.Equal(got, labels) {
		t.Fatalf("labels read back %v, %v; want %v", got, err, labels)
	}

	// An empty matrix writes a header alone (the reader refuses it as
	// empty, as it refuses numpy's).
	b.Reset()
	if err := WriteNPY(&b, 0, 3, nil); err != nil || b.Len() != 128 {
		t.Fatalf("0×3: %d bytes, %v", b.Len(), err)
	}
}

// TestWriteNPYPanicsOnShapeMismatch: the shape is the caller's to get
// right, as in gonum.
func TestWriteNPYPanicsOnShapeMismatch(t *testing.T) {
	for name, f := range map[string]func(){
		"len":      func() { WriteNPY(io.Discard, 2, 3, make([]float32, 5)) },
		"negative": func() { WriteNPYHeader(io.Discard, "<f4", false, -1, 3) },
		"quote":    func() { WriteNPYHeader(io.Discard, "<f4'", false, 1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// badNPYCases are malformed .npy inputs and a fragment their error must hold.
var badNPYCases = []struct {
	name, want string
	file       []byte
}{
	{"empty file", "too short", nil},
	{"bad magic", "bad magic", []byte("\x93NUMPX\x01\x00\x10\x00{}              \n")},
	{"bad version", "version 9.0", []byte("\x93NUMPY\x09\x00\x10\x00")},
	{"truncated header", "truncated", []byte("\x93NUMPY\x01\x00\x40\x00{'descr'")},
	{"no newline, no dict", "want '{'", npyFile("garbage", nil)},
	{"rank 3", "shape (2, 3, 4) has rank 3", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", make([]byte, 96))},
	{"rank 1", "shape (6,) has rank 1", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", make([]byte, 24))},
	{"rank 0", "shape () has rank 0", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", make([]byte, 4))},
	{"int64 dtype", `dtype "<i8" not supported`, npyFile("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1), }", make([]byte, 8))},
	{"structured dtype", "want a quoted string", npyFile("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1, 1), }", make([]byte, 4))},
	{"zero rows", "shape (0, 3) is empty", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", nil)},
	{"zero columns", "shape (3, 0) is empty", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0), }", nil)},
	{"truncated data", "truncated: shape (2, 3) of <f4 needs", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", make([]byte, 20))},
	{"missing key", `missing key "fortran_order"`, npyFile("{'descr': '<f4', 'shape': (1, 1), }", make([]byte, 4))},
	{"duplicate key", `duplicate key "descr"`, npyFile("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }", make([]byte, 4))},
	{"unknown key", `unknown key "extra"`, npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), 'extra': 1}", make([]byte, 4))},
	{"bad bool", "want True or False", npyFile("{'descr': '<f4', 'fortran_order': 0, 'shape': (1, 1), }", make([]byte, 4))},
	{"negative dim", "want a non-negative integer", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 1), }", make([]byte, 4))},
	{"huge dims", "exceed the maximum width", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904), }", nil)},
	{"huge header length", "exceeds", []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff")},
	{"NaN", "row 1, column 2: NaN", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f32Bytes(binary.LittleEndian, 1, 2, 3, 4, 5, float32(math.NaN())))},
	{"Inf in Fortran order", "row 0, column 1: +Inf", npyFile("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f32Bytes(binary.LittleEndian, 1, 2, float32(math.Inf(1)), 4, 5, 6))},
	{"f8 beyond float32 range", "row 0, column 0: +Inf", npyFile("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }", f64Bytes(binary.LittleEndian, 1e300))},
}

func TestReadNPYBad(t *testing.T) {
	for _, c := range badNPYCases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "bad.npy", c.file)
			_, err := ReadNPY(path)
			checkBadInput(t, err, path, c.want)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope.npy")
		_, err := ReadNPY(path)
		if !errors.Is(err, ErrBadInput) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Fatalf("error %v: want ErrBadInput and ErrNotExist naming %s", err, path)
		}
	})
}

// checkBadInput fails t unless err is a one-line ErrBadInput naming path
// and containing want.
func checkBadInput(t *testing.T, err error, path, want string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q: want ErrBadInput naming %s and containing %q", err, path, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q is not one line", err)
	}
}

func FuzzNPY(f *testing.F) {
	for _, c := range badNPYCases {
		f.Add(c.file)
	}
	f.Add(npyFile("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f32Bytes(binary.LittleEndian, 1, 2, 3, 4, 5, 6)))
	f.Add(npyFile("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", []byte{1, 2, 3, 4}))
	f.Fuzz(func(t *testing.T, data []byte) {
		src, err := newNPYSource("fuzz.npy", bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error %v does not wrap ErrBadInput", err)
			}
			return
		}
		ds, err := readAll("fuzz.npy", src)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error %v does not wrap ErrBadInput", err)
			}
			return
		}
		if int64(ds.Rows) != src.h.Shape[0] || int64(ds.D) != src.h.Shape[1] || len(ds.X) != ds.Rows*ds.D {
			t.Fatalf("read %d×%d (%d values) for shape %v", ds.Rows, ds.D, len(ds.X), src.h.Shape)
		}
		if err := checkFinite("fuzz", 0, ds.D, ds.X); err != nil {
			t.Fatal(err)
		}
	})
}
