package dataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npy"

	"github.com/dsae/dsae/storage/datafile"
	"github.com/dsae/dsae/storage/storetest"

	"encoding/binary"
)

// testMatrix returns rows×d seeded values.
func testMatrix(seed uint64, rows, d int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 99))
	x := make([]float32, rows*d)
	for i := range x {
		x[i] = float32(rng.NormFloat64()*3 + float64(i%d))
	}
	return x
}

// writeNPYf32 writes x (rows×d) as a float32 .npy file in dir.
func writeNPYf32(t testing.TB, dir, name string, x []float32, rows, d int) string {
	t.Helper()
	var file bytes.Buffer
	if err := datafile.WriteNPY(&file, rows, d, x); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, file.Bytes())
}

// writeFile writes data to the file name in dir and returns its path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// npyFile is a C-order .npy file of dtype descr and shape holding data.
func npyFile(descr string, data []byte, shape ...int64) []byte {
	return append(datafile.EncodeNPYHeader(descr, false, shape...), data...)
}

var le = binary.LittleEndian

// checkPublished verifies a published dataset against want (rows×d) using
// independent readers: npyio for the shards, crypto/sha256 and crc32 for the
// checksums.
func checkPublished(t *testing.T, store *storetest.MemStore, m *Manifest, want []float32, wantLabels []int32) {
	t.Helper()
	got, err := LoadManifest(context.Background(), store, m.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows*int64(got.D) != int64(len(want)) {
		t.Fatalf("manifest %d×%d, want %d values", got.Rows, got.D, len(want))
	}
	var all []float32
	var labels []int32
	for i, sh := range got.Shards {
		obj := store.Object(t, sh.Key)
		if sum := sha256.Sum256(obj); hex.EncodeToString(sum[:]) != sh.SHA256 || int64(len(obj)) != sh.Bytes {
			t.Fatalf("shard %d: sha256/size mismatch", i)
		}
		r, err := npy.NewReader(bytes.NewReader(obj))
		if err != nil {
			t.Fatalf("shard %d: npyio: %v", i, err)
		}
		if fmt.Sprint(r.Header.Descr.Shape) != fmt.Sprint([]int{int(sh.Rows), got.D}) || r.Header.Descr.Fortran {
			t.Fatalf("shard %d: npyio header %v", i, r.Header)
		}
		var vals []float32
		if err := r.Read(&vals); err != nil {
			t.Fatalf("shard %d: npyio read: %v", i, err)
		}
		all = append(all, vals...)
		data := obj[sh.DataOffset:]
		chunkBytes := got.ChunkRows * got.D * 4
		for c, want := range sh.ChunkCRC32C {
			part := data[c*chunkBytes : min(len(data), (c+1)*chunkBytes)]
			if crc32.Checksum(part, crc32.MakeTable(crc32.Castagnoli)) != want {
				t.Fatalf("shard %d chunk %d: CRC mismatch", i, c)
			}
		}
		if got.HasLabels {
			lobj := store.Object(t, sh.LabelsKey)
			var l []int32
			if err := npy.Read(bytes.NewReader(lobj), &l); err != nil {
				t.Fatalf("labels %d: npyio: %v", i, err)
			}
			labels = append(labels, l...)
		}
	}
	if !slices.Equal(all, want) {
		t.Fatal("shards read back with npyio differ from the input")
	}
	if !slices.Equal(labels, wantLabels) {
		t.Fatalf("labels read back differ from the input (%d vs %d)", len(labels), len(wantLabels))
	}
	// Per-feature statistics, computed here directly in float64.
	for j := 0; j < got.D; j++ {
		var s, ss float64
		for i := j; i < len(want); i += got.D {
			s += float64(want[i])
		}
		mean := s / float64(got.Rows)
		for i := j; i < len(want); i += got.D {
			ss += (float64(want[i]) - mean) * (float64(want[i]) - mean)
		}
		std := math.Sqrt(ss / float64(got.Rows))
		if math.Abs(got.Mean[j]-mean) > 1e-6*(1+math.Abs(mean)) || math.Abs(got.Std[j]-std) > 1e-6*(1+std) {
			t.Fatalf("feature %d: mean/std %v/%v, want %v/%v", j, got.Mean[j], got.Std[j], mean, std)
		}
	}
}

func TestIngestNPYRoundTrip(t *testing.T) {
	dir := t.TempDir()
	x := testMatrix(1, 1000, 7)
	path := writeNPYf32(t, dir, "x.npy", x, 1000, 7)
	store := storetest.NewMemStore()
	m, err := Ingest(context.Background(), store, "rt", []string{path}, IngestOptions{ShardRows: 300, ChunkRows: 64, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Shards) != 4 || m.Shards[3].Rows != 100 || m.Rows != 1000 || m.D != 7 || m.ChunkRows != 64 || m.Source.Format != "npy" {
		t.Fatalf("manifest %+v", m)
	}
	checkPublished(t, store, m, x, nil)
	if names, err := ListDatasets(context.Background(), store); err != nil || !slices.Equal(names, []string{"rt"}) {
		t.Fatalf("ListDatasets = %v, %v", names, err)
	}
	// Staging files are gone.
	if left, _ := filepath.Glob(filepath.Join(dir, "dsae-shard-*")); len(left) != 0 {
		t.Fatalf("staged files left behind: %v", left)
	}
}

func TestIngestSeveralFilesAndFormats(t *testing.T) {
	dir := t.TempDir()
	a := testMatrix(2, 50, 3)
	b := testMatrix(3, 70, 3)
	p1 := writeNPYf32(t, dir, "a.npy", a, 50, 3)
	var csv strings.Builder
	csv.WriteString("f1,f2,f3\n")
	for i := 0; i < 70; i++ {
		fmt.Fprintf(&csv, "%v,%v,%v\n", b[3*i], b[3*i+1], b[3*i+2])
	}
	p2 := writeFile(t, t.TempDir(), "b.csv", []byte(csv.String()))
	store := storetest.NewMemStore()
	m, err := Ingest(context.Background(), store, "two", []string{p1, p2}, IngestOptions{ShardRows: 32, ChunkRows: 5})
	if err != nil {
		t.Fatal(err)
	}
	if m.Source.Format != "mixed" || len(m.Shards) != 4 {
		t.Fatalf("source %v, %d shards", m.Source, len(m.Shards))
	}
	checkPublished(t, store, m, append(slices.Clone(a), b...), nil)
}

func TestIngestMNISTTestSplit(t *testing.T) {
	store := storetest.NewMemStore()
	t.Setenv("DSAE_MNIST_DIR", "")
	img, lbl, err := datafile.OpenMNIST("test")
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	defer lbl.Close()
	m, err := ingest(context.Background(), store, "mn-test", []ingestInput{{file: "t10k", x: img, labels: lbl, div: 255}},
		SourceInfo{Format: "builtin", Files: []string{"mnist:test"}}, IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := datafile.LoadMNIST("test")
	if err != nil {
		t.Fatal(err)
	}
	if !m.HasLabels || m.ChunkRows != 128 { // 512 KiB / 3136 B per row = 167 → 128
		t.Fatalf("has labels %v, chunk rows %d", m.HasLabels, m.ChunkRows)
	}
	checkPublished(t, store, m, want.X, want.Labels)
	rd := NewReader(store, m, ReaderOptions{})
	defer rd.Close()
	ds, err := rd.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ds.X, want.X) || !slices.Equal(ds.Labels, want.Labels) {
		t.Fatal("Reader.Load differs from LoadMNIST")
	}
}

func TestIngestBadInputPublishesNothing(t *testing.T) {
	dir := t.TempDir()
	good := writeNPYf32(t, dir, "good.npy", testMatrix(4, 10, 3), 10, 3)
	wide := writeNPYf32(t, dir, "wide.npy", testMatrix(4, 10, 4), 10, 4)
	file := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	nanRow := make([]float32, 30)
	nanRow[3*7+2] = float32(math.NaN())
	cases := []struct {
		name  string
		files []string
		opt   IngestOptions
		want  string
	}{
		{"malformed header", []string{file("m.npy", "\x93NUMPY\x01\x00\x10\x00{'descr': 1}  \n")}, IngestOptions{}, "malformed .npy header"},
		{"rank 3", []string{file("r3.npy", string(npyFile("<f4", make([]byte, 4), 1, 1, 1)))}, IngestOptions{}, "rank 3"},
		{"dtype", []string{file("i8.npy", string(npyFile("<i8", make([]byte, 8), 1, 1)))}, IngestOptions{}, `dtype "<i8" not supported`},
		{"ragged csv", []string{file("r.csv", "1,2\n3,4\n5\n")}, IngestOptions{}, "line 3: 1 fields, want 2"},
		{"non-numeric csv", []string{file("n.csv", "1,2\n3,four\n")}, IngestOptions{}, `line 2, column 2: "four"`},
		{"NaN after the first shard", []string{good, writeNPYf32(t, dir, "nan.npy", nanRow, 10, 3)}, IngestOptions{ShardRows: 4, ChunkRows: 2}, "row 7, column 2: NaN"},
		{"different widths", []string{good, wide}, IngestOptions{}, "wide.npy has 4 columns but " + good + " has 3"},
		{"empty csv", []string{file("e.csv", "a,b\n")}, IngestOptions{}, "no rows"},
		{"missing file", []string{filepath.Join(dir, "nope.npy")}, IngestOptions{}, "nope.npy"},
		{"unknown extension", []string{file("x.parquet", "")}, IngestOptions{}, "--format"},
		{"unknown format", []string{good}, IngestOptions{Format: "hdf5"}, `format "hdf5" unknown`},
		{"no files", nil, IngestOptions{}, "no input files"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			store := storetest.NewMemStore()
			_, err := Ingest(context.Background(), store, "bad", c.files, c.opt)
			if !errors.Is(err, datafile.ErrBadInput) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v: want ErrBadInput containing %q", err, c.want)
			}
			if keys := store.Keys(); len(keys) != 0 {
				t.Fatalf("objects left after a failed ingest: %v", keys)
			}
		})
	}
	t.Run("bad name", func(t *testing.T) {
		for _, name := range []string{"", "UP", "a/b", "..", "-x", strings.Repeat("a", 101)} {
			if _, err := Ingest(context.Background(), storetest.NewMemStore(), name, []string{good}, IngestOptions{}); !errors.Is(err, datafile.ErrBadInput) {
				t.Errorf("name %q: error %v, want ErrBadInput", name, err)
			}
		}
	})
}

func TestIngestExistingNameAndOverwrite(t *testing.T) {
	dir := t.TempDir()
	a := testMatrix(5, 20, 2)
	b := testMatrix(6, 9, 2)
	pa := writeNPYf32(t, dir, "a.npy", a, 20, 2)
	pb := writeNPYf32(t, dir, "b.npy", b, 9, 2)
	store := storetest.NewMemStore()
	ctx := context.Background()
	if _, err := Ingest(ctx, store, "ds", []string{pa}, IngestOptions{ShardRows: 8}); err != nil {
		t.Fatal(err)
	}
	before := store.Keys()
	_, err := Ingest(ctx, store, "ds", []string{pb}, IngestOptions{})
	if !errors.Is(err, ErrDatasetExists) || errors.Is(err, datafile.ErrBadInput) || !strings.Contains(err.Error(), "--overwrite") ||
		strings.Contains(err.Error(), datafile.ErrBadInput.Error()) {
		t.Fatalf("error %v, want ErrDatasetExists mentioning --overwrite, not bad input data", err)
	}
	if !slices.Equal(store.Keys(), before) {
		t.Fatal("a refused ingest changed the store")
	}
	m, err := Ingest(ctx, store, "ds", []string{pb}, IngestOptions{Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	checkPublished(t, store, m, b, nil)
	if got := store.Keys(); len(got) != 2 { // one shard + manifest: the old shards are gone
		t.Fatalf("keys after overwrite: %v", got)
	}
	if err := DeleteDataset(ctx, store, "ds"); err != nil {
		t.Fatal(err)
	}
	if len(store.Keys()) != 0 {
		t.Fatalf("keys after delete: %v", store.Keys())
	}
	if err := DeleteDataset(ctx, store, "ds"); !errors.Is(err, ErrDatasetNotFound) {
		t.Fatalf("second delete: %v, want ErrDatasetNotFound", err)
	}
	if _, err := LoadManifest(ctx, store, "ds"); !errors.Is(err, ErrDatasetNotFound) {
		t.Fatalf("LoadManifest of a deleted dataset: %v", err)
	}
}

// TestIngestKilledMidwayThenRerun stops the store after two uploads, as if
// the process died (not even its cleanup reaches the store), then reruns.
func TestIngestKilledMidwayThenRerun(t *testing.T) {
	dir := t.TempDir()
	x := testMatrix(7, 100, 4)
	p := writeNPYf32(t, dir, "x.npy", x, 100, 4)
	store := storetest.NewMemStore()
	store.FailAfterPuts = 2
	_, err := Ingest(context.Background(), store, "k", []string{p}, IngestOptions{ShardRows: 10, ChunkRows: 4})
	if !errors.Is(err, storetest.ErrDead) {
		t.Fatalf("error %v, want the store failure", err)
	}
	store.FailAfterPuts = 0
	left := store.Keys()
	if len(left) != 2 || slices.Contains(left, manifestKey("k")) {
		t.Fatalf("after the kill: %v; want two shards and no manifest", left)
	}
	if _, err := LoadManifest(context.Background(), store, "k"); !errors.Is(err, ErrDatasetNotFound) {
		t.Fatalf("killed ingest is visible: %v", err)
	}
	if names, _ := ListDatasets(context.Background(), store); len(names) != 0 {
		t.Fatalf("killed ingest listed: %v", names)
	}
	m, err := Ingest(context.Background(), store, "k", []string{p}, IngestOptions{ShardRows: 10, ChunkRows: 4})
	if err != nil {
		t.Fatal(err)
	}
	checkPublished(t, store, m, x, nil)
	if len(store.Keys()) != 11 {
		t.Fatalf("%d objects after the rerun, want 10 shards + manifest", len(store.Keys()))
	}
}

// TestIngestFailureCleansUp checks that an ingest failing at the store
// removes what it uploaded when the store is still reachable.
func TestIngestFailureCleansUp(t *testing.T) {
	dir := t.TempDir()
	x := testMatrix(8, 40, 2)
	x[2*33] = float32(math.Inf(-1)) // row 33: found after shards 0-2 are uploaded
	p := writeNPYf32(t, dir, "x.npy", x, 40, 2)
	store := storetest.NewMemStore()
	_, err := Ingest(context.Background(), store, "c", []string{p}, IngestOptions{ShardRows: 10, ChunkRows: 5})
	if !errors.Is(err, datafile.ErrBadInput) || !strings.Contains(err.Error(), "row 33, column 0: -Inf") {
		t.Fatalf("error %v", err)
	}
	if keys := store.Keys(); len(keys) != 0 {
		t.Fatalf("left behind: %v", keys)
	}
}

func TestIngestWithLabels(t *testing.T) {
	dir := t.TempDir()
	a, b := testMatrix(30, 25, 2), testMatrix(31, 14, 2)
	pa, pb := writeNPYf32(t, dir, "a.npy", a, 25, 2), writeNPYf32(t, dir, "b.npy", b, 14, 2)
	var la strings.Builder
	var want []int32
	la.WriteString("y\n")
	for i := range 25 {
		la.WriteString(strings.Repeat("1", 1+i%3) + "\n") // 1, 11, 111, ...
		want = append(want, []int32{1, 11, 111}[i%3])
	}
	var lbBytes []byte
	for i := range 14 {
		lbBytes = le.AppendUint32(lbBytes, uint32(100+i))
		want = append(want, int32(100+i))
	}
	lbPath := writeFile(t, t.TempDir(), "lb.npy", npyFile("<i4", lbBytes, 14))
	laPath := writeFile(t, t.TempDir(), "la.csv", []byte(la.String()))
	store := storetest.NewMemStore()
	m, err := Ingest(context.Background(), store, "lab", []string{pa, pb}, IngestOptions{ShardRows: 10, ChunkRows: 4, Labels: []string{laPath, lbPath}})
	if err != nil {
		t.Fatal(err)
	}
	checkPublished(t, store, m, append(slices.Clone(a), b...), want)

	// Label counts that do not match their data file, and a wrong number of
	// labels files, publish nothing.
	short := writeFile(t, t.TempDir(), "short.npy", npyFile("<i4", lbBytes[:52], 13))
	long := writeFile(t, t.TempDir(), "long.csv", []byte(la.String()+"5\n"))
	for _, c := range []struct {
		labels []string
		want   string
	}{
		{[]string{laPath, short}, "labels of " + pb + ": only 13 labels"},
		{[]string{long, lbPath}, "labels of " + pa + ": more labels than its 25 rows"},
		{[]string{laPath}, "1 labels files for 2 input files"},
	} {
		store := storetest.NewMemStore()
		_, err := Ingest(context.Background(), store, "lab", []string{pa, pb}, IngestOptions{Labels: c.labels})
		if !errors.Is(err, datafile.ErrBadInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("labels %v: error %v, want %q", c.labels, err, c.want)
		}
		if len(store.Keys()) != 0 {
			t.Errorf("labels %v: left %v", c.labels, store.Keys())
		}
	}
}
