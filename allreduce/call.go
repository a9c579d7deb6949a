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
	if !littleEndian {
		if elemSize[T]() == 4 && len(r.scratch4) < c.pieceElems {
			r.scratch4 = make([]float32, c.pieceElems)
		}
		if elemSize[T]() == 8 && len(r.scratch8) < c.pieceElems {
			r.scratch8 = make([]float64, c.pieceElems)
		}
		if len(r.wire) < r.pieceBytes {
			r.wire = make([]byte, r.pieceBytes)
		}
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
	r.sendTag = ringpb.Tag{Job: c.tag.Job, Generation: c.tag.Generation, Step: c.tag.Step, Phase: c.tag.Phase}
	r.piece = ringpb.Piece{Tag: &r.sendTag, Dtype: dtypeOf[T](), Length: uint64(len(c.buf))}
	r.frame.Kind = &ringpb.Frame_Piece{Piece: &r.piece}
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
			r.piece.RingStep, r.piece.Chunk, r.piece.Offset = uint32(t), uint32(ch), uint64(lo)
			r.piece.Data = wireBytes(c.buf[lo:hi], r.wire)
			err := st.Send(&r.frame)
			r.piece.Data = nil
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
	for t := range c.steps {
		ch := c.recvChunk(t)
		for p := range c.pieces(ch) {
			lo, hi := c.piece(ch, p)
			for {
				if err := r.sink.recv(in); err != nil {
					return r.peerErr("receiving from", r.prev, err)
				}
				ok, err := c.check(t, ch, lo, hi)
				if err != nil {
					r.svc.refused.Add(1)
					return err
				}
				if ok {
					break
				}
				r.svc.refused.Add(1) // left over from an earlier call: dropped
			}
			c.apply(t, c.buf[lo:hi])
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

// apply adds (reduce-scatter) or copies (all-gather) the received piece
// into dst.
func (c *call[T]) apply(t int, dst []T) {
	var scratch []T
	if !littleEndian {
		switch s := any(&scratch).(type) {
		case *[]float32:
			*s = c.r.scratch4
		case *[]float64:
			*s = c.r.scratch8
		}
	}
	src := wireElems(c.r.sink.data, scratch)
	if t < c.r.n-1 {
		addInto(dst, src)
	} else {
		copy(dst, src)
	}
}

// check decides what to do with the piece in the sink: (true, nil) to use
// it, (false, nil) to drop a piece of another ring or of an earlier call,
// an error for a piece that proves the previous rank is out of step.
func (c *call[T]) check(t, ch, lo, hi int) (bool, error) {
	s, r := c.r.sink, c.r
	if !s.isPiece {
		return false, fmt.Errorf("%w: rank %d sent a frame that is not a piece", ErrProtocol, r.prev)
	}
	if string(s.job) != c.tag.Job || s.generation != c.tag.Generation {
		return false, nil
	}
	switch cmpStepPhase(s.step, s.phase, c.tag) {
	case -1:
		return false, nil
	case 1:
		return false, fmt.Errorf("%w: rank %d sent step %d phase %d during %v", ErrProtocol, r.prev, s.step, s.phase, c.tag)
	}
	want := uint64((hi - lo) * c.size)
	if s.dtype != dtypeOf[T]() || s.ringStep != uint64(t) || s.chunk != uint64(ch) ||
		s.offset != uint64(lo) || s.length != uint64(len(c.buf)) || uint64(len(s.data)) != want {
		return false, fmt.Errorf("%w: rank %d sent %v ring step %d chunk %d offset %d length %d with %d bytes; want %v ring step %d chunk %d offset %d length %d with %d bytes",
			ErrProtocol, r.prev, s.dtype, s.ringStep, s.chunk, s.offset, s.length, len(s.data),
			dtypeOf[T](), t, ch, lo, len(c.buf), want)
	}
	return true, nil
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
