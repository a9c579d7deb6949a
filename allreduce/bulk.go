package allreduce

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dsae/dsae/allreduce/ringpb"
)

// The bulk data path (DataBulk) carries a lane's pieces on a plain byte
// stream beside its gRPC stream.
//
// Handshake. The receiver answers the Hello with an Accept holding a Bulk
// offer: a one-time 32-byte token and its bulk addresses. The sender
// connects to one of them and writes bulkPreamble followed by the token;
// the receiver answers the single byte bulkOK and from then on only reads.
// A connection with another preamble or an unknown token is counted as
// refused and closed.
//
// Pieces. Each piece is a 64-byte header followed by its data (little-endian
// IEEE 754 values, dataLen bytes). Header fields, little-endian:
//
//	offset  size  field
//	     0     4  magic, bulkMagic
//	     4     1  dtype (ringpb.DType)
//	     5     3  zero
//	     8     4  phase of the call's tag
//	    12     4  ring step, 0..2(N-1)-1
//	    16     4  chunk
//	    20     4  zero
//	    24     8  generation of the call's tag
//	    32     8  step of the call's tag
//	    40     8  offset of the piece's first element in the buffer
//	    48     8  length of the whole buffer in elements
//	    56     8  dataLen, the number of data bytes that follow
//
// The job is the one the token was issued for.
//
// Acknowledgements. At the end of each call the receiver writes a 16-byte
// acknowledgement back on the same byte stream: bulkAckMagic (4 bytes),
// the call's phase (4) and step (8), little-endian. They are the only bytes
// that travel from receiver to sender after the handshake. The gRPC stream
// carries nothing after the Accept; its end still signals a failed or
// closed peer.
const (
	bulkPreamble  = "dsae-bulk/1\n"
	bulkTokenLen  = 32
	bulkHeaderLen = 64
	bulkMagic     = 0x6b6c7562 // "bulk"
	bulkOK        = 'K'
	bulkAckLen    = 16
	bulkAckMagic  = 0x6b636162 // "back"

	// bulkReadBytes is the size of each read of a piece that is added
	// (reduce-scatter): small enough that the received bytes are still in
	// cache when they are added.
	bulkReadBytes = 256 << 10
	// unixSocketBuffer is the send and receive buffer of a Unix bulk
	// socket. Linux's default (about 200 KiB) makes a sender block after a
	// fraction of a piece; 4 MiB holds two default pieces (measured 1.5x
	// faster for 4 ranks on 2 cores). TCP sockets keep the kernel's
	// autotuning, which grows them to several MiB on its own.
	unixSocketBuffer = 4 << 20
	// bulkHandshakeTimeout bounds how long a bulk listener waits for a new
	// connection's preamble and token.
	bulkHandshakeTimeout = 10 * time.Second
)

type bulkToken [bulkTokenLen]byte

// putBulkHeader encodes h (with dataLen set) into b.
func putBulkHeader(b *[bulkHeaderLen]byte, h *pieceHeader) {
	le := binary.LittleEndian
	*b = [bulkHeaderLen]byte{}
	le.PutUint32(b[0:], bulkMagic)
	b[4] = byte(h.dtype)
	le.PutUint32(b[8:], h.phase)
	le.PutUint32(b[12:], uint32(h.ringStep))
	le.PutUint32(b[16:], uint32(h.chunk))
	le.PutUint64(b[24:], h.generation)
	le.PutUint64(b[32:], h.step)
	le.PutUint64(b[40:], h.offset)
	le.PutUint64(b[48:], h.length)
	le.PutUint64(b[56:], uint64(h.dataLen))
}

// parseBulkHeader decodes b into h (all but job). It fails on a wrong
// magic or a data length that does not fit an int.
func parseBulkHeader(b []byte, h *pieceHeader) error {
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != bulkMagic {
		return fmt.Errorf("bulk piece header starts with %#08x, want %#08x", m, bulkMagic)
	}
	h.dtype = ringpb.DType(b[4])
	h.phase = le.Uint32(b[8:])
	h.ringStep = uint64(le.Uint32(b[12:]))
	h.chunk = uint64(le.Uint32(b[16:]))
	h.generation = le.Uint64(b[24:])
	h.step = le.Uint64(b[32:])
	h.offset = le.Uint64(b[40:])
	h.length = le.Uint64(b[48:])
	n := le.Uint64(b[56:])
	if n > MaxPieceBytes {
		return fmt.Errorf("bulk piece of %d bytes, more than the largest piece (%d)", n, MaxPieceBytes)
	}
	h.dataLen = int(n)
	return nil
}

func putBulkAck(b *[bulkAckLen]byte, tag Tag) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], bulkAckMagic)
	le.PutUint32(b[4:], tag.Phase)
	le.PutUint64(b[8:], tag.Step)
}

func parseBulkAck(b []byte) (step uint64, phase uint32, err error) {
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != bulkAckMagic {
		return 0, 0, fmt.Errorf("bulk acknowledgement starts with %#08x, want %#08x", m, bulkAckMagic)
	}
	return le.Uint64(b[8:]), le.Uint32(b[4:]), nil
}

// localHost identifies this kernel and host name; a sender uses a Unix
// socket only when the receiver reports the same identity. Containers on
// one machine share the boot id but not, by default, the host name (nor
// the socket's file system). Empty when it cannot be read.
var localHost = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b)) + "/" + h
})

// bulkOffer is one token handed out in an Accept, waiting for its
// connection.
type bulkOffer struct {
	token bulkToken
	mu    sync.Mutex
	done  bool
	conn  chan net.Conn // capacity 1
}

// deliver hands c to the waiting Stream handler; false if it gave up.
func (o *bulkOffer) deliver(c net.Conn) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return false
	}
	o.done = true
	o.conn <- c
	return true
}

// abandon withdraws the offer, closing a connection delivered meanwhile.
func (o *bulkOffer) abandon() {
	o.mu.Lock()
	o.done = true
	o.mu.Unlock()
	select {
	case c := <-o.conn:
		c.Close()
	default:
	}
}

// bulkEndpoints is where a Service accepts bulk connections.
type bulkEndpoints struct {
	tcpAddr  string // the listener's address through the server's transport
	unixPath string // "" when no Unix socket is offered
}

// offerBulk registers a new token.
func (s *Service) offerBulk() (*bulkOffer, error) {
	o := &bulkOffer{conn: make(chan net.Conn, 1)}
	if _, err := rand.Read(o.token[:]); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.offers[o.token] = o
	s.mu.Unlock()
	return o, nil
}

func (s *Service) withdraw(o *bulkOffer) {
	s.mu.Lock()
	if s.offers[o.token] == o {
		delete(s.offers, o.token)
	}
	s.mu.Unlock()
	o.abandon()
}

// claim removes and returns the offer of a token.
func (s *Service) claim(t bulkToken) *bulkOffer {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.offers[t]
	delete(s.offers, t)
	return o
}

// handshakeBulk reads a new bulk connection's preamble and token and hands
// it to the offer it names, or closes it.
func (s *Service) handshakeBulk(c net.Conn) {
	c.SetDeadline(time.Now().Add(bulkHandshakeTimeout))
	var b [len(bulkPreamble) + bulkTokenLen]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || string(b[:len(bulkPreamble)]) != bulkPreamble {
		s.refused.Add(1)
		c.Close()
		return
	}
	o := s.claim(bulkToken(b[len(bulkPreamble):]))
	if o == nil {
		s.refused.Add(1)
		c.Close()
		return
	}
	if _, err := c.Write([]byte{bulkOK}); err != nil {
		c.Close()
		o.abandon()
		return
	}
	c.SetDeadline(time.Time{})
	if !o.deliver(c) {
		c.Close()
	}
}

// dialBulk opens lane l's byte stream to the next rank with its offer: a
// Unix socket when the next rank runs on this host and offers one, else
// TCP (or the ring's Transport) to its bulk listener.
func (r *Ring) dialBulk(offer *ringpb.Bulk) (net.Conn, error) {
	if len(offer.GetToken()) != bulkTokenLen {
		return nil, fmt.Errorf("%w: rank %d offered a bulk token of %d bytes", ErrProtocol, r.next, len(offer.GetToken()))
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Timeout)
	defer cancel()
	var unixErr error
	if _, isTCP := r.cfg.Transport.(tcpTransport); isTCP && offer.GetUnixPath() != "" &&
		offer.GetHost() != "" && offer.GetHost() == localHost() {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", offer.GetUnixPath())
		if err == nil {
			uc := c.(*net.UnixConn)
			uc.SetWriteBuffer(unixSocketBuffer)
			uc.SetReadBuffer(unixSocketBuffer)
			if err = bulkHandshake(ctx, c, offer.GetToken()); err == nil {
				return c, nil
			}
			c.Close()
		}
		unixErr = err // fall back to TCP: the socket may be in another file system
	}
	addr := bulkDialAddr(offer.GetTcpAddr(), r.cfg.Members[r.next])
	c, err := r.cfg.Transport.Dial(ctx, addr)
	if err == nil {
		if err = bulkHandshake(ctx, c, offer.GetToken()); err == nil {
			return c, nil
		}
		c.Close()
	}
	if ctx.Err() != nil && r.ctx.Err() != nil {
		return nil, context.Cause(r.ctx)
	}
	if unixErr != nil {
		err = fmt.Errorf("%w (Unix socket %s: %v)", err, offer.GetUnixPath(), unixErr)
	}
	return nil, fmt.Errorf("%w: bulk connection to rank %d (%s) at %s: %w", ErrPeer, r.next, r.cfg.Members[r.next], addr, err)
}

// bulkDialAddr is the address to dial for a bulk listener advertised as
// advertised by the rank reached at member: an unspecified host is
// replaced by member's host.
func bulkDialAddr(advertised, member string) string {
	host, port, err := net.SplitHostPort(advertised)
	if err != nil {
		return advertised // not host:port (an in-memory transport's name)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if mhost, _, err := net.SplitHostPort(member); err == nil {
			return net.JoinHostPort(mhost, port)
		}
	}
	return advertised
}

// bulkHandshake writes the preamble and token and waits for bulkOK.
func bulkHandshake(ctx context.Context, c net.Conn, token []byte) error {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	msg := append([]byte(bulkPreamble), token...)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	var ok [1]byte
	if _, err := io.ReadFull(c, ok[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("the receiver closed the connection: token refused")
		}
		return err
	}
	if ok[0] != bulkOK {
		return fmt.Errorf("the receiver answered %q to the bulk handshake", ok[0])
	}
	if !stop() {
		return context.Cause(ctx)
	}
	return c.SetDeadline(time.Time{})
}
