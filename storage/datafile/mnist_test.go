package datafile

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsae/dsae/storage/mnistdata"
)

// The MNIST test split's label counts and first labels are published facts
// of the data set, not values computed by this package.
var mnistTestLabelCounts = [10]int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}

// withoutGoToolchain points every variable through which the go tool or its
// module cache could be found at an empty directory, for the rest of t.
func withoutGoToolchain(t *testing.T) {
	empty := t.TempDir()
	for _, v := range []string{"PATH", "HOME", "GOPATH", "GOMODCACHE", "GOROOT"} {
		t.Setenv(v, empty)
	}
	t.Setenv("GOFLAGS", "")
	t.Setenv(mnistDirEnv, "")
}

func TestLoadMNISTTest(t *testing.T) {
	withoutGoToolchain(t)
	ds, err := LoadMNIST("test")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Rows != 10000 || ds.D != 784 || len(ds.X) != 10000*784 || len(ds.Labels) != 10000 {
		t.Fatalf("got %d×%d, %d labels; want 10000×784 with labels", ds.Rows, ds.D, len(ds.Labels))
	}
	var counts [10]int
	for _, l := range ds.Labels {
		if l < 0 || l > 9 {
			t.Fatalf("label %d", l)
		}
		counts[l]++
	}
	if counts != mnistTestLabelCounts {
		t.Fatalf("label counts %v, want %v", counts, mnistTestLabelCounts)
	}
	if got := ds.Labels[:3]; got[0] != 7 || got[1] != 2 || got[2] != 1 {
		t.Fatalf("first labels %v, want [7 2 1]", got)
	}
	lo, hi, ones := float32(1), float32(0), 0
	for _, v := range ds.X {
		lo, hi = min(lo, v), max(hi, v)
		if v == 1 {
			ones++
		}
	}
	if lo != 0 || hi != 1 || ones == 0 {
		t.Fatalf("pixel range [%v, %v] with %d ones; want pixel/255 spanning [0, 1]", lo, hi, ones)
	}
}

// The training split comes from the embedded copy with no go tool, no
// module cache and no $DSAE_MNIST_DIR.
func TestOpenMNISTTrainEmbedded(t *testing.T) {
	withoutGoToolchain(t)
	ds, err := Open("mnist")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Rows != 60000 || ds.D != 784 || len(ds.Labels) != 60000 || ds.Labels[0] != 5 || ds.Labels[1] != 0 || ds.Labels[2] != 4 {
		t.Fatalf("got %d×%d, %d labels, first %v; want 60000×784, first labels [5 0 4]", ds.Rows, ds.D, len(ds.Labels), ds.Labels[:3])
	}
}

// copyMNIST writes the four embedded files into a new directory, each
// passed through edit (which may return nil to leave the file out).
func copyMNIST(t *testing.T, edit func(name string, gzipped []byte) []byte) string {
	t.Helper()
	dir := t.TempDir()
	for _, names := range mnistFiles {
		for _, name := range names {
			b, err := fs.ReadFile(mnistdata.FS(), name)
			if err != nil {
				t.Fatal(err)
			}
			if b = edit(name, b); b == nil {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	z, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// $DSAE_MNIST_DIR replaces the embedded copy: a directory whose test
// images are stored uncompressed with the first pixel set to 255 loads
// with exactly that difference.
func TestLoadMNISTDirOverride(t *testing.T) {
	withoutGoToolchain(t)
	embedded, err := LoadMNIST("test")
	if err != nil {
		t.Fatal(err)
	}
	if embedded.X[0] != 0 {
		t.Fatalf("embedded first pixel %v, want 0 (MNIST's borders are blank)", embedded.X[0])
	}
	dir := copyMNIST(t, func(name string, b []byte) []byte {
		if name != mnistdata.TestImages {
			return b
		}
		raw := gunzip(t, b)
		raw[16] = 255 // first pixel, after the 16-byte IDX3 header
		return raw
	})
	t.Setenv(mnistDirEnv, dir)
	ds, err := LoadMNIST("test")
	if err != nil {
		t.Fatalf("with $%s=%s: %v", mnistDirEnv, dir, err)
	}
	if ds.X[0] != 1 {
		t.Fatalf("first pixel %v, want 1: $%s was not read", ds.X[0], mnistDirEnv)
	}
	ds.X[0] = 0
	for i := range ds.X {
		if ds.X[i] != embedded.X[i] {
			t.Fatalf("pixel %d: %v, want the embedded %v", i, ds.X[i], embedded.X[i])
		}
	}
	for i := range ds.Labels {
		if ds.Labels[i] != embedded.Labels[i] {
			t.Fatalf("label %d: %d, want the embedded %d", i, ds.Labels[i], embedded.Labels[i])
		}
	}
}

func TestLoadMNISTUnknownSplit(t *testing.T) {
	if _, err := LoadMNIST("validation"); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "validation") {
		t.Fatalf("error %v, want ErrBadInput naming the split", err)
	}
}

func TestOpenBadRefs(t *testing.T) {
	for _, ref := range []string{"mnist:validation", "data.parquet", "noext"} {
		if _, err := Open(ref); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), strings.TrimPrefix(ref, "mnist:")) {
			t.Errorf("Open(%q): error %v, want ErrBadInput naming it", ref, err)
		}
	}
}
