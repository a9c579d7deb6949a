package allreduce

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/status"
)

// Sentinel errors of the package. Errors returned by this package wrap one
// of them (test with errors.Is); the wrapping message names the detail.
var (
	// ErrInvalidConfig: a Config field is out of range (bad input).
	ErrInvalidConfig = errors.New("allreduce: invalid config")
	// ErrBadTag: a call's tag names another ring or does not follow the
	// previous call's (step, phase). The ring stays usable.
	ErrBadTag = errors.New("allreduce: bad tag")
	// ErrDuplicateRing: a Service already serves a ring for this job and
	// generation.
	ErrDuplicateRing = errors.New("allreduce: ring already registered")
	// ErrClosed: the ring was closed.
	ErrClosed = errors.New("allreduce: ring closed")
	// ErrBroken: an earlier call on this ring failed; build a new ring (a
	// new generation). It wraps the first failure.
	ErrBroken = errors.New("allreduce: ring broken by an earlier failure")
	// ErrTimeout: a call made no progress (no piece sent or received) for
	// Config.Timeout.
	ErrTimeout = errors.New("allreduce: no progress within the timeout")
	// ErrRefused: the next rank refused this ring's stream (stale
	// generation or a different member list).
	ErrRefused = errors.New("allreduce: stream refused by peer")
	// ErrProtocol: the previous rank sent a piece that does not belong to
	// the current call (wrong tag, step, chunk, offset, type or length).
	ErrProtocol = errors.New("allreduce: protocol violation by peer")
	// ErrPeer: a stream to or from a neighbour broke (the peer died, closed
	// its ring or failed).
	ErrPeer = errors.New("allreduce: peer stream failed")
)

// PeerError is the concrete type of the errors that wrap ErrPeer: which
// neighbour's stream failed, so that a worker can report that peer.
// errors.Is(err, ErrPeer) holds for it, and so does errors.Is with the
// underlying stream error.
type PeerError struct {
	Op   string // "receiving from", "sending to", "acknowledging to", ...
	Rank int    // the neighbour's rank in Config.Members
	Addr string // its address, Config.Members[Rank]
	Err  error  // the stream error
}

func (e *PeerError) Error() string {
	detail := e.Err.Error()
	if s, ok := status.FromError(e.Err); ok {
		detail = s.Code().String() + ": " + s.Message()
	}
	return fmt.Sprintf("%v: %s rank %d (%s): %s", ErrPeer, e.Op, e.Rank, e.Addr, detail)
}

// Unwrap returns ErrPeer and the stream error.
func (e *PeerError) Unwrap() []error { return []error{ErrPeer, e.Err} }
