package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npy"
	"gonum.org/v1/gonum/mat"
)

// npyFile builds a .npy file by hand (independently of encodeNPYHeader):
// version 1.0, the given dict, then data.
func npyFile(dict string, data []byte) []byte {
	hdr := dict + strings.Repeat(" ", (64-(10+len(dict)+1)%64)%64) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(hdr)))
	b.WriteString(hdr)
	b.Write(data)
	return b.Bytes()
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

// TestEncodeNPYHeaderReadByNpyio checks that the shard header dsae writes is
// read by npyio with the same data.
func TestEncodeNPYHeaderReadByNpyio(t *testing.T) {
	vals := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	file := append(encodeNPYHeader("<f4", 4, 2), f32Bytes(binary.LittleEndian, vals...)...)
	if len(encodeNPYHeader("<f4", 4, 2))%64 != 0 {
		t.Fatalf("header length %d not a multiple of 64", len(encodeNPYHeader("<f4", 4, 2)))
	}
	r, err := npy.NewReader(bytes.NewReader(file))
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
