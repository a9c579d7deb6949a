package datafile

import (
	"encoding/binary"
	"slices"
	"testing"
)

func TestLabelFilesGood(t *testing.T) {
	be := binary.BigEndian
	want := []int32{3, -1, 70000, 0}
	var i8, i4be []byte
	for _, v := range want {
		i8 = le.AppendUint64(i8, uint64(int64(v)))
		i4be = be.AppendUint32(i4be, uint32(v))
	}
	cases := []struct {
		name, file string
		data       []byte
		want       []int32
	}{
		{"npy int64", "l.npy", npyFile("{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", i8), want},
		{"npy big-endian int32 (n,1)", "l.npy", npyFile("{'descr': '>i4', 'fortran_order': True, 'shape': (4, 1), }", i4be), want},
		{"npy uint8", "l.npy", npyFile("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", []byte{0, 9, 255}), []int32{0, 9, 255}},
		{"csv with header", "l.csv", []byte("label\n3\n-1\n70000\n0\n"), want},
		{"idx int32", "l-ubyte", idxFile(0x0C, []uint32{4}, i4be), want},
		{"idx ubyte gzip", "l-ubyte.gz", gz(t, idxFile(0x08, []uint32{2}, []byte{7, 2})), []int32{7, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, err := OpenLabels(writeTemp(t, c.file, c.data), "")
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			got, err := readAllLabels(src)
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestLabelFilesBad(t *testing.T) {
	cases := []struct {
		name, file string
		data       []byte
		want       string
	}{
		{"float dtype", "l.npy", npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", make([]byte, 4)), `labels dtype "<f4" not supported`},
		{"2-D", "l.npy", npyFile("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", make([]byte, 24)), "labels shape (2, 3)"},
		{"int64 beyond int32", "l.npy", npyFile("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", le.AppendUint64(nil, 1<<40)), "outside int32"},
		{"truncated", "l.npy", npyFile("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", make([]byte, 8)), "truncated"},
		{"csv two columns", "l.csv", []byte("1\n2,3\n"), "line 2: 2 fields"},
		{"csv float", "l.csv", []byte("1\n2.5\n"), `line 2: "2.5" is not an int32 label`},
		{"csv empty", "l.csv", []byte("label\n"), "no labels"},
		{"idx float", "l-ubyte", idxFile(0x0D, []uint32{1}, make([]byte, 4)), "IDX labels must be integers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, c.file, c.data)
			src, err := OpenLabels(path, "")
			if err == nil {
				_, err = readAllLabels(src)
				src.Close()
			}
			checkBadInput(t, err, path, c.want)
		})
	}
}

var le = binary.LittleEndian
