package order

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// orderLayouts are the layouts the order tests run on: uneven shards, empty
// shards, chunks larger than shards, one row per chunk, and random ones.
func orderLayouts() []Layout {
	ls := []Layout{
		{ShardRows: []int64{10}, ChunkRows: 4},
		{ShardRows: []int64{7, 0, 13, 1, 64}, ChunkRows: 8},
		{ShardRows: []int64{5, 5}, ChunkRows: 100},
		{ShardRows: []int64{9, 3}, ChunkRows: 1},
		{ShardRows: []int64{1}, ChunkRows: 1},
		{ShardRows: []int64{1024, 1024}, ChunkRows: 256},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		l := Layout{ChunkRows: 1 + rng.IntN(40)}
		for range 1 + rng.IntN(6) {
			l.ShardRows = append(l.ShardRows, int64(rng.IntN(300)))
		}
		ls = append(ls, l)
	}
	return ls
}

func allRows(o *EpochOrder) []int64 { return o.Rows(0, o.Len(), nil) }

func TestEpochOrderIsAPermutationOfChunks(t *testing.T) {
	for _, l := range orderLayouts() {
		t.Run(fmt.Sprint(l), func(t *testing.T) {
			o := NewEpochOrder(l, 42, 3)
			var total int64
			shardStart := []int64{}
			for _, n := range l.ShardRows {
				shardStart = append(shardStart, total)
				total += n
			}
			if o.Len() != total {
				t.Fatalf("Len %d, want %d", o.Len(), total)
			}
			rows := allRows(o)
			// Every row exactly once.
			seen := make([]bool, total)
			for _, r := range rows {
				if r < 0 || r >= total || seen[r] {
					t.Fatalf("row %d out of range or repeated", r)
				}
				seen[r] = true
			}
			if int64(len(rows)) != total {
				t.Fatalf("%d rows, want %d", len(rows), total)
			}
			// Chunks tile the order, never cross a shard, and their rows are
			// contiguous in the order.
			chunks := o.Chunks(0, total)
			var pos int64
			seenShort := false
			for _, c := range chunks {
				if c.Pos != pos || c.Rows < 1 || c.Rows > l.ChunkRows {
					t.Fatalf("chunk %+v at position %d", c, pos)
				}
				// Full chunks first, each starting on a multiple of ChunkRows.
				if c.Rows == l.ChunkRows && (seenShort || c.Pos%int64(l.ChunkRows) != 0) {
					t.Fatalf("full chunk %+v misaligned or after a short chunk", c)
				}
				seenShort = seenShort || c.Rows < l.ChunkRows
				if c.Start%int64(l.ChunkRows) != 0 || c.Start+int64(c.Rows) > l.ShardRows[c.Shard] || c.Global != shardStart[c.Shard]+c.Start {
					t.Fatalf("chunk %+v crosses its shard or is misaligned", c)
				}
				for k := 0; k < c.Rows; k++ {
					r := rows[pos+int64(k)]
					if r < c.Global || r >= c.Global+int64(c.Rows) || o.ChunkRow(c, k) != r {
						t.Fatalf("position %d holds row %d, outside chunk %+v", pos+int64(k), r, c)
					}
				}
				pos += int64(c.Rows)
			}
			if pos != total || int64(len(chunks)) != o.NumChunks() {
				t.Fatalf("chunks cover %d rows in %d chunks; want %d in %d", pos, len(chunks), total, o.NumChunks())
			}
			// Any window agrees with the whole order.
			rng := rand.New(rand.NewPCG(3, 4))
			for range 50 {
				if total == 0 {
					break
				}
				p := rng.Int64N(total)
				n := rng.Int64N(total - p + 1)
				if got := o.Rows(p, n, nil); !slices.Equal(got, rows[p:p+n]) {
					t.Fatalf("Rows(%d, %d) = %v, want %v", p, n, got, rows[p:p+n])
				}
				cs := o.Chunks(p, n)
				if n > 0 && (cs[0].Pos > p || cs[len(cs)-1].Pos+int64(cs[len(cs)-1].Rows) < p+n || o.ChunkAt(o.ChunkIndexAt(p)) != cs[0]) {
					t.Fatalf("Chunks(%d, %d) = %+v do not cover the range", p, n, cs)
				}
			}
		})
	}
}

// ChunkShuffle, which dataset.Reader uses to copy a chunk's rows out, is
// the in-chunk shuffle ChunkRow and Rows apply.
func TestChunkShuffleMatchesChunkRow(t *testing.T) {
	for _, l := range orderLayouts() {
		o := NewEpochOrder(l, 9, 2)
		for i := range o.NumChunks() {
			c := o.ChunkAt(i)
			p := o.ChunkShuffle(c)
			for k := 0; k < c.Rows; k++ {
				if got, want := c.Global+p.Offset(int64(k)), o.ChunkRow(c, k); got != want {
					t.Fatalf("layout %+v chunk %+v offset %d: ChunkShuffle gives row %d, ChunkRow %d", l, c, k, got, want)
				}
			}
		}
	}
}

func TestEpochOrderDeterministicAndVaried(t *testing.T) {
	l := Layout{ShardRows: []int64{1000, 999, 17}, ChunkRows: 64}
	base := allRows(NewEpochOrder(l, 7, 0))
	if !slices.Equal(base, allRows(NewEpochOrder(l, 7, 0))) {
		t.Fatal("same (layout, seed, epoch) gave different orders")
	}
	identity := make([]int64, len(base))
	for i := range identity {
		identity[i] = int64(i)
	}
	if slices.Equal(base, identity) {
		t.Fatal("order is the identity")
	}
	for _, other := range []struct {
		seed  uint64
		epoch int64
	}{{7, 1}, {7, 2}, {8, 0}, {0, 0}} {
		o := allRows(NewEpochOrder(l, other.seed, other.epoch))
		same := 0
		for i := range o {
			if o[i] == base[i] {
				same++
			}
		}
		// Two independent shuffles of 2016 rows agree on about one place.
		if same > len(base)/20 {
			t.Errorf("seed %d epoch %d agrees with seed 7 epoch 0 at %d of %d positions", other.seed, other.epoch, same, len(base))
		}
	}
	// The in-chunk shuffle is not the identity either.
	o := NewEpochOrder(l, 7, 0)
	c := o.ChunkAt(0)
	moved := 0
	for k := 0; k < c.Rows; k++ {
		if o.ChunkRow(c, k) != c.Global+int64(k) {
			moved++
		}
	}
	if moved < c.Rows/2 {
		t.Fatalf("in-chunk shuffle moved only %d of %d rows", moved, c.Rows)
	}
}

// TestEpochOrderBillionsOfRows builds the order of a 10-billion-row layout
// and checks windows of it without materialising anything per row.
func TestEpochOrderBillionsOfRows(t *testing.T) {
	l := Layout{ChunkRows: 4096}
	for i := range 1000 {
		l.ShardRows = append(l.ShardRows, 10_000_000+int64(i)) // uneven: every shard has a short chunk
	}
	o := NewEpochOrder(l, 1, 5)
	if o.Len() != 10_000_000*1000+999*1000/2 {
		t.Fatalf("Len %d", o.Len())
	}
	for _, p := range []int64{0, 123_456_789, o.Len() / 2, o.Len() - 5000} {
		rows := o.Rows(p, 5000, nil)
		cs := o.Chunks(p, 5000)
		i := 0
		for _, c := range cs {
			for k := max(0, p-c.Pos); k < int64(c.Rows) && i < len(rows); k++ {
				if rows[i] < c.Global || rows[i] >= c.Global+int64(c.Rows) {
					t.Fatalf("position %d: row %d outside chunk %+v", p+int64(i), rows[i], c)
				}
				i++
			}
		}
		if i != 5000 || len(slices.Compact(slices.Sorted(slices.Values(rows)))) != 5000 {
			t.Fatalf("window at %d: %d rows checked, duplicates present or missing", p, i)
		}
	}
}

func TestFeistelIsABijection(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 5, 16, 17, 1000, 4096, 4097} {
		f := newFeistel(n, n*31)
		seen := make([]bool, n)
		for x := uint64(0); x < n; x++ {
			y := f.forward(x)
			if y >= n || seen[y] {
				t.Fatalf("n=%d: x=%d → %d, out of range or repeated", n, x, y)
			}
			seen[y] = true
		}
	}
}

func BenchmarkEpochOrderRows(b *testing.B) {
	for _, cr := range []int{256, 4096} {
		b.Run(fmt.Sprintf("rows=1e9,chunk=%d,B=1024", cr), func(b *testing.B) {
			l := Layout{ChunkRows: cr}
			for range 1000 {
				l.ShardRows = append(l.ShardRows, 1_000_000)
			}
			o := NewEpochOrder(l, 1, 0)
			dst := make([]int64, 0, 1024)
			var pos int64
			for b.Loop() {
				dst = o.Rows(pos, 1024, dst)
				pos = (pos + 1024) % (o.Len() - 1024)
			}
			b.ReportMetric(float64(b.N)*1024/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
