package coordinator

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// snapshotMagic starts every snapshot so that a foreign or future file is
// refused rather than misread.
var snapshotMagic = []byte("dsae-fsm-v1\n")

// ApplyResult is what FSM.Apply returns for each log entry: the command's
// reply or the error that refused it. A refused command leaves the state
// unchanged.
type ApplyResult struct {
	Reply proto.Message
	Err   error
}

// FSM is the coordinators' replicated state machine. Raft calls Apply,
// Snapshot and Restore from its FSM goroutine; readers call State, Job and
// Changed from any goroutine.
type FSM struct {
	mu      sync.RWMutex
	st      *pb.State
	changed chan struct{} // closed and replaced after every change
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an empty state machine.
func NewFSM() *FSM {
	return &FSM{st: &pb.State{}, changed: make(chan struct{})}
}

// EncodeCommand stamps cmd with the current command version and encodes it
// as a raft log entry.
func EncodeCommand(cmd *pb.Command) ([]byte, error) {
	cmd.Version = CommandVersion
	return proto.MarshalOptions{Deterministic: true}.Marshal(cmd)
}

// Apply decodes and applies one log entry. It returns an ApplyResult; an
// entry that cannot be decoded is refused with ErrUnknownCommand, never a
// panic.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return ApplyResult{}
	}
	var cmd pb.Command
	if err := proto.Unmarshal(l.Data, &cmd); err != nil {
		return ApplyResult{Err: fmt.Errorf("%w: %v", ErrUnknownCommand, err)}
	}
	return f.ApplyCommand(&cmd)
}

// ApplyCommand applies a decoded command. The reply is a copy that the
// caller owns.
func (f *FSM) ApplyCommand(cmd *pb.Command) ApplyResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	reply, err := applyCommand(f.st, cmd)
	if err != nil {
		return ApplyResult{Err: err}
	}
	close(f.changed)
	f.changed = make(chan struct{})
	return ApplyResult{Reply: proto.Clone(reply)}
}

// State returns a copy of the whole state.
func (f *FSM) State() *pb.State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return proto.Clone(f.st).(*pb.State)
}

// Job returns a copy of job id, or nil.
func (f *FSM) Job(id string) *pb.Job {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if j, ok := f.st.Jobs[id]; ok {
		return proto.Clone(j).(*pb.Job)
	}
	return nil
}

// Worker returns a copy of worker id, or nil.
func (f *FSM) Worker(id string) *pb.Worker {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if w, ok := f.st.Workers[id]; ok {
		return proto.Clone(w).(*pb.Worker)
	}
	return nil
}

// Changed returns a channel that is closed at the next change of the state.
// Watchers read the state, then wait on the channel they got before reading.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// Snapshot captures the state; raft persists it from another goroutine.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	data, err := encodeState(f.st)
	if err != nil {
		return nil, err
	}
	return fsmSnapshot(data), nil
}

// Restore replaces the state with a snapshot written by Snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	st, err := decodeState(data)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

func encodeState(st *pb.State) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(st)
	if err != nil {
		return nil, err
	}
	return append(bytes.Clone(snapshotMagic), b...), nil
}

func decodeState(data []byte) (*pb.State, error) {
	if !bytes.HasPrefix(data, snapshotMagic) {
		return nil, fmt.Errorf("%w: snapshot does not start with %q", ErrUnknownCommand, snapshotMagic)
	}
	st := &pb.State{}
	if err := proto.Unmarshal(data[len(snapshotMagic):], st); err != nil {
		return nil, fmt.Errorf("%w: snapshot: %v", ErrUnknownCommand, err)
	}
	return st, nil
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}
