package artifact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dsae/dsae/storage/s3server/s3test"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/storetest"
)

func testCheckpoint(step int64, nParams int) *Checkpoint {
	rng := rand.New(rand.NewPCG(uint64(step), 7))
	p := make([]float32, nParams)
	for i := range p {
		p[i] = float32(rng.NormFloat64())
	}
	if nParams > 2 {
		p[0], p[1] = float32(math.Copysign(0, -1)), math.MaxFloat32
	}
	return &Checkpoint{
		Step: step, Epoch: step / 10, Seed: 42,
		Params:         p,
		OptimizerState: storetest.SeededBytes(uint64(step)+100, 1000+int(step)),
		TrackerState:   []byte(`{"ema":[1,2,3]}`),
		Metrics:        json.RawMessage(`{"mse":0.25,"l0":12}`),
	}
}

func equalCheckpoint(t *testing.T, got, want *Checkpoint) {
	t.Helper()
	if got.Step != want.Step || got.Epoch != want.Epoch || got.Seed != want.Seed {
		t.Fatalf("step/epoch/seed %d/%d/%d, want %d/%d/%d", got.Step, got.Epoch, got.Seed, want.Step, want.Epoch, want.Seed)
	}
	if len(got.Params) != len(want.Params) {
		t.Fatalf("%d params, want %d", len(got.Params), len(want.Params))
	}
	for i := range got.Params {
		if math.Float32bits(got.Params[i]) != math.Float32bits(want.Params[i]) {
			t.Fatalf("param %d = %v, want %v (bitwise)", i, got.Params[i], want.Params[i])
		}
	}
	if !bytes.Equal(got.OptimizerState, want.OptimizerState) || !bytes.Equal(got.TrackerState, want.TrackerState) {
		t.Fatal("optimizer or tracker state differs")
	}
	var gm, wm any
	json.Unmarshal(got.Metrics, &gm)
	json.Unmarshal(want.Metrics, &wm)
	gb, _ := json.Marshal(gm)
	wb, _ := json.Marshal(wm)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("metrics %s, want %s", got.Metrics, want.Metrics)
	}
}

func newCheckpointTest(t *testing.T, dir string) (*s3test.Server, *storage.Client) {
	t.Helper()
	e := storetest.StartS3(t, dir)
	cfg := storetest.ClientConfig(e.Endpoint, "dsae")
	cfg.PartSize = 5 << 20
	c, err := storage.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e, c
}

func TestCheckpointSaveListLoad(t *testing.T) {
	_, c := newCheckpointTest(t, "")
	ctx := context.Background()
	cs, err := NewCheckpointStore(c, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Latest(ctx); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Latest with no checkpoints: %v, want ErrNotFound", err)
	}
	saved := map[int64]*Checkpoint{}
	for _, step := range []int64{10, 30, 20} {
		ck := testCheckpoint(step, 1000)
		if step == 30 {
			ck = testCheckpoint(step, 2_000_000) // 8 MB: a multipart upload
		}
		saved[step] = ck
		info, err := cs.Save(ctx, ck)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(info.DataKey, "jobs/job-1/checkpoints/") || info.Step != step {
			t.Fatalf("info %+v", info)
		}
	}
	all, err := cs.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var steps []int64
	for _, info := range all {
		steps = append(steps, info.Step)
	}
	if !slices.Equal(steps, []int64{10, 20, 30}) {
		t.Fatalf("listed steps %v", steps)
	}
	ck, info, err := cs.LoadLatest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Step != 30 {
		t.Fatalf("latest step %d", info.Step)
	}
	equalCheckpoint(t, ck, saved[30])
	ck, err = cs.Load(ctx, all[0])
	if err != nil {
		t.Fatal(err)
	}
	equalCheckpoint(t, ck, saved[10])
	// Another job sees none of them.
	other, _ := NewCheckpointStore(c, "job-10")
	if l, err := other.List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("other job lists %v, %v", l, err)
	}
	// Empty sections round-trip.
	empty := &Checkpoint{Step: 40}
	if _, err := cs.Save(ctx, empty); err != nil {
		t.Fatal(err)
	}
	got, _, err := cs.LoadLatest(ctx)
	if err != nil || got.Step != 40 || len(got.Params) != 0 || len(got.OptimizerState) != 0 {
		t.Fatalf("empty checkpoint: %+v, %v", got, err)
	}
}

func TestCheckpointHalfWrittenIgnored(t *testing.T) {
	_, c := newCheckpointTest(t, "")
	ctx := context.Background()
	cs, _ := NewCheckpointStore(c, "job")
	if _, err := cs.Save(ctx, testCheckpoint(5, 100)); err != nil {
		t.Fatal(err)
	}
	// A writer died after the data object and before the commit marker.
	orphan := "jobs/job/checkpoints/000000000009-deadbeef/" + checkpointData
	data := storetest.SeededBytes(9, 5000)
	if err := c.Put(ctx, orphan, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	all, err := cs.List(ctx)
	if err != nil || len(all) != 1 || all[0].Step != 5 {
		t.Fatalf("List = %+v, %v; want only step 5", all, err)
	}
	if info, err := cs.Latest(ctx); err != nil || info.Step != 5 {
		t.Fatalf("Latest = %+v, %v", info, err)
	}
}

func TestCheckpointCorruptionDetected(t *testing.T) {
	_, c := newCheckpointTest(t, "")
	ctx := context.Background()
	cs, _ := NewCheckpointStore(c, "job")
	info, err := cs.Save(ctx, testCheckpoint(7, 5000))
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := c.Get(ctx, info.DataKey)
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	rc.Close()
	good := buf.Bytes()
	for name, bad := range map[string][]byte{
		"flipped byte": func() []byte { b := slices.Clone(good); b[len(b)/2] ^= 1; return b }(),
		"truncated":    good[:len(good)-3],
		"extra byte":   append(slices.Clone(good), 0),
		"bad magic":    func() []byte { b := slices.Clone(good); b[0] = 'X'; return b }(),
		"huge header":  func() []byte { b := slices.Clone(good); b[11] = 0x7f; return b }(),
	} {
		if err := c.Put(ctx, info.DataKey, bytes.NewReader(bad), int64(len(bad))); err != nil {
			t.Fatal(err)
		}
		_, err := cs.Load(ctx, info)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), info.ID) {
			t.Errorf("%s: %v, want ErrCorrupt naming %s", name, err, info.ID)
		}
	}
}

func TestCheckpointPrune(t *testing.T) {
	_, c := newCheckpointTest(t, "")
	ctx := context.Background()
	cs, _ := NewCheckpointStore(c, "job")
	for _, step := range []int64{1, 2, 3, 4, 5} {
		if _, err := cs.Save(ctx, testCheckpoint(step, 10)); err != nil {
			t.Fatal(err)
		}
	}
	oldOrphan := "jobs/job/checkpoints/000000000002-0dead/" + checkpointData
	newOrphan := "jobs/job/checkpoints/000000000006-0beef/" + checkpointData // may be a save in flight
	for _, k := range []string{oldOrphan, newOrphan} {
		c.Put(ctx, k, strings.NewReader("x"), 1)
	}
	n, err := cs.Prune(ctx, 2)
	if err != nil || n != 3 {
		t.Fatalf("Prune = %d, %v; want 3", n, err)
	}
	all, _ := cs.List(ctx)
	if len(all) != 2 || all[0].Step != 4 || all[1].Step != 5 {
		t.Fatalf("after prune: %+v", all)
	}
	objs, _ := c.List(ctx, "jobs/job/")
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	if len(objs) != 5 || slices.Contains(keys, oldOrphan) || !slices.Contains(keys, newOrphan) {
		t.Fatalf("objects left: %v", keys)
	}
	if _, err := cs.Prune(ctx, 0); err == nil {
		t.Fatal("keep 0 accepted")
	}
}

// TestCheckpointSurvivesServerRestart: a cold restart of the store resumes
// from the same checkpoint.
func TestCheckpointSurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	e, c := newCheckpointTest(t, dir)
	ctx := context.Background()
	cs, _ := NewCheckpointStore(c, "job")
	want := testCheckpoint(77, 3000)
	if _, err := cs.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	e.Stop()
	_, c2 := newCheckpointTest(t, dir)
	cs2, _ := NewCheckpointStore(c2, "job")
	got, _, err := cs2.LoadLatest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	equalCheckpoint(t, got, want)
}

func TestCheckpointBadInput(t *testing.T) {
	_, c := newCheckpointTest(t, "")
	for _, job := range []string{"", "a/b", "..", "-x", strings.Repeat("a", 129), "sp ace"} {
		if _, err := NewCheckpointStore(c, job); !errors.Is(err, ErrInvalidJobID) {
			t.Errorf("job %q: %v, want ErrInvalidJobID", job, err)
		}
	}
	cs, _ := NewCheckpointStore(c, "job")
	if _, err := cs.Save(context.Background(), &Checkpoint{Step: 1, Metrics: json.RawMessage("{not json")}); err == nil {
		t.Error("invalid metrics JSON accepted")
	}
	if _, err := cs.Save(context.Background(), &Checkpoint{Step: -1}); err == nil {
		t.Error("negative step accepted")
	}
}

func FuzzDecodeCheckpoint(f *testing.F) {
	var buf bytes.Buffer
	ck := testCheckpoint(3, 8)
	hdr, _ := json.Marshal(ckptHeader{Version: 1, Step: 3, Params: 8, OptimizerBytes: int64(len(ck.OptimizerState)), TrackerBytes: int64(len(ck.TrackerState))})
	buf.Write(ckptMagic[:])
	buf.Write([]byte{byte(len(hdr)), 0, 0, 0})
	buf.Write(hdr)
	buf.Write(float32Bytes(ck.Params))
	buf.Write(ck.OptimizerState)
	buf.Write(ck.TrackerState)
	f.Add(buf.Bytes())
	f.Add(append(ckptMagic[:], 0xff, 0xff, 0xff, 0x00))
	f.Fuzz(func(t *testing.T, data []byte) {
		ck, err := decodeCheckpoint(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if int64(len(ck.Params))*4+int64(len(ck.OptimizerState)+len(ck.TrackerState)) > int64(len(data)) {
			t.Fatal("decoded more than the input holds")
		}
	})
}
