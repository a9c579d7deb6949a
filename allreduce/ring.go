package allreduce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsae/dsae/allreduce/ringpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Ring is one rank's view of the all-reduce ring of one generation. Build
// it with NewRing on every member with the same Members order; call the
// AllReduce methods with the same sequence of tags on every rank; Close it
// when the generation ends.
//
// Calls on one Ring are serialised. A failed call (peer died or hung, ctx
// cancelled, protocol violation) breaks the ring: every later call returns
// ErrBroken, and the caller moves to a new generation with a new Ring.
type Ring struct {
	cfg        Config
	svc        *Service
	n          int
	prev, next int
	pieceBytes int
	lanes      []*lane

	ctx    context.Context // lives until Close or the first failure
	cancel context.CancelCauseFunc

	inMu sync.Mutex // guards lane.in and lane.reserved

	callMu  sync.Mutex // serialises calls; guards hasTag and lastTag
	hasTag  bool
	lastTag Tag

	bulkMu     sync.Mutex // guards lane.bulkIn and lane.bulkOut
	bulkClosed bool
	job        []byte // cfg.Job, for pieces read from bulk streams

	progress atomic.Int64 // unix nanoseconds of the last piece moved
	closing  atomic.Bool
	readers  sync.WaitGroup

	// testHookReceived, when set (by tests, before a call), runs on a
	// receiving goroutine after each piece of ring step t is applied.
	testHookReceived func(t int)
	// testHookSent, when set, runs on a sending goroutine after each piece
	// of ring step t of the call tagged tag has been handed to gRPC.
	testHookSent func(tag Tag, t int)

	closeOnce sync.Once
}

// lane is one of the ring's independent pipelines: a stream to the next
// rank on its own connection and a stream from the previous rank. Lane l
// carries pieces p ≡ l (mod lanes) of every chunk, so lanes never wait for
// each other and share the work of gRPC's per-connection goroutines.
type lane struct {
	idx    int
	conn   *grpc.ClientConn
	client ringpb.RingClient

	in       ringpb.Ring_StreamServer // from prev; set by Service.Stream
	inReady  chan struct{}            // closed once in is usable
	reserved bool

	// Bulk byte streams (DataBulk), set under Ring.bulkMu and closed when
	// the ring ends or fails.
	bulkOut net.Conn // to next; set by outgoing
	bulkIn  net.Conn // from prev; set before inReady is closed

	// Used by one call at a time (under Ring.callMu).
	hdrOut  [bulkHeaderLen]byte
	hdrIn   [bulkHeaderLen]byte
	ackIn   [bulkAckLen]byte // written to prev on bulkIn
	ackOut  [bulkAckLen]byte // read from next on bulkOut
	iov     [2][]byte
	scratch []byte // bulk reads of pieces that are added, or decoded
	enc     []byte // encoded piece to send (big-endian hosts)

	out    ringpb.Ring_StreamClient
	acks   chan *ringpb.Ack // from readReplies to the sending goroutine
	sink   *pieceSink
	ready  chan struct{}
	pout   pieceOut
	track  *sendTracker
	ack    ringpb.Reply
	ackTag ringpb.Tag
}

// NewRing registers a ring on svc and prepares the connections to the next
// rank; it does not block on the network (the streams open on the first
// call). The Ring must be closed.
func NewRing(svc *Service, cfg Config) (*Ring, error) {
	if svc == nil {
		return nil, fmt.Errorf("%w: nil Service", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Transport == nil {
		cfg.Transport = TCP()
	}
	cfg.Members = append([]string(nil), cfg.Members...)
	n := len(cfg.Members)
	r := &Ring{
		cfg:        cfg,
		svc:        svc,
		n:          n,
		prev:       (cfg.Rank + n - 1) % n,
		next:       (cfg.Rank + 1) % n,
		pieceBytes: cfg.pieceBytes(),
		job:        []byte(cfg.Job),
	}
	if cfg.DataPath == DataBulk && n > 1 && !svc.hasBulk() {
		return nil, fmt.Errorf("%w: DataPath bulk needs a BulkServer for the Service (StartServer or ListenBulk), or use DataGRPC", ErrInvalidConfig)
	}
	r.ctx, r.cancel = context.WithCancelCause(context.Background())
	context.AfterFunc(r.ctx, r.closeBulk)
	for i := range cfg.Lanes {
		l := &lane{idx: i, inReady: make(chan struct{}), acks: make(chan *ringpb.Ack, 1), sink: &pieceSink{}, track: newSendTracker()}
		l.pout.track = l.track
		r.lanes = append(r.lanes, l)
		if n == 1 {
			continue
		}
		opts := append(dialOptions(cfg.Transport), cfg.DialOptions...)
		conn, err := grpc.NewClient("passthrough:///"+cfg.Members[r.next], opts...)
		if err != nil {
			r.closeConns()
			return nil, fmt.Errorf("%w: Members[%d] %q: %w", ErrInvalidConfig, r.next, cfg.Members[r.next], err)
		}
		l.conn, l.client = conn, ringpb.NewRingClient(conn)
	}
	if err := svc.register(r); err != nil {
		r.closeConns()
		return nil, err
	}
	return r, nil
}

// closeBulk closes every bulk stream; it runs once the ring ends or fails,
// which unblocks any goroutine reading or writing one.
func (r *Ring) closeBulk() {
	r.bulkMu.Lock()
	defer r.bulkMu.Unlock()
	r.bulkClosed = true
	for _, l := range r.lanes {
		for _, c := range []net.Conn{l.bulkIn, l.bulkOut} {
			if c != nil {
				c.Close()
			}
		}
	}
}

// setBulkIn installs lane l's incoming bulk stream; false (and the stream
// closed) if the ring has ended.
func (r *Ring) setBulkIn(l int, c net.Conn) bool {
	r.bulkMu.Lock()
	defer r.bulkMu.Unlock()
	if r.bulkClosed {
		c.Close()
		return false
	}
	r.lanes[l].bulkIn = c
	return true
}

func (r *Ring) setBulkOut(l *lane, c net.Conn) bool {
	r.bulkMu.Lock()
	defer r.bulkMu.Unlock()
	if r.bulkClosed {
		c.Close()
		return false
	}
	l.bulkOut = c
	return true
}

func (r *Ring) closeConns() {
	r.cancel(ErrClosed)
	for _, l := range r.lanes {
		if l.conn != nil {
			l.conn.Close()
		}
	}
}

// Rank returns this ring member's rank.
func (r *Ring) Rank() int { return r.cfg.Rank }

// Size returns the number of members.
func (r *Ring) Size() int { return r.n }

// Tag returns the tag of this ring for (step, phase).
func (r *Ring) Tag(step uint64, phase uint32) Tag {
	return Tag{Job: r.cfg.Job, Generation: r.cfg.Generation, Step: step, Phase: phase}
}

// Close ends the ring and removes it from its Service. If a call is in
// progress it fails with ErrClosed. Otherwise Close ends the streams to the
// next rank and waits (at most Config.Timeout) for the previous rank to end
// its streams too, which it does only after its last call returned, that is
// after it received this rank's last acknowledgements; so closing every
// rank right after a successful call never breaks a neighbour's call.
// Safe to call more than once and concurrently with a call.
func (r *Ring) Close() error {
	r.closeOnce.Do(func() {
		r.closing.Store(true)
		if !r.callMu.TryLock() {
			r.fail(ErrClosed)
			r.callMu.Lock()
		}
		defer r.callMu.Unlock()
		if r.ctx.Err() == nil && r.n > 1 {
			r.closeGracefully()
		}
		r.svc.unregister(r)
		r.closeConns()
		r.readers.Wait()
	})
	return nil
}

// closeGracefully half-closes the outgoing streams and drains the incoming
// ones until the previous rank half-closes them, fails, or Timeout passes.
func (r *Ring) closeGracefully() {
	for _, l := range r.lanes {
		if l.out != nil {
			l.out.CloseSend()
		}
	}
	grace := time.AfterFunc(r.cfg.Timeout, func() { r.fail(ErrClosed) })
	defer grace.Stop()
	for _, l := range r.lanes {
		select {
		case <-l.inReady:
		default:
			continue // the previous rank never connected: no acknowledgement is owed
		}
		r.inMu.Lock()
		in := l.in
		r.inMu.Unlock()
		l.sink.target = nil
		for {
			if err := l.sink.recv(in); err != nil {
				break
			}
			r.svc.refused.Add(1) // a piece of a call this rank never made
		}
	}
}

// fail breaks the ring with err (the first failure wins): all streams are
// cancelled, which unblocks every goroutine of a call in progress.
func (r *Ring) fail(err error) { r.cancel(err) }

// AllReduceFloat32 replaces buf, on every rank, with the element-wise sum
// of the bufs of all ranks. Every rank must pass a buffer of the same
// length and the same tag; every rank ends with bitwise identical sums. It
// returns once this rank holds the result and the next rank has received
// all it needs from this rank. buf is read and written until the call
// returns; on error its contents are unspecified.
func (r *Ring) AllReduceFloat32(ctx context.Context, tag Tag, buf []float32) error {
	return allReduce(r, ctx, tag, buf)
}

// AllReduceFloat64 is AllReduceFloat32 for float64 buffers (metric sums).
func (r *Ring) AllReduceFloat64(ctx context.Context, tag Tag, buf []float64) error {
	return allReduce(r, ctx, tag, buf)
}

func allReduce[T elem](r *Ring, ctx context.Context, tag Tag, buf []T) error {
	r.callMu.Lock()
	defer r.callMu.Unlock()
	if err := r.ctx.Err(); err != nil {
		return r.brokenErr()
	}
	if tag.Job != r.cfg.Job || tag.Generation != r.cfg.Generation {
		return fmt.Errorf("%w: %v on the ring of job %q generation %d", ErrBadTag, tag, r.cfg.Job, r.cfg.Generation)
	}
	if r.hasTag && cmpStepPhase(r.lastTag.Step, r.lastTag.Phase, tag) >= 0 {
		return fmt.Errorf("%w: %v does not follow step %d phase %d", ErrBadTag, tag, r.lastTag.Step, r.lastTag.Phase)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.hasTag, r.lastTag = true, tag
	if r.n == 1 {
		return nil
	}

	c := newCall(r, tag, buf)
	stopCtx := context.AfterFunc(ctx, func() { r.fail(context.Cause(ctx)) })
	defer stopCtx()
	r.touch()
	watchdogDone := make(chan struct{})
	go r.watchdog(watchdogDone)
	failed := c.run()
	close(watchdogDone)
	if !failed {
		return nil
	}
	// gRPC may still hold pieces read straight from buf. Closing a lane's
	// connection stops its writer, after which buf is the caller's again.
	for _, l := range r.lanes {
		if l.track.outstanding.Load() != 0 && l.conn != nil {
			l.conn.Close()
		}
	}
	// Report the root cause: the first failure recorded on the ring.
	cause := context.Cause(r.ctx)
	if ctx.Err() != nil && errors.Is(cause, context.Cause(ctx)) {
		return fmt.Errorf("allreduce %v: %w", tag, cause)
	}
	return fmt.Errorf("allreduce %v on rank %d: %w", tag, r.cfg.Rank, cause)
}

func (r *Ring) brokenErr() error {
	cause := context.Cause(r.ctx)
	if errors.Is(cause, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrBroken, cause)
}

func (r *Ring) touch() { r.progress.Store(time.Now().UnixNano()) }

// watchdog fails the ring when no piece moves for cfg.Timeout.
func (r *Ring) watchdog(done <-chan struct{}) {
	t := time.NewTimer(r.cfg.Timeout)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-r.ctx.Done():
			return
		case <-t.C:
			idle := time.Since(time.Unix(0, r.progress.Load()))
			if idle >= r.cfg.Timeout {
				r.fail(fmt.Errorf("%w: %v without a piece moving (rank %d of %d)", ErrTimeout, r.cfg.Timeout, r.cfg.Rank, r.n))
				return
			}
			t.Reset(r.cfg.Timeout - idle)
		}
	}
}

// reserveIncoming claims lane l's incoming slot for stream;
// publishIncoming makes it visible to calls once the Accept has been sent.
func (r *Ring) reserveIncoming(l int, stream ringpb.Ring_StreamServer) bool {
	r.inMu.Lock()
	defer r.inMu.Unlock()
	if r.lanes[l].reserved {
		return false
	}
	r.lanes[l].reserved = true
	r.lanes[l].in = stream
	return true
}

func (r *Ring) publishIncoming(l int) { close(r.lanes[l].inReady) }

// incoming waits for the previous rank's stream of lane l.
func (r *Ring) incoming(l *lane) (ringpb.Ring_StreamServer, error) {
	select {
	case <-l.inReady:
		r.inMu.Lock()
		defer r.inMu.Unlock()
		return l.in, nil
	case <-r.ctx.Done():
		return nil, context.Cause(r.ctx)
	}
}

// outgoing opens lane l's stream to the next rank once per ring, retrying
// while the next rank has not registered this generation yet.
func (r *Ring) outgoing(l *lane) (ringpb.Ring_StreamClient, error) {
	if l.out != nil {
		return l.out, nil
	}
	hello := &ringpb.Frame{Kind: &ringpb.Frame_Hello{Hello: &ringpb.Hello{
		Job: r.cfg.Job, Generation: r.cfg.Generation,
		FromRank: uint32(r.cfg.Rank), ToRank: uint32(r.next), Ranks: uint32(r.n),
		Lane: uint32(l.idx), Lanes: uint32(len(r.lanes)),
		DataPath: r.cfg.DataPath.wire(), PieceBytes: uint32(r.pieceBytes),
	}}}
	backoff := 5 * time.Millisecond
	for {
		st, err := l.client.Stream(r.ctx, grpc.WaitForReady(true), grpc.ForceCodecV2(ringCodec{}))
		if err == nil {
			err = st.Send(hello)
			var rep ringpb.Reply
			if err == nil || errors.Is(err, io.EOF) {
				err = st.RecvMsg(&rep)
			}
			if err == nil && rep.GetAccept() == nil {
				err = fmt.Errorf("%w: rank %d answered the hello with %v", ErrProtocol, r.next, &rep)
			}
			if err == nil && r.cfg.DataPath == DataBulk {
				offer := rep.GetAccept().GetBulk()
				if offer == nil {
					return nil, fmt.Errorf("%w: rank %d (%s) offered no bulk connection: every member must use DataPath bulk", ErrRefused, r.next, r.cfg.Members[r.next])
				}
				c, err := r.dialBulk(offer)
				if err != nil {
					return nil, err
				}
				if !r.setBulkOut(l, c) {
					return nil, context.Cause(r.ctx)
				}
			}
			if err == nil {
				l.out = st
				r.readers.Add(1)
				go r.readReplies(l, st)
				return st, nil
			}
		}
		if r.ctx.Err() != nil {
			return nil, context.Cause(r.ctx)
		}
		switch status.Code(err) {
		case codes.Unavailable:
		case codes.Aborted, codes.FailedPrecondition, codes.AlreadyExists, codes.InvalidArgument:
			return nil, fmt.Errorf("%w: rank %d (%s): %v", ErrRefused, r.next, r.cfg.Members[r.next], status.Convert(err).Message())
		default:
			return nil, fmt.Errorf("%w: opening stream to rank %d (%s): %w", ErrPeer, r.next, r.cfg.Members[r.next], err)
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-time.After(sleep):
		case <-r.ctx.Done():
			return nil, context.Cause(r.ctx)
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// readReplies reads the next rank's replies on one lane for the ring's
// lifetime. It passes acknowledgements to the sending goroutine and, when
// the stream ends while the ring is not closing, fails the ring at once, so
// that a failure downstream is seen even by a rank waiting for data.
func (r *Ring) readReplies(l *lane, st ringpb.Ring_StreamClient) {
	defer r.readers.Done()
	for {
		rep, err := st.Recv()
		if err != nil {
			if !r.closing.Load() {
				r.fail(r.peerErr("reading replies of", r.next, err))
			}
			return
		}
		ack := rep.GetAck()
		if r.cfg.DataPath == DataBulk {
			r.fail(fmt.Errorf("%w: rank %d sent %v on a stream whose acknowledgements travel on its bulk connection", ErrProtocol, r.next, rep))
			return
		}
		if ack == nil {
			r.fail(fmt.Errorf("%w: rank %d sent %v after accepting the stream", ErrProtocol, r.next, rep))
			return
		}
		select {
		case l.acks <- ack:
		default:
			r.fail(fmt.Errorf("%w: rank %d sent an acknowledgement no call waits for: %v", ErrProtocol, r.next, ack))
			return
		}
	}
}
