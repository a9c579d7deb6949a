package cpuset

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseFormat(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
		text string
	}{
		{"0", []int{0}, "0"},
		{"3,1,2", []int{1, 2, 3}, "1-3"},
		{"0-3,8,10-11", []int{0, 1, 2, 3, 8, 10, 11}, "0-3,8,10-11"},
		{" 4 , 4-5 ", []int{4, 5}, "4-5"},
		{"7-7", []int{7}, "7"},
	} {
		got, err := Parse(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", c.in, got, err, c.want)
			continue
		}
		if f := Format(got); f != c.text {
			t.Errorf("Format(%v) = %q, want %q", got, f, c.text)
		}
	}
	for _, c := range []struct{ in, names string }{
		{"", "empty"},
		{"a", `"a"`},
		{"1,,2", `""`},
		{"3-1", "range ends before it starts"},
		{"-1", `"-1"`},
		{"0-", `"0-"`},
		{"99999", "[0, 16384)"},
	} {
		_, err := Parse(c.in)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.names) {
			t.Errorf("Parse(%q) = %v; want ErrInvalid naming %s", c.in, err, c.names)
		}
	}
}

func TestSplit(t *testing.T) {
	avail := []int{0, 1, 2, 3, 6, 7}
	got := Split(avail, 3, 2)
	want := [][]int{{0, 1}, {2, 3}, {6, 7}}
	if len(got) != len(want) {
		t.Fatalf("Split = %v, want %v", got, want)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("Split = %v, want %v", got, want)
		}
	}
	got[0][0] = 99
	if avail[0] != 0 {
		t.Fatal("Split shares memory with avail")
	}
	for _, c := range [][2]int{{4, 2}, {7, 1}, {0, 1}, {2, 0}} {
		if s := Split(avail, c[0], c[1]); s != nil {
			t.Errorf("Split(%v, %d, %d) = %v, want nil (does not fit)", avail, c[0], c[1], s)
		}
	}
}
