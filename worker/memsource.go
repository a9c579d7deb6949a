package worker

import (
	"context"
	"fmt"

	"github.com/dsae/dsae/storage/datafile"
	"github.com/dsae/dsae/storage/dataset"
	"github.com/dsae/dsae/storage/order"
)

// DefaultChunkRows is the chunk size of the epoch order for in-memory data.
const DefaultChunkRows = 1024

// MemorySource serves the rows of a dataset held in memory. The dataset is
// one shard cut into chunks of ChunkRows rows for the epoch order. A
// MemorySource serves one Trainer: it keeps scratch between calls, so it is
// not safe for concurrent use (give each member its own; they may share DS).
type MemorySource struct {
	DS        *datafile.Matrix
	ChunkRows int

	ids []int64 // scratch for the row ids of a share
}

var _ Source = (*MemorySource)(nil)

// Layout is one shard of all rows.
func (s *MemorySource) Layout() order.Layout {
	cr := s.ChunkRows
	if cr < 1 {
		cr = DefaultChunkRows
	}
	return order.Layout{ShardRows: []int64{int64(s.DS.Rows)}, ChunkRows: cr}
}

// Dim is the dataset's d.
func (s *MemorySource) Dim() int { return s.DS.D }

// ReadStep copies rank's share of global batch step of o into dst.
func (s *MemorySource) ReadStep(_ context.Context, o *order.EpochOrder, batch int, step int64, rank, ranks int, dst []float32) (int, error) {
	lo, hi := order.BatchSlice(o.Len(), batch, step, rank, ranks)
	n := int(hi - lo)
	d := s.DS.D
	if len(dst) < n*d {
		return 0, fmt.Errorf("worker: read of %d rows into a buffer of %d values (d = %d)", n, len(dst), d)
	}
	s.ids = o.Rows(lo, hi-lo, s.ids[:0])
	for i, id := range s.ids {
		copy(dst[i*d:(i+1)*d], s.DS.X[id*int64(d):(id+1)*int64(d)])
	}
	return n, nil
}

// ReaderSource trains on a dataset in S3 through a dataset.Reader, which
// fetches the chunks of each share with ranged GETs and prefetches ahead.
type ReaderSource struct{ R *dataset.Reader }

var (
	_ Source    = ReaderSource{}
	_ RowReader = ReaderSource{}
)

// Layout is the dataset's layout from its manifest.
func (s ReaderSource) Layout() order.Layout { return s.R.Manifest().Layout() }

// Dim is the dataset's d.
func (s ReaderSource) Dim() int { return s.R.Manifest().D }

// ReadStep reads rank's share of step through the reader.
func (s ReaderSource) ReadStep(ctx context.Context, o *order.EpochOrder, batch int, step int64, rank, ranks int, dst []float32) (int, error) {
	return s.R.ReadStep(ctx, o, batch, step, rank, ranks, dst, nil)
}

// ReadRows reads rows [lo, lo+n) in storage order through the reader (see
// dataset.Reader.ReadRows), which prefetches the chunks that follow. A read
// from row 0 starts a new pass: the chunks prefetched for training steps
// that were never read are dropped first (DropUnread), since they would
// otherwise hold the prefetch budget until the pass reached them.
func (s ReaderSource) ReadRows(ctx context.Context, lo, n int64, dst []float32) error {
	if lo == 0 {
		s.R.DropUnread()
	}
	return s.R.ReadRows(ctx, lo, n, dst, nil)
}
