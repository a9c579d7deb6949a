package dataset

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/datafile"
	"github.com/dsae/dsae/storage/order"
)

// ReaderOptions tune a Reader. Zero fields take the defaults shown.
type ReaderOptions struct {
	// Prefetch is the most chunks fetched ahead of use and not yet read
	// that a Reader holds (32); Prefetch calls start no more than that.
	Prefetch int
	// Cache is the number of already read chunks kept, least recently used
	// first out (8). With one worker, consecutive batches share chunks, and
	// the cache makes each chunk be fetched once per epoch.
	Cache int
	// Concurrency is the number of ranged GETs in flight at once (8).
	Concurrency int
	// SkipLabels makes the Reader fetch no labels (training reads rows
	// only): half the GETs of a labelled dataset. Asking such a Reader for
	// labels panics, as for a dataset without labels.
	SkipLabels bool
}

func (o ReaderOptions) withDefaults() ReaderOptions {
	if o.Prefetch <= 0 {
		o.Prefetch = 32
	}
	if o.Cache <= 0 {
		o.Cache = 8
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	return o
}

// ReaderStats counts a Reader's traffic.
type ReaderStats struct {
	BytesFetched      int64 // shard (row) bytes received from the store
	LabelBytesFetched int64 // labels bytes received from the store
	ChunksFetched     int64 // chunk fetches that completed
	CacheHits         int64 // chunks ReadPositions found held or in flight
	// BuffersReused counts fetches into the row buffer of a chunk that had
	// left the Reader, instead of a new allocation.
	BuffersReused int64
}

// Reader reads a published dataset for training: rows are fetched a chunk
// at a time with ranged GETs, checked against the manifest's CRC32C,
// prefetched ahead of use and kept in a small LRU cache. Memory is bounded
// by Prefetch + Cache chunks plus the chunks of the ranges being read. A Reader is safe for
// concurrent use; Close stops its background fetches.
//
// A worker (rank of ranks) reads its share of each global batch with
// ReadStep, which also prefetches its share of the following steps:
//
//	o := order.NewEpochOrder(m.Layout(), seed, epoch)
//	for step := int64(0); step*int64(batch) < o.Len(); step++ {
//		n, err := rd.ReadStep(ctx, o, batch, step, rank, ranks, x, nil)
//		// x[:n*m.D] holds the rows
//	}
//
// Other access patterns use Prefetch and ReadPositions directly, and a
// pass over the rows in storage order (an evaluation) uses ReadRows.
type Reader struct {
	store storage.ObjectStore
	m     *Manifest
	opt   ReaderOptions
	d     int
	// shardStart[s] is the first global row of shard s and chunkBase[s]
	// the storage index of its first chunk (len shards+1), for ReadRows.
	shardStart, chunkBase []int64

	ctx    context.Context // of background fetches
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}

	mu        sync.Mutex
	lastShare [2]int                // (rank, ranks) of the last ReadStep
	entries   map[int64]*chunkEntry // by chunk storage index
	lru       list.List             // read entries, most recently used first
	unread    int                   // entries not read yet (in flight or held)
	// free holds row buffers of chunks that left the Reader, for the next
	// fetches: a chunk's buffer is recycled once it is neither held nor
	// being copied from (chunkEntry.users), so that training at speed
	// does not allocate a chunk per step (and run the GC for it).
	free [][]float32

	bytes, labelBytes, fetched, hits, reused atomic.Int64
}

// chunkEntry is a chunk being fetched or held in memory.
type chunkEntry struct {
	ref    order.ChunkRef
	ready  chan struct{} // closed when x/labels/err are set
	x      []float32
	labels []int32
	err    error
	read   bool          // returned to a reader at least once
	elem   *list.Element // in lru once read
	users  int           // copies from x in progress (r.chunk … r.release)
	gone   bool          // no longer in entries: recycle x once users is 0
}

// OpenReader loads dataset name's manifest and returns a Reader for it.
func OpenReader(ctx context.Context, store storage.ObjectStore, name string, opt ReaderOptions) (*Reader, error) {
	m, err := LoadManifest(ctx, store, name)
	if err != nil {
		return nil, err
	}
	return NewReader(store, m, opt), nil
}

// NewReader returns a Reader of the dataset m describes (a validated
// manifest, as LoadManifest returns).
func NewReader(store storage.ObjectStore, m *Manifest, opt ReaderOptions) *Reader {
	opt = opt.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reader{store: store, m: m, opt: opt, d: m.D, ctx: ctx, cancel: cancel,
		sem: make(chan struct{}, opt.Concurrency), entries: map[int64]*chunkEntry{},
		shardStart: make([]int64, len(m.Shards)+1), chunkBase: make([]int64, len(m.Shards)+1)}
	cr := int64(m.ChunkRows)
	for s, sh := range m.Shards {
		r.shardStart[s+1] = r.shardStart[s] + sh.Rows
		r.chunkBase[s+1] = r.chunkBase[s] + (sh.Rows+cr-1)/cr
	}
	return r
}

// Manifest returns the manifest of the dataset being read.
func (r *Reader) Manifest() *Manifest { return r.m }

// Stats returns the traffic counters so far.
func (r *Reader) Stats() ReaderStats {
	return ReaderStats{BytesFetched: r.bytes.Load(), LabelBytesFetched: r.labelBytes.Load(),
		ChunksFetched: r.fetched.Load(), CacheHits: r.hits.Load(), BuffersReused: r.reused.Load()}
}

// Close cancels background fetches and waits for them to end.
func (r *Reader) Close() error {
	r.cancel()
	r.wg.Wait()
	return nil
}

// checkOrder panics if o was not built from this dataset's layout.
func (r *Reader) checkOrder(o *order.EpochOrder) {
	l := o.Layout()
	if o.Len() != r.m.Rows || l.ChunkRows != r.m.ChunkRows || len(l.ShardRows) != len(r.m.Shards) {
		panic("dataset: Reader used with an EpochOrder of another layout")
	}
}

// Prefetch starts fetching, in the background, the chunks holding positions
// [pos, pos+n) of o that are neither held nor in flight, while fewer than
// opt.Prefetch fetched chunks wait to be read. It does not block, and
// reports whether every chunk of the range is now held or in flight (false:
// the budget ran out first). Prefetched chunks stay in memory until read
// (or DropUnread), so prefetch only positions this reader will read.
func (r *Reader) Prefetch(o *order.EpochOrder, pos, n int64) bool {
	r.checkOrder(o)
	return r.prefetch(o, pos, n, 0)
}

// prefetch is Prefetch with a budget of opt.Prefetch+extra unread chunks
// (extra: chunks about to be read, which do not count against prefetching).
func (r *Reader) prefetch(o *order.EpochOrder, pos, n int64, extra int) bool {
	if n <= 0 || pos >= o.Len() {
		return true
	}
	n = min(n, o.Len()-pos)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range o.Chunks(pos, n) {
		if _, ok := r.entries[c.Index]; ok {
			continue
		}
		if r.unread >= r.opt.Prefetch+extra {
			return false
		}
		r.startLocked(c)
	}
	return true
}

// maxAheadSteps bounds how many future steps ReadStep prefetches.
const maxAheadSteps = 16

// ReadStep reads this rank's slice of step (see order.BatchSlice) into dst
// and labels (as ReadPositions), after starting fetches of its slices of
// the following steps, as many as the prefetch budget allows, so that S3
// is read ahead of compute. When (rank, ranks) differs from the previous
// ReadStep, what was prefetched for the old share is dropped first
// (DropUnread). It returns the number of rows read.
func (r *Reader) ReadStep(ctx context.Context, o *order.EpochOrder, batch int, step int64, rank, ranks int, dst []float32, labels []int32) (int, error) {
	r.mu.Lock()
	changed := r.lastShare != [2]int{rank, ranks}
	r.lastShare = [2]int{rank, ranks}
	r.mu.Unlock()
	if changed {
		r.DropUnread()
	}
	r.checkOrder(o)
	lo, hi := order.BatchSlice(o.Len(), batch, step, rank, ranks)
	// This step's chunks first (whatever the budget), then the next steps'.
	cur := o.Chunks(lo, hi-lo)
	r.prefetch(o, lo, hi-lo, len(cur))
	for a := step + 1; a <= step+maxAheadSteps; a++ {
		nlo, nhi := order.BatchSlice(o.Len(), batch, a, rank, ranks)
		if nlo >= o.Len() || !r.prefetch(o, nlo, nhi-nlo, len(cur)) {
			break
		}
	}
	if err := r.ReadPositions(ctx, o, lo, hi-lo, dst, labels); err != nil {
		return 0, err
	}
	return int(hi - lo), nil
}

// ReadPositions fills dst[:n*d] with the rows at positions [pos, pos+n) of
// o, in order, and labels[:n] with their labels if labels is non-nil (the
// dataset must have labels). It blocks until the chunks are fetched. A
// chunk whose bytes fail their CRC32C twice is an error wrapping
// ErrCorrupt that names the dataset, shard and chunk.
func (r *Reader) ReadPositions(ctx context.Context, o *order.EpochOrder, pos, n int64, dst []float32, labels []int32) error {
	r.checkOrder(o)
	r.checkBuffers("ReadPositions", n, dst, labels)
	d := int64(r.d)
	chunks := o.Chunks(pos, n)
	// Start every missing chunk at once (GETs run Concurrency at a time),
	// then copy them out in order.
	r.mu.Lock()
	for _, c := range chunks {
		if _, ok := r.entries[c.Index]; ok {
			r.hits.Add(1)
		} else {
			r.startLocked(c)
		}
	}
	r.mu.Unlock()
	out := int64(0)
	for _, c := range chunks {
		e, err := r.chunk(ctx, c)
		if err != nil {
			return err
		}
		p := o.ChunkShuffle(c)
		for k := max(0, pos-c.Pos); k < int64(c.Rows) && out < n; k++ {
			local := p.Offset(k)
			copy(dst[out*d:(out+1)*d], e.x[local*d:(local+1)*d])
			if labels != nil {
				labels[out] = e.labels[local]
			}
			out++
		}
		r.release(e)
	}
	return nil
}

// Load reads the whole dataset into memory in storage order, fetching and
// checking every chunk (ReadRows of every row). It is meant for evaluation
// sets and small datasets.
func (r *Reader) Load(ctx context.Context) (*datafile.Matrix, error) {
	if r.m.Rows > math.MaxInt/int64(r.d) {
		return nil, fmt.Errorf("dataset %s: %d rows do not fit in memory", r.m.Name, r.m.Rows)
	}
	ds := &datafile.Matrix{Name: r.m.Name, Rows: int(r.m.Rows), D: r.d, X: make([]float32, r.m.Rows*int64(r.d))}
	if r.labelled() {
		ds.Labels = make([]int32, r.m.Rows)
	}
	if err := r.ReadRows(ctx, 0, r.m.Rows, ds.X, ds.Labels); err != nil {
		return nil, err
	}
	return ds, nil
}

// ReadRows fills dst[:n*d] with global rows [lo, lo+n) in storage order
// (shard by shard, unshuffled), and labels[:n] with their labels if labels
// is non-nil (the dataset must have labels), for a pass over the whole
// dataset in bounded memory, such as an evaluation. While it copies a chunk
// it keeps the following chunks in storage order in flight, up to the
// prefetch budget, so that consecutive calls over increasing rows overlap
// fetching and copying. It holds at most Prefetch + Cache chunks (plus the
// one being copied, if evicted meanwhile) besides dst, whatever n is.
// Errors are as ReadPositions'. It panics if [lo, lo+n) leaves the dataset
// or dst or labels is short.
func (r *Reader) ReadRows(ctx context.Context, lo, n int64, dst []float32, labels []int32) error {
	if lo < 0 || n < 0 || lo > r.m.Rows-n {
		panic(fmt.Sprintf("dataset: ReadRows: rows [%d, %d) outside [0, %d)", lo, lo+n, r.m.Rows))
	}
	r.checkBuffers("ReadRows", n, dst, labels)
	d := int64(r.d)
	for g := lo; g < lo+n; {
		c := r.storageChunk(g)
		r.mu.Lock()
		next := c
		for i := 0; i < r.opt.Prefetch && r.unread < r.opt.Prefetch; i++ {
			if _, ok := r.entries[next.Index]; !ok {
				r.startLocked(next)
			}
			if next.Global+int64(next.Rows) >= r.m.Rows {
				break
			}
			next = r.storageChunk(next.Global + int64(next.Rows))
		}
		r.mu.Unlock()
		e, err := r.chunk(ctx, c)
		if err != nil {
			return err
		}
		k, out := g-c.Global, g-lo
		rows := min(int64(c.Rows)-k, lo+n-g)
		copy(dst[out*d:(out+rows)*d], e.x[k*d:(k+rows)*d])
		if labels != nil {
			copy(labels[out:out+rows], e.labels[k:k+rows])
		}
		r.release(e)
		g += rows
	}
	return nil
}

// checkBuffers panics, naming op, if dst cannot hold n rows or labels are
// requested that the dataset lacks or that do not fit (a caller bug).
func (r *Reader) checkBuffers(op string, n int64, dst []float32, labels []int32) {
	if int64(len(dst)) < n*int64(r.d) {
		panic(fmt.Sprintf("dataset: %s: dst holds %d values, want %d", op, len(dst), n*int64(r.d)))
	}
	if labels != nil && (!r.labelled() || int64(len(labels)) < n) {
		panic(fmt.Sprintf("dataset: %s: labels requested but the dataset has none or the slice is short", op))
	}
}

// labelled reports whether the Reader fetches labels.
func (r *Reader) labelled() bool { return r.m.HasLabels && !r.opt.SkipLabels }

// storageChunk returns the chunk holding global row g (0 <= g < Rows), with
// Pos = Global: its place in storage order.
func (r *Reader) storageChunk(g int64) order.ChunkRef {
	s := sort.Search(len(r.m.Shards), func(s int) bool { return r.shardStart[s+1] > g })
	cr := int64(r.m.ChunkRows)
	start := (g - r.shardStart[s]) / cr * cr
	global := r.shardStart[s] + start
	return order.ChunkRef{Index: r.chunkBase[s] + start/cr, Shard: s, Start: start,
		Rows: int(min(cr, r.m.Shards[s].Rows-start)), Global: global, Pos: global}
}

// chunk returns chunk c, fetching it if needed, and marks it recently used.
// The caller copies out of it and then calls release.
func (r *Reader) chunk(ctx context.Context, c order.ChunkRef) (*chunkEntry, error) {
	r.mu.Lock()
	e, ok := r.entries[c.Index]
	if !ok {
		e = r.startLocked(c)
	}
	e.users++ // from now on: its buffer stays while this call waits and copies
	r.mu.Unlock()
	select {
	case <-e.ready:
	case <-ctx.Done():
		r.release(e)
		return nil, ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.err != nil {
		e.users--
		return nil, e.err
	}
	switch {
	case r.entries[c.Index] != e:
		// Dropped (DropUnread) or evicted meanwhile: use it, do not cache it.
	case !e.read:
		e.read = true
		r.unread--
		e.elem = r.lru.PushFront(e)
		r.evictLocked()
	case e.elem != nil:
		r.lru.MoveToFront(e.elem)
	}
	return e, nil
}

// DropUnread forgets prefetched chunks that were not read, freeing their
// memory and prefetch budget (for a worker whose share of the order
// changed). Fetches in flight complete and are dropped.
func (r *Reader) DropUnread() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for idx, e := range r.entries {
		if !e.read {
			delete(r.entries, idx)
			r.unread--
			r.forgetLocked(e)
		}
	}
}

// release ends a copy from e that r.chunk allowed.
func (r *Reader) release(e *chunkEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.users--
	r.recycleLocked(e)
}

// forgetLocked marks e as out of entries, recycling its buffer when nobody
// copies from it. r.mu is held.
func (r *Reader) forgetLocked(e *chunkEntry) {
	e.gone = true
	r.recycleLocked(e)
}

// recycleLocked moves the row buffer of a gone, fetched entry that nobody
// copies from to the free list (bounded by what the Reader may hold). An
// entry still in flight has no buffer yet (x is set with ready closed, under
// r.mu); its fetch recycles it on completion. r.mu is held.
func (r *Reader) recycleLocked(e *chunkEntry) {
	if !e.gone || e.users > 0 || e.x == nil {
		return
	}
	if len(r.free) < r.opt.Prefetch+r.opt.Cache {
		r.free = append(r.free, e.x)
	}
	e.x = nil
}

// buffer returns a row buffer of n values: a recycled one if it is large
// enough, else a new one.
func (r *Reader) buffer(n int) []float32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.free) > 0 {
		b := r.free[len(r.free)-1]
		r.free = r.free[:len(r.free)-1]
		if cap(b) >= n {
			r.reused.Add(1)
			return b[:n]
		}
	}
	return make([]float32, n)
}

// startLocked registers chunk c and starts fetching it. r.mu is held.
func (r *Reader) startLocked(c order.ChunkRef) *chunkEntry {
	e := &chunkEntry{ref: c, ready: make(chan struct{})}
	r.entries[c.Index] = e
	r.unread++
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		x, labels, err := r.fetch(c)
		r.mu.Lock()
		defer r.mu.Unlock()
		e.x, e.labels, e.err = x, labels, err
		if err != nil && r.entries[c.Index] == e {
			// Forget the failure so that a later request retries; readers
			// already waiting on e see err.
			delete(r.entries, c.Index)
			r.unread--
		}
		close(e.ready)
		if r.entries[c.Index] != e {
			r.forgetLocked(e) // dropped while in flight
		}
	}()
	return e
}

// evictLocked drops least recently used read chunks beyond the cache size.
func (r *Reader) evictLocked() {
	for r.lru.Len() > r.opt.Cache {
		e := r.lru.Remove(r.lru.Back()).(*chunkEntry)
		e.elem = nil
		delete(r.entries, e.ref.Index)
		r.forgetLocked(e)
	}
}

// fetch downloads and checks chunk c (and its labels), retrying once on a
// checksum mismatch. The bytes land in the slices returned: on a
// little-endian host (the stored byte order) nothing is converted or copied.
func (r *Reader) fetch(c order.ChunkRef) ([]float32, []int32, error) {
	select {
	case r.sem <- struct{}{}:
	case <-r.ctx.Done():
		return nil, nil, r.ctx.Err()
	}
	defer func() { <-r.sem }()
	sh := r.m.Shards[c.Shard]
	ci := c.Start / int64(r.m.ChunkRows)
	rowBytes := int64(r.d) * 4
	x := r.buffer(c.Rows * r.d)
	if err := r.fetchChecked(c, ci, sh.Key, sh.DataOffset+c.Start*rowBytes, words(x), sh.ChunkCRC32C[ci], &r.bytes); err != nil {
		return nil, nil, err
	}
	var labels []int32
	if r.labelled() {
		labels = make([]int32, c.Rows)
		if err := r.fetchChecked(c, ci, sh.LabelsKey, sh.LabelsDataOffset+c.Start*4, words(labels), sh.LabelsChunkCRC32C[ci], &r.labelBytes); err != nil {
			return nil, nil, err
		}
	}
	r.fetched.Add(1)
	return x, labels, nil
}

// words is the memory of v as bytes, and fromLittleEndian puts the
// little-endian words read into it in host order: a no-op on little-endian
// hosts.
func words[T float32 | int32](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// fetchChecked fills buf with the len(buf) bytes of key at off, counting
// them in *count, checks their CRC32C and leaves them in host byte order.
func (r *Reader) fetchChecked(c order.ChunkRef, ci int64, key string, off int64, buf []byte, want uint32, count *atomic.Int64) error {
	n := int64(len(buf))
	var got uint32
	for attempt := 0; attempt < 2; attempt++ {
		rc, err := r.store.GetRange(r.ctx, key, off, n)
		if err != nil {
			return fmt.Errorf("dataset %s: shard %d chunk %d: %w", r.m.Name, c.Shard, ci, err)
		}
		m, err := io.ReadFull(rc, buf)
		rc.Close()
		count.Add(int64(m))
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: dataset %s: shard %d (%s) chunk %d: object ends after %d of %d bytes",
					ErrCorrupt, r.m.Name, c.Shard, key, ci, m, n)
			}
			return fmt.Errorf("dataset %s: shard %d (%s) chunk %d: %w", r.m.Name, c.Shard, key, ci, err)
		}
		if got = crc32.Checksum(buf, castagnoli); got == want {
			fromLittleEndian(buf)
			return nil
		}
	}
	return fmt.Errorf("%w: dataset %s: shard %d (%s) chunk %d (rows %d-%d): CRC32C %08x, manifest says %08x",
		ErrCorrupt, r.m.Name, c.Shard, key, ci, c.Start, c.Start+int64(c.Rows)-1, got, want)
}

// fromLittleEndian rewrites the 4-byte little-endian words of b in host
// order, in place.
func fromLittleEndian(b []byte) {
	if hostLittleEndian {
		return
	}
	for i := 0; i+4 <= len(b); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.LittleEndian.Uint32(b[i:]))
	}
}

// hostLittleEndian reports whether this machine stores words as the
// dataset shards do.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// LoadDataset reads the whole of dataset name into memory (see Reader.Load):
// for evaluation sets and datasets small enough to train on in memory.
func LoadDataset(ctx context.Context, store storage.ObjectStore, name string) (*datafile.Matrix, error) {
	r, err := OpenReader(ctx, store, name, ReaderOptions{})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Load(ctx)
}
