package worker

import (
	"context"
	"fmt"

	"github.com/dsae/dsae/storage"
)

// DefaultChunkRows is the chunk size of the epoch order for in-memory data.
const DefaultChunkRows = 1024

// MemorySource serves the rows of a dataset held in memory. The dataset is
// one shard cut into chunks of ChunkRows rows for the epoch order.
type MemorySource struct {
	DS        *storage.Dataset
	ChunkRows int
}

var _ Source = (*MemorySource)(nil)

// Layout is one shard of all rows.
func (s *MemorySource) Layout() storage.Layout {
	cr := s.ChunkRows
	if cr < 1 {
		cr = DefaultChunkRows
	}
	return storage.Layout{ShardRows: []int64{int64(s.DS.Rows)}, ChunkRows: cr}
}

// Dim is the dataset's d.
func (s *MemorySource) Dim() int { return s.DS.D }

// Read copies the rows ids into dst.
func (s *MemorySource) Read(_ context.Context, ids []int64, dst []float32) error {
	d := s.DS.D
	if len(dst) < len(ids)*d {
		return fmt.Errorf("worker: read of %d rows into a buffer of %d values (d = %d)", len(ids), len(dst), d)
	}
	for i, id := range ids {
		if id < 0 || id >= int64(s.DS.Rows) {
			return fmt.Errorf("worker: row %d out of range [0, %d) of dataset %q", id, s.DS.Rows, s.DS.Name)
		}
		copy(dst[i*d:(i+1)*d], s.DS.X[id*int64(d):(id+1)*int64(d)])
	}
	return nil
}
