package dataset

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/dsae/dsae/storage/order"
)

// validManifestJSON returns the manifest of a small real ingest.
func validManifestJSON(t testing.TB) []byte {
	t.Helper()
	_, m, _ := ingestTestDataset(t, 30, 2, IngestOptions{ShardRows: 20, ChunkRows: 8})
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestManifestValidation(t *testing.T) {
	good := validManifestJSON(t)
	if _, err := ParseManifest("k", good); err != nil {
		t.Fatalf("valid manifest rejected: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(m *Manifest)
		want   string
	}{
		{"format", func(m *Manifest) { m.Format = "other/9" }, `format "other/9"`},
		{"name", func(m *Manifest) { m.Name = "../x" }, "dataset name"},
		{"d zero", func(m *Manifest) { m.D = 0 }, "d 0 outside"},
		{"dtype", func(m *Manifest) { m.Dtype = "float16" }, `dtype "float16"`},
		{"chunk rows", func(m *Manifest) { m.ChunkRows = 0 }, "chunk_rows 0"},
		{"no shards", func(m *Manifest) { m.Shards = nil }, "no shards"},
		{"row total", func(m *Manifest) { m.Rows = 31 }, "rows 31, but shards hold 30"},
		{"shard rows", func(m *Manifest) { m.Shards[1].Rows = 0 }, "shard 1: rows 0"},
		{"shard bytes", func(m *Manifest) { m.Shards[0].Bytes++ }, "shard 0: bytes"},
		{"sha256", func(m *Manifest) { m.Shards[0].SHA256 = "abc" }, "sha256"},
		{"crc count", func(m *Manifest) { m.Shards[0].ChunkCRC32C = m.Shards[0].ChunkCRC32C[1:] }, "2 chunk CRCs, want 3"},
		{"key outside", func(m *Manifest) { m.Shards[0].Key = "datasets/other/shard-00000.npy" }, "not directly under datasets/rd/"},
		{"duplicate key", func(m *Manifest) { m.Shards[1].Key = m.Shards[0].Key }, "listed twice"},
		{"data offset", func(m *Manifest) { m.Shards[0].DataOffset = 2 }, "data_offset 2"},
		{"labels without flag", func(m *Manifest) { m.Shards[0].LabelsKey = "datasets/rd/l.npy" }, "has_labels is false"},
		{"labels missing", func(m *Manifest) { m.HasLabels = true }, "shard 0 labels"},
		{"mean length", func(m *Manifest) { m.Mean = m.Mean[:1] }, "mean has 1 values, want d=2"},
		{"negative std", func(m *Manifest) { m.Std[1] = -1 }, "std[1] = -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m Manifest
			if err := json.Unmarshal(good, &m); err != nil {
				t.Fatal(err)
			}
			c.mutate(&m)
			b, _ := json.Marshal(&m)
			_, err := ParseManifest("datasets/rd/manifest.json", b)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "datasets/rd/manifest.json") {
				t.Fatalf("error %v: want ErrCorrupt naming the key and containing %q", err, c.want)
			}
		})
	}
	for name, text := range map[string]string{
		"not JSON":      "{",
		"unknown field": strings.Replace(string(good), `"format"`, `"formatt"`, 1),
		"trailing data": string(good) + "{}",
		"NaN-ish":       strings.Replace(string(good), `"d":2`, `"d":"two"`, 1),
	} {
		if _, err := ParseManifest("k", []byte(text)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v, want ErrCorrupt", name, err)
		}
	}
}

func TestLoadManifestNameMismatch(t *testing.T) {
	store, m, _ := ingestTestDataset(t, 10, 2, IngestOptions{})
	data := store.Object(t, manifestKey(m.Name))
	store.Update(manifestKey("copy"), func([]byte) []byte { return data })
	if _, err := LoadManifest(context.Background(), store, "copy"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v, want ErrCorrupt for a manifest naming another dataset", err)
	}
}

func FuzzManifest(f *testing.F) {
	good := validManifestJSON(f)
	f.Add(good)
	f.Add([]byte("{}"))
	f.Add([]byte(`{"format":"dsae-dataset/1","name":"x","d":1,"dtype":"float32","rows":1,"chunk_rows":1,"shards":[{"key":"datasets/x/s","rows":1,"bytes":14,"data_offset":10,"sha256":"` + strings.Repeat("0", 64) + `","chunk_crc32c":[0]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest("k", data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Whatever validates must be safe to order and read.
		var total int64
		for _, s := range m.Shards {
			total += s.Rows
		}
		if total != m.Rows || m.D < 1 || m.ChunkRows < 1 {
			t.Fatalf("validated manifest inconsistent: %+v", m)
		}
		if m.Rows < 1<<20 {
			o := order.NewEpochOrder(m.Layout(), 1, 1)
			if o.Len() != m.Rows || o.Len() > 0 && len(o.Rows(0, min(o.Len(), 100), nil)) != int(min(o.Len(), 100)) {
				t.Fatal("order of a validated manifest is inconsistent")
			}
		}
	})
}
