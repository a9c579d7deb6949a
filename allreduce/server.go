package allreduce

import (
	"errors"
	"net"
	"sync"

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

// ServerOptions returns the gRPC server options the ring's gRPC streams need
// for full throughput (they matter with DataGRPC): 8 MiB stream and 16 MiB
// connection flow-control windows, 512 KiB I/O buffers, a receive limit
// that admits MaxPieceBytes pieces, and a buffer pool that does not zero
// buffers before gRPC fills them. A worker
// that builds its own grpc.Server (to add authentication or other services)
// should include them, and start a BulkServer with ListenBulk.
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

// Server serves a Service: its gRPC service on a server of its own, and
// the bulk connections of rings that use DataBulk (a BulkServer).
type Server struct {
	svc  *Service
	g    *grpc.Server
	lis  net.Listener
	bulk *BulkServer
	done chan struct{}
	err  error
	once sync.Once
}

// StartServer listens on addr through t and serves svc until Stop. opts
// are added after ServerOptions (for example authentication interceptors).
// It also accepts bulk connections for svc, as ListenBulk(t, addr, svc).
func StartServer(t Transport, addr string, svc *Service, opts ...grpc.ServerOption) (*Server, error) {
	lis, err := t.Listen(addr)
	if err != nil {
		return nil, err
	}
	bulk, err := ListenBulk(t, addr, svc)
	if err != nil {
		lis.Close()
		return nil, err
	}
	g := grpc.NewServer(append(ServerOptions(), opts...)...)
	svc.Register(g)
	s := &Server{svc: svc, g: g, lis: lis, bulk: bulk, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := g.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.err = err
		}
	}()
	return s, nil
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
		s.bulk.Stop()
		s.g.Stop()
	})
	<-s.done
	return s.err
}
