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
	*streamLayer

	mu      sync.Mutex
	blocked bool
}

var _ raft.StreamLayer = (*partitionLayer)(nil)

// setBlocked partitions (true) or heals (false) the node's raft traffic.
// The stream layer tracks every connection, so blocking closes them all;
// Dial and Accept check the flag again after the layer has tracked a new
// one, which leaves no window in which a partition misses a connection.
func (p *partitionLayer) setBlocked(b bool) {
	p.mu.Lock()
	p.blocked = b
	p.mu.Unlock()
	if b {
		p.closeConns()
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
		c, err := p.streamLayer.Accept()
		if err != nil {
			return nil, err
		}
		if !p.isBlocked() {
			return c, nil
		}
		c.Close()
	}
}

func (p *partitionLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if p.isBlocked() {
		return nil, errPartitioned
	}
	c, err := p.streamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	if p.isBlocked() {
		c.Close()
		return nil, errPartitioned
	}
	return c, nil
}
