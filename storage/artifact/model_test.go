package artifact

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/storetest"
)

func writeModelDir(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func sameFiles(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d files, want %d", len(got), len(want))
	}
	for name, w := range want {
		if !bytes.Equal(got[name], w) {
			t.Fatalf("%s differs (%d bytes, want %d)", name, len(got[name]), len(w))
		}
	}
}

func TestModelUploadPull(t *testing.T) {
	_, c := newCheckpointTest(t, "")
	ctx := context.Background()
	files := map[string][]byte{
		"sae.safetensors": storetest.SeededBytes(20, 6<<20+3), // above the 5 MiB part size: multipart
		"cfg.json":        []byte(`{"architecture":"standard","d_in":784,"d_sae":196}`),
		"metrics.json":    []byte(`{"mse":0.01}`),
		"features.png":    storetest.SeededBytes(21, 5000),
	}
	src := writeModelDir(t, files)
	os.WriteFile(filepath.Join(src, ".hidden"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(src, "sub"), 0o755)
	m, err := UploadModel(ctx, c, "job-7", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 4 {
		t.Fatalf("manifest lists %d files", len(m.Files))
	}
	dest := filepath.Join(t.TempDir(), "out", "model")
	if _, err := PullModel(ctx, c, "job-7", dest, false); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, readDir(t, dest), files)
	// Pulling again refuses to clobber, unless asked.
	if _, err := PullModel(ctx, c, "job-7", dest, false); !errors.Is(err, ErrModelExists) {
		t.Fatalf("second pull: %v, want ErrModelExists", err)
	}
	os.WriteFile(filepath.Join(dest, "local-only"), []byte("x"), 0o644)
	if _, err := PullModel(ctx, c, "job-7", dest, true); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, readDir(t, dest), files)
	// Re-upload with a file fewer: the stale one disappears.
	os.Remove(filepath.Join(src, "features.png"))
	delete(files, "features.png")
	if _, err := UploadModel(ctx, c, "job-7", src); err != nil {
		t.Fatal(err)
	}
	objs, _ := c.List(ctx, "jobs/job-7/model/")
	var keys []string
	for _, o := range objs {
		keys = append(keys, strings.TrimPrefix(o.Key, "jobs/job-7/model/"))
	}
	if slices.Contains(keys, "features.png") || len(keys) != 4 {
		t.Fatalf("objects after re-upload: %v", keys)
	}
	if _, err := PullModel(ctx, c, "job-7", dest, true); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, readDir(t, dest), files)
}

func TestModelErrors(t *testing.T) {
	_, c := newCheckpointTest(t, "")
	ctx := context.Background()
	noCfg := writeModelDir(t, map[string][]byte{"sae.safetensors": []byte("w")})
	if _, err := UploadModel(ctx, c, "j", noCfg); err == nil || !strings.Contains(err.Error(), "cfg.json") {
		t.Fatalf("missing cfg.json: %v", err)
	}
	if _, err := UploadModel(ctx, c, "j", filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("missing directory accepted")
	}
	if _, err := UploadModel(ctx, c, "bad/job", noCfg); !errors.Is(err, ErrInvalidJobID) {
		t.Fatalf("bad job id: %v", err)
	}
	parent := t.TempDir()
	dest := filepath.Join(parent, "m")
	if _, err := PullModel(ctx, c, "no-such-job", dest, false); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("pull of a job without a model: %v, want ErrNotFound", err)
	}
	// A file corrupted in the store fails the pull and leaves nothing behind.
	files := map[string][]byte{"sae.safetensors": storetest.SeededBytes(30, 1000), "cfg.json": []byte("{}")}
	if _, err := UploadModel(ctx, c, "j", writeModelDir(t, files)); err != nil {
		t.Fatal(err)
	}
	bad := storetest.SeededBytes(31, 1000)
	c.Put(ctx, "jobs/j/model/sae.safetensors", bytes.NewReader(bad), int64(len(bad)))
	_, err := PullModel(ctx, c, "j", dest, false)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "sae.safetensors") {
		t.Fatalf("corrupted file: %v, want ErrCorrupt naming the file", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Fatalf("failed pull left %v", entries)
	}
	// An upload that never published its manifest is not a model.
	c.Put(ctx, "jobs/half/model/sae.safetensors", strings.NewReader("w"), 1)
	if _, err := PullModel(ctx, c, "half", dest, false); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unpublished model: %v, want ErrNotFound", err)
	}
}
