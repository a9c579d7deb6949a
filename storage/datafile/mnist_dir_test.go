package datafile_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dsae/dsae/storage/datafile"
	"github.com/dsae/dsae/storage/dataset"
	"github.com/dsae/dsae/storage/mnistdata"
	"github.com/dsae/dsae/storage/storetest"
)

// A $DSAE_MNIST_DIR with a missing or bad file is an error naming that
// file, from LoadMNIST and IngestMNIST alike, and IngestMNIST publishes
// nothing.
func TestMNISTDirOverrideBadFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("-short skips every malformed-MNIST-directory case (each copies and decodes the real MNIST files); run it with: go test -run '^TestMNISTDirOverrideBadFiles$' ./storage/datafile/")
	}
	datafile.WithoutGoToolchain(t)
	replace := func(target string, with []byte) func(string, []byte) []byte {
		return func(name string, b []byte) []byte {
			if name == target {
				return with
			}
			return b
		}
	}
	cases := []struct {
		name, split string
		edit        func(string, []byte) []byte
		want        []string // substrings of LoadMNIST's error, besides the directory
		ingestWant  []string // of IngestMNIST's, if not the same
		badInput    bool     // the error wraps datafile.ErrBadInput (a malformed file)
	}{
		{"missing labels", "train", replace(mnistdata.TestLabels, nil),
			[]string{"$" + datafile.MNISTDirEnv, "missing " + mnistdata.TestLabels}, nil, false},
		{"not IDX", "test", replace(mnistdata.TestImages, []byte("not an IDX file at all")),
			[]string{mnistdata.TestImages}, nil, true},
		{"truncated gzip", "test", replace(mnistdata.TestImages, []byte{0x1f, 0x8b, 8}),
			[]string{mnistdata.TestImages}, nil, true},
		{"not 28×28 bytes", "test", replace(mnistdata.TestImages, datafile.IDXFile(0x08, []uint32{10000, 784}, make([]byte, 10000*784))),
			[]string{mnistdata.TestImages, "is not MNIST's (n, 28, 28) bytes"}, nil, false},
		{"too few images", "test", replace(mnistdata.TestImages, datafile.Gz(t, datafile.IDXFile(0x08, []uint32{3, 28, 28}, make([]byte, 3*784)))),
			[]string{mnistdata.TestImages, "3 images, want 10000"},
			[]string{mnistdata.TestImages, "more labels than its 3 rows"}, false},
		{"labels not integers", "test", replace(mnistdata.TestLabels, datafile.IDXFile(0x0D, []uint32{1}, make([]byte, 4))),
			[]string{mnistdata.TestLabels, "IDX labels must be integers"}, nil, true},
		{"too few labels", "test", replace(mnistdata.TestLabels, datafile.IDXFile(0x08, []uint32{2}, []byte{7, 2})),
			[]string{mnistdata.TestLabels, "2 labels for 10000 images"},
			[]string{"labels of", mnistdata.TestImages, "only 2 labels"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := datafile.CopyMNIST(t, c.edit)
			t.Setenv(datafile.MNISTDirEnv, dir)
			check := func(what string, err error, want []string) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: no error", what)
				}
				msg := err.Error()
				for _, w := range append(want, dir) {
					if !strings.Contains(msg, w) {
						t.Errorf("%s: error %q does not contain %q", what, msg, w)
					}
				}
				if strings.Contains(msg, "\n") {
					t.Errorf("%s: error %q is not one line", what, msg)
				}
				if c.badInput && !errors.Is(err, datafile.ErrBadInput) {
					t.Errorf("%s: error %q does not wrap datafile.ErrBadInput", what, msg)
				}
			}
			_, err := datafile.LoadMNIST(c.split)
			check("LoadMNIST", err, c.want)
			if c.ingestWant == nil {
				c.ingestWant = c.want
			}
			// IngestMNIST fails the same way (after publishing mn-train when
			// only the test split is bad) and leaves nothing of mn-test.
			store := storetest.NewMemStore()
			_, err = dataset.IngestMNIST(context.Background(), store, "mn", dataset.IngestOptions{})
			check("IngestMNIST", err, c.ingestWant)
			for _, k := range store.Keys() {
				if strings.HasPrefix(k, "datasets/mn-test/") {
					t.Errorf("IngestMNIST left %s behind", k)
				}
			}
		})
	}
}
