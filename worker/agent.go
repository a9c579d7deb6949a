package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dsae/dsae/allreduce"
	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/worker/transferpb"
)

// AgentConfig configures a worker process (see Agent).
type AgentConfig struct {
	ID           string   // unique worker id: memberlist node name and worker id in the FSM
	Coordinators []string // gRPC addresses of any coordinators
	GRPCAddr     string   // host:port of this worker's gRPC server (ring, state transfer, health)
	GossipAddr   string   // host:port of memberlist gossip
	DataDir      string   // scratch space: the model directory written at the end of a job
	Auth         auth.Config
	Store        *storage.Client      // datasets, checkpoints and models
	Gossip       client.GossipTimings // zero: client.DefaultGossipTimings

	// RingTimeout bounds how long a ring call waits without progress
	// (a hung peer). Default allreduce.DefaultConfig().Timeout.
	RingTimeout time.Duration
	// ProgressEvery is how often rank 0 reports progress. Default 1 s.
	ProgressEvery time.Duration
	// Registerer, when set, receives the worker's Prometheus metrics (steps
	// applied, time by part of the step). The worker serves no HTTP: the
	// process serves the registry as /metrics (cmd/dsae does, with
	// --metrics-addr). One Agent per registry: a second one registering the
	// same metrics panics.
	Registerer prometheus.Registerer
	// WriteModelFiles, when set, adds files (pictures) to the model
	// directory that rank 0 uploads at the end of a job; dir already holds
	// the model, metrics.json and history.json.
	WriteModelFiles func(dir string, m *sae.Model) error
	// Trace, when set, receives one JSON line per step read and per step
	// applied (debugging and the exactly-once tests): feature 0 of every
	// row read (tests encode the row's index in it), and after each applied
	// step the checksum of the parameters and the time.
	Trace io.Writer
	// UnixSocketDir is where the ring's bulk Unix socket is created
	// (default os.TempDir()).
	UnixSocketDir string
	Logger        *slog.Logger
}

func (c *AgentConfig) validate() error {
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: worker id is empty", ErrInvalidConfig)
	case len(c.Coordinators) == 0:
		return fmt.Errorf("%w: no coordinator address", ErrInvalidConfig)
	case c.GRPCAddr == "" || c.GossipAddr == "":
		return fmt.Errorf("%w: grpc and gossip addresses are required", ErrInvalidConfig)
	case c.Store == nil:
		return fmt.Errorf("%w: no S3 store configured", ErrInvalidConfig)
	case c.DataDir == "":
		return fmt.Errorf("%w: data dir is empty", ErrInvalidConfig)
	}
	if c.RingTimeout == 0 {
		c.RingTimeout = allreduce.DefaultConfig().Timeout
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Agent is one running dsae worker: it joins the gossip pool, registers
// with the coordinators, follows its assignment (WatchGeneration) and
// trains the jobs it is given, one generation at a time, as described in
// the coordinator package documentation:
//
//   - on an announced generation naming it, it stops the step in flight
//     (nothing of it is applied), keeps a copy of its state for the members
//     that are behind, and reports its completed steps and checksum;
//   - when the generation starts, it takes the start state from the donor
//     (over gRPC, streamed and checksummed) or from the checkpoint when it
//     does not hold it, builds the ring of the generation and a Trainer, and
//     trains until the job's last step or the next generation;
//   - a ring call that fails makes it report the broken peer at once;
//   - rank 0 reports progress, writes checkpoints every checkpoint_every
//     steps and, at the end, evaluates, uploads the model and reports the
//     result.
type Agent struct {
	cfg  AgentConfig
	log  *slog.Logger
	dial []grpc.DialOption

	conn *grpc.ClientConn
	ctl  pb.ControlClient
	pool *client.Pool

	grpcSrv  *grpc.Server
	grpcLis  net.Listener
	bulk     *allreduce.BulkServer
	ring     *allreduce.Service
	transfer *transferServer
	met      *agentMetrics

	traceMu sync.Mutex

	jobs map[string]*jobState // by job id; only the control loop touches it
}

// NewAgent checks cfg and starts the worker's gRPC server; Run does the rest.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dial, err := cfg.Auth.DialOptions()
	if err != nil {
		return nil, err
	}
	srvOpts, err := cfg.Auth.ServerOptions()
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("worker", cfg.ID), dial: dial, transfer: newTransferServer(), jobs: map[string]*jobState{}}
	var svcOpts []allreduce.ServiceOption
	if cfg.UnixSocketDir != "" {
		svcOpts = append(svcOpts, allreduce.WithUnixSockets(cfg.UnixSocketDir))
	}
	a.ring = allreduce.NewService(svcOpts...)
	if a.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("worker grpc listen: %w", err)
	}
	a.cfg.GRPCAddr = a.grpcLis.Addr().String()
	if a.bulk, err = allreduce.ListenBulk(allreduce.TCP(), a.cfg.GRPCAddr, a.ring); err != nil {
		a.grpcLis.Close()
		return nil, err
	}
	a.grpcSrv = grpc.NewServer(append(allreduce.ServerOptions(), srvOpts...)...)
	a.ring.Register(a.grpcSrv)
	transferpb.RegisterStateTransferServer(a.grpcSrv, a.transfer)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(a.grpcSrv, hs)
	go a.grpcSrv.Serve(a.grpcLis)
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry() // counted, exported by no one
	}
	a.met = newAgentMetrics(reg)
	return a, nil
}

// GRPCAddr is the address of the worker's gRPC server.
func (a *Agent) GRPCAddr() string { return a.cfg.GRPCAddr }

// Close stops everything the Agent started. Run calls it when it returns.
func (a *Agent) Close() {
	if a.pool != nil {
		a.pool.Close()
	}
	if a.bulk != nil {
		a.bulk.Stop()
	}
	if a.grpcSrv != nil {
		a.grpcSrv.Stop()
	}
	if a.conn != nil {
		a.conn.Close()
	}
	for _, js := range a.jobs {
		js.close()
	}
}

// Run joins the cluster and trains until ctx ends (SIGTERM); it then
// leaves the gossip pool so that peers see the departure at once.
func (a *Agent) Run(ctx context.Context) error {
	defer a.Close()
	var err error
	if a.conn, err = client.Dial(a.cfg.Coordinators, a.cfg.Auth); err != nil {
		return err
	}
	a.ctl = pb.NewControlClient(a.conn)
	if err := a.join(ctx); err != nil {
		return err
	}
	a.log.Info("worker joined the cluster", "grpc", a.cfg.GRPCAddr)
	updates := make(chan *pb.Job, 1)
	go a.watch(ctx, updates)
	return a.control(ctx, updates)
}

// join finds the coordinators' gossip addresses, joins the pool and
// registers, retrying with capped backoff until it works or ctx ends.
func (a *Agent) join(ctx context.Context) error {
	return retry(ctx, a.log, "join the cluster", func(ctx context.Context) error {
		cl, err := a.ctl.GetCluster(ctx, &pb.GetClusterRequest{})
		if err != nil {
			return err
		}
		var gossip []string
		for _, c := range cl.Coordinators {
			if c.GossipAddr != "" {
				gossip = append(gossip, c.GossipAddr)
			}
		}
		if len(gossip) == 0 {
			return errors.New("no coordinator gossip address known yet")
		}
		if a.pool == nil {
			p, err := client.JoinPool(client.PoolConfig{
				Addr:   a.cfg.GossipAddr,
				Meta:   client.NodeMeta{Role: client.RoleWorker, ID: a.cfg.ID, GRPC: a.cfg.GRPCAddr, Ring: a.cfg.GRPCAddr},
				Secret: a.cfg.Auth.Secret,
				Gossip: a.cfg.Gossip,
				Logger: a.log,
			})
			if err != nil {
				return permanent(err)
			}
			a.pool = p
		}
		if err := a.pool.Join(gossip); err != nil {
			return fmt.Errorf("gossip join %v: %w", gossip, err)
		}
		return a.register(ctx)
	})
}

func (a *Agent) register(ctx context.Context) error {
	_, err := a.ctl.Register(ctx, &pb.RegisterRequest{WorkerId: a.cfg.ID, GrpcAddr: a.cfg.GRPCAddr, RingAddr: a.cfg.GRPCAddr})
	return err
}

// watch follows WatchGeneration and delivers the latest assignment on out
// (older undelivered ones are replaced). After a stream error it registers
// again (which lifts a quarantine) and watches through the next
// coordinator.
func (a *Agent) watch(ctx context.Context, out chan *pb.Job) {
	deliver := func(j *pb.Job) {
		select {
		case <-out:
		default:
		}
		out <- j
	}
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		st, err := a.ctl.WatchGeneration(ctx, &pb.WatchGenerationRequest{WorkerId: a.cfg.ID})
		if err == nil {
			for {
				var u *pb.WatchGenerationResponse
				if u, err = st.Recv(); err != nil {
					break
				}
				backoff = 50 * time.Millisecond
				deliver(u.Job)
			}
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Info("assignment watch ended; watching again", "err", err)
		sleepCtx(ctx, backoff/2+rand.N(backoff/2+1))
		backoff = min(2*backoff, 2*time.Second)
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := a.register(rctx); err != nil {
			a.log.Warn("register", "err", err)
		}
		cancel()
	}
}

// control is the worker's one control loop: it acts on every assignment
// change, starting and stopping the training of generations.
func (a *Agent) control(ctx context.Context, updates <-chan *pb.Job) error {
	var cur *genRun
	stop := func() {
		if cur != nil {
			cur.stop()
			cur = nil
		}
	}
	defer stop()
	reported := map[string]uint64{} // job → generation reported ready
	for {
		var j *pb.Job
		select {
		case <-ctx.Done():
			return nil
		case j = <-updates:
		}
		g := j.GetGeneration()
		rank := memberRank(g, a.cfg.ID)
		if j == nil || client.Terminal(j.State) || rank < 0 {
			stop()
			if j != nil && client.Terminal(j.State) {
				if js := a.jobs[j.Id]; js != nil {
					js.close()
					delete(a.jobs, j.Id)
					a.transfer.drop(j.Id)
				}
			}
			continue
		}
		if cur != nil && (cur.job != j.Id || cur.gen != g.Id) {
			stop()
		}
		if cur != nil {
			continue // an update of the generation already running
		}
		js, err := a.jobState(ctx, j)
		if err != nil {
			// The job cannot run here (dataset unreadable, spec refused):
			// answer the announcement so that the generation starts, then
			// fail the job with the reason, rather than leaving the
			// coordinators waiting for a report that never comes.
			switch {
			case g.Phase == pb.GenerationPhase_GENERATION_PHASE_ANNOUNCED && reported[j.Id] != g.Id:
				if a.sendReady(ctx, j, g, 0, 0) == nil {
					reported[j.Id] = g.Id
				}
			case g.Phase == pb.GenerationPhase_GENERATION_PHASE_STARTED:
				a.fail(ctx, j, err)
			}
			continue
		}
		switch g.Phase {
		case pb.GenerationPhase_GENERATION_PHASE_ANNOUNCED:
			if reported[j.Id] == g.Id {
				continue
			}
			if err := a.reportReady(ctx, js, j, g); err != nil {
				a.log.Warn("ready report", "job", j.Id, "generation", g.Id, "err", err)
				continue
			}
			reported[j.Id] = g.Id
		case pb.GenerationPhase_GENERATION_PHASE_STARTED:
			if reported[j.Id] != g.Id {
				// This process never reported for the generation (it
				// restarted under the same id): ask for a fresh one.
				a.reportPeer(ctx, j.Id, g.Id, a.cfg.ID, "restarted; not ready for this generation")
				continue
			}
			cur = a.startGeneration(ctx, js, j, rank)
		}
	}
}

// memberRank is id's rank in g, or -1.
func memberRank(g *pb.Generation, id string) int {
	for _, m := range g.GetMembers() {
		if m.WorkerId == id {
			return int(m.Rank)
		}
	}
	return -1
}

// reportReady holds the current state for donors' clients and reports it.
func (a *Agent) reportReady(ctx context.Context, js *jobState, j *pb.Job, g *pb.Generation) error {
	snap, err := TakeSnapshot(js.model, js.opt, js.completed)
	if err != nil {
		return err
	}
	sum := snap.Checksum()
	a.transfer.hold(&heldState{job: j.Id, snap: snap, sum: sum, history: js.historyJSON()})
	return a.sendReady(ctx, j, g, js.completed, sum)
}

// sendReady reports (completed, sum) for generation g, retrying until it is
// taken or refused.
func (a *Agent) sendReady(ctx context.Context, j *pb.Job, g *pb.Generation, completed int64, sum Checksum) error {
	return retry(ctx, a.log, "report ready", func(ctx context.Context) error {
		_, err := a.ctl.ReportReady(ctx, &pb.ReportReadyRequest{JobId: j.Id, Generation: g.Id, WorkerId: a.cfg.ID,
			LastStep: completed, Checksum: sum, RequestId: client.NewRequestID()})
		return stopOnPrecondition(err)
	})
}

// reportPeer tells the coordinators that peer broke in generation gen.
func (a *Agent) reportPeer(ctx context.Context, job string, gen uint64, peer, detail string) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := a.ctl.ReportPeerFailure(rctx, &pb.ReportPeerFailureRequest{JobId: job, Generation: gen, WorkerId: a.cfg.ID,
		PeerId: peer, Detail: detail, RequestId: client.NewRequestID()})
	if err != nil {
		a.log.Warn("peer failure report", "job", job, "generation", gen, "peer", peer, "err", err)
	}
}

// fail reports that job cannot run (bad spec, unreadable dataset, diverged)
// so that it ends with a reason instead of waiting forever.
func (a *Agent) fail(ctx context.Context, j *pb.Job, cause error) {
	a.log.Error("job failed on this worker", "job", j.Id, "err", cause)
	g := j.GetGeneration()
	if g.GetPhase() != pb.GenerationPhase_GENERATION_PHASE_STARTED {
		return // results are only taken in a started generation; the ready timeout handles the rest
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := a.ctl.ReportResult(rctx, &pb.ReportResultRequest{JobId: j.Id, Generation: g.Id, WorkerId: a.cfg.ID,
		State: pb.JobState_JOB_STATE_FAILED, Reason: cause.Error(), RequestId: client.NewRequestID()})
	if err != nil {
		a.log.Warn("result report", "job", j.Id, "err", err)
	}
}

// permanentErr marks an error retry must not retry.
type permanentErr struct{ error }

func (e permanentErr) Unwrap() error { return e.error }

func permanent(err error) error { return permanentErr{err} }

// stopOnPrecondition makes the control plane's refusals (client.Refused:
// stale generation, not a member, bad argument, unknown job) permanent for
// retry: retrying them cannot succeed.
func stopOnPrecondition(err error) error {
	if client.Refused(err) {
		return permanent(err)
	}
	return err
}

// retry calls f until it succeeds, returns a permanent error, or ctx ends,
// with capped exponential backoff and jitter.
func retry(ctx context.Context, log *slog.Logger, what string, f func(context.Context) error) error {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := f(cctx)
		cancel()
		if err == nil {
			return nil
		}
		var p permanentErr
		if errors.As(err, &p) {
			return p.error
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == 3 || attempt%20 == 0 {
			log.Warn("retrying", "what", what, "attempt", attempt, "err", err)
		}
		sleepCtx(ctx, backoff/2+rand.N(backoff/2+1))
		backoff = min(2*backoff, 2*time.Second)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
