package worker

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage/datafile"
	"github.com/dsae/dsae/storage/order"
)

// groupReducer reduces in memory between n goroutines of one process: each
// member deposits its buffer, the last one sums them in rank order, and
// every member copies the result. It stands in for the ring in tests of the
// training loop; the ring itself is tested in package allreduce.
type groupReducer struct {
	n     int
	mu    sync.Mutex
	cond  *sync.Cond
	round int
	in32  [][]float32
	in64  [][]float64
	seen  int
}

func newGroup(n int) *groupReducer {
	g := &groupReducer{n: n, in32: make([][]float32, n), in64: make([][]float64, n)}
	g.cond = sync.NewCond(&g.mu)
	return g
}

type member struct {
	g    *groupReducer
	rank int
}

func (m member) Rank() int { return m.rank }
func (m member) Size() int { return m.g.n }

func (m member) ReduceFloat32(_ context.Context, _ int64, _ Phase, buf []float32) error {
	m.g.reduce(m.rank, buf, nil)
	return nil
}

func (m member) ReduceFloat64(_ context.Context, _ int64, _ Phase, buf []float64) error {
	m.g.reduce(m.rank, nil, buf)
	return nil
}

func (g *groupReducer) reduce(rank int, b32 []float32, b64 []float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	round := g.round
	g.in32[rank], g.in64[rank] = b32, b64
	g.seen++
	if g.seen == g.n {
		if b32 != nil {
			sum := make([]float32, len(b32))
			for _, b := range g.in32 {
				for i, v := range b {
					sum[i] += v
				}
			}
			for _, b := range g.in32 {
				copy(b, sum)
			}
		} else {
			sum := make([]float64, len(b64))
			for _, b := range g.in64 {
				for i, v := range b {
					sum[i] += v
				}
			}
			for _, b := range g.in64 {
				copy(b, sum)
			}
		}
		g.seen = 0
		g.round++
		g.cond.Broadcast()
		return
	}
	for g.round == round {
		g.cond.Wait()
	}
}

// recordingSource is a MemorySource that remembers which rows were read.
type recordingSource struct {
	MemorySource
	mu   sync.Mutex
	seen map[int64]int
}

func (s *recordingSource) ReadStep(ctx context.Context, o *order.EpochOrder, batch int, step int64, rank, ranks int, dst []float32) (int, error) {
	lo, hi := order.BatchSlice(o.Len(), batch, step, rank, ranks)
	s.mu.Lock()
	for _, id := range o.Rows(lo, hi-lo, nil) {
		s.seen[id]++
	}
	s.mu.Unlock()
	var own MemorySource // each rank needs its own scratch
	own.DS, own.ChunkRows = s.DS, s.ChunkRows
	return own.ReadStep(ctx, o, batch, step, rank, ranks, dst)
}

func testData(rows, d int, seed uint64) *datafile.Matrix {
	r := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, rows*d)
	for i := range x {
		x[i] = r.Float32()
	}
	return &datafile.Matrix{Name: "test", Rows: rows, D: d, X: x}
}

func testConfig(sparsity string) sae.Config {
	c := sae.DefaultConfig()
	c.D, c.H = 12, 8
	switch sparsity {
	case sae.SparsityL1:
		c.Activation, c.Output, c.Sparsity, c.L1 = sae.ActReLU, sae.OutLinear, sae.SparsityL1, 1e-2
	case sae.SparsityTopK:
		c.Activation, c.Output, c.Sparsity, c.K = sae.ActTopK, sae.OutLinear, sae.SparsityTopK, 3
	}
	return c
}

// train runs steps steps of a job with n members and returns every member's
// final parameters.
func train(t *testing.T, cfg sae.Config, ds *datafile.Matrix, n, batch int, steps int64, src Source) [][]float32 {
	t.Helper()
	g := newGroup(n)
	out := make([][]float32, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := 0; r < n; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			m, err := sae.New(cfg)
			if err != nil {
				errs[r] = err
				return
			}
			oc := sae.DefaultOptimizerConfig()
			oc.LR = 1e-2
			opt, err := sae.NewOptimizer(oc, m.NumParams())
			if err != nil {
				errs[r] = err
				return
			}
			s := src
			if s == nil {
				s = &MemorySource{DS: ds, ChunkRows: 5}
			}
			tr, err := NewTrainer(Options{Model: m, Optimizer: opt, Source: s, Reducer: member{g, r}, Batch: batch, Seed: 42, Steps: steps})
			if err != nil {
				errs[r] = err
				return
			}
			for !tr.Done() {
				if _, err := tr.Step(context.Background()); err != nil {
					errs[r] = err
					return
				}
			}
			out[r] = m.Params
		}(r)
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return out
}

// The trajectory does not depend on the number of members: the same global
// batches, split differently, give the same parameters up to float32
// summation order; and all members of one group hold identical bits.
func TestTrajectoryIndependentOfMembers(t *testing.T) {
	ds := testData(53, 12, 1)
	for _, sp := range []string{sae.SparsityKL, sae.SparsityL1, sae.SparsityTopK} {
		cfg := testConfig(sp)
		ref := train(t, cfg, ds, 1, 16, 10, nil)[0]
		for _, n := range []int{2, 3, 5} {
			got := train(t, cfg, ds, n, 16, 10, nil)
			for r := 1; r < n; r++ {
				for i := range got[0] {
					if math.Float32bits(got[r][i]) != math.Float32bits(got[0][i]) {
						t.Fatalf("%s n=%d: rank %d differs from rank 0 at param %d", sp, n, r, i)
					}
				}
			}
			var worst float64
			for i := range ref {
				diff := math.Abs(float64(got[0][i] - ref[i]))
				worst = max(worst, diff/(1e-3+math.Abs(float64(ref[i]))))
			}
			if worst > 1e-3 {
				t.Errorf("%s n=%d: parameters differ from the one-member run by up to %.2g (relative)", sp, n, worst)
			}
		}
	}
}

// Every row is read exactly once per epoch, over all members together.
func TestEveryRowOncePerEpoch(t *testing.T) {
	const rows, batch = 47, 10
	ds := testData(rows, 12, 2)
	src := &recordingSource{MemorySource: MemorySource{DS: ds, ChunkRows: 4}, seen: map[int64]int{}}
	spe := int64((rows + batch - 1) / batch)
	train(t, testConfig(sae.SparsityKL), ds, 3, batch, 2*spe, src)
	if len(src.seen) != rows {
		t.Fatalf("%d distinct rows read in two epochs, want %d", len(src.seen), rows)
	}
	for id, c := range src.seen {
		if c != 2 {
			t.Errorf("row %d read %d times in two epochs, want 2", id, c)
		}
	}
}

// A step whose loss is not finite is refused and leaves the parameters,
// the optimizer state and the dead-latent tracker of the last good step in
// place, and the completed count unchanged.
func TestDivergenceKeepsLastGoodStep(t *testing.T) {
	ds := testData(20, 12, 3)
	cfg := testConfig(sae.SparsityL1)
	m, err := sae.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := sae.NewOptimizer(sae.DefaultOptimizerConfig(), m.NumParams())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(Options{Model: m, Optimizer: opt, Source: &MemorySource{DS: ds}, Batch: 10, Steps: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := append([]float32(nil), m.Params...)
	goodOpt, err := opt.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	goodTracker := m.TrainState()
	if !slices.Contains(goodTracker, 0) {
		t.Fatal("test needs a latent that fired in the first step")
	}
	for i := range ds.X { // corrupt the data under the trainer
		ds.X[i] = float32(math.Inf(1))
	}
	_, err = tr.Step(context.Background())
	if !errors.Is(err, ErrDiverged) {
		t.Fatalf("step on infinite data: err = %v, want ErrDiverged", err)
	}
	for i := range good {
		if math.Float32bits(good[i]) != math.Float32bits(m.Params[i]) {
			t.Fatalf("param %d changed by a refused step", i)
		}
	}
	if gotOpt, _ := opt.MarshalBinary(); !bytes.Equal(gotOpt, goodOpt) {
		t.Fatal("optimizer state changed by a refused step")
	}
	if got := m.TrainState(); !slices.Equal(got, goodTracker) {
		t.Fatalf("dead-latent tracker changed by a refused step: %v, want %v", got, goodTracker)
	}
	if tr.Completed() != 1 {
		t.Fatalf("completed = %d after a refused step, want 1", tr.Completed())
	}
}

func TestNewTrainerRejectsBadOptions(t *testing.T) {
	ds := testData(20, 12, 4)
	m, _ := sae.New(testConfig(sae.SparsityKL))
	opt, _ := sae.NewOptimizer(sae.DefaultOptimizerConfig(), m.NumParams())
	other := testData(20, 5, 4)
	cases := map[string]Options{
		"batch 0":            {Model: m, Optimizer: opt, Source: &MemorySource{DS: ds}, Batch: 0, Steps: 1},
		"batch > rows":       {Model: m, Optimizer: opt, Source: &MemorySource{DS: ds}, Batch: 21, Steps: 1},
		"d mismatch":         {Model: m, Optimizer: opt, Source: &MemorySource{DS: other}, Batch: 4, Steps: 1},
		"completed > steps":  {Model: m, Optimizer: opt, Source: &MemorySource{DS: ds}, Batch: 4, Steps: 1, Completed: 2},
		"negative completed": {Model: m, Optimizer: opt, Source: &MemorySource{DS: ds}, Batch: 4, Steps: 1, Completed: -1},
		"missing source":     {Model: m, Optimizer: opt, Batch: 4, Steps: 1},
	}
	for name, o := range cases {
		if _, err := NewTrainer(o); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
}

// TestFinite32: finite32 against math.IsNaN/IsInf for every length up to
// 21, with each special value at each position, at aligned and unaligned
// starts; the largest finite magnitudes and negative zero are finite.
func TestFinite32(t *testing.T) {
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.Copysign(0, -1))}
	buf := make([]float32, 32)
	for off := 0; off < 2; off++ {
		for n := 0; n <= 21; n++ {
			for pos := -1; pos < n; pos++ {
				for _, sp := range specials {
					v := buf[off : off+n]
					for i := range v {
						v[i] = float32(i) - 7.5
					}
					if pos >= 0 {
						v[pos] = sp
					}
					want := true
					for _, x := range v {
						if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
							want = false
						}
					}
					if got := finite32(v); got != want {
						t.Fatalf("offset %d, n %d, %v at %d: finite32 = %v, want %v", off, n, sp, pos, got, want)
					}
				}
			}
		}
	}
}
