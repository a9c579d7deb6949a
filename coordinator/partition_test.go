package coordinator

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// errPartitioned is what a partitioned layer's Dial returns.
var errPartitioned = errors.New("raft transport partitioned")

// partitionLayer wraps a node's raft stream layer (Config.wrapRaftStream)
// so that a test can cut the node off: while blocked, every connection
// through it is closed and dials and accepts are refused. Gossip and gRPC
// are not affected.
type partitionLayer struct {
	raft.StreamLayer

	mu      sync.Mutex
	blocked bool
	conns   map[*cutConn]struct{}
}

var _ raft.StreamLayer = (*partitionLayer)(nil)

func newPartitionLayer(l raft.StreamLayer) *partitionLayer {
	return &partitionLayer{StreamLayer: l, conns: map[*cutConn]struct{}{}}
}

// setBlocked partitions (true) or heals (false) the node's raft traffic.
func (p *partitionLayer) setBlocked(b bool) {
	p.mu.Lock()
	p.blocked = b
	var open []*cutConn
	if b {
		for c := range p.conns {
			open = append(open, c)
		}
	}
	p.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

func (p *partitionLayer) isBlocked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocked
}

// Accept returns the next connection accepted while not blocked; those
// arriving while blocked are closed.
func (p *partitionLayer) Accept() (net.Conn, error) {
	for {
		c, err := p.StreamLayer.Accept()
		if err != nil {
			return nil, err
		}
		if t, err := p.track(c); err == nil {
			return t, nil
		}
	}
}

func (p *partitionLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if p.isBlocked() {
		return nil, errPartitioned
	}
	c, err := p.StreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	return p.track(c)
}

// track registers c so that setBlocked can close it, or closes it if the
// layer is blocked: checking and registering under one lock leaves no
// window in which a partition misses a connection.
func (p *partitionLayer) track(c net.Conn) (net.Conn, error) {
	t := &cutConn{Conn: c, p: p}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blocked {
		c.Close()
		return nil, errPartitioned
	}
	p.conns[t] = struct{}{}
	return t, nil
}

type cutConn struct {
	net.Conn
	p    *partitionLayer
	once sync.Once
}

func (c *cutConn) Close() error {
	c.once.Do(func() {
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	})
	return c.Conn.Close()
}
