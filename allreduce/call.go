package allreduce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/dsae/dsae/allreduce/ringpb"
)

// call is one all-reduce in progress on a ring.
//
// Schedule, for N ranks and rank r (all indices mod N): the buffer is cut
// into N near-equal chunks; at ring step t = 0..2N-3 rank r sends chunk r-t
// to r+1 and receives chunk r-t-1 from r-1. Steps 0..N-2 are the
// reduce-scatter (received pieces are added), steps N-1..2N-3 the
// all-gather (received pieces are final and copied). Each chunk travels in
// pieces of at most PieceBytes; piece p of every chunk goes on lane
// p mod lanes. The chunk received at step t is the one sent at step t+1,
// with the same pieces on the same lanes, so each lane forwards a piece as
// soon as it has been reduced: its receiver signals each finished piece on
// lane.ready and its sender waits for that signal before sending it on.
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
	lanes      []*laneCall[T]
}

// laneCall is the part of a call that runs on one lane.
type laneCall[T elem] struct {
	*call[T]
	l        *lane
	sends    int // pieces this lane sends in the call
	receives int // pieces this lane receives in the call

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
	for _, l := range r.lanes {
		lc := &laneCall[T]{call: c, l: l}
		signals := 0
		for t := range c.steps {
			lc.sends += c.lanePieces(c.sendChunk(t), l.idx)
			k := c.lanePieces(c.recvChunk(t), l.idx)
			lc.receives += k
			if t < c.steps-1 {
				signals += k
			}
		}
		if cap(l.ready) < signals {
			l.ready = make(chan struct{}, signals)
		}
		c.lanes = append(c.lanes, lc)
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

// lanePieces returns how many pieces of chunk ch go on lane l.
func (c *call[T]) lanePieces(ch, l int) int {
	lanes := len(c.r.lanes)
	return (c.pieces(ch) - l + lanes - 1) / lanes
}

// piece returns the range of piece p of chunk ch.
func (c *call[T]) piece(ch, p int) (lo, hi int) {
	clo, chi := c.bounds(ch)
	lo = clo + p*c.pieceElems
	return lo, min(chi, lo+c.pieceElems)
}

// run runs, per lane, a sender if the lane sends pieces in this call and a
// receiver if it receives some (the next rank makes the same decision from
// the same layout), and reports whether the ring failed.
func (c *call[T]) run() (failed bool) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, lc := range c.lanes {
		var work []func() error
		if lc.sends > 0 {
			work = append(work, lc.send)
		}
		if lc.receives > 0 {
			work = append(work, lc.receive)
		}
		for _, f := range work {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := f(); err != nil {
					c.r.fail(err)
					mu.Lock()
					failed = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return failed
}

func (lc *laneCall[T]) send() error {
	r, l := lc.r, lc.l
	st, err := r.outgoing(l)
	if err != nil {
		return err
	}
	l.pout.pieceHeader = pieceHeader{
		job: append(l.pout.job[:0], lc.tag.Job...), generation: lc.tag.Generation,
		step: lc.tag.Step, phase: lc.tag.Phase, dtype: dtypeOf[T](), length: uint64(len(lc.buf)),
	}
	lanes := len(r.lanes)
	for t := range lc.steps {
		ch := lc.sendChunk(t)
		for p := l.idx; p < lc.pieces(ch); p += lanes {
			if t > 0 {
				select {
				case <-l.ready:
				case <-r.ctx.Done():
					return context.Cause(r.ctx)
				}
			}
			lo, hi := lc.piece(ch, p)
			l.pout.ringStep, l.pout.chunk, l.pout.offset = uint64(t), uint64(ch), uint64(lo)
			var err error
			if l.bulkOut != nil {
				err = lc.sendBulk(lc.buf[lo:hi:hi])
			} else {
				err = lc.sendGRPC(st, lc.buf[lo:hi:hi])
			}
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
			if r.testHookSent != nil {
				r.testHookSent(lc.tag, t)
			}
		}
	}
	if l.bulkOut != nil {
		return lc.awaitBulkAck()
	}
	var a *ringpb.Tag
	select {
	case ack := <-l.acks:
		a = ack.GetTag()
	case <-r.ctx.Done():
		return context.Cause(r.ctx)
	}
	if a == nil || a.GetJob() != lc.tag.Job || a.GetGeneration() != lc.tag.Generation ||
		a.GetStep() != lc.tag.Step || a.GetPhase() != lc.tag.Phase {
		return fmt.Errorf("%w: rank %d acknowledged %v instead of %v", ErrProtocol, r.next, a, lc.tag)
	}
	// The next rank has every byte, so gRPC's writer has released every
	// piece it read from buf; wait for the release to be visible.
	if !l.track.wait(r.ctx.Done()) {
		return context.Cause(r.ctx)
	}
	r.touch()
	return nil
}

func (lc *laneCall[T]) receive() error {
	r, l := lc.r, lc.l
	in, err := r.incoming(l)
	if err != nil {
		return err
	}
	l.sink.target = lc
	defer func() { l.sink.target = nil }()
	lanes := len(r.lanes)
	for t := range lc.steps {
		ch := lc.recvChunk(t)
		for p := l.idx; p < lc.pieces(ch); p += lanes {
			lc.wantStep, lc.wantChunk = t, ch
			lc.wantLo, lc.wantHi = lc.piece(ch, p)
			var err error
			if l.bulkIn != nil {
				err = lc.receiveBulk()
			} else {
				err = lc.receiveGRPC(in)
			}
			if err != nil {
				return err
			}
			if len(lc.dst) != 0 || lc.ncarry != 0 {
				return fmt.Errorf("%w: rank %d sent a short piece", ErrProtocol, r.prev)
			}
			r.touch()
			if r.testHookReceived != nil {
				r.testHookReceived(t)
			}
			if t < lc.steps-1 {
				l.ready <- struct{}{} // never blocks: the channel holds every signal of the call
			}
		}
	}
	if l.bulkIn != nil {
		putBulkAck(&l.ackIn, lc.tag)
		if _, err := l.bulkIn.Write(l.ackIn[:]); err != nil {
			return r.peerErr("acknowledging to", r.prev, err)
		}
		return nil
	}
	l.ackTag = ringpb.Tag{Job: lc.tag.Job, Generation: lc.tag.Generation, Step: lc.tag.Step, Phase: lc.tag.Phase}
	l.ack.Kind = &ringpb.Reply_Ack{Ack: &ringpb.Ack{Tag: &l.ackTag}}
	if err := in.SendMsg(&l.ack); err != nil {
		return r.peerErr("acknowledging to", r.prev, err)
	}
	return nil
}

// sendGRPC sends one piece as a message of the lane's gRPC stream.
func (lc *laneCall[T]) sendGRPC(st ringpb.Ring_StreamClient, v []T) error {
	l := lc.l
	switch v := any(v).(type) {
	case []float32:
		l.pout.f32, l.pout.f64 = v, nil
	case []float64:
		l.pout.f32, l.pout.f64 = nil, v
	}
	err := st.SendMsg(&l.pout)
	l.pout.f32, l.pout.f64 = nil, nil
	return err
}

// receiveGRPC reads messages of the lane's gRPC stream until the call's
// next piece has been admitted and applied; pieces of another ring or an
// earlier call are refused and dropped.
func (lc *laneCall[T]) receiveGRPC(in ringpb.Ring_StreamServer) error {
	r, l := lc.r, lc.l
	for {
		lc.admitted, lc.verdict = false, nil
		if err := l.sink.recv(in); err != nil {
			return r.peerErr("receiving from", r.prev, err)
		}
		if !l.sink.isPiece {
			lc.verdict = fmt.Errorf("%w: rank %d sent a frame that is not a piece", ErrProtocol, r.prev)
		}
		if lc.verdict != nil {
			r.svc.refused.Add(1)
			return lc.verdict
		}
		if lc.admitted {
			return nil
		}
		r.svc.refused.Add(1) // another ring's or an earlier call's: dropped
	}
}

// sendBulk writes one piece, header and data, to the lane's bulk stream in
// one gathering write straight from the caller's buffer (little-endian
// hosts) or from an encoded copy.
func (lc *laneCall[T]) sendBulk(v []T) error {
	l := lc.l
	l.pout.dataLen = len(v) * lc.size
	putBulkHeader(&l.hdrOut, &l.pout.pieceHeader)
	var data []byte
	if littleEndian {
		data = asBytes(v)
	} else {
		if cap(l.enc) < l.pout.dataLen {
			l.enc = make([]byte, 0, lc.r.pieceBytes)
		}
		data = appendLE(l.enc[:0], v)
	}
	l.iov = [2][]byte{l.hdrOut[:], data}
	bufs := net.Buffers(l.iov[:])
	_, err := bufs.WriteTo(l.bulkOut)
	l.iov = [2][]byte{}
	return err
}

// awaitBulkAck reads the next rank's acknowledgement of the call from the
// bulk stream (the only bytes that travel back on it).
func (lc *laneCall[T]) awaitBulkAck() error {
	r, l := lc.r, lc.l
	if _, err := io.ReadFull(l.bulkOut, l.ackOut[:]); err != nil {
		return r.peerErr("reading the acknowledgement of", r.next, err)
	}
	step, phase, err := parseBulkAck(l.ackOut[:])
	if err == nil && (step != lc.tag.Step || phase != lc.tag.Phase) {
		err = fmt.Errorf("acknowledged step %d phase %d instead of %v", step, phase, lc.tag)
	}
	if err != nil {
		return fmt.Errorf("%w: rank %d: %v", ErrProtocol, r.next, err)
	}
	r.touch()
	return nil
}

// receiveBulk reads the next piece of the call from the lane's bulk
// stream: headers of pieces that belong to an earlier call are refused and
// their data skipped; the expected piece's data are added (in cache-sized
// reads) or read straight into place.
func (lc *laneCall[T]) receiveBulk() error {
	r, l := lc.r, lc.l
	in := l.bulkIn
	for {
		if _, err := io.ReadFull(in, l.hdrIn[:]); err != nil {
			return r.peerErr("receiving from", r.prev, err)
		}
		h := pieceHeader{job: r.job}
		if err := parseBulkHeader(l.hdrIn[:], &h); err != nil {
			r.svc.refused.Add(1)
			return fmt.Errorf("%w: rank %d: %v", ErrProtocol, r.prev, err)
		}
		lc.admitted, lc.verdict = false, nil
		if lc.admit(&h) {
			break
		}
		r.svc.refused.Add(1)
		if lc.verdict != nil {
			return lc.verdict
		}
		// An earlier call's piece: skip its data.
		if _, err := io.CopyN(io.Discard, in, int64(h.dataLen)); err != nil {
			return r.peerErr("receiving from", r.prev, err)
		}
	}
	if !lc.add && littleEndian {
		n := len(lc.dst)
		if _, err := io.ReadFull(in, asBytes(lc.dst)); err != nil {
			return r.peerErr("receiving from", r.prev, err)
		}
		lc.dst = lc.dst[n:]
		return nil
	}
	if l.scratch == nil {
		l.scratch = make([]byte, 0, max(bulkReadBytes, 8))
	}
	rest := len(lc.dst) * lc.size
	for rest > 0 {
		seg := l.scratch[:min(rest, cap(l.scratch))]
		if _, err := io.ReadFull(in, seg); err != nil {
			return r.peerErr("receiving from", r.prev, err)
		}
		lc.take(seg)
		rest -= len(seg)
		r.touch()
	}
	return nil
}

// admit implements pieceTarget: it takes the piece the lane expects next,
// drops (without adding) a piece of another ring or of an earlier call,
// and records an error for a piece that proves the previous rank is out of
// step.
func (lc *laneCall[T]) admit(h *pieceHeader) bool {
	r := lc.r
	if string(h.job) != lc.tag.Job || h.generation != lc.tag.Generation {
		return false
	}
	switch cmpStepPhase(h.step, h.phase, lc.tag) {
	case -1:
		return false
	case 1:
		lc.verdict = fmt.Errorf("%w: rank %d sent step %d phase %d during %v", ErrProtocol, r.prev, h.step, h.phase, lc.tag)
		return false
	}
	want := pieceHeader{
		dtype: dtypeOf[T](), ringStep: uint64(lc.wantStep), chunk: uint64(lc.wantChunk),
		offset: uint64(lc.wantLo), length: uint64(len(lc.buf)), dataLen: (lc.wantHi - lc.wantLo) * lc.size,
	}
	if h.dtype != want.dtype || h.ringStep != want.ringStep || h.chunk != want.chunk ||
		h.offset != want.offset || h.length != want.length || h.dataLen != want.dataLen {
		lc.verdict = fmt.Errorf("%w: rank %d sent %v; want %v", ErrProtocol, r.prev, h, &want)
		return false
	}
	lc.admitted = true
	lc.dst = lc.buf[lc.wantLo:lc.wantHi]
	lc.add = lc.wantStep < r.n-1
	lc.ncarry = 0
	return true
}

// take implements pieceTarget: it adds (reduce-scatter) or copies
// (all-gather) a segment of the admitted piece's data into the buffer.
func (lc *laneCall[T]) take(seg []byte) {
	if lc.ncarry > 0 {
		k := copy(lc.carry[lc.ncarry:lc.size], seg)
		lc.ncarry += k
		seg = seg[k:]
		if lc.ncarry < lc.size {
			return
		}
		lc.apply(lc.carry[:lc.size])
		lc.ncarry = 0
	}
	whole := len(seg) / lc.size * lc.size
	lc.apply(seg[:whole])
	lc.ncarry = copy(lc.carry[:], seg[whole:])
}

func (lc *laneCall[T]) apply(b []byte) {
	n := len(b) / lc.size
	if lc.add {
		addLE(lc.dst[:n], b)
	} else {
		copyLE(lc.dst[:n], b)
	}
	lc.dst = lc.dst[n:]
}

// peerErr turns a stream error into ErrPeer with the peer's status
// message, unless the ring already failed for another reason.
func (r *Ring) peerErr(what string, rank int, err error) error {
	if r.ctx.Err() != nil {
		return context.Cause(r.ctx)
	}
	return &PeerError{Op: what, Rank: rank, Addr: r.cfg.Members[rank], Err: err}
}
