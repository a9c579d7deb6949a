package worker

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/dsae/dsae/sae"
)

func newKLTrainer(t *testing.T, steps, completed int64, red Reducer) (*Trainer, *sae.Model, sae.Optimizer) {
	t.Helper()
	m, err := sae.New(testConfig(sae.SparsityKL))
	if err != nil {
		t.Fatal(err)
	}
	opt, err := sae.NewOptimizer(sae.DefaultOptimizerConfig(), m.NumParams())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(Options{Model: m, Optimizer: opt, Source: &MemorySource{DS: testData(40, 12, 9), ChunkRows: 4},
		Reducer: red, Batch: 8, Seed: 3, Steps: steps, Completed: completed})
	if err != nil {
		t.Fatal(err)
	}
	return tr, m, opt
}

func runAll(t *testing.T, tr *Trainer) {
	t.Helper()
	for !tr.Done() {
		if _, err := tr.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// A run stopped after k steps, snapshotted, restored into fresh objects and
// continued from Completed = k ends with the bits of an uninterrupted run —
// across an epoch boundary (5 steps per epoch here).
func TestSnapshotRestoreContinuesExactly(t *testing.T) {
	const steps, cut = 13, 7
	ref, refModel, refOpt := newKLTrainer(t, steps, 0, nil)
	runAll(t, ref)
	refSnap, err := TakeSnapshot(refModel, refOpt, ref.Completed())
	if err != nil {
		t.Fatal(err)
	}

	first, _, _ := newKLTrainer(t, cut, 0, nil)
	runAll(t, first)
	snap, err := first.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if snap.Completed != cut {
		t.Fatalf("snapshot completed = %d, want %d", snap.Completed, cut)
	}
	m, err := sae.New(testConfig(sae.SparsityKL))
	if err != nil {
		t.Fatal(err)
	}
	m.Params[0] += 1 // the restore must overwrite everything
	opt, _ := sae.NewOptimizer(sae.DefaultOptimizerConfig(), m.NumParams())
	if err := snap.Restore(m, opt); err != nil {
		t.Fatal(err)
	}
	second, err := NewTrainer(Options{Model: m, Optimizer: opt, Source: &MemorySource{DS: testData(40, 12, 9), ChunkRows: 4},
		Batch: 8, Seed: 3, Steps: steps, Completed: snap.Completed})
	if err != nil {
		t.Fatal(err)
	}
	runAll(t, second)
	got, err := second.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for i := range refSnap.Params {
		if math.Float32bits(refSnap.Params[i]) != math.Float32bits(got.Params[i]) {
			t.Fatalf("param %d: resumed %v, uninterrupted %v", i, got.Params[i], refSnap.Params[i])
		}
	}
	if !slices.Equal(refSnap.Optimizer, got.Optimizer) || !slices.Equal(refSnap.Tracker, got.Tracker) {
		t.Fatal("optimizer state or tracker differ from the uninterrupted run")
	}
	if refSnap.Checksum() != got.Checksum() {
		t.Fatalf("checksums differ: %x vs %x", refSnap.Checksum(), got.Checksum())
	}
}

// The checksum covers every part of the state: flipping one bit anywhere
// changes it.
func TestChecksumCoversEveryPart(t *testing.T) {
	tr, _, _ := newKLTrainer(t, 3, 0, nil)
	runAll(t, tr)
	s, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	base := s.Checksum()
	if c, _ := tr.Checksum(); c != base {
		t.Fatalf("Trainer.Checksum %x != Snapshot.Checksum %x", c, base)
	}
	mutations := map[string]func(*Snapshot){
		"completed": func(s *Snapshot) { s.Completed++ },
		"params": func(s *Snapshot) {
			s.Params[len(s.Params)/2] = math.Float32frombits(math.Float32bits(s.Params[len(s.Params)/2]) ^ 1)
		},
		"optimizer": func(s *Snapshot) { s.Optimizer[len(s.Optimizer)/2] ^= 0x10 },
		"tracker":   func(s *Snapshot) { s.Tracker[0]++ },
	}
	for name, mut := range mutations {
		c := &Snapshot{Completed: s.Completed, Params: slices.Clone(s.Params), Optimizer: slices.Clone(s.Optimizer), Tracker: slices.Clone(s.Tracker)}
		mut(c)
		if c.Checksum() == base {
			t.Errorf("changing the %s leaves the checksum unchanged", name)
		}
	}
}

// Restore refuses state of another shape and changes nothing.
func TestRestoreRefusesOtherShapes(t *testing.T) {
	tr, m, opt := newKLTrainer(t, 1, 0, nil)
	runAll(t, tr)
	s, _ := tr.Snapshot()
	before := slices.Clone(m.Params)
	bad := &Snapshot{Completed: 1, Params: s.Params[:len(s.Params)-1], Optimizer: s.Optimizer, Tracker: s.Tracker}
	if err := bad.Restore(m, opt); !errors.Is(err, sae.ErrShape) {
		t.Fatalf("short params: err = %v, want ErrShape", err)
	}
	bad = &Snapshot{Completed: 1, Params: s.Params, Optimizer: s.Optimizer[:10], Tracker: s.Tracker}
	if err := bad.Restore(m, opt); !errors.Is(err, sae.ErrOptimizerState) {
		t.Fatalf("short optimizer state: err = %v, want ErrOptimizerState", err)
	}
	if !slices.Equal(before, m.Params) {
		t.Fatal("a refused restore changed the parameters")
	}
}

// When one member enters a step with other parameters, every member sees
// the mismatch in the step's last reduction and applies nothing.
func TestReplicaMismatchRefusesStep(t *testing.T) {
	for _, n := range []int{2, 3} {
		g := newGroup(n)
		errs := make([]error, n)
		params := make([][]float32, n)
		var wg sync.WaitGroup
		for r := range n {
			tr, m, _ := newKLTrainer(t, 2, 0, member{g, r})
			if r == n-1 {
				m.Params[5] += 1e-3 // this replica has drifted
			}
			params[r] = slices.Clone(m.Params)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[r] = tr.Step(context.Background())
				if !slices.Equal(params[r], m.Params) {
					errs[r] = errors.New("parameters changed by a refused step")
				}
			}()
		}
		wg.Wait()
		for r, err := range errs {
			if !errors.Is(err, ErrReplicaMismatch) {
				t.Errorf("n=%d rank %d: err = %v, want ErrReplicaMismatch", n, r, err)
			}
		}
	}
}

// checkReplicas accepts equal pieces and refuses any difference, including
// differences that keep the sum of the pieces (which a plain sum would miss).
func TestCheckReplicas(t *testing.T) {
	sums := func(cs ...uint64) []float64 {
		out := make([]float64, verifySlots)
		for _, c := range cs {
			for i := range checksumPieces {
				p := float64(c >> (11 * i) & 0x7ff)
				out[2*i] += p
				out[2*i+1] += p * p
			}
		}
		return out
	}
	if err := checkReplicas(sums(0xdeadbeefcafef00d, 0xdeadbeefcafef00d, 0xdeadbeefcafef00d), 3); err != nil {
		t.Fatalf("equal checksums refused: %v", err)
	}
	if err := checkReplicas(sums(^uint64(0), ^uint64(0)), 2); err != nil {
		t.Fatalf("equal all-ones checksums refused: %v", err)
	}
	if err := checkReplicas(sums(10, 12, 11), 3); err == nil {
		t.Fatal("10, 12, 11 (same sum as 11, 11, 11) accepted")
	}
	if err := checkReplicas(sums(1, 2), 2); err == nil {
		t.Fatal("different checksums accepted")
	}
}
