package dataset

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dsae/dsae/storage/storetest"
)

func TestVerifyDataset(t *testing.T) {
	ctx := context.Background()
	store, m, _ := ingestTestDataset(t, 300, 5, IngestOptions{ShardRows: 120, ChunkRows: 16})
	if _, err := VerifyDataset(ctx, store, m.Name); err != nil {
		t.Fatalf("intact dataset: %v", err)
	}
	key := m.Shards[1].Key
	orig := append([]byte(nil), store.Object(t, key)...)
	set := func(b []byte) { store.Update(key, func([]byte) []byte { return b }) }
	for _, c := range []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"flipped data byte", func(b []byte) []byte { b[m.Shards[1].DataOffset+40*5*4] ^= 8; return b }, "shard 1 (" + key + "): chunk 2: CRC32C"},
		{"flipped header byte", func(b []byte) []byte { b[20] ^= 1; return b }, "shard 1 (" + key + "): SHA-256"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-7] }, "chunk 7: object ends"},
		{"extra bytes", func(b []byte) []byte { return append(b, 0) }, "1 bytes beyond"},
	} {
		t.Run(c.name, func(t *testing.T) {
			set(c.mutate(append([]byte(nil), orig...)))
			defer set(orig)
			_, err := VerifyDataset(ctx, store, m.Name)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want ErrCorrupt containing %q", err, c.want)
			}
		})
	}
	if _, err := VerifyDataset(ctx, store, "nope"); !errors.Is(err, ErrDatasetNotFound) {
		t.Fatalf("unknown dataset: %v", err)
	}
}

func TestVerifyDatasetLabels(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	x := writeNPYf32(t, dir, "x.npy", testMatrix(40, 30, 2), 30, 2)
	l := writeFile(t, t.TempDir(), "l.csv", []byte(strings.Repeat("4\n", 30)))
	store := storetest.NewMemStore()
	m, err := Ingest(ctx, store, "vl", []string{x}, IngestOptions{ChunkRows: 8, Labels: []string{l}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDataset(ctx, store, "vl"); err != nil {
		t.Fatalf("intact dataset: %v", err)
	}
	key := m.Shards[0].LabelsKey
	store.Update(key, func(b []byte) []byte { b[m.Shards[0].LabelsDataOffset+4*9] = 5; return b }) // row 9: chunk 1
	if _, err := VerifyDataset(ctx, store, "vl"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "labels of shard 0 ("+key+"): chunk 1") {
		t.Fatalf("error %v, want ErrCorrupt naming the labels of shard 0, chunk 1", err)
	}
}
