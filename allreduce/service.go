package allreduce

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsae/dsae/allreduce/ringpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Service is the receiving side of every ring of one worker: the gRPC Ring
// service. Register it once on the worker's gRPC server; each Ring built on
// it registers itself for its (job, generation) and takes over the stream
// its previous rank opens. Safe for concurrent use.
type Service struct {
	ringpb.UnimplementedRingServer

	mu     sync.Mutex
	rings  map[ringKey]*Ring
	newest map[string]uint64 // highest generation ever registered per job
	offers map[bulkToken]*bulkOffer
	bulk   *bulkEndpoints // set by the BulkServer that accepts bulk connections

	unixDir string

	refused atomic.Uint64
}

// ServiceOption configures a Service.
type ServiceOption func(*Service)

// WithUnixSockets sets the directory in which the Service's BulkServer (over
// TCP) creates the Unix socket it offers, besides its TCP bulk port, to
// previous ranks on the same host (the default is os.TempDir()); "" offers
// none, so that such ranks use TCP.
func WithUnixSockets(dir string) ServiceOption { return func(s *Service) { s.unixDir = dir } }

type ringKey struct {
	job string
	gen uint64
}

var _ ringpb.RingServer = (*Service)(nil)

// NewService returns a Service serving no ring yet.
func NewService(opts ...ServiceOption) *Service {
	s := &Service{
		rings:   make(map[ringKey]*Ring),
		newest:  make(map[string]uint64),
		offers:  make(map[bulkToken]*bulkOffer),
		unixDir: os.TempDir(),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// setBulk records where the Service accepts bulk connections.
func (s *Service) setBulk(e *bulkEndpoints) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bulk != nil {
		return errors.New("allreduce: the Service already has a BulkServer (StartServer starts one)")
	}
	s.bulk = e
	return nil
}

func (s *Service) clearBulk(e *bulkEndpoints) {
	s.mu.Lock()
	if s.bulk == e {
		s.bulk = nil
	}
	s.mu.Unlock()
}

func (s *Service) hasBulk() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bulk != nil
}

// Register adds the service to a gRPC server. Build that server with
// ServerOptions (plus any authentication options) for full throughput.
func (s *Service) Register(g grpc.ServiceRegistrar) { ringpb.RegisterRingServer(g, s) }

// Refused counts what this worker refused and never added: streams of a
// stale generation or a mismatched member list, and pieces whose tag,
// position or size did not belong to the call in progress.
func (s *Service) Refused() uint64 { return s.refused.Load() }

func (s *Service) register(r *Ring) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := ringKey{r.cfg.Job, r.cfg.Generation}
	if _, dup := s.rings[k]; dup {
		return fmt.Errorf("%w: job %q generation %d", ErrDuplicateRing, k.job, k.gen)
	}
	s.rings[k] = r
	if g, ok := s.newest[k.job]; !ok || k.gen > g {
		s.newest[k.job] = k.gen
	}
	return nil
}

func (s *Service) unregister(r *Ring) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := ringKey{r.cfg.Job, r.cfg.Generation}
	if s.rings[k] == r {
		delete(s.rings, k)
	}
}

// lookup finds the ring a Hello is for, or returns the gRPC status that
// refuses the stream. codes.Unavailable means "not yet" and is retried by
// the sender; every other code is final.
func (s *Service) lookup(h *ringpb.Hello) (*Ring, error) {
	s.mu.Lock()
	r := s.rings[ringKey{h.GetJob(), h.GetGeneration()}]
	newest, known := s.newest[h.GetJob()]
	s.mu.Unlock()
	if r == nil {
		if known && h.GetGeneration() < newest {
			s.refused.Add(1)
			return nil, status.Errorf(codes.Aborted, "stale generation %d of job %q: this worker serves generation %d",
				h.GetGeneration(), h.GetJob(), newest)
		}
		return nil, status.Errorf(codes.Unavailable, "no ring for job %q generation %d yet", h.GetJob(), h.GetGeneration())
	}
	n := len(r.cfg.Members)
	if int(h.GetRanks()) != n || int(h.GetToRank()) != r.cfg.Rank || int(h.GetFromRank()) != r.prev ||
		int(h.GetLanes()) != len(r.lanes) || h.GetLane() >= h.GetLanes() {
		s.refused.Add(1)
		return nil, status.Errorf(codes.FailedPrecondition,
			"hello from rank %d to rank %d of %d on lane %d of %d does not match this ring (rank %d of %d, previous rank %d, %d lanes)",
			h.GetFromRank(), h.GetToRank(), h.GetRanks(), h.GetLane(), h.GetLanes(), r.cfg.Rank, n, r.prev, len(r.lanes))
	}
	path := h.GetDataPath()
	if path == ringpb.DataPath_DATA_PATH_UNSPECIFIED {
		path = ringpb.DataPath_DATA_PATH_GRPC
	}
	// A piece size of 0 is not stated (a hand-written peer); a wrong one
	// would show as misplaced pieces.
	if path != r.cfg.DataPath.wire() || (h.GetPieceBytes() != 0 && int(h.GetPieceBytes()) != r.pieceBytes) {
		s.refused.Add(1)
		return nil, status.Errorf(codes.FailedPrecondition,
			"hello from rank %d asks for data path %v with %d-byte pieces; this ring (rank %d) uses %v with %d-byte pieces: every member must use the same DataPath and PieceBytes",
			h.GetFromRank(), path, h.GetPieceBytes(), r.cfg.Rank, r.cfg.DataPath.wire(), r.pieceBytes)
	}
	return r, nil
}

// Stream implements ringpb.RingServer. It validates the Hello, hands the
// stream to its ring and holds it open until the ring is closed or broken.
func (s *Service) Stream(stream ringpb.Ring_StreamServer) error {
	var f ringpb.Frame
	if err := stream.RecvMsg(&f); err != nil {
		return err
	}
	h := f.GetHello()
	if h == nil {
		s.refused.Add(1)
		return status.Error(codes.InvalidArgument, "first frame of a ring stream must be a hello")
	}
	r, err := s.lookup(h)
	if err != nil {
		return err
	}
	lane := int(h.GetLane())
	if !r.reserveIncoming(lane, stream) {
		s.refused.Add(1)
		return status.Errorf(codes.AlreadyExists, "rank %d already has a stream from rank %d on lane %d", r.cfg.Rank, r.prev, lane)
	}
	accept := &ringpb.Accept{}
	var offer *bulkOffer
	if r.cfg.DataPath == DataBulk {
		s.mu.Lock()
		ends := s.bulk
		s.mu.Unlock()
		if ends == nil {
			err := fmt.Errorf("%w: rank %d serves no bulk connections (its BulkServer was stopped)", ErrPeer, r.cfg.Rank)
			r.fail(err)
			return status.Error(codes.Unavailable, err.Error())
		}
		var err error
		if offer, err = s.offerBulk(); err != nil {
			r.fail(err)
			return status.Error(codes.Internal, err.Error())
		}
		defer s.withdraw(offer)
		accept.Bulk = &ringpb.Bulk{Token: offer.token[:], TcpAddr: ends.tcpAddr, UnixPath: ends.unixPath}
		if ends.unixPath != "" {
			accept.Bulk.Host = localHost()
		}
	}
	if err := stream.Send(&ringpb.Reply{Kind: &ringpb.Reply_Accept{Accept: accept}}); err != nil {
		r.fail(fmt.Errorf("%w: accepting stream from rank %d: %w", ErrPeer, r.prev, err))
		return err
	}
	if offer != nil {
		timer := time.NewTimer(r.cfg.Timeout)
		select {
		case c := <-offer.conn:
			timer.Stop()
			if !r.setBulkIn(lane, c) {
				return status.Errorf(codes.Aborted, "ring of rank %d failed: %v", r.cfg.Rank, context.Cause(r.ctx))
			}
		case <-timer.C:
			err := fmt.Errorf("%w: rank %d did not open its bulk connection within %v", ErrTimeout, r.prev, r.cfg.Timeout)
			r.fail(err)
			return status.Error(codes.DeadlineExceeded, err.Error())
		case <-r.ctx.Done():
			timer.Stop()
			return status.Errorf(codes.Aborted, "ring of rank %d failed: %v", r.cfg.Rank, context.Cause(r.ctx))
		case <-stream.Context().Done():
			timer.Stop()
			r.fail(&PeerError{Op: "waiting for the bulk connection of", Rank: r.prev, Addr: r.cfg.Members[r.prev],
				Err: errors.New("its stream ended before the bulk connection opened")})
			return stream.Context().Err()
		}
	}
	r.publishIncoming(lane)
	select {
	case <-r.ctx.Done():
	case <-stream.Context().Done():
		return stream.Context().Err()
	}
	if cause := context.Cause(r.ctx); !errors.Is(cause, ErrClosed) {
		return status.Errorf(codes.Aborted, "ring of rank %d failed: %v", r.cfg.Rank, cause)
	}
	return nil
}
