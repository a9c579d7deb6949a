package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/coordinator/internal/logbridge"
)

// applyTimeout bounds one raft apply.
const applyTimeout = 10 * time.Second

// Node is one running coordinator: a raft member with the FSM, the gRPC
// control API, and (on the leader) the membership reconciler.
type Node struct {
	cfg Config
	log *slog.Logger
	fsm *FSM

	raft        *raft.Raft
	layer       *streamLayer
	trans       *raft.NetworkTransport
	store       *raftboltdb.BoltStore
	grpc        *grpc.Server
	health      *health.Server
	pool        *client.Pool
	dials       *dialer
	mem         atomic.Pointer[leaderMemory] // set while leading
	ledUntil    atomic.Int64                 // unix nano when this node last stopped leading
	started     time.Time
	reconcileMu sync.Mutex
	met         []*metrics

	raftAddr, grpcAddr string // advertised

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Start opens the data dir, starts raft, the gRPC server and gossip, and
// bootstraps a new cluster or joins cfg.Join in the background. The node
// runs until Close; a ctx that ends during the start aborts it.
func Start(ctx context.Context, cfg Config) (n *Node, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	n = &Node{cfg: cfg, log: cfg.Logger.With("coordinator", cfg.ID), fsm: NewFSM(), started: time.Now()}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.dials, err = newDialer(cfg.Auth); err != nil {
		return nil, err
	}
	if err := n.startRaft(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := n.startGRPC(); err != nil {
		return nil, err
	}
	if n.pool, err = n.startGossip(); err != nil {
		return nil, err
	}
	if err := n.startMetrics(); err != nil {
		return nil, err
	}
	n.goRun(n.leaderLoop)
	n.goRun(n.gossipLoop)
	if len(cfg.Join) > 0 {
		n.goRun(n.joinLoop)
	}
	return n, nil
}

func (n *Node) goRun(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

func (n *Node) startRaft() error {
	ln, err := net.Listen("tcp", n.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("raft listen: %w", err)
	}
	adv, err := advertiseAddr(n.cfg.RaftAddr, ln)
	if err != nil {
		ln.Close()
		return fmt.Errorf("%w: raft: %v", ErrInvalidConfig, err)
	}
	n.raftAddr = adv
	n.layer = newStreamLayer(ln, stringAddr(adv), raftKey(n.cfg.Auth.Secret))
	var stream raft.StreamLayer = n.layer
	if n.cfg.wrapRaftStream != nil {
		stream = n.cfg.wrapRaftStream(n.layer)
	}
	logger := hclogTo(n.log, "raft")
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 3, Timeout: 5 * time.Second, Logger: logger})

	rdir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return err
	}
	n.store, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(rdir, "raft.db")})
	if err != nil {
		return fmt.Errorf("raft log store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(rdir, 3, logger)
	if err != nil {
		return fmt.Errorf("raft snapshot store: %w", err)
	}
	rc := n.cfg.raftConfig()
	rc.Logger = logger
	existing, err := raft.HasExistingState(n.store, n.store, snaps)
	if err != nil {
		return err
	}
	n.raft, err = raft.NewRaft(rc, n.fsm, n.store, n.store, snaps, n.trans)
	if err != nil {
		return fmt.Errorf("raft: %w", err)
	}
	if !existing && len(n.cfg.Join) == 0 {
		f := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
			{ID: raft.ServerID(n.cfg.ID), Address: raft.ServerAddress(adv)}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("raft bootstrap: %w", err)
		}
		n.log.Info("bootstrapped a new cluster", "raft_addr", adv)
	}
	return nil
}

// raftKey derives the raft connection key from the cluster secret.
func raftKey(secret []byte) []byte {
	if len(secret) == 0 {
		return nil
	}
	return auth.DeriveKey(secret, "raft/v1")
}

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

func (n *Node) startGRPC() error {
	ln, err := net.Listen("tcp", n.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("grpc listen: %w", err)
	}
	if n.grpcAddr, err = advertiseAddr(n.cfg.GRPCAddr, ln); err != nil {
		ln.Close()
		return fmt.Errorf("%w: grpc: %v", ErrInvalidConfig, err)
	}
	a := n.cfg.Auth
	a.Public = append(a.Public, healthpb.Health_Check_FullMethodName, healthpb.Health_Watch_FullMethodName)
	opts, err := a.ServerOptions()
	if err != nil {
		ln.Close()
		return err
	}
	n.grpc = grpc.NewServer(opts...)
	pb.RegisterControlServer(n.grpc, &server{n: n})
	n.health = health.NewServer()
	n.health.SetServingStatus(pb.Control_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(n.grpc, n.health)
	n.goRun(func() {
		if err := n.grpc.Serve(ln); err != nil {
			n.log.Error("grpc server stopped", "err", err)
		}
	})
	return nil
}

// updateHealth reports the Control service as SERVING while a raft leader
// is known (writes can succeed) and NOT_SERVING otherwise; the server as a
// whole ("") is SERVING while the process runs.
func (n *Node) updateHealth() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if _, id := n.raft.LeaderWithID(); id != "" {
		st = healthpb.HealthCheckResponse_SERVING
	}
	n.health.SetServingStatus(pb.Control_ServiceDesc.ServiceName, st)
}

// GRPCAddr is the advertised address of the control API.
func (n *Node) GRPCAddr() string { return n.grpcAddr }

// RaftAddr is the advertised raft address.
func (n *Node) RaftAddr() string { return n.raftAddr }

// GossipAddr is the advertised memberlist address.
func (n *Node) GossipAddr() string { return n.pool.Addr() }

// IsLeader reports whether this node is the raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

func (n *Node) self() *pb.Coordinator {
	return &pb.Coordinator{Id: n.cfg.ID, RaftAddr: n.raftAddr, GrpcAddr: n.grpcAddr, GossipAddr: n.pool.Addr()}
}

// apply replicates cmd through raft and returns the FSM's reply. It must be
// called on the leader; elsewhere it fails with raft.ErrNotLeader.
func (n *Node) apply(cmd *pb.Command) (proto.Message, error) {
	cmd.UnixNano = time.Now().UnixNano()
	data, err := EncodeCommand(cmd)
	if err != nil {
		return nil, err
	}
	f := n.raft.Apply(data, applyTimeout)
	if err := f.Error(); err != nil {
		return nil, err
	}
	r := f.Response().(ApplyResult)
	return r.Reply, r.Err
}

// Close hands raft leadership to another voter (if this node leads), leaves
// the gossip pool, stops serving, and shuts raft down. The data dir keeps
// everything needed to restart the node.
func (n *Node) Close() error { return n.shutdown(true) }

// shutdown stops the node; handover says whether a leader hands its
// leadership over first. (The tests' Kill skips that and stops the gossip
// member without a leave message, to simulate a crash.)
func (n *Node) shutdown(handover bool) error {
	n.closeOnce.Do(func() {
		if handover && n.raft != nil && n.IsLeader() {
			// Hand leadership over rather than make the others wait out an
			// election timeout. Fails harmlessly when there is no other voter.
			if err := n.raft.LeadershipTransfer().Error(); err != nil {
				n.log.Debug("leadership transfer", "err", err)
			}
		}
		n.cancel()
		var errs []error
		if n.pool != nil {
			errs = append(errs, n.pool.Close())
		}
		if n.grpc != nil {
			n.health.Shutdown()
			stopGRPC(n.grpc, 2*time.Second)
		}
		if n.raft != nil {
			errs = append(errs, n.raft.Shutdown().Error())
		}
		if n.trans != nil {
			errs = append(errs, n.trans.Close())
		} else if n.layer != nil {
			errs = append(errs, n.layer.Close())
		}
		n.wg.Wait()
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		if n.dials != nil {
			n.dials.close()
		}
		for _, m := range n.met {
			m.unregister()
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// stopGRPC stops gracefully, then forcibly after timeout (watch streams
// never end on their own).
func stopGRPC(s *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		s.Stop()
		<-done
	}
}

// hclogTo routes a hashicorp library's log lines to slog.
func hclogTo(l *slog.Logger, component string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: component, Level: hclog.Info,
		Output: logbridge.Writer{L: l.With("component", component)}, DisableTime: true})
}
