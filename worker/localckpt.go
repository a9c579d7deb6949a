package worker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// A local checkpoint is a directory holding a LocalRun's full state at a
// step boundary, so that `dsae train --resume DIR` continues exactly where
// the run stopped:
//
//	checkpoint.json  format, completed steps, the run's settings (opaque
//	                 JSON the caller gives), history, checksum of state.bin
//	state.bin        the Snapshot: parameters, optimizer state, tracker
//
// It is written to a temporary directory beside DIR and renamed into place,
// so a reader sees a whole checkpoint or the previous one, never a part.
const (
	localCheckpointMeta  = "checkpoint.json"
	localCheckpointState = "state.bin"
	localCheckpointMagic = "DSAESNP1"
	localCheckpointKind  = "dsae-local-checkpoint"
)

// ErrCheckpoint: a local checkpoint directory is missing, of another
// format, or damaged; the error names the file and what is wrong.
var ErrCheckpoint = errors.New("invalid checkpoint")

// LocalCheckpoint is a LocalRun's state at a step boundary.
type LocalCheckpoint struct {
	// Settings are the run's settings as the caller encodes them (dsae
	// train: its jobspec.Spec); LocalRun does not read them.
	Settings json.RawMessage
	State    *Snapshot
	// Progress is the run's bookkeeping at the boundary: the history so far
	// and the partial window of the next history point, so that a resumed
	// run reports what an uninterrupted one does.
	Progress RunProgress
}

// RunProgress is the part of a LocalRun's state that is not training state.
type RunProgress struct {
	History      []HistoryPoint `json:"history"`
	Window       HistoryPoint   `json:"window"` // sums of the steps since the last point
	WindowSteps  int64          `json:"window_steps"`
	WindowFVUs   int64          `json:"window_fvus"` // steps of the window with a defined FVU
	Samples      int64          `json:"samples"`     // rows trained on so far
	TrainSeconds float64        `json:"train_seconds"`
}

type localCheckpointFile struct {
	Format    string          `json:"format"`
	Version   int             `json:"version"`
	Completed int64           `json:"completed"`
	Checksum  string          `json:"checksum"` // Snapshot.Checksum, %016x
	Settings  json.RawMessage `json:"settings"`
	Progress  RunProgress     `json:"progress"`
}

// SaveLocalCheckpoint writes c to dir, replacing what dir held.
func SaveLocalCheckpoint(dir string, c *LocalCheckpoint) error {
	if c.State == nil {
		return fmt.Errorf("save checkpoint %s: no state", dir)
	}
	meta, err := json.MarshalIndent(localCheckpointFile{Format: localCheckpointKind, Version: 1, Completed: c.State.Completed,
		Checksum: fmt.Sprintf("%016x", c.State.Checksum()), Settings: c.Settings, Progress: c.Progress}, "", "  ")
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", dir, err)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".checkpoint-*")
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	defer os.RemoveAll(tmp) // nothing left after the rename
	if err := writeSynced(filepath.Join(tmp, localCheckpointState), encodeSnapshot(c.State)); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", dir, err)
	}
	if err := writeSynced(filepath.Join(tmp, localCheckpointMeta), append(meta, '\n')); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", dir, err)
	}
	// Swap: the old checkpoint moves aside, the new one in, the old is removed.
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("save checkpoint %s: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("save checkpoint %s: %w", dir, err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadLocalCheckpoint reads the checkpoint in dir and checks state.bin
// against the checksum checkpoint.json records. Errors wrap ErrCheckpoint
// and name the file.
func LoadLocalCheckpoint(dir string) (*LocalCheckpoint, error) {
	metaPath := filepath.Join(dir, localCheckpointMeta)
	mb, err := os.ReadFile(metaPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s: no %s (not a checkpoint directory of dsae train)", ErrCheckpoint, dir, localCheckpointMeta)
		}
		return nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	var meta localCheckpointFile
	if err := json.Unmarshal(mb, &meta); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, metaPath, err)
	}
	if meta.Format != localCheckpointKind || meta.Version != 1 {
		return nil, fmt.Errorf("%w: %s: format %q version %d, want %q version 1", ErrCheckpoint, metaPath, meta.Format, meta.Version, localCheckpointKind)
	}
	statePath := filepath.Join(dir, localCheckpointState)
	sb, err := os.ReadFile(statePath)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	snap, err := decodeSnapshot(sb)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, statePath, err)
	}
	if got := fmt.Sprintf("%016x", snap.Checksum()); got != meta.Checksum || snap.Completed != meta.Completed {
		return nil, fmt.Errorf("%w: %s: state of step %d with checksum %s, but %s records step %d with checksum %s",
			ErrCheckpoint, statePath, snap.Completed, got, localCheckpointMeta, meta.Completed, meta.Checksum)
	}
	return &LocalCheckpoint{Settings: meta.Settings, State: snap, Progress: meta.Progress}, nil
}

// encodeSnapshot lays s out as magic, completed, then params (float32),
// optimizer state (bytes) and tracker (uint32), each after its length, all
// little-endian.
func encodeSnapshot(s *Snapshot) []byte {
	var b bytes.Buffer
	b.WriteString(localCheckpointMagic)
	u64 := func(v uint64) { binary.Write(&b, binary.LittleEndian, v) }
	u64(uint64(s.Completed))
	u64(uint64(len(s.Params)))
	b.Write(float32Bytes(s.Params)) // little-endian, as the checksum reads them
	u64(uint64(len(s.Optimizer)))
	b.Write(s.Optimizer)
	u64(uint64(len(s.Tracker)))
	b.Write(uint32Bytes(s.Tracker))
	return b.Bytes()
}

func decodeSnapshot(data []byte) (*Snapshot, error) {
	r := bytes.NewReader(data)
	magic := make([]byte, len(localCheckpointMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != localCheckpointMagic {
		return nil, fmt.Errorf("does not start with %q", localCheckpointMagic)
	}
	var completed, n uint64
	length := func(what string, size int) (int, error) {
		if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
			return 0, fmt.Errorf("truncated before the length of the %s", what)
		}
		if n > uint64(r.Len()/size) {
			return 0, fmt.Errorf("the %s claims %d values but %d bytes follow", what, n, r.Len())
		}
		return int(n), nil
	}
	if err := binary.Read(r, binary.LittleEndian, &completed); err != nil || completed > math.MaxInt64 {
		return nil, errors.New("truncated before the step count")
	}
	s := &Snapshot{Completed: int64(completed)}
	np, err := length("parameters", 4)
	if err != nil {
		return nil, err
	}
	s.Params = make([]float32, np)
	io.ReadFull(r, float32Bytes(s.Params))
	no, err := length("optimizer state", 1)
	if err != nil {
		return nil, err
	}
	s.Optimizer = make([]byte, no)
	io.ReadFull(r, s.Optimizer)
	nt, err := length("tracker", 4)
	if err != nil {
		return nil, err
	}
	s.Tracker = make([]uint32, nt)
	io.ReadFull(r, uint32Bytes(s.Tracker))
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the tracker", r.Len())
	}
	return s, nil
}
