package allreduce

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"

	"google.golang.org/grpc/test/bufconn"
)

// Transport makes the connections the ring's gRPC traffic runs on. A
// Server listens through it and a Ring dials through it, so the same gRPC
// code runs over TCP in production and over in-memory pipes in tests.
type Transport interface {
	// Listen listens on addr; the listener's Addr().String() is the address
	// other ranks dial.
	Listen(addr string) (net.Listener, error)
	// Dial connects to an address returned by a listener of this transport.
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// TCP returns the transport of real deployments: TCP sockets.
func TCP() Transport { return tcpTransport{} }

type tcpTransport struct{}

func (tcpTransport) Listen(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}

func (tcpTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// MemTransport is an in-memory Transport built on grpc's bufconn: listeners
// get names "mem-1", "mem-2", ... and Dial connects to the listener of that
// name in the same MemTransport. Safe for concurrent use.
type MemTransport struct {
	mu        sync.Mutex
	next      int
	listeners map[string]*bufconn.Listener
}

var _ Transport = (*MemTransport)(nil)
var _ Transport = tcpTransport{}

// memBufferBytes is the size of each direction's in-memory pipe.
const memBufferBytes = 1 << 20

// NewMemTransport returns an empty in-memory transport.
func NewMemTransport() *MemTransport {
	return &MemTransport{listeners: make(map[string]*bufconn.Listener)}
}

// Listen ignores addr and returns a listener with a fresh name.
func (m *MemTransport) Listen(string) (net.Listener, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	name := "mem-" + strconv.Itoa(m.next)
	l := bufconn.Listen(memBufferBytes)
	m.listeners[name] = l
	return &memListener{Listener: l, name: name, owner: m}, nil
}

// Dial connects to the listener named addr.
func (m *MemTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	m.mu.Lock()
	l := m.listeners[addr]
	m.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("dial %s: no such in-memory listener", addr)
	}
	return l.DialContext(ctx)
}

type memListener struct {
	*bufconn.Listener
	name  string
	owner *MemTransport
}

func (l *memListener) Addr() net.Addr { return memAddr(l.name) }

func (l *memListener) Close() error {
	l.owner.mu.Lock()
	delete(l.owner.listeners, l.name)
	l.owner.mu.Unlock()
	return l.Listener.Close()
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }
