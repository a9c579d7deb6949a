package coordinator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// handshakeTimeout bounds the authentication of one raft connection.
const handshakeTimeout = 3 * time.Second

// streamLayer is raft's StreamLayer over TCP. When a key is set, the
// accepting side sends a random 32-byte challenge and the dialing side
// answers with its HMAC-SHA256 under the key, so only holders of the
// cluster secret can speak raft to this node. It tracks its connections so
// that Close can end them all.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	key       []byte
	accepted  chan net.Conn
	done      chan struct{}

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(ln net.Listener, advertise net.Addr, key []byte) *streamLayer {
	l := &streamLayer{ln: ln, advertise: advertise, key: key, accepted: make(chan net.Conn),
		done: make(chan struct{}), conns: map[*trackedConn]struct{}{}}
	go l.acceptLoop()
	return l
}

func (l *streamLayer) acceptLoop() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			l.Close()
			return
		}
		go func() {
			if l.challenge(c) != nil {
				c.Close()
				return
			}
			t, err := l.track(c)
			if err != nil {
				return
			}
			select {
			case l.accepted <- t:
			case <-l.done:
				t.Close()
			}
		}()
	}
}

func (l *streamLayer) challenge(c net.Conn) error {
	if len(l.key) == 0 {
		return nil
	}
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetDeadline(time.Time{})
	nonce := make([]byte, 32)
	rand.Read(nonce)
	if _, err := c.Write(nonce); err != nil {
		return err
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !hmac.Equal(got, l.mac(nonce)) {
		return errors.New("raft peer failed authentication")
	}
	return nil
}

func (l *streamLayer) mac(nonce []byte) []byte {
	m := hmac.New(sha256.New, l.key)
	m.Write(nonce)
	return m.Sum(nil)
}

// Accept returns the next authenticated connection.
func (l *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.accepted:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Dial connects to a raft peer and answers its challenge.
func (l *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	if len(l.key) > 0 {
		c.SetDeadline(time.Now().Add(handshakeTimeout))
		nonce := make([]byte, 32)
		if _, err := io.ReadFull(c, nonce); err != nil {
			c.Close()
			return nil, err
		}
		if _, err := c.Write(l.mac(nonce)); err != nil {
			c.Close()
			return nil, err
		}
		c.SetDeadline(time.Time{})
	}
	return l.track(c)
}

// Addr is the advertised address of this node.
func (l *streamLayer) Addr() net.Addr { return l.advertise }

// Close stops accepting and closes every connection (raft's inbound
// handlers would otherwise wait on an idle peer forever).
func (l *streamLayer) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	err := l.ln.Close()
	l.mu.Unlock()
	l.closeConns()
	return err
}

// closeConns closes every connection open at the time of the call.
func (l *streamLayer) closeConns() {
	l.mu.Lock()
	open := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		open = append(open, c)
	}
	l.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

// track registers c so that Close can close it. A connection that finished
// its handshake after the layer was closed is closed instead: checking and
// registering under one lock leaves no window in which Close misses a
// connection.
func (l *streamLayer) track(c net.Conn) (net.Conn, error) {
	t := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[t] = struct{}{}
	return t, nil
}

type trackedConn struct {
	net.Conn
	l    *streamLayer
	once sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.l.mu.Lock()
		delete(t.l.conns, t)
		t.l.mu.Unlock()
	})
	return t.Conn.Close()
}

// advertiseAddr resolves the address a listener on addr should announce:
// addr itself unless it left the port to the system.
func advertiseAddr(addr string, ln net.Listener) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port == "0" || port == "" {
		_, p, _ := net.SplitHostPort(ln.Addr().String())
		port = p
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "", errors.New("listen address " + addr + " has no host others can reach; give an IP or host name")
	}
	return net.JoinHostPort(host, port), nil
}
