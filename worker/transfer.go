package worker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dsae/dsae/worker/transferpb"
)

// transferPart is the data size of one streamed StatePart.
const transferPart = 1 << 20

// maxTransferBytes bounds the state a fetch accepts (parameters and two
// Adam moments of the largest model sae allows, with room).
const maxTransferBytes = 16 << 30

// heldState is what a worker serves to the members of a generation that are
// behind: the state it reported ready with.
type heldState struct {
	job     string
	snap    *Snapshot
	sum     Checksum
	history []byte
}

// transferServer serves the state this worker last reported for a job.
type transferServer struct {
	transferpb.UnimplementedStateTransferServer

	mu   sync.Mutex
	held map[string]*heldState // by job
}

func newTransferServer() *transferServer {
	return &transferServer{held: map[string]*heldState{}}
}

// hold makes s the state served for its job (replacing the previous one).
func (t *transferServer) hold(s *heldState) {
	t.mu.Lock()
	t.held[s.job] = s
	t.mu.Unlock()
}

// heldSum is the checksum of the state held for job, or 0.
func (t *transferServer) heldSum(job string) Checksum {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h := t.held[job]; h != nil {
		return h.sum
	}
	return 0
}

// drop forgets the state of job.
func (t *transferServer) drop(job string) {
	t.mu.Lock()
	delete(t.held, job)
	t.mu.Unlock()
}

// Fetch streams the held state of the job when it is the one asked for.
func (t *transferServer) Fetch(req *transferpb.FetchRequest, stream grpc.ServerStreamingServer[transferpb.StatePart]) error {
	t.mu.Lock()
	h := t.held[req.JobId]
	t.mu.Unlock()
	switch {
	case h == nil:
		return status.Errorf(codes.NotFound, "no state of job %q held here", req.JobId)
	case h.snap.Completed != req.Completed || (req.Checksum != 0 && h.sum != req.Checksum):
		return status.Errorf(codes.FailedPrecondition, "job %s: holding step %d checksum %016x, asked for step %d checksum %016x",
			req.JobId, h.snap.Completed, h.sum, req.Completed, req.Checksum)
	}
	s := h.snap
	data := make([]byte, 0, 4*len(s.Params)+len(s.Optimizer)+4*len(s.Tracker)+len(h.history))
	data = append(data, float32Bytes(s.Params)...)
	data = append(data, s.Optimizer...)
	data = append(data, uint32Bytes(s.Tracker)...)
	data = append(data, h.history...)
	first := &transferpb.StatePart{Completed: s.Completed, Checksum: h.sum, Params: int64(len(s.Params)),
		OptimizerBytes: int64(len(s.Optimizer)), Tracker: int64(len(s.Tracker)), HistoryBytes: int64(len(h.history))}
	for off := 0; off < len(data) || off == 0; off += transferPart {
		p := first
		if off > 0 {
			p = &transferpb.StatePart{}
		}
		p.Data = data[off:min(off+transferPart, len(data))]
		if err := stream.Send(p); err != nil {
			return err
		}
		if len(data) == 0 {
			break
		}
	}
	return nil
}

// errTransfer marks a state transfer that failed or delivered state other
// than the one asked for.
var errTransfer = errors.New("state transfer failed")

// fetchState fetches the state of job at completed steps with checksum
// want (0: any) from a donor, checks it, and returns it with the history.
func fetchState(ctx context.Context, cl transferpb.StateTransferClient, job string, completed int64, want Checksum) (*Snapshot, []byte, error) {
	stream, err := cl.Fetch(ctx, &transferpb.FetchRequest{JobId: job, Completed: completed, Checksum: want})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errTransfer, err)
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errTransfer, err)
	}
	total := 4*first.Params + first.OptimizerBytes + 4*first.Tracker + first.HistoryBytes
	if first.Params < 0 || first.OptimizerBytes < 0 || first.Tracker < 0 || first.HistoryBytes < 0 || total > maxTransferBytes {
		return nil, nil, fmt.Errorf("%w: header announces %d parameters, %d optimizer bytes, %d tracker values, %d history bytes",
			errTransfer, first.Params, first.OptimizerBytes, first.Tracker, first.HistoryBytes)
	}
	data := make([]byte, 0, total)
	data = append(data, first.Data...)
	for int64(len(data)) < total {
		p, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: after %d of %d bytes: %w", errTransfer, len(data), total, err)
		}
		if int64(len(data)+len(p.Data)) > total {
			return nil, nil, fmt.Errorf("%w: more data than the %d bytes announced", errTransfer, total)
		}
		data = append(data, p.Data...)
	}
	if int64(len(data)) != total {
		return nil, nil, fmt.Errorf("%w: got %d of %d bytes", errTransfer, len(data), total)
	}
	s := &Snapshot{Completed: first.Completed, Params: make([]float32, first.Params), Tracker: make([]uint32, first.Tracker)}
	off := 0
	for i := range s.Params {
		s.Params[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		off += 4
	}
	s.Optimizer = append([]byte(nil), data[off:off+int(first.OptimizerBytes)]...)
	off += int(first.OptimizerBytes)
	for i := range s.Tracker {
		s.Tracker[i] = binary.LittleEndian.Uint32(data[off:])
		off += 4
	}
	history := data[off:]
	got := s.Checksum()
	if got != first.Checksum || (want != 0 && got != want) || s.Completed != completed {
		return nil, nil, fmt.Errorf("%w: received step %d checksum %016x (donor said %016x), want step %d checksum %016x",
			errTransfer, s.Completed, got, first.Checksum, completed, want)
	}
	return s, history, nil
}
