package mnistdata

import (
	"crypto/md5"
	"encoding/hex"
	"io"
	"io/fs"
	"slices"
	"testing"
)

// The MD5 sums published with the original MNIST distribution (the same
// ones other frameworks verify their downloads against), and the files'
// sizes in bytes.
var published = map[string]struct {
	md5  string
	size int64
}{
	TrainImages: {"f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422},
	TrainLabels: {"d53e105ee54ea40749a09fcbcd1e9432", 28881},
	TestImages:  {"9fb629c4189551a2d022fa330f9573f3", 1648877},
	TestLabels:  {"ec29112dd5afa0611ce80d1b7f02629c", 4542},
}

func TestEmbeddedFilesAreTheOriginals(t *testing.T) {
	for name, want := range published {
		f, err := FS().Open(name)
		if err != nil {
			t.Fatal(err)
		}
		h := md5.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want.md5 || n != want.size {
			t.Errorf("%s: md5 %s, %d bytes; want %s, %d bytes", name, got, n, want.md5, want.size)
		}
	}
}

func TestFSHoldsOnlyTheFourFiles(t *testing.T) {
	entries, err := fs.ReadDir(FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{TestImages, TestLabels, TrainImages, TrainLabels} // ReadDir sorts by name
	if !slices.Equal(names, want) {
		t.Fatalf("FS holds %v, want %v", names, want)
	}
}
