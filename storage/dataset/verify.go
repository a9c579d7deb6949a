package dataset

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/dsae/dsae/storage"
)

// VerifyDataset reads every object of dataset name whole and checks it
// against the manifest: size, SHA-256 and every chunk's CRC32C, for shards
// and labels. It returns the manifest, or the first mismatch as an error
// wrapping ErrCorrupt that names the shard and chunk.
func VerifyDataset(ctx context.Context, store storage.ObjectStore, name string) (*Manifest, error) {
	m, err := LoadManifest(ctx, store, name)
	if err != nil {
		return nil, err
	}
	for i, sh := range m.Shards {
		what := fmt.Sprintf("dataset %s: shard %d (%s)", name, i, sh.Key)
		if err := verifyObject(ctx, store, what, sh.Key, sh.Bytes, sh.DataOffset, sh.SHA256, sh.ChunkCRC32C, int64(m.ChunkRows)*int64(m.D)*4); err != nil {
			return nil, err
		}
		if m.HasLabels {
			what := fmt.Sprintf("dataset %s: labels of shard %d (%s)", name, i, sh.LabelsKey)
			if err := verifyObject(ctx, store, what, sh.LabelsKey, sh.LabelsBytes, sh.LabelsDataOffset, sh.LabelsSHA256, sh.LabelsChunkCRC32C, int64(m.ChunkRows)*4); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// verifyObject streams key and checks its size, SHA-256 and the CRC32C of
// each chunkBytes-sized piece of its data (after off header bytes).
func verifyObject(ctx context.Context, store storage.ObjectStore, what, key string, size, off int64, sum string, crcs []uint32, chunkBytes int64) error {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rc.Close()
	h := sha256.New()
	r := bufio.NewReaderSize(io.TeeReader(rc, h), 1<<20)
	if _, err := io.CopyN(io.Discard, r, off); err != nil {
		return fmt.Errorf("%w: %s: header: %v", ErrCorrupt, what, err)
	}
	for c, want := range crcs {
		crc := crc32.New(castagnoli)
		n := min(chunkBytes, size-off-int64(c)*chunkBytes)
		if got, err := io.CopyN(crc, r, n); err != nil {
			return fmt.Errorf("%w: %s: chunk %d: object ends after %d of its %d bytes", ErrCorrupt, what, c, got, n)
		}
		if got := crc.Sum32(); got != want {
			return fmt.Errorf("%w: %s: chunk %d: CRC32C %08x, manifest says %08x", ErrCorrupt, what, c, got, want)
		}
	}
	if extra, _ := io.Copy(io.Discard, r); extra != 0 {
		return fmt.Errorf("%w: %s: %d bytes beyond the %d the manifest records", ErrCorrupt, what, extra, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%w: %s: SHA-256 %s, manifest says %s", ErrCorrupt, what, got, sum)
	}
	return nil
}
