package worker

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dsae/dsae/sae"
)

// TestLocalRunInterruptResume: a run cancelled after step 13 of 40 saves a
// checkpoint and says ErrInterrupted; a run resumed from that checkpoint
// (into a model with other initial weights) ends with parameters, history
// and step count bitwise equal to an uninterrupted run's — for every
// sparsity, since each keeps its own optimizer and tracker state. The same
// holds from a checkpoint taken every 10 steps.
func TestLocalRunInterruptResume(t *testing.T) {
	opt := sae.DefaultOptimizerConfig()
	for _, sp := range []string{sae.SparsityKL, sae.SparsityL1, sae.SparsityTopK} {
		t.Run(sp, func(t *testing.T) {
			ds := testData(96, 12, 4)
			newModel := func(seed uint64) *sae.Model {
				cfg := testConfig(sp)
				cfg.Seed = seed
				m, err := sae.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			base := LocalRun{Optimizer: opt, Train: ds, Batch: 16, Steps: 40, Seed: 3, HistoryEvery: 3}

			full := base
			full.Model = newModel(1)
			want, err := full.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}

			dir := filepath.Join(t.TempDir(), "checkpoint")
			cut := base
			cut.Model = newModel(1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cut.Progress = func(r StepResult, _ Progress) {
				if r.Step == 13 {
					cancel()
				}
			}
			cut.Checkpoint = func(c *LocalCheckpoint) error {
				c.Settings = json.RawMessage(`{"run":"test"}`)
				return SaveLocalCheckpoint(dir, c)
			}
			if _, err := cut.Run(ctx); !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled run: %v, want ErrInterrupted wrapping context.Canceled", err)
			}
			resume := func(from, settings string) {
				t.Helper()
				c, err := LoadLocalCheckpoint(from)
				if err != nil {
					t.Fatal(err)
				}
				var v any
				json.Unmarshal(c.Settings, &v)
				if got, _ := json.Marshal(v); string(got) != settings {
					t.Errorf("settings %s, want %s", got, settings)
				}
				res := base
				res.Model = newModel(99) // other initial weights: the checkpoint must replace them
				res.Resume = c
				got, err := res.Run(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				for i := range want.History {
					if i >= len(got.History) || got.History[i] != want.History[i] {
						t.Fatalf("history differs at point %d: %+v vs %+v", i, got.History, want.History)
					}
				}
				if len(got.History) != len(want.History) || got.Steps != want.Steps || got.Train != want.Train {
					t.Errorf("resumed report %+v, uninterrupted %+v", got, want)
				}
				for i, p := range res.Model.Params {
					if math.Float32bits(p) != math.Float32bits(full.Model.Params[i]) {
						t.Fatalf("param %d = %v resumed, %v uninterrupted", i, p, full.Model.Params[i])
					}
				}
			}
			resume(dir, `{"run":"test"}`)

			every := base
			every.Model = newModel(1)
			every.CheckpointEvery = 10
			saved := 0
			every.Checkpoint = func(c *LocalCheckpoint) error {
				saved++
				return SaveLocalCheckpoint(dir, c)
			}
			if _, err := every.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if saved != 3 { // after steps 10, 20 and 30; not after the last
				t.Errorf("%d checkpoints with CheckpointEvery 10 over 40 steps, want 3", saved)
			}
			if c, err := LoadLocalCheckpoint(dir); err != nil || c.State.Completed != 30 {
				t.Fatalf("last periodic checkpoint: %v, %v", c, err)
			}
			resume(dir, "null")
		})
	}
}

// TestLocalCheckpointDamage: a damaged or foreign checkpoint directory is
// refused with ErrCheckpoint naming the file; a save replaces the old
// checkpoint whole and leaves no temporary directory.
func TestLocalCheckpointDamage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ck")
	snap := &Snapshot{Completed: 7, Params: []float32{1, 2, 3}, Optimizer: []byte("opt"), Tracker: []uint32{4, 5}}
	if err := SaveLocalCheckpoint(dir, &LocalCheckpoint{State: snap}); err != nil {
		t.Fatal(err)
	}
	c, err := LoadLocalCheckpoint(dir)
	if err != nil || !reflect.DeepEqual(c.State, snap) {
		t.Fatalf("round trip: %+v, %v", c, err)
	}
	snap2 := &Snapshot{Completed: 9, Params: []float32{6}, Optimizer: nil, Tracker: []uint32{}}
	if err := SaveLocalCheckpoint(dir, &LocalCheckpoint{State: snap2}); err != nil {
		t.Fatal(err)
	}
	if c, err := LoadLocalCheckpoint(dir); err != nil || c.State.Completed != 9 {
		t.Fatalf("after replacing: %+v, %v", c, err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
		t.Errorf("save left %d entries beside the checkpoint, want none", len(ents)-1)
	}
	state := filepath.Join(dir, localCheckpointState)
	b, _ := os.ReadFile(state)
	b[24] ^= 1 // the one parameter
	os.WriteFile(state, b, 0o644)
	if _, err := LoadLocalCheckpoint(dir); !errors.Is(err, ErrCheckpoint) || !contains(err.Error(), state) || !contains(err.Error(), "checksum") {
		t.Errorf("flipped bit: %v, want ErrCheckpoint naming %s and the checksum", err, state)
	}
	os.WriteFile(state, b[:20], 0o644)
	if _, err := LoadLocalCheckpoint(dir); !errors.Is(err, ErrCheckpoint) || !contains(err.Error(), "parameters") {
		t.Errorf("truncated: %v", err)
	}
	if _, err := LoadLocalCheckpoint(t.TempDir()); !errors.Is(err, ErrCheckpoint) || !contains(err.Error(), localCheckpointMeta) {
		t.Errorf("empty directory: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
