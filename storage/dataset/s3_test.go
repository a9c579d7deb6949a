package dataset

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/storetest"
)

// s3DatasetStore returns the conformance test store (the embedded server,
// or the S3 named by DSAE_TEST_S3_ENDPOINT) confined to this run's prefix.
func s3DatasetStore(t *testing.T) storage.ObjectStore {
	ts := storetest.NewStore(t)
	return storetest.PrefixStore{Inner: ts.Client(t), Prefix: ts.Prefix}
}

// TestDatasetOverS3 runs ingest, listing, an epoch of the reader and a
// corrupted chunk against a real S3 server.
func TestDatasetOverS3(t *testing.T) {
	store := s3DatasetStore(t)
	ctx := context.Background()
	dir := t.TempDir()
	x := testMatrix(21, 1500, 10)
	p := writeNPYf32(t, dir, "x.npy", x, 1500, 10)
	m, err := Ingest(ctx, store, "s3ds", []string{p}, IngestOptions{ShardRows: 400, ChunkRows: 16, TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if names, err := ListDatasets(ctx, store); err != nil || len(names) != 1 || names[0] != "s3ds" {
		t.Fatalf("ListDatasets = %v, %v", names, err)
	}
	got, err := LoadManifest(ctx, store, "s3ds")
	if err != nil || got.Rows != 1500 || len(got.Shards) != 4 {
		t.Fatalf("LoadManifest: %+v, %v", got, err)
	}
	if ds, err := LoadDataset(ctx, store, "s3ds"); err != nil || ds.Rows != 1500 || ds.D != 10 || ds.X[10*1499+9] != x[10*1499+9] {
		t.Fatalf("LoadDataset: %v", err)
	}
	fetched := epochRows(t, store, got, x, 3, 0, 128, 1)
	if dataBytes := got.Rows * int64(got.D) * 4; fetched != dataBytes {
		t.Fatalf("fetched %d bytes in an epoch of %d data bytes", fetched, dataBytes)
	}
	if _, err := Ingest(ctx, store, "s3ds", []string{p}, IngestOptions{}); !errors.Is(err, ErrDatasetExists) {
		t.Fatalf("second ingest: %v, want ErrDatasetExists", err)
	}

	// Corrupt shard 2 in the store: one byte of row 100 (chunk 6).
	key := m.Shards[2].Key
	rc, err := store.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	obj[m.Shards[2].DataOffset+100*10*4] ^= 1
	if err := store.Put(ctx, key, bytes.NewReader(obj), int64(len(obj))); err != nil {
		t.Fatal(err)
	}
	rd := NewReader(store, got, ReaderOptions{})
	defer rd.Close()
	_, err = rd.Load(ctx)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "shard 2") || !strings.Contains(err.Error(), "chunk 6") {
		t.Fatalf("error %v, want ErrCorrupt naming shard 2 chunk 6", err)
	}

	if err := DeleteDataset(ctx, store, "s3ds"); err != nil {
		t.Fatal(err)
	}
	if objs, err := store.List(ctx, DatasetPrefix); err != nil || len(objs) != 0 {
		t.Fatalf("after delete: %v, %v", objs, err)
	}
}
