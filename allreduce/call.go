package allreduce

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dsae/dsae/allreduce/ringpb"
	"google.golang.org/grpc/status"
)

// call is one all-reduce in progress on a ring.
//
// Schedule, for N ranks and rank r (all indices mod N): the buffer is cut
// into N near-equal chunks; at ring step t = 0..2N-3 rank r sends chunk r-t
// to r+1 and receives chunk r-t-1 from r-1. Steps 0..N-2 are the
// reduce-scatter (received pieces are added), steps N-1..2N-3 the
// all-gather (received pieces are final and copied). The chunk received at
// step t is the one sent at step t+1, so a piece is forwarded as soon as it
// has been reduced: the receiver signals each finished piece on ring.ready
// and the sender waits for that signal before sending it on.
//
// Chunk c is summed along one fixed path, starting at rank c and ending at
// rank c-1, which computes the final value and starts the all-gather; every
// rank therefore ends with the same bits.
type call[T elem] struct {
	r          *Ring
	tag        Tag
	buf        []T
	size       int
	pieceElems int
	steps      int

	// The piece the receiver expects next, and what admit made of the
	// last one.
	wantStep, wantChunk, wantLo, wantHi int
	admitted                            bool
	verdict                             error
	dst                                 []T // rest of the admitted piece's range
	add                                 bool
	carry                               [8]byte // an element split between two segments
	ncarry                              int
}

func newCall[T elem](r *Ring, tag Tag, buf []T) *call[T] {
	c := &call[T]{
		r:     r,
		tag:   tag,
		buf:   buf,
		size:  elemSize[T](),
		steps: 2 * (r.n - 1),
	}
	c.pieceElems = r.pieceBytes / c.size
	signals := 0
	for t := 0; t < c.steps-1; t++ {
		signals += c.pieces(c.recvChunk(t))
	}
	if cap(r.ready) < signals {
		r.ready = make(chan struct{}, signals)
	}
	return c
}

func (c *call[T]) mod(i int) int { return ((i % c.r.n) + c.r.n) % c.r.n }

func (c *call[T]) sendChunk(t int) int { return c.mod(c.r.cfg.Rank - t) }
func (c *call[T]) recvChunk(t int) int { return c.mod(c.r.cfg.Rank - t - 1) }

// bounds returns chunk ch's element range [lo, hi).
func (c *call[T]) bounds(ch int) (lo, hi int) {
	l, n := uint64(len(c.buf)), uint64(c.r.n)
	return int(uint64(ch) * l / n), int(uint64(ch+1) * l / n)
}

// pieces returns how many pieces chunk ch is sent in; an empty chunk still
// travels as one empty piece so that every step has a message.
func (c *call[T]) pieces(ch int) int {
	lo, hi := c.bounds(ch)
	return max(1, (hi-lo+c.pieceElems-1)/c.pieceElems)
}

// piece returns the range of piece p of chunk ch.
func (c *call[T]) piece(ch, p int) (lo, hi int) {
	clo, chi := c.bounds(ch)
	lo = clo + p*c.pieceElems
	return lo, min(chi, lo+c.pieceElems)
}

func (c *call[T]) send() error {
	r := c.r
	st, err := r.outgoing()
	if err != nil {
		return err
	}
	r.pout.pieceHeader = pieceHeader{
		job: append(r.pout.job[:0], c.tag.Job...), generation: c.tag.Generation,
		step: c.tag.Step, phase: c.tag.Phase, dtype: dtypeOf[T](), length: uint64(len(c.buf)),
	}
	for t := range c.steps {
		ch := c.sendChunk(t)
		for p := range c.pieces(ch) {
			if t > 0 {
				select {
				case <-r.ready:
				case <-r.ctx.Done():
					return context.Cause(r.ctx)
				}
			}
			lo, hi := c.piece(ch, p)
			r.pout.ringStep, r.pout.chunk, r.pout.offset = uint64(t), uint64(ch), uint64(lo)
			switch v := any(c.buf[lo:hi:hi]).(type) {
			case []float32:
				r.pout.f32, r.pout.f64 = v, nil
			case []float64:
				r.pout.f32, r.pout.f64 = nil, v
			}
			err := st.SendMsg(&r.pout)
			r.pout.f32, r.pout.f64 = nil, nil
			if err != nil {
				if errors.Is(err, io.EOF) {
					// The next rank ended the stream; readReplies receives
					// its status and fails the ring with it.
					<-r.ctx.Done()
					return context.Cause(r.ctx)
				}
				return r.peerErr("sending to", r.next, err)
			}
			r.touch()
		}
	}
	var a *ringpb.Tag
	select {
	case ack := <-r.acks:
		a = ack.GetTag()
	case <-r.ctx.Done():
		return context.Cause(r.ctx)
	}
	if a == nil || a.GetJob() != c.tag.Job || a.GetGeneration() != c.tag.Generation ||
		a.GetStep() != c.tag.Step || a.GetPhase() != c.tag.Phase {
		return fmt.Errorf("%w: rank %d acknowledged %v instead of %v", ErrProtocol, r.next, a, c.tag)
	}
	r.touch()
	return nil
}

func (c *call[T]) receive() error {
	r := c.r
	in, err := r.incoming()
	if err != nil {
		return err
	}
	r.sink.target = c
	defer func() { r.sink.target = nil }()
	for t := range c.steps {
		ch := c.recvChunk(t)
		for p := range c.pieces(ch) {
			c.wantStep, c.wantChunk = t, ch
			c.wantLo, c.wantHi = c.piece(ch, p)
			for {
				c.admitted, c.verdict = false, nil
				if err := r.sink.recv(in); err != nil {
					return r.peerErr("receiving from", r.prev, err)
				}
				if !r.sink.isPiece {
					c.verdict = fmt.Errorf("%w: rank %d sent a frame that is not a piece", ErrProtocol, r.prev)
				}
				if c.verdict != nil {
					r.svc.refused.Add(1)
					return c.verdict
				}
				if c.admitted {
					break
				}
				r.svc.refused.Add(1) // another ring's or an earlier call's: dropped
			}
			if len(c.dst) != 0 || c.ncarry != 0 {
				return fmt.Errorf("%w: rank %d sent a short piece", ErrProtocol, r.prev)
			}
			r.touch()
			if r.testHookReceived != nil {
				r.testHookReceived(t)
			}
			if t < c.steps-1 {
				r.ready <- struct{}{} // never blocks: the channel holds every signal of the call
			}
		}
	}
	r.ackTag = ringpb.Tag{Job: c.tag.Job, Generation: c.tag.Generation, Step: c.tag.Step, Phase: c.tag.Phase}
	r.ack.Kind = &ringpb.Reply_Ack{Ack: &ringpb.Ack{Tag: &r.ackTag}}
	if err := in.SendMsg(&r.ack); err != nil {
		return r.peerErr("acknowledging to", r.prev, err)
	}
	return nil
}

// admit implements pieceTarget: it takes the piece the call expects next,
// drops (without adding) a piece of another ring or of an earlier call,
// and records an error for a piece that proves the previous rank is out of
// step.
func (c *call[T]) admit(h *pieceHeader) bool {
	r := c.r
	if string(h.job) != c.tag.Job || h.generation != c.tag.Generation {
		return false
	}
	switch cmpStepPhase(h.step, h.phase, c.tag) {
	case -1:
		return false
	case 1:
		c.verdict = fmt.Errorf("%w: rank %d sent step %d phase %d during %v", ErrProtocol, r.prev, h.step, h.phase, c.tag)
		return false
	}
	want := pieceHeader{
		dtype: dtypeOf[T](), ringStep: uint64(c.wantStep), chunk: uint64(c.wantChunk),
		offset: uint64(c.wantLo), length: uint64(len(c.buf)), dataLen: (c.wantHi - c.wantLo) * c.size,
	}
	if h.dtype != want.dtype || h.ringStep != want.ringStep || h.chunk != want.chunk ||
		h.offset != want.offset || h.length != want.length || h.dataLen != want.dataLen {
		c.verdict = fmt.Errorf("%w: rank %d sent %v; want %v", ErrProtocol, r.prev, h, &want)
		return false
	}
	c.admitted = true
	c.dst = c.buf[c.wantLo:c.wantHi]
	c.add = c.wantStep < r.n-1
	c.ncarry = 0
	return true
}

// take implements pieceTarget: it adds (reduce-scatter) or copies
// (all-gather) a segment of the admitted piece's data into the buffer.
func (c *call[T]) take(seg []byte) {
	if c.ncarry > 0 {
		k := copy(c.carry[c.ncarry:c.size], seg)
		c.ncarry += k
		seg = seg[k:]
		if c.ncarry < c.size {
			return
		}
		c.apply(c.carry[:c.size])
		c.ncarry = 0
	}
	whole := len(seg) / c.size * c.size
	c.apply(seg[:whole])
	c.ncarry = copy(c.carry[:], seg[whole:])
}

func (c *call[T]) apply(b []byte) {
	n := len(b) / c.size
	if c.add {
		addLE(c.dst[:n], b)
	} else {
		copyLE(c.dst[:n], b)
	}
	c.dst = c.dst[n:]
}

// peerErr turns a stream error into ErrPeer with the peer's status
// message, unless the ring already failed for another reason.
func (r *Ring) peerErr(what string, rank int, err error) error {
	if r.ctx.Err() != nil {
		return context.Cause(r.ctx)
	}
	if s, ok := status.FromError(err); ok {
		return fmt.Errorf("%w: %s rank %d (%s): %s: %s", ErrPeer, what, rank, r.cfg.Members[rank], s.Code(), s.Message())
	}
	return fmt.Errorf("%w: %s rank %d (%s): %w", ErrPeer, what, rank, r.cfg.Members[rank], err)
}
