package artifact

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dsae/dsae/storage"
)

// Checkpoint is one saved training state. The store treats the optimizer
// and tracker states and the metrics as opaque: the caller defines them.
type Checkpoint struct {
	Step           int64
	Epoch          int64
	Seed           uint64
	Params         []float32
	OptimizerState []byte
	TrackerState   []byte
	// Metrics is a JSON document (nil for none), e.g. the losses at Step.
	Metrics json.RawMessage
}

// CheckpointInfo describes a published checkpoint; it is what the commit
// marker holds, so listing never reads the (large) data object.
type CheckpointInfo struct {
	Job     string          `json:"job"`
	ID      string          `json:"id"` // <step, 12 digits>-<random hex>
	Step    int64           `json:"step"`
	Epoch   int64           `json:"epoch"`
	Seed    uint64          `json:"seed"`
	DataKey string          `json:"data_key"`
	Bytes   int64           `json:"bytes"`
	SHA256  string          `json:"sha256"`
	Created time.Time       `json:"created"`
	Metrics json.RawMessage `json:"metrics,omitempty"`
	Version int             `json:"version"`
}

// CheckpointStore saves and loads the checkpoints of one job:
//
//	jobs/<job>/checkpoints/<step>-<rand>/data.ckpt    parameters, optimizer and tracker state
//	jobs/<job>/checkpoints/<step>-<rand>/commit.json  written last: its presence publishes the checkpoint
//
// A writer that dies before the commit marker leaves a data object that is
// never listed or loaded (Prune removes it later). Loading verifies the
// SHA-256 recorded in the marker. Safe for concurrent use; one writer per
// job is expected.
type CheckpointStore struct {
	c      *storage.Client
	job    string
	prefix string
}

const (
	checkpointVersion = 1
	commitMarker      = "commit.json"
	checkpointData    = "data.ckpt"
	maxCkptHeader     = 1 << 20
)

var ckptMagic = [8]byte{'D', 'S', 'A', 'E', 'C', 'K', 'P', '1'}

var jobIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// checkJobID validates a job ID used as a key component.
func checkJobID(job string) error {
	if !jobIDRE.MatchString(job) {
		return fmt.Errorf("%w %q: want 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalidJobID, job)
	}
	return nil
}

// NewCheckpointStore returns the checkpoint store of job.
func NewCheckpointStore(c *storage.Client, job string) (*CheckpointStore, error) {
	if err := checkJobID(job); err != nil {
		return nil, err
	}
	return &CheckpointStore{c: c, job: job, prefix: "jobs/" + job + "/checkpoints/"}, nil
}

// ckptHeader is the JSON header at the start of a data object.
type ckptHeader struct {
	Version        int             `json:"version"`
	Step           int64           `json:"step"`
	Epoch          int64           `json:"epoch"`
	Seed           uint64          `json:"seed"`
	Params         int64           `json:"params"`
	OptimizerBytes int64           `json:"optimizer_bytes"`
	TrackerBytes   int64           `json:"tracker_bytes"`
	Metrics        json.RawMessage `json:"metrics,omitempty"`
}

// Save writes ck under a new unique ID and publishes it. It returns the
// published info. ck is only read; the caller keeps ownership.
func (s *CheckpointStore) Save(ctx context.Context, ck *Checkpoint) (CheckpointInfo, error) {
	if ck.Step < 0 || ck.Epoch < 0 {
		return CheckpointInfo{}, fmt.Errorf("checkpoint: negative step %d or epoch %d", ck.Step, ck.Epoch)
	}
	if len(ck.Metrics) > 0 && !json.Valid(ck.Metrics) {
		return CheckpointInfo{}, fmt.Errorf("checkpoint step %d: metrics are not valid JSON", ck.Step)
	}
	hdr, err := json.Marshal(ckptHeader{Version: checkpointVersion, Step: ck.Step, Epoch: ck.Epoch, Seed: ck.Seed,
		Params: int64(len(ck.Params)), OptimizerBytes: int64(len(ck.OptimizerState)),
		TrackerBytes: int64(len(ck.TrackerState)), Metrics: ck.Metrics})
	if err != nil {
		return CheckpointInfo{}, err
	}
	head := make([]byte, 0, len(ckptMagic)+4+len(hdr))
	head = append(head, ckptMagic[:]...)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(hdr)))
	head = append(head, hdr...)
	body := newSectionReader(head, float32Bytes(ck.Params), ck.OptimizerState, ck.TrackerState)
	sum := sha256.New()
	if _, err := io.Copy(sum, body); err != nil {
		return CheckpointInfo{}, err
	}
	body.Seek(0, io.SeekStart)

	id := fmt.Sprintf("%012d-%s", ck.Step, randHexID(8))
	info := CheckpointInfo{Job: s.job, ID: id, Step: ck.Step, Epoch: ck.Epoch, Seed: ck.Seed,
		DataKey: s.prefix + id + "/" + checkpointData, Bytes: body.Size(), SHA256: hex.EncodeToString(sum.Sum(nil)),
		Created: time.Now().UTC(), Metrics: ck.Metrics, Version: checkpointVersion}
	if err := s.c.Put(ctx, info.DataKey, body, body.Size()); err != nil {
		return CheckpointInfo{}, fmt.Errorf("checkpoint %s step %d: %w", s.job, ck.Step, err)
	}
	marker, _ := json.Marshal(info)
	if err := s.c.Put(ctx, s.prefix+id+"/"+commitMarker, strings.NewReader(string(marker)), int64(len(marker))); err != nil {
		return CheckpointInfo{}, fmt.Errorf("checkpoint %s step %d: publish: %w", s.job, ck.Step, err)
	}
	return info, nil
}

// List returns the published checkpoints, oldest step first.
func (s *CheckpointStore) List(ctx context.Context) ([]CheckpointInfo, error) {
	objs, err := s.c.List(ctx, s.prefix)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints of %s: %w", s.job, err)
	}
	var out []CheckpointInfo
	for _, o := range objs {
		id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, s.prefix), "/"+commitMarker)
		if !ok || strings.Contains(id, "/") {
			continue
		}
		info, err := s.Get(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			continue // pruned meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	slices.SortFunc(out, compareCheckpoints)
	return out, nil
}

func compareCheckpoints(a, b CheckpointInfo) int {
	if a.Step != b.Step {
		return cmpInt(a.Step, b.Step)
	}
	if c := a.Created.Compare(b.Created); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Get reads the commit marker of checkpoint id; ErrNotFound if it is not
// published.
func (s *CheckpointStore) Get(ctx context.Context, id string) (CheckpointInfo, error) {
	var info CheckpointInfo
	key := s.prefix + id + "/" + commitMarker
	rc, err := s.c.Get(ctx, key)
	if err != nil {
		return info, fmt.Errorf("checkpoint %s/%s: %w", s.job, id, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxCkptHeader))
	if err != nil {
		return info, fmt.Errorf("checkpoint %s/%s: %w", s.job, id, err)
	}
	if err := json.Unmarshal(raw, &info); err != nil || info.ID != id || info.Job != s.job || info.Version != checkpointVersion {
		return info, fmt.Errorf("checkpoint %s/%s: %w: commit marker malformed", s.job, id, ErrCorrupt)
	}
	return info, nil
}

// Latest returns the published checkpoint with the highest step (the
// newest among equal steps); ErrNotFound if there is none.
func (s *CheckpointStore) Latest(ctx context.Context) (CheckpointInfo, error) {
	all, err := s.List(ctx)
	if err != nil {
		return CheckpointInfo{}, err
	}
	if len(all) == 0 {
		return CheckpointInfo{}, fmt.Errorf("no checkpoint for job %s: %w", s.job, storage.ErrNotFound)
	}
	return all[len(all)-1], nil
}

// LoadLatest loads the latest published checkpoint.
func (s *CheckpointStore) LoadLatest(ctx context.Context) (*Checkpoint, CheckpointInfo, error) {
	info, err := s.Latest(ctx)
	if err != nil {
		return nil, info, err
	}
	ck, err := s.Load(ctx, info)
	return ck, info, err
}

// Load reads the checkpoint described by info and verifies its size and
// SHA-256; a mismatch is ErrCorrupt naming the checkpoint.
func (s *CheckpointStore) Load(ctx context.Context, info CheckpointInfo) (*Checkpoint, error) {
	name := fmt.Sprintf("checkpoint %s/%s", s.job, info.ID)
	rc, err := s.c.Get(ctx, info.DataKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer rc.Close()
	sum := sha256.New()
	var n byteCount
	br := bufio.NewReaderSize(io.TeeReader(rc, io.MultiWriter(sum, &n)), 1<<20)
	ck, err := decodeCheckpoint(br, info.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(n) != info.Bytes || hex.EncodeToString(sum.Sum(nil)) != info.SHA256 {
		return nil, fmt.Errorf("%s: %w: data object (%d bytes) does not match its commit marker (%d bytes, sha256 %s)",
			name, ErrCorrupt, int64(n), info.Bytes, info.SHA256)
	}
	if ck.Step != info.Step || ck.Epoch != info.Epoch || ck.Seed != info.Seed {
		return nil, fmt.Errorf("%s: %w: header step/epoch/seed differ from the commit marker", name, ErrCorrupt)
	}
	return ck, nil
}

// decodeCheckpoint parses a data object of total bytes. The section
// lengths in the header must add up to total exactly, which is checked
// before anything large is allocated.
func decodeCheckpoint(r io.Reader, total int64) (*Checkpoint, error) {
	corrupt := func(what string) error { return fmt.Errorf("%w: %s", ErrCorrupt, what) }
	var pre [12]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, corrupt("data object too short")
	}
	if [8]byte(pre[:8]) != ckptMagic {
		return nil, corrupt("not a dsae checkpoint (bad magic)")
	}
	n := binary.LittleEndian.Uint32(pre[8:])
	if n > maxCkptHeader {
		return nil, corrupt("header length out of range")
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, corrupt("truncated header")
	}
	var h ckptHeader
	if err := json.Unmarshal(raw, &h); err != nil || h.Version != checkpointVersion {
		return nil, corrupt("malformed header")
	}
	rest := total - int64(len(pre)) - int64(n)
	if h.Params < 0 || h.OptimizerBytes < 0 || h.TrackerBytes < 0 || h.Params > rest/4 ||
		h.OptimizerBytes > rest || h.TrackerBytes > rest || 4*h.Params+h.OptimizerBytes+h.TrackerBytes != rest {
		return nil, corrupt("section lengths do not add up to the object size")
	}
	ck := &Checkpoint{Step: h.Step, Epoch: h.Epoch, Seed: h.Seed, Metrics: h.Metrics}
	var err error
	if ck.Params, err = readFloat32s(r, h.Params); err != nil {
		return nil, corrupt("truncated parameters")
	}
	if ck.OptimizerState, err = readSection(r, h.OptimizerBytes); err != nil {
		return nil, corrupt("truncated optimizer state")
	}
	if ck.TrackerState, err = readSection(r, h.TrackerBytes); err != nil {
		return nil, corrupt("truncated tracker state")
	}
	return ck, nil
}

// readSection reads exactly n bytes (n already checked against the size).
func readSection(r io.Reader, n int64) ([]byte, error) {
	buf := make([]byte, n)
	_, err := io.ReadFull(r, buf)
	return buf, err
}

// readFloat32s reads n little-endian float32 values; on little-endian
// machines straight into the result's memory.
func readFloat32s(r io.Reader, n int64) ([]float32, error) {
	out := make([]float32, n)
	if littleEndian {
		_, err := io.ReadFull(r, float32Bytes(out))
		return out, err
	}
	var buf [64 << 10]byte
	for i := int64(0); i < n; {
		m := min(int64(len(buf))/4, n-i)
		if _, err := io.ReadFull(r, buf[:4*m]); err != nil {
			return nil, err
		}
		for j := int64(0); j < m; j++ {
			out[i+j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
		}
		i += m
	}
	return out, nil
}

// Prune keeps the newest keep published checkpoints and deletes the rest
// (commit marker first, so a checkpoint disappears before its data does),
// plus unpublished data left by writers that died, if older than the
// oldest checkpoint kept. It returns the number of checkpoints removed.
func (s *CheckpointStore) Prune(ctx context.Context, keep int) (int, error) {
	if keep < 1 {
		return 0, fmt.Errorf("checkpoint prune: keep must be >= 1, got %d", keep)
	}
	all, err := s.List(ctx)
	if err != nil {
		return 0, err
	}
	if len(all) <= keep {
		return 0, nil
	}
	drop := all[:len(all)-keep]
	oldestKept := all[len(all)-keep].Step
	for i, info := range drop {
		if err := s.c.Delete(ctx, s.prefix+info.ID+"/"+commitMarker); err != nil {
			return i, err
		}
		if err := s.c.Delete(ctx, info.DataKey); err != nil {
			return i, err
		}
	}
	// Orphans: data objects with no marker, from steps before the oldest kept.
	objs, err := s.c.List(ctx, s.prefix)
	if err != nil {
		return len(drop), err
	}
	published := map[string]bool{}
	for _, o := range objs {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, s.prefix), "/"+commitMarker); ok {
			published[id] = true
		}
	}
	for _, o := range objs {
		id, _, ok := strings.Cut(strings.TrimPrefix(o.Key, s.prefix), "/")
		if !ok || published[id] {
			continue
		}
		stepStr, _, _ := strings.Cut(id, "-")
		if step, err := strconv.ParseInt(stepStr, 10, 64); err == nil && step < oldestKept {
			if err := s.c.Delete(ctx, o.Key); err != nil {
				return len(drop), err
			}
		}
	}
	return len(drop), nil
}
