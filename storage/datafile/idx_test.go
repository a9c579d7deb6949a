package datafile

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// idxFile builds an IDX file by hand.
func idxFile(typ byte, dims []uint32, data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, typ, byte(len(dims))})
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, d)
	}
	b.Write(data)
	return b.Bytes()
}

func gz(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readIDXBytes(data []byte) (*Matrix, error) {
	src, err := newIDXSource("x.idx", bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return readAll("x.idx", src)
}

func TestIDXGood(t *testing.T) {
	be := binary.BigEndian
	i16 := make([]byte, 4)
	be.PutUint16(i16, uint16(0xFFFE)) // -2
	be.PutUint16(i16[2:], 300)
	cases := []struct {
		name    string
		file    []byte
		rows, d int
		want    string
	}{
		{"ubyte images 2×2×2", idxFile(0x08, []uint32{2, 2, 2}, []byte{0, 1, 2, 255, 4, 5, 6, 7}), 2, 4, "[0 1 2 255 4 5 6 7]"},
		{"labels rank 1", idxFile(0x08, []uint32{3}, []byte{7, 2, 1}), 3, 1, "[7 2 1]"},
		{"signed byte", idxFile(0x09, []uint32{1, 2}, []byte{0xFF, 3}), 1, 2, "[-1 3]"},
		{"int16", idxFile(0x0B, []uint32{1, 2}, i16), 1, 2, "[-2 300]"},
		{"float32", idxFile(0x0D, []uint32{2, 1}, f32Bytes(be, 1.5, -2)), 2, 1, "[1.5 -2]"},
		{"float64", idxFile(0x0E, []uint32{1, 1}, f64Bytes(be, 0.25)), 1, 1, "[0.25]"},
	}
	for _, c := range cases {
		for _, zip := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/gzip=%v", c.name, zip), func(t *testing.T) {
				file := c.file
				if zip {
					file = gz(t, file)
				}
				ds, err := readIDXBytes(file)
				if err != nil {
					t.Fatal(err)
				}
				if ds.Rows != c.rows || ds.D != c.d || fmt.Sprint(ds.X) != c.want {
					t.Fatalf("got %d×%d %v, want %d×%d %s", ds.Rows, ds.D, ds.X, c.rows, c.d, c.want)
				}
			})
		}
	}
}

var badIDXCases = []struct {
	name, want string
	file       []byte
}{
	{"empty", "too short", nil},
	{"bad magic", "bad magic", []byte{1, 0, 8, 1, 0, 0, 0, 1, 5}},
	{"unknown type", "type 0x07 not supported", idxFile(0x07, []uint32{1}, []byte{1})},
	{"rank 0", "rank 0", idxFile(0x08, nil, nil)},
	{"truncated dims", "truncated dimensions", []byte{0, 0, 8, 3, 0, 0, 0, 1}},
	{"zero rows", "is empty", idxFile(0x08, []uint32{0, 4}, nil)},
	{"truncated data", "data ends before row", idxFile(0x08, []uint32{2, 3}, []byte{1, 2, 3, 4})},
	{"huge", "too large", idxFile(0x08, []uint32{0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, nil)},
	{"too wide", "exceed the maximum width", idxFile(0x08, []uint32{2, 0x30000002, 1}, []byte{1, 2})},
	{"NaN", "row 1, column 0: NaN", idxFile(0x0D, []uint32{2, 1}, []byte{0, 0, 0, 0, 0x7f, 0xc0, 0, 0})},
	{"bad gzip", "x.idx", []byte{0x1f, 0x8b, 0, 0}},
}

func TestIDXBad(t *testing.T) {
	for _, c := range badIDXCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readIDXBytes(c.file)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "x.idx") {
				t.Fatalf("error %q: want ErrBadInput naming x.idx and containing %q", err, c.want)
			}
		})
	}
}

func FuzzIDX(f *testing.F) {
	for _, c := range badIDXCases {
		f.Add(c.file)
	}
	f.Add(idxFile(0x08, []uint32{2, 2, 2}, []byte{0, 1, 2, 255, 4, 5, 6, 7}))
	f.Add(idxFile(0x0E, []uint32{1, 1}, f64Bytes(binary.BigEndian, 0.25)))
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := readIDXBytes(data)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error %v does not wrap ErrBadInput", err)
			}
			return
		}
		if len(ds.X) != ds.Rows*ds.D || ds.Rows < 1 {
			t.Fatalf("read %d×%d with %d values", ds.Rows, ds.D, len(ds.X))
		}
	})
}
