package datafile

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadCSVGood(t *testing.T) {
	cases := []struct {
		name, text string
		rows, d    int
		want       string
	}{
		{"plain", "1,2,3\n4,5,6\n", 2, 3, "[1 2 3 4 5 6]"},
		{"header", "a,b,c\n1,2,3\n4,5,6\n", 2, 3, "[1 2 3 4 5 6]"},
		{"spaces, CRLF, no final newline", " 1 , 2.5\r\n-3,4e-1", 2, 2, "[1 2.5 -3 0.4]"},
		{"blank lines skipped", "1\n\n2\n\n", 2, 1, "[1 2]"},
		{"quoted numbers", "\"1\",\"2\"\n", 1, 2, "[1 2]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds, err := ReadCSV(writeTemp(t, "x.csv", []byte(c.text)))
			if err != nil {
				t.Fatal(err)
			}
			if ds.Rows != c.rows || ds.D != c.d || fmt.Sprint(ds.X) != c.want {
				t.Fatalf("got %d×%d %v, want %d×%d %s", ds.Rows, ds.D, ds.X, c.rows, c.d, c.want)
			}
		})
	}
}

// TestReadCSVManyRows crosses the reader's internal batch boundary.
func TestReadCSVManyRows(t *testing.T) {
	var b strings.Builder
	b.WriteString("x,y\n")
	for i := range 70000 {
		fmt.Fprintf(&b, "%d,%d\n", i, -i)
	}
	ds, err := ReadCSV(writeTemp(t, "big.csv", []byte(b.String())))
	if err != nil {
		t.Fatal(err)
	}
	if ds.Rows != 70000 || ds.D != 2 {
		t.Fatalf("got %d×%d, want 70000×2", ds.Rows, ds.D)
	}
	for _, i := range []int{0, 1, 65535, 65536, 69999} {
		if r := ds.Row(i); r[0] != float32(i) || r[1] != float32(-i) {
			t.Fatalf("row %d = %v", i, r)
		}
	}
}

// badCSVCases are malformed CSV inputs and a fragment their error must hold.
var badCSVCases = []struct{ name, text, want string }{
	{"empty", "", "no rows"},
	{"only blank lines", "\n\n", "no rows"},
	{"header only", "a,b\n", "no rows after the header line"},
	{"ragged", "1,2,3\n4,5,6\n7,8\n", "line 3: 2 fields, want 3"},
	{"ragged after header", "a,b\n1,2\n3,4,5\n", "line 3: 3 fields, want 2"},
	{"non-numeric", "1,2\n3,x\n", `line 2, column 2: "x" is not a number`},
	{"mixed first line is not a header", "a,1\n2,3\n", `line 1, column 1: "a" is not a number`},
	{"empty field", "1,,3\n", `line 1, column 2: "" is not a number`},
	{"NaN", "1,2\nnan,3\n", `line 2, column 1: "nan" is not a finite float32`},
	{"Inf", "1,inf\n", `line 1, column 2: "inf" is not a finite float32`},
	{"beyond float32", "1e39\n", `line 1, column 1: "1e39" is not a finite float32`},
	{"bare quote", "1,2\n3,\"4\n", "line 2"},
}

func TestReadCSVBad(t *testing.T) {
	for _, c := range badCSVCases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "bad.csv", []byte(c.text))
			_, err := ReadCSV(path)
			checkBadInput(t, err, path, c.want)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope.csv")
		if _, err := ReadCSV(path); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), path) {
			t.Fatalf("error %v: want ErrBadInput naming %s", err, path)
		}
	})
}

func FuzzCSV(f *testing.F) {
	for _, c := range badCSVCases {
		f.Add(c.text)
	}
	f.Add("a,b\n1,2\n3,4\n")
	f.Add(" 1e-3 , -2 \r\n3,4")
	f.Fuzz(func(t *testing.T, text string) {
		src, err := newCSVSource("fuzz.csv", strings.NewReader(text))
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error %v does not wrap ErrBadInput", err)
			}
			return
		}
		ds, err := readAll("fuzz.csv", src)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("error %v does not wrap ErrBadInput", err)
			}
			return
		}
		if ds.D < 1 || ds.Rows < 1 || len(ds.X) != ds.Rows*ds.D {
			t.Fatalf("read %d×%d with %d values", ds.Rows, ds.D, len(ds.X))
		}
		if err := checkFinite("fuzz", 0, ds.D, ds.X); err != nil {
			t.Fatal(err)
		}
	})
}
