package order

import (
	"fmt"
	"math/bits"
	"sort"
)

// Layout describes how a dataset's rows are cut for the epoch order: shard
// s holds ShardRows[s] rows, and each shard is cut into chunks of ChunkRows
// rows (the last chunk of a shard may be shorter; a chunk never crosses a
// shard). Global row ids number the rows of shard 0, then shard 1, and so on.
type Layout struct {
	ShardRows []int64
	ChunkRows int
}

// Validate reports a layout that cannot be ordered.
func (l Layout) Validate() error {
	if l.ChunkRows < 1 {
		return fmt.Errorf("chunk rows %d: want ≥ 1", l.ChunkRows)
	}
	for s, n := range l.ShardRows {
		if n < 0 {
			return fmt.Errorf("shard %d has %d rows", s, n)
		}
	}
	return nil
}

// ChunkRef locates one chunk: rows [Start, Start+Rows) of shard Shard, which
// are global rows [Global, Global+Rows). Index numbers the chunks of the
// layout in storage order (shard by shard); Pos is where the chunk's first
// row falls in the epoch order.
type ChunkRef struct {
	Index  int64
	Shard  int
	Start  int64
	Rows   int
	Global int64
	Pos    int64
}

// EpochOrder is the order in which one epoch visits a dataset's rows: a
// seeded permutation of the layout's chunks, with the rows of each chunk
// shuffled among themselves, so the rows of a chunk are contiguous in the
// order. Full chunks (ChunkRows rows) come first, in permuted order, so
// every full chunk starts at a multiple of ChunkRows; the short chunks (the
// last chunk of a shard whose rows are not a multiple of ChunkRows; at most
// one per shard) follow, permuted among themselves. Batch slices that are
// multiples of ChunkRows thus never split a full chunk.
//
// An EpochOrder is a pure function of (layout, seed, epoch) and holds memory
// proportional to the number of shards, not rows or chunks: the
// permutations are computed on demand with keyed Feistel networks. It is
// immutable and safe for concurrent use.
type EpochOrder struct {
	l          Layout
	rows       int64
	shardStart []int64 // first global row of each shard
	chunkBase  []int64 // first chunk index of each shard (len = shards+1)
	fullBase   []int64 // first full-chunk ordinal of each shard (len = shards+1)
	chunks     int64   // all chunks
	full       int64   // full chunks
	perm       feistel // order index → full-chunk ordinal, for i < full
	key        uint64  // base key of the in-chunk permutations
	// The short chunks in epoch order: shard, and the position where each
	// starts (shortPos[len] is the epoch length).
	shortShard []int
	shortPos   []int64
}

// NewEpochOrder returns the order of epoch epoch under seed for layout l.
// It panics if l is invalid (see Layout.Validate); layouts come from
// validated manifests.
func NewEpochOrder(l Layout, seed uint64, epoch int64) *EpochOrder {
	if err := l.Validate(); err != nil {
		panic("order: NewEpochOrder: " + err.Error())
	}
	o := &EpochOrder{
		l:          Layout{ShardRows: append([]int64(nil), l.ShardRows...), ChunkRows: l.ChunkRows},
		shardStart: make([]int64, len(l.ShardRows)),
		chunkBase:  make([]int64, len(l.ShardRows)+1),
		fullBase:   make([]int64, len(l.ShardRows)+1),
	}
	cr := int64(l.ChunkRows)
	var shorts []int
	for s, n := range l.ShardRows {
		o.shardStart[s] = o.rows
		o.chunkBase[s] = o.chunks
		o.fullBase[s] = o.full
		o.rows += n
		o.chunks += (n + cr - 1) / cr
		o.full += n / cr
		if n%cr != 0 {
			shorts = append(shorts, s)
		}
	}
	o.chunkBase[len(l.ShardRows)] = o.chunks
	o.fullBase[len(l.ShardRows)] = o.full
	o.key = mix64(mix64(seed^0x6473616500000000) ^ uint64(epoch))
	o.perm = newFeistel(uint64(o.full), o.key)
	sp := newFeistel(uint64(len(shorts)), mix64(o.key^0x73686f7274))
	o.shortShard = make([]int, len(shorts))
	o.shortPos = make([]int64, len(shorts)+1)
	pos := o.full * cr
	for t := range shorts {
		s := shorts[sp.forward(uint64(t))]
		o.shortShard[t] = s
		o.shortPos[t] = pos
		pos += l.ShardRows[s] % cr
	}
	o.shortPos[len(shorts)] = pos
	return o
}

// Len is the number of rows in the epoch.
func (o *EpochOrder) Len() int64 { return o.rows }

// NumChunks is the number of chunks in the layout.
func (o *EpochOrder) NumChunks() int64 { return o.chunks }

// Layout returns the layout the order was built for.
func (o *EpochOrder) Layout() Layout { return o.l }

// orderIndex returns the order index of the chunk holding position pos.
func (o *EpochOrder) orderIndex(pos int64) int64 {
	cr := int64(o.l.ChunkRows)
	if pos < o.full*cr {
		return pos / cr
	}
	t := sort.Search(len(o.shortShard), func(t int) bool { return o.shortPos[t+1] > pos })
	return o.full + int64(t)
}

// chunk returns the chunk at order index i.
func (o *EpochOrder) chunk(i int64) ChunkRef {
	cr := int64(o.l.ChunkRows)
	if i >= o.full {
		t := i - o.full
		s := o.shortShard[t]
		start := o.l.ShardRows[s] / cr * cr
		return ChunkRef{Index: o.chunkBase[s+1] - 1, Shard: s, Start: start, Rows: int(o.l.ShardRows[s] - start),
			Global: o.shardStart[s] + start, Pos: o.shortPos[t]}
	}
	f := int64(o.perm.forward(uint64(i)))
	s := sort.Search(len(o.l.ShardRows), func(s int) bool { return o.fullBase[s+1] > f })
	start := (f - o.fullBase[s]) * cr
	return ChunkRef{Index: o.chunkBase[s] + (f - o.fullBase[s]), Shard: s, Start: start, Rows: int(cr),
		Global: o.shardStart[s] + start, Pos: i * cr}
}

// ChunkRow returns the global row id at offset k (0 ≤ k < c.Rows) of chunk
// c in the epoch order: the in-chunk shuffle.
func (o *EpochOrder) ChunkRow(c ChunkRef, k int) int64 {
	return c.Global + int64(o.inChunk(c).forward(uint64(k)))
}

// Shuffle is the in-chunk shuffle of one chunk (EpochOrder.ChunkShuffle),
// for a reader that copies many rows of a chunk out in epoch order: it is
// computed once per chunk, then costs O(1) and no memory per row.
type Shuffle struct{ f feistel }

// ChunkShuffle returns the in-chunk shuffle of chunk c.
func (o *EpochOrder) ChunkShuffle(c ChunkRef) Shuffle { return Shuffle{o.inChunk(c)} }

// Offset returns the offset, in storage order within the chunk, of the row
// at offset k (0 ≤ k < c.Rows) of the chunk in the epoch order: ChunkRow(c,
// k) is c.Global + ChunkShuffle(c).Offset(k).
func (s Shuffle) Offset(k int64) int64 { return int64(s.f.forward(uint64(k))) }

// inChunk is the permutation of chunk c's rows, keyed by the epoch and the
// chunk's storage index.
func (o *EpochOrder) inChunk(c ChunkRef) feistel {
	return newFeistel(uint64(c.Rows), mix64(o.key^uint64(c.Index)*0x9e3779b97f4a7c15))
}

// checkRange panics on positions outside the epoch (a caller bug).
func (o *EpochOrder) checkRange(pos, n int64) {
	if pos < 0 || n < 0 || pos > o.rows-n {
		panic(fmt.Sprintf("order: EpochOrder positions [%d, %d) outside [0, %d)", pos, pos+n, o.rows))
	}
}

// Rows appends to dst[:0] the global row ids at order positions
// [pos, pos+n) and returns it. It panics if the range leaves [0, Len()).
func (o *EpochOrder) Rows(pos, n int64, dst []int64) []int64 {
	o.checkRange(pos, n)
	dst = dst[:0]
	if n == 0 {
		return dst
	}
	for i := o.orderIndex(pos); n > 0; i++ {
		c := o.chunk(i)
		p := o.inChunk(c)
		for k := pos - c.Pos; k < int64(c.Rows) && n > 0; k++ {
			dst = append(dst, c.Global+int64(p.forward(uint64(k))))
			pos++
			n--
		}
	}
	return dst
}

// Chunks returns, in order, the chunks that positions [pos, pos+n) touch.
// It panics if the range leaves [0, Len()).
func (o *EpochOrder) Chunks(pos, n int64) []ChunkRef {
	o.checkRange(pos, n)
	if n == 0 {
		return nil
	}
	var out []ChunkRef
	for i := o.orderIndex(pos); i < o.chunks; i++ {
		c := o.chunk(i)
		if c.Pos >= pos+n {
			break
		}
		out = append(out, c)
	}
	return out
}

// ChunkAt returns the chunk at order index i (0 ≤ i < NumChunks()), so a
// reader can walk the epoch chunk by chunk.
func (o *EpochOrder) ChunkAt(i int64) ChunkRef {
	if i < 0 || i >= o.chunks {
		panic(fmt.Sprintf("order: EpochOrder chunk %d outside [0, %d)", i, o.chunks))
	}
	return o.chunk(i)
}

// ChunkIndexAt returns the order index of the chunk holding position pos.
func (o *EpochOrder) ChunkIndexAt(pos int64) int64 {
	o.checkRange(pos, 1)
	return o.orderIndex(pos)
}

// BatchSlice returns the positions [lo, hi) of the epoch order that rank
// of ranks reads at step: global batch step is positions
// [step*batch, step*batch+b) with b = batch, or what is left at the end of
// the epoch, and rank takes its contiguous share
// [b*rank/ranks, b*(rank+1)/ranks) of it. Every position of the epoch is
// in exactly one (step, rank) slice, whatever ranks is at each step.
func BatchSlice(epochLen int64, batch int, step int64, rank, ranks int) (lo, hi int64) {
	base := step * int64(batch)
	if base >= epochLen {
		return epochLen, epochLen
	}
	b := min(int64(batch), epochLen-base)
	return base + b*int64(rank)/int64(ranks), base + b*int64(rank+1)/int64(ranks)
}

// feistel is a keyed bijection of [0, n): a balanced Feistel network over
// the smallest even number of bits covering n, with cycle walking to stay
// inside [0, n). Computing one value costs O(1) expected time and no memory.
type feistel struct {
	n    uint64
	half uint   // bits per half
	mask uint64 // (1<<half)-1
	keys [feistelRounds]uint64
}

const feistelRounds = 4

func newFeistel(n, key uint64) feistel {
	f := feistel{n: n}
	if n > 1 {
		b := uint(bits.Len64(n - 1))
		f.half = (b + 1) / 2
		f.mask = 1<<f.half - 1
	}
	for r := range f.keys {
		key = mix64(key + 0x9e3779b97f4a7c15)
		f.keys[r] = key
	}
	return f
}

func (f feistel) round(r int, x uint64) uint64 { return mix64(x^f.keys[r]) & f.mask }

func (f feistel) encrypt(x uint64) uint64 {
	l, r := x>>f.half, x&f.mask
	for i := 0; i < feistelRounds; i++ {
		l, r = r, l^f.round(i, r)
	}
	return l<<f.half | r
}

// forward maps x in [0, n) to its image in [0, n).
func (f feistel) forward(x uint64) uint64 {
	if f.n <= 1 {
		return x
	}
	x = f.encrypt(x)
	for x >= f.n {
		x = f.encrypt(x)
	}
	return x
}

// mix64 is the splitmix64 finaliser, a fast bijective bit mixer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
