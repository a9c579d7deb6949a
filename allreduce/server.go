package allreduce

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
)

// Flow-control windows and I/O buffers of ring connections. gRPC's
// defaults (64 KiB windows, 32 KiB buffers) stall a stream of 512 KiB
// pieces; these windows let several pieces be in flight per stream. gRPC
// copies every 16 KiB DATA frame through its write buffer and out of its
// read buffer; 512 KiB buffers (one default piece) batch a piece into about
// one write and a few reads, which measured a few percent faster on
// loopback than 256 KiB, 1 MiB, no buffers, or shared write buffers.
const (
	streamWindow = 8 << 20
	connWindow   = 16 << 20
	ioBuffer     = 512 << 10
)

// ServerOptions returns the gRPC server options the ring needs for full
// throughput: 8 MiB stream and 16 MiB connection flow-control windows,
// 512 KiB I/O buffers, a receive limit that admits MaxPieceBytes pieces, and
// a buffer pool that does not zero buffers before gRPC fills them. A worker
// that builds its own grpc.Server (to add authentication or other services)
// should include them.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
		grpc.ReadBufferSize(ioBuffer),
		grpc.WriteBufferSize(ioBuffer),
		grpc.MaxRecvMsgSize(MaxPieceBytes + 64<<10),
		experimental.BufferPool(ringPool),
	}
}

func dialOptions(t Transport) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(t.Dial),
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithReadBufferSize(ioBuffer),
		grpc.WithWriteBufferSize(ioBuffer),
		experimental.WithBufferPool(ringPool),
	}
}

// Server serves a Service: its gRPC service, and the bulk connections of
// rings that use DataBulk.
type Server struct {
	svc  *Service
	g    *grpc.Server
	lis  net.Listener
	done chan struct{}
	err  error
	once sync.Once

	bulkLis []net.Listener
	bulkWG  sync.WaitGroup
	hsMu    sync.Mutex
	hs      map[net.Conn]struct{} // bulk connections in their handshake
	stopped bool
}

// StartServer listens on addr through t and serves svc until Stop. opts
// are added after ServerOptions (for example authentication interceptors).
//
// It also listens for bulk connections (Config.DataPath DataBulk): through
// t on the same host as addr with a port of the system's choosing, and,
// when t is TCP and the Service has a Unix socket directory
// (WithUnixSockets), on a Unix socket there for ranks on the same host.
func StartServer(t Transport, addr string, svc *Service, opts ...grpc.ServerOption) (*Server, error) {
	lis, err := t.Listen(addr)
	if err != nil {
		return nil, err
	}
	s := &Server{svc: svc, lis: lis, done: make(chan struct{}), hs: make(map[net.Conn]struct{})}
	if err := s.listenBulk(t, addr); err != nil {
		lis.Close()
		for _, l := range s.bulkLis {
			l.Close()
		}
		return nil, err
	}
	g := grpc.NewServer(append(ServerOptions(), opts...)...)
	svc.Register(g)
	s.g = g
	go func() {
		defer close(s.done)
		if err := g.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.err = err
		}
	}()
	for _, l := range s.bulkLis {
		s.bulkWG.Add(1)
		go s.acceptBulk(l)
	}
	return s, nil
}

// unixSocketSeq makes Unix socket names unique within a process.
var unixSocketSeq atomic.Uint64

func (s *Server) listenBulk(t Transport, addr string) error {
	bulkAddr := addr
	if host, _, err := net.SplitHostPort(addr); err == nil {
		bulkAddr = net.JoinHostPort(host, "0")
	}
	bl, err := t.Listen(bulkAddr)
	if err != nil {
		return fmt.Errorf("allreduce: bulk listener: %w", err)
	}
	s.bulkLis = append(s.bulkLis, bl)
	ends := &bulkEndpoints{tcpAddr: bl.Addr().String()}
	if _, isTCP := t.(tcpTransport); isTCP && s.svc.unixDir != "" && localHost() != "" {
		removeStaleSockets(s.svc.unixDir)
		path := filepath.Join(s.svc.unixDir, fmt.Sprintf("%s%d-%d.sock", unixSocketPrefix, os.Getpid(), unixSocketSeq.Add(1)))
		// Without the socket (directory not writable, path too long) ranks
		// on this host use TCP: slower, never wrong.
		if ul, err := net.Listen("unix", path); err == nil {
			s.bulkLis = append(s.bulkLis, ul)
			ends.unixPath = path
		}
	}
	return s.svc.setBulk(ends)
}

// unixSocketPrefix starts the name of every Unix socket a Server creates;
// the process id follows.
const unixSocketPrefix = "dsae-ring-"

// removeStaleSockets deletes the Unix sockets in dir left by dsae processes
// that no longer run (a killed process cannot remove its own).
func removeStaleSockets(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), unixSocketPrefix)
		if !ok || e.Type()&os.ModeSocket == 0 {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// acceptBulk accepts bulk connections on l until it is closed.
func (s *Server) acceptBulk(l net.Listener) {
	defer s.bulkWG.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if uc, ok := c.(*net.UnixConn); ok {
			uc.SetReadBuffer(unixSocketBuffer)
			uc.SetWriteBuffer(unixSocketBuffer)
		}
		s.hsMu.Lock()
		if s.stopped {
			s.hsMu.Unlock()
			c.Close()
			return
		}
		s.hs[c] = struct{}{}
		s.bulkWG.Add(1)
		s.hsMu.Unlock()
		go func() {
			defer s.bulkWG.Done()
			s.svc.handshakeBulk(c)
			s.hsMu.Lock()
			delete(s.hs, c)
			s.hsMu.Unlock()
		}()
	}
}

// Addr is the address other ranks dial.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Service returns the served Service.
func (s *Server) Service() *Service { return s.svc }

// Stop closes the listeners and every connection at once (streams in
// progress fail) and waits for the serving goroutines to end. Bulk
// connections already handed to rings belong to the rings, which see their
// gRPC streams end and fail.
func (s *Server) Stop() error {
	s.once.Do(func() {
		s.svc.clearBulk()
		s.hsMu.Lock()
		s.stopped = true
		for c := range s.hs {
			c.Close()
		}
		s.hsMu.Unlock()
		for _, l := range s.bulkLis {
			l.Close()
		}
		s.g.Stop()
		s.bulkWG.Wait()
	})
	<-s.done
	return s.err
}
