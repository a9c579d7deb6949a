package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
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
			src, err := openLabelFile(writeTemp(t, c.file, c.data), "")
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
			src, err := openLabelFile(path, "")
			if err == nil {
				_, err = readAllLabels(src)
				src.Close()
			}
			checkBadInput(t, err, path, c.want)
		})
	}
}

func TestIngestWithLabels(t *testing.T) {
	dir := t.TempDir()
	a, b := testMatrix(30, 25, 2), testMatrix(31, 14, 2)
	pa, pb := writeNPYf32(t, dir, "a.npy", a, 25, 2), writeNPYf32(t, dir, "b.npy", b, 14, 2)
	var la strings.Builder
	var want []int32
	la.WriteString("y\n")
	for i := range 25 {
		la.WriteString(strings.Repeat("1", 1+i%3) + "\n") // 1, 11, 111, ...
		want = append(want, []int32{1, 11, 111}[i%3])
	}
	var lbBytes []byte
	for i := range 14 {
		lbBytes = le.AppendUint32(lbBytes, uint32(100+i))
		want = append(want, int32(100+i))
	}
	lbPath := writeTemp(t, "lb.npy", npyFile("{'descr': '<i4', 'fortran_order': False, 'shape': (14,), }", lbBytes))
	laPath := writeTemp(t, "la.csv", []byte(la.String()))
	store := newMemStore()
	m, err := Ingest(context.Background(), store, "lab", []string{pa, pb}, IngestOptions{ShardRows: 10, ChunkRows: 4, Labels: []string{laPath, lbPath}})
	if err != nil {
		t.Fatal(err)
	}
	checkPublished(t, store, m, append(slices.Clone(a), b...), want)

	// Label counts that do not match their data file, and a wrong number of
	// labels files, publish nothing.
	short := writeTemp(t, "short.npy", npyFile("{'descr': '<i4', 'fortran_order': False, 'shape': (13,), }", lbBytes[:52]))
	long := writeTemp(t, "long.csv", []byte(la.String()+"5\n"))
	for _, c := range []struct {
		labels []string
		want   string
	}{
		{[]string{laPath, short}, "labels of " + pb + ": only 13 labels"},
		{[]string{long, lbPath}, "labels of " + pa + ": more labels than its 25 rows"},
		{[]string{laPath}, "1 labels files for 2 input files"},
	} {
		store := newMemStore()
		_, err := Ingest(context.Background(), store, "lab", []string{pa, pb}, IngestOptions{Labels: c.labels})
		if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("labels %v: error %v, want %q", c.labels, err, c.want)
		}
		if len(store.keys()) != 0 {
			t.Errorf("labels %v: left %v", c.labels, store.keys())
		}
	}
}
