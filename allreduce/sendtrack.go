package allreduce

import (
	"sync/atomic"

	"google.golang.org/grpc/mem"
)

// zeroCopyMinBytes is the smallest piece whose data gRPC reads straight
// from the caller's buffer instead of a copy.
const zeroCopyMinBytes = 4 << 10

// sendTracker counts the caller-memory buffers of one lane that gRPC still
// holds. It is the mem.BufferPool of those buffers: gRPC "returns" a buffer
// to it once its writer has copied the bytes out, which is what lets a call
// return (and its caller reuse the memory) only after gRPC is done with it.
type sendTracker struct {
	outstanding atomic.Int64
	released    chan struct{} // signalled on every release; capacity 1
}

var _ mem.BufferPool = (*sendTracker)(nil)

func newSendTracker() *sendTracker { return &sendTracker{released: make(chan struct{}, 1)} }

// wrap hands b (caller memory) to gRPC as a tracked buffer.
func (s *sendTracker) wrap(b []byte) mem.Buffer {
	s.outstanding.Add(1)
	return mem.NewBuffer(&b, s)
}

// Get is never used by gRPC for buffers it did not allocate; it returns a
// fresh slice so that the type is a complete BufferPool.
func (s *sendTracker) Get(n int) *[]byte {
	b := make([]byte, n)
	return &b
}

// Put records that gRPC released one buffer.
func (s *sendTracker) Put(*[]byte) {
	s.outstanding.Add(-1)
	select {
	case s.released <- struct{}{}:
	default:
	}
}

// wait blocks until gRPC has released every buffer or done is closed.
func (s *sendTracker) wait(done <-chan struct{}) bool {
	for s.outstanding.Load() != 0 {
		select {
		case <-s.released:
		case <-done:
			return s.outstanding.Load() == 0
		}
	}
	return true
}
