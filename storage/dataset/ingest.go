package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/datafile"
)

// Defaults for IngestOptions.
const (
	// DefaultShardBytes is the target size of a shard when ShardRows is 0.
	DefaultShardBytes = 64 << 20
	// DefaultChunkBytes is the target size of a chunk when ChunkRows is 0.
	// A chunk is the unit of ranged reads and of the epoch shuffle. Larger
	// chunks mean fewer GETs (S3 wants requests of hundreds of KB or more);
	// smaller ones mean less waste when several workers split a batch: a
	// worker's share of a step that does not start and end on chunk
	// boundaries shares a chunk with its neighbours, which both fetch it.
	// With batch/ranks a multiple of the chunk rows nothing is fetched twice.
	DefaultChunkBytes = 512 << 10
	// shardHeaderBytes is the fixed .npy header size of the shards dsae
	// writes (room for any 2-D shape, a multiple of 64).
	shardHeaderBytes = 128
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// IngestOptions tune Ingest. The zero value is valid.
type IngestOptions struct {
	// Format of the input files: "npy", "csv" or "idx" (optionally
	// gzip-compressed). "" picks by extension: .npy, .csv, and .idx, *-ubyte
	// or *-ubyte.gz for IDX.
	Format string
	// ShardRows is the number of rows per shard; 0 means about
	// DefaultShardBytes per shard.
	ShardRows int64
	// ChunkRows is the number of rows per chunk; 0 means about
	// DefaultChunkBytes per chunk, rounded down to a power of two.
	ChunkRows int
	// Overwrite replaces an existing dataset of the same name (it is
	// unpublished first). Without it an existing name is an error.
	Overwrite bool
	// TempDir is where shards are staged before upload (at most two at a
	// time); "" means os.TempDir().
	TempDir string
	// Labels, if set, names one labels file per input file, in the same
	// order, each with one integer label per row of its input (formats as
	// for the data files: .npy of shape (rows,) with an integer dtype, a
	// one-column CSV of integers, or a rank-1 IDX file).
	Labels []string
}

// ingestInput is one input file: its rows, and optionally its labels.
type ingestInput struct {
	file   string
	x      datafile.RowSource
	labels datafile.LabelSource
	div    float32 // divide every value by this unless 0 (as datafile.LoadMNIST does)
}

// Ingest streams the rows of files, in order, into dataset name: float32
// .npy shards, then the manifest, written last. Memory stays bounded
// whatever the input size (rows are streamed; shards are staged on local
// disk, one being written while the previous one uploads). Bad input (an
// unreadable, malformed or empty file, NaN or Inf, files of different
// widths) and an existing name without opt.Overwrite are errors wrapping
// datafile.ErrBadInput and publish nothing; so does any failure or a
// killed process, and a later run cleans up what a failed one left behind.
func Ingest(ctx context.Context, store storage.ObjectStore, name string, files []string, opt IngestOptions) (*Manifest, error) {
	if err := ValidateDatasetName(name); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, datafile.BadInput("dataset %s: no input files", name)
	}
	if opt.Labels != nil && len(opt.Labels) != len(files) {
		return nil, datafile.BadInput("dataset %s: %d labels files for %d input files; give one per input", name, len(opt.Labels), len(files))
	}
	var inputs []ingestInput
	defer func() {
		for _, in := range inputs {
			in.x.Close()
			if in.labels != nil {
				in.labels.Close()
			}
		}
	}()
	format := opt.Format
	for i, f := range files {
		src, fmtName, err := datafile.OpenRows(f, opt.Format)
		if err != nil {
			return nil, err
		}
		in := ingestInput{file: f, x: src}
		if opt.Labels != nil {
			if in.labels, err = datafile.OpenLabels(opt.Labels[i], ""); err != nil {
				src.Close()
				return nil, err
			}
		}
		inputs = append(inputs, in)
		if format == "" {
			format = fmtName
		} else if format != fmtName {
			format = "mixed"
		}
	}
	return ingest(ctx, store, name, inputs, SourceInfo{Format: format, Files: files}, opt)
}

// IngestMNIST ingests the built-in MNIST as two datasets, name+"-train"
// (60,000 rows) and name+"-test" (10,000 rows), with pixel/255 values and
// the digit labels, read from the files datafile.LoadMNIST reads (the
// embedded copy, or $DSAE_MNIST_DIR; see datafile.OpenMNIST).
func IngestMNIST(ctx context.Context, store storage.ObjectStore, name string, opt IngestOptions) ([]*Manifest, error) {
	var out []*Manifest
	for _, split := range []string{"train", "test"} {
		img, lbl, err := datafile.OpenMNIST(split)
		if err != nil {
			return out, err
		}
		m, err := ingest(ctx, store, name+"-"+split, []ingestInput{{file: img.Name(), x: img, labels: lbl, div: 255}},
			SourceInfo{Format: "builtin", Files: []string{"mnist:" + split}}, opt)
		img.Close()
		lbl.Close()
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, nil
}

// ingest is the common body of Ingest and IngestMNIST.
func ingest(ctx context.Context, store storage.ObjectStore, name string, inputs []ingestInput, source SourceInfo, opt IngestOptions) (m *Manifest, err error) {
	if err := ValidateDatasetName(name); err != nil {
		return nil, err
	}
	d := inputs[0].x.Dim()
	for _, in := range inputs[1:] {
		if in.x.Dim() != d {
			return nil, datafile.BadInput("%s has %d columns but %s has %d; all files of a dataset must have the same width",
				in.file, in.x.Dim(), inputs[0].file, d)
		}
	}
	chunkRows, shardRows, err := ingestSizes(d, opt)
	if err != nil {
		return nil, err
	}
	if err := prepareName(ctx, store, name, opt.Overwrite); err != nil {
		return nil, err
	}
	// From here on, anything uploaded is removed again on failure.
	up := newUploader(ctx, store)
	defer func() {
		if err != nil {
			up.abort()
		}
	}()
	w := &shardWriter{name: name, d: d, chunkRows: chunkRows, shardRows: shardRows,
		tempDir: opt.TempDir, hasLabels: inputs[0].labels != nil, up: up}
	defer w.discard()
	stats := newFeatureStats(d)
	buf := make([]float32, d*max(1, (4<<20)/(4*d)))
	lbuf := make([]int32, len(buf)/d)
	for _, in := range inputs {
		if (in.labels != nil) != w.hasLabels {
			return nil, datafile.BadInput("%s: either every input has labels or none does", in.file)
		}
		var read int64
		for {
			n, rerr := in.x.ReadRows(buf)
			if n > 0 {
				rows := buf[:n*d]
				if in.div != 0 {
					for i := range rows {
						rows[i] /= in.div
					}
				}
				var labels []int32
				if in.labels != nil {
					if labels, err = readLabels(in, lbuf[:n], read); err != nil {
						return nil, err
					}
				}
				stats.add(rows)
				if err := w.write(rows, labels); err != nil {
					return nil, err
				}
				read += int64(n)
			}
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				return nil, rerr
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if in.labels != nil {
			if n, _ := in.labels.ReadLabels(lbuf[:1]); n != 0 {
				return nil, datafile.BadInput("labels of %s: more labels than its %d rows", in.file, read)
			}
		}
	}
	if err := w.finish(); err != nil {
		return nil, err
	}
	shards, err := up.wait()
	if err != nil {
		return nil, err
	}
	if len(shards) == 0 {
		return nil, datafile.BadInput("dataset %s: the input holds no rows", name)
	}
	m = &Manifest{Format: ManifestFormat, Name: name, D: d, Dtype: "float32", Rows: w.total,
		ChunkRows: chunkRows, Shards: shards, HasLabels: w.hasLabels, Source: source,
		Created: time.Now().UTC().Truncate(time.Second)}
	m.Mean, m.Std = stats.meanStd()
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("dataset %s: built an invalid manifest: %w", name, err)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	if err := store.Put(ctx, manifestKey(name), strings.NewReader(string(data)), int64(len(data))); err != nil {
		return nil, fmt.Errorf("dataset %s: publish manifest: %w", name, err)
	}
	return m, nil
}

// readLabels reads len(dst) labels of input in for rows starting at row.
func readLabels(in ingestInput, dst []int32, row int64) ([]int32, error) {
	got := 0
	for got < len(dst) {
		n, err := in.labels.ReadLabels(dst[got:])
		got += n
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if got < len(dst) {
		return nil, datafile.BadInput("labels of %s: only %d labels, fewer than its rows", in.file, row+int64(got))
	}
	return dst, nil
}

// ingestSizes resolves the chunk and shard sizes for rows of d features.
func ingestSizes(d int, opt IngestOptions) (chunkRows int, shardRows int64, err error) {
	rowBytes := int64(d) * 4
	chunkRows = opt.ChunkRows
	if chunkRows < 0 {
		return 0, 0, datafile.BadInput("chunk rows %d: want ≥ 1", chunkRows)
	}
	if chunkRows == 0 {
		chunkRows = 1
		for int64(chunkRows*2)*rowBytes <= DefaultChunkBytes {
			chunkRows *= 2
		}
	}
	shardRows = opt.ShardRows
	if shardRows < 0 {
		return 0, 0, datafile.BadInput("shard rows %d: want ≥ 1", shardRows)
	}
	if shardRows == 0 {
		shardRows = max(1, DefaultShardBytes/rowBytes/int64(chunkRows)) * int64(chunkRows)
	}
	if shardRows > math.MaxInt64/rowBytes/2 {
		return 0, 0, datafile.BadInput("shard rows %d too large for rows of %d features", shardRows, d)
	}
	return chunkRows, shardRows, nil
}

// prepareName makes sure nothing is published under name (removing an
// existing dataset if overwrite, else failing) and removes leftovers of an
// interrupted ingest.
func prepareName(ctx context.Context, store storage.ObjectStore, name string, overwrite bool) error {
	_, err := store.Stat(ctx, manifestKey(name))
	switch {
	case err == nil && !overwrite:
		return fmt.Errorf("dataset %s: %w; use --overwrite to replace it", name, ErrDatasetExists)
	case err == nil:
		if err := store.Delete(ctx, manifestKey(name)); err != nil {
			return fmt.Errorf("dataset %s: unpublish: %w", name, err)
		}
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("dataset %s: %w", name, err)
	}
	objs, err := store.List(ctx, datasetDir(name))
	if err != nil {
		return fmt.Errorf("dataset %s: %w", name, err)
	}
	return deleteKeys(ctx, store, objs)
}

// featureStats accumulates per-feature mean and standard deviation, with
// sums shifted by the first row for numerical robustness.
type featureStats struct {
	d          int
	n          int64
	shift      []float64
	sum, sumSq []float64
}

func newFeatureStats(d int) *featureStats {
	return &featureStats{d: d, sum: make([]float64, d), sumSq: make([]float64, d)}
}

func (s *featureStats) add(rows []float32) {
	if s.shift == nil && len(rows) >= s.d {
		s.shift = make([]float64, s.d)
		for j := range s.shift {
			s.shift[j] = float64(rows[j])
		}
	}
	for i := 0; i < len(rows); i += s.d {
		for j, v := range rows[i : i+s.d] {
			x := float64(v) - s.shift[j]
			s.sum[j] += x
			s.sumSq[j] += x * x
		}
		s.n++
	}
}

// meanStd returns the per-feature mean and population standard deviation.
func (s *featureStats) meanStd() (mean, std []float64) {
	if s.n == 0 {
		return nil, nil
	}
	mean, std = make([]float64, s.d), make([]float64, s.d)
	n := float64(s.n)
	for j := range mean {
		m := s.sum[j] / n
		mean[j] = s.shift[j] + m
		std[j] = math.Sqrt(max(0, s.sumSq[j]/n-m*m))
	}
	return mean, std
}

// shardWriter cuts rows into shards, stages each in a temporary file with a
// fixed-size .npy header and hands finished shards to the uploader.
type shardWriter struct {
	name      string
	d         int
	chunkRows int
	shardRows int64
	tempDir   string
	hasLabels bool
	up        *uploader

	total  int64
	cur    *stagedShard
	bytes  []byte
	nshard int
}

// stagedShard is a shard being written or waiting for upload.
type stagedShard struct {
	index   int
	file    *os.File
	rows    int64
	crcs    []uint32
	crc     uint32
	inChunk int
	labels  []byte
	lcrcs   []uint32
	lcrc    uint32
}

func (w *shardWriter) write(rows []float32, labels []int32) error {
	d := w.d
	for len(rows) > 0 {
		if w.cur == nil {
			f, err := os.CreateTemp(w.tempDir, "dsae-shard-*.npy")
			if err != nil {
				return fmt.Errorf("stage shard: %w", err)
			}
			if _, err := f.Write(make([]byte, shardHeaderBytes)); err != nil {
				f.Close()
				os.Remove(f.Name())
				return fmt.Errorf("stage shard: %w", err)
			}
			w.cur = &stagedShard{index: w.nshard, file: f}
			w.nshard++
		}
		s := w.cur
		// Rows up to the end of the current chunk and shard.
		k := min(int64(len(rows)/d), w.shardRows-s.rows, int64(w.chunkRows-s.inChunk))
		part := rows[:k*int64(d)]
		if cap(w.bytes) < len(part)*4 {
			w.bytes = make([]byte, len(part)*4)
		}
		b := w.bytes[:len(part)*4]
		for i, v := range part {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		if _, err := s.file.Write(b); err != nil {
			return fmt.Errorf("stage shard: %w", err)
		}
		s.crc = crc32.Update(s.crc, castagnoli, b)
		if w.hasLabels {
			lb := make([]byte, 4*k)
			for i, l := range labels[:k] {
				binary.LittleEndian.PutUint32(lb[4*i:], uint32(l))
			}
			s.labels = append(s.labels, lb...)
			s.lcrc = crc32.Update(s.lcrc, castagnoli, lb)
			labels = labels[k:]
		}
		rows = rows[k*int64(d):]
		s.rows += k
		s.inChunk += int(k)
		w.total += k
		if s.inChunk == w.chunkRows {
			w.endChunk()
		}
		if s.rows == w.shardRows {
			if err := w.endShard(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *shardWriter) endChunk() {
	s := w.cur
	s.crcs = append(s.crcs, s.crc)
	s.lcrcs = append(s.lcrcs, s.lcrc)
	s.crc, s.lcrc, s.inChunk = 0, 0, 0
}

// endShard writes the header of the current shard and queues its upload.
func (w *shardWriter) endShard() error {
	s := w.cur
	w.cur = nil
	if s.inChunk > 0 {
		w.cur = s
		w.endChunk()
		w.cur = nil
	}
	hdr := datafile.EncodeNPYHeaderSize(shardHeaderBytes, "<f4", s.rows, int64(w.d))
	if _, err := s.file.WriteAt(hdr, 0); err != nil {
		s.discard()
		return fmt.Errorf("stage shard: %w", err)
	}
	return w.up.submit(w.name, s, int64(w.d))
}

// discard removes a shard still being staged (after a failure).
func (w *shardWriter) discard() {
	if w.cur != nil {
		w.cur.discard()
		w.cur = nil
	}
}

// finish flushes a partly filled last shard.
func (w *shardWriter) finish() error {
	if w.cur == nil {
		return nil
	}
	return w.endShard()
}

func (s *stagedShard) discard() {
	s.file.Close()
	os.Remove(s.file.Name())
}

// uploader uploads staged shards one at a time in the background, so the
// next shard is written while the previous one uploads.
type uploader struct {
	ctx    context.Context
	cancel context.CancelFunc
	store  storage.ObjectStore
	queue  chan uploadJob
	done   chan struct{}
	// Written by the upload goroutine, read after done is closed.
	shards []ShardInfo
	keys   []string // every key uploaded, for abort
	mu     sync.Mutex
	err    error // first upload error, guarded by mu
}

type uploadJob struct {
	name string
	s    *stagedShard
	d    int64
}

func newUploader(ctx context.Context, store storage.ObjectStore) *uploader {
	ctx, cancel := context.WithCancel(ctx)
	u := &uploader{ctx: ctx, cancel: cancel, store: store, queue: make(chan uploadJob), done: make(chan struct{})}
	go func() {
		defer close(u.done)
		for job := range u.queue {
			if u.err == nil {
				info, err := u.upload(job.name, job.s, job.d)
				if err != nil {
					u.mu.Lock()
					u.err = err
					u.mu.Unlock()
					u.cancel()
				} else {
					u.shards = append(u.shards, info)
				}
			}
			job.s.discard()
		}
	}()
	return u
}

// submit queues shard s for upload; it blocks while another shard uploads.
// The uploader owns s from then on.
func (u *uploader) submit(name string, s *stagedShard, d int64) error {
	select {
	case u.queue <- uploadJob{name, s, d}:
		return nil
	case <-u.ctx.Done():
		s.discard()
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.err != nil {
			return u.err
		}
		return u.ctx.Err()
	}
}

// upload hashes and uploads one staged shard and its labels.
func (u *uploader) upload(name string, s *stagedShard, d int64) (ShardInfo, error) {
	size := shardHeaderBytes + s.rows*d*4
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(s.file, 0, size)); err != nil {
		return ShardInfo{}, fmt.Errorf("hash staged shard: %w", err)
	}
	info := ShardInfo{
		Key:         fmt.Sprintf("%sshard-%05d.npy", datasetDir(name), s.index),
		Rows:        s.rows,
		Bytes:       size,
		DataOffset:  shardHeaderBytes,
		SHA256:      hex.EncodeToString(h.Sum(nil)),
		ChunkCRC32C: s.crcs,
	}
	u.keys = append(u.keys, info.Key)
	if err := u.store.Put(u.ctx, info.Key, io.NewSectionReader(s.file, 0, size), size); err != nil {
		return ShardInfo{}, fmt.Errorf("dataset %s: upload %s: %w", name, info.Key, err)
	}
	if s.labels != nil {
		obj := append(datafile.EncodeNPYHeader("<i4", false, s.rows), s.labels...)
		sum := sha256.Sum256(obj)
		info.LabelsKey = fmt.Sprintf("%slabels-%05d.npy", datasetDir(name), s.index)
		info.LabelsBytes = int64(len(obj))
		info.LabelsDataOffset = int64(len(obj) - len(s.labels))
		info.LabelsSHA256 = hex.EncodeToString(sum[:])
		info.LabelsChunkCRC32C = s.lcrcs
		u.keys = append(u.keys, info.LabelsKey)
		if err := u.store.Put(u.ctx, info.LabelsKey, strings.NewReader(string(obj)), int64(len(obj))); err != nil {
			return ShardInfo{}, fmt.Errorf("dataset %s: upload %s: %w", name, info.LabelsKey, err)
		}
	}
	return info, nil
}

// wait finishes the uploads and returns the shards in order.
func (u *uploader) wait() ([]ShardInfo, error) {
	close(u.queue)
	<-u.done
	u.queue = nil
	if u.err != nil {
		return nil, u.err
	}
	return u.shards, nil
}

// abort stops uploading and deletes what was uploaded, best effort, with a
// context that outlives a cancelled ingest for a short while.
func (u *uploader) abort() {
	if u.queue != nil {
		u.cancel()
		close(u.queue)
		<-u.done
		u.queue = nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(u.ctx), 30*time.Second)
	defer cancel()
	for _, k := range u.keys {
		u.store.Delete(ctx, k)
	}
}
