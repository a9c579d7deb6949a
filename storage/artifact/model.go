package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/dsae/dsae/storage"
)

// A finished model lives under jobs/<job>/model/: the files of the model
// directory written by training (sae.safetensors, cfg.json, metrics.json,
// pictures) and, written last, .manifest.json listing each file with its
// size and SHA-256. A model is visible only once its manifest exists.
const (
	modelManifestName = ".manifest.json"
	modelVersion      = 1
)

// requiredModelFiles must be present in every model directory.
var requiredModelFiles = []string{"sae.safetensors", "cfg.json"}

var modelFileRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$`)

// ModelManifest describes an uploaded model.
type ModelManifest struct {
	Version int         `json:"version"`
	Job     string      `json:"job"`
	Created time.Time   `json:"created"`
	Files   []ModelFile `json:"files"`
}

// ModelFile is one file of a model.
type ModelFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func modelPrefix(job string) string { return "jobs/" + job + "/model/" }

// UploadModel uploads the regular files at the top of dir (hidden files
// and subdirectories are skipped) under jobs/<job>/model/ and publishes
// them with a manifest written last. A model already there is replaced:
// its manifest is removed first, and files the new model lacks are deleted
// after the new manifest is written.
func UploadModel(ctx context.Context, c *storage.Client, job, dir string) (ModelManifest, error) {
	m := ModelManifest{Version: modelVersion, Job: job, Created: time.Now().UTC()}
	if err := checkJobID(job); err != nil {
		return m, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return m, fmt.Errorf("model directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if !modelFileRE.MatchString(e.Name()) {
			return m, fmt.Errorf("model directory %s: file name %q: use letters, digits, '.', '_' and '-'", dir, e.Name())
		}
		names = append(names, e.Name())
	}
	for _, req := range requiredModelFiles {
		if !slices.Contains(names, req) {
			return m, fmt.Errorf("model directory %s: missing %s (expected the output of dsae train)", dir, req)
		}
	}
	prefix := modelPrefix(job)
	if err := c.Delete(ctx, prefix+modelManifestName); err != nil {
		return m, fmt.Errorf("model %s: unpublish previous: %w", job, err)
	}
	for _, name := range names {
		mf, err := uploadModelFile(ctx, c, prefix+name, filepath.Join(dir, name))
		if err != nil {
			return m, fmt.Errorf("model %s: %w", job, err)
		}
		m.Files = append(m.Files, mf)
	}
	raw, _ := json.MarshalIndent(m, "", "  ")
	if err := c.Put(ctx, prefix+modelManifestName, strings.NewReader(string(raw)), int64(len(raw))); err != nil {
		return m, fmt.Errorf("model %s: publish: %w", job, err)
	}
	existing, err := c.List(ctx, prefix)
	if err != nil {
		return m, fmt.Errorf("model %s: %w", job, err)
	}
	for _, o := range existing {
		name := strings.TrimPrefix(o.Key, prefix)
		if name != modelManifestName && !slices.Contains(names, name) {
			if err := c.Delete(ctx, o.Key); err != nil {
				return m, fmt.Errorf("model %s: remove stale %s: %w", job, name, err)
			}
		}
	}
	return m, nil
}

// uploadModelFile hashes and uploads one file (an *os.File, so retries
// rewind it).
func uploadModelFile(ctx context.Context, c *storage.Client, key, path string) (ModelFile, error) {
	mf := ModelFile{Name: filepath.Base(path)}
	f, err := os.Open(path)
	if err != nil {
		return mf, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return mf, fmt.Errorf("%s: %w", path, err)
	}
	mf.Size, mf.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return mf, err
	}
	if err := c.Put(ctx, key, f, n); err != nil {
		return mf, err
	}
	return mf, nil
}

// GetModelManifest returns the manifest of job's model; ErrNotFound if no
// model was published.
func GetModelManifest(ctx context.Context, c *storage.Client, job string) (ModelManifest, error) {
	var m ModelManifest
	if err := checkJobID(job); err != nil {
		return m, err
	}
	rc, err := c.Get(ctx, modelPrefix(job)+modelManifestName)
	if errors.Is(err, storage.ErrNotFound) {
		return m, fmt.Errorf("no model for job %s: %w", job, storage.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("model %s: %w", job, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return m, fmt.Errorf("model %s: %w", job, err)
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Version != modelVersion {
		return m, fmt.Errorf("model %s: %w: manifest malformed", job, ErrCorrupt)
	}
	for _, f := range m.Files {
		if !modelFileRE.MatchString(f.Name) || f.Size < 0 {
			return m, fmt.Errorf("model %s: %w: manifest lists bad file %q", job, ErrCorrupt, f.Name)
		}
	}
	return m, nil
}

// PullModel downloads job's model into dest. Files are written into a
// temporary directory beside dest, checked against the manifest (size and
// SHA-256), synced, and the directory is renamed to dest at the end, so
// dest either holds the whole model or is untouched. An existing non-empty
// dest is ErrModelExists unless overwrite is set.
func PullModel(ctx context.Context, c *storage.Client, job, dest string, overwrite bool) (ModelManifest, error) {
	m, err := GetModelManifest(ctx, c, job)
	if err != nil {
		return m, err
	}
	dest = filepath.Clean(dest)
	if err := checkDest(dest, overwrite); err != nil {
		return m, err
	}
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return m, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".pull-")
	if err != nil {
		return m, err
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	for _, f := range m.Files {
		if err := downloadModelFile(ctx, c, modelPrefix(job)+f.Name, filepath.Join(tmp, f.Name), f); err != nil {
			return m, fmt.Errorf("model %s: %w", job, err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return m, err
	}
	if err := replaceDir(tmp, dest); err != nil {
		return m, err
	}
	return m, nil
}

// checkDest refuses an existing destination unless it is an empty
// directory or overwrite is set.
func checkDest(dest string, overwrite bool) error {
	fi, err := os.Stat(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is a file", ErrModelExists, dest)
	}
	entries, err := os.ReadDir(dest)
	if err != nil {
		return err
	}
	if len(entries) > 0 && !overwrite {
		return fmt.Errorf("%w: %s is not empty (pass --overwrite to replace it)", ErrModelExists, dest)
	}
	return nil
}

// replaceDir renames src to dest, moving an existing dest aside first and
// removing it after.
func replaceDir(src, dest string) error {
	var old string
	if _, err := os.Stat(dest); err == nil {
		old = src + ".old"
		if err := os.Rename(dest, old); err != nil {
			return err
		}
	}
	if err := os.Rename(src, dest); err != nil {
		if old != "" {
			os.Rename(old, dest)
		}
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

func downloadModelFile(ctx context.Context, c *storage.Client, key, path string, want ModelFile) error {
	rc, err := c.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, want.Size+1))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", want.Name, err)
	}
	if n != want.Size || hex.EncodeToString(h.Sum(nil)) != want.SHA256 {
		return fmt.Errorf("%s: %w: got %d bytes, manifest says %d bytes with sha256 %s", want.Name, ErrCorrupt, n, want.Size, want.SHA256)
	}
	return nil
}
