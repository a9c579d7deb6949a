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
)

// BulkServer accepts the bulk connections (Config.DataPath DataBulk) of a
// Service's rings: on a listener of the Service's Transport and, over TCP,
// on a Unix socket for ranks on the same host. StartServer runs one; a
// worker that registers the Service on a gRPC server of its own starts one
// with ListenBulk.
type BulkServer struct {
	svc  *Service
	lis  []net.Listener
	ends bulkEndpoints
	wg   sync.WaitGroup
	once sync.Once

	mu      sync.Mutex
	hs      map[net.Conn]struct{} // connections in their handshake
	stopped bool
}

// ListenBulk accepts bulk connections for svc until Stop: through t on the
// host of addr (host:port) with a port of the system's choosing (or, for
// a transport whose addresses are not host:port, on t.Listen(addr)); and,
// when t is TCP and svc has a Unix socket directory (WithUnixSockets, by
// default os.TempDir()), on a Unix socket there. A Service has at most one
// BulkServer at a time.
func ListenBulk(t Transport, addr string, svc *Service) (*BulkServer, error) {
	bulkAddr := addr
	if host, _, err := net.SplitHostPort(addr); err == nil {
		bulkAddr = net.JoinHostPort(host, "0")
	}
	bl, err := t.Listen(bulkAddr)
	if err != nil {
		return nil, fmt.Errorf("allreduce: bulk listener: %w", err)
	}
	s := &BulkServer{svc: svc, lis: []net.Listener{bl}, hs: make(map[net.Conn]struct{})}
	s.ends.tcpAddr = bl.Addr().String()
	if _, isTCP := t.(tcpTransport); isTCP && svc.unixDir != "" && localHost() != "" {
		removeStaleSockets(svc.unixDir)
		path := filepath.Join(svc.unixDir, fmt.Sprintf("%s%d-%d.sock", unixSocketPrefix, os.Getpid(), unixSocketSeq.Add(1)))
		// Without the socket (directory not writable, path too long) ranks
		// on this host use TCP: slower, never wrong.
		if ul, err := net.Listen("unix", path); err == nil {
			s.lis = append(s.lis, ul)
			s.ends.unixPath = path
		}
	}
	if err := svc.setBulk(&s.ends); err != nil {
		for _, l := range s.lis {
			l.Close()
		}
		return nil, err
	}
	for _, l := range s.lis {
		s.wg.Add(1)
		go s.acceptBulk(l)
	}
	return s, nil
}

// Addr is the bulk listener's address through the transport.
func (s *BulkServer) Addr() string { return s.ends.tcpAddr }

// UnixPath is the Unix socket offered to ranks on this host, or "".
func (s *BulkServer) UnixPath() string { return s.ends.unixPath }

// Stop closes the listeners and the connections still in their handshake,
// and waits for its goroutines. Connections already handed to rings belong
// to the rings.
func (s *BulkServer) Stop() {
	s.once.Do(func() {
		s.svc.clearBulk(&s.ends)
		s.mu.Lock()
		s.stopped = true
		for c := range s.hs {
			c.Close()
		}
		s.mu.Unlock()
		for _, l := range s.lis {
			l.Close()
		}
		s.wg.Wait()
	})
}

// unixSocketSeq makes Unix socket names unique within a process.
var unixSocketSeq atomic.Uint64

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
func (s *BulkServer) acceptBulk(l net.Listener) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		if uc, ok := c.(*net.UnixConn); ok {
			uc.SetReadBuffer(unixSocketBuffer)
			uc.SetWriteBuffer(unixSocketBuffer)
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.hs[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.svc.handshakeBulk(c)
			s.mu.Lock()
			delete(s.hs, c)
			s.mu.Unlock()
		}()
	}
}
