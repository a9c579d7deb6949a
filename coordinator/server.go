package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// forwardedKey marks a call a follower forwarded to the leader, so that a
// call never travels more than one hop.
const forwardedKey = "dsae-forwarded"

// server implements the Control API on one node. Reads are served from the
// local replica (a follower may lag the leader by a few milliseconds);
// writes run on the leader.
type server struct {
	pb.UnimplementedControlServer
	n *Node
}

var _ pb.ControlServer = (*server)(nil)

// grpcCode maps the package's errors to status codes.
func grpcCode(err error) codes.Code {
	switch {
	case errors.Is(err, ErrInvalidSpec):
		return codes.InvalidArgument
	case errors.Is(err, ErrNotFound):
		return codes.NotFound
	case errors.Is(err, ErrStaleGeneration), errors.Is(err, ErrNotMember), errors.Is(err, ErrTerminal),
		errors.Is(err, ErrStepBackwards), errors.Is(err, ErrBusy):
		return codes.FailedPrecondition
	case errors.Is(err, ErrNoLeader), errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Internal
}

// toStatus turns err into a gRPC status error; status errors pass through.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(grpcCode(err), err.Error())
}

// leaderWait bounds how long a write waits for an election to finish
// before it fails with Unavailable (and the client retries elsewhere).
const leaderWait = 5 * time.Second

// leader returns a client of the leader and the context to call it with,
// or a nil client when this node is the leader. During an election it
// waits (up to leaderWait or ctx's end) for a leader to emerge.
func (s *server) leader(ctx context.Context) (pb.ControlClient, context.Context, error) {
	n := s.n
	deadline := time.Now().Add(leaderWait)
	for {
		if n.IsLeader() {
			return nil, ctx, nil
		}
		if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(forwardedKey)) > 0 {
			return nil, nil, status.Error(codes.Unavailable, "forwarded to a coordinator that is not the leader")
		}
		_, id := n.raft.LeaderWithID()
		var err error
		if id == "" {
			err = status.Error(codes.Unavailable, ErrNoLeader.Error())
		} else if c := n.fsm.State().Coordinators[string(id)]; c.GetGrpcAddr() == "" {
			err = status.Errorf(codes.Unavailable, "%v: address of leader %s not yet known", ErrNoLeader, id)
		} else {
			cl, err := n.dials.client(c.GrpcAddr)
			if err != nil {
				return nil, nil, toStatus(err)
			}
			return cl, metadata.AppendToOutgoingContext(ctx, forwardedKey, n.cfg.ID), nil
		}
		if time.Now().After(deadline) {
			return nil, nil, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, toStatus(ctx.Err())
		case <-n.ctx.Done():
			return nil, nil, status.Error(codes.Unavailable, "coordinator shutting down")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// write applies cmd on the leader and returns its reply.
func (s *server) write(cmd *pb.Command) (proto.Message, error) {
	r, err := s.n.apply(cmd)
	return r, toStatus(err)
}

// onLeader runs local when this node leads, and otherwise sends req to the
// leader with call (a pb.ControlClient method).
func onLeader[Req, Resp any](s *server, ctx context.Context, req Req,
	call func(pb.ControlClient, context.Context, Req, ...grpc.CallOption) (Resp, error), local func() (Resp, error)) (Resp, error) {
	c, fctx, err := s.leader(ctx)
	switch {
	case err != nil:
		var zero Resp
		return zero, err
	case c != nil:
		return call(c, fctx, req)
	}
	return local()
}

func need(field, v string) error {
	if v == "" {
		return toStatus(fieldErr(field, "empty"))
	}
	return nil
}

func (s *server) SubmitJob(ctx context.Context, req *pb.SubmitJobRequest) (*pb.SubmitJobResponse, error) {
	spec := proto.Clone(req.GetSpec()).(*pb.JobSpec)
	if spec == nil {
		return nil, toStatus(fieldErr("spec", "missing"))
	}
	if err := ValidateSpec(spec); err != nil {
		return nil, toStatus(err)
	}
	if err := completeSpec(ctx, &s.n.cfg, spec); err != nil {
		return nil, err
	}
	fwd := &pb.SubmitJobRequest{Spec: spec, RequestId: req.GetRequestId()}
	return onLeader(s, ctx, fwd, pb.ControlClient.SubmitJob, func() (*pb.SubmitJobResponse, error) {
		r, err := s.write(&pb.Command{Op: &pb.Command_SubmitJob{SubmitJob: &pb.SubmitJobCmd{Spec: spec, RequestId: req.GetRequestId()}}})
		if err != nil {
			return nil, err
		}
		s.n.log.Info("job submitted", "job", r.(*pb.Job).Id, "name", spec.Name, "data", spec.Data, "steps", spec.Steps)
		return &pb.SubmitJobResponse{Job: r.(*pb.Job)}, nil
	})
}

func (s *server) GetJob(ctx context.Context, req *pb.GetJobRequest) (*pb.GetJobResponse, error) {
	if err := need("job_id", req.JobId); err != nil {
		return nil, err
	}
	j, err := s.job(ctx, req.JobId)
	if err != nil {
		return nil, err
	}
	return &pb.GetJobResponse{Job: j}, nil
}

// job returns job id from this node's replica. Reads are served locally,
// so a follower can lag the leader by a few milliseconds: a client that
// submits through one coordinator and then asks another could be told the
// job does not exist. So a follower that does not know id asks the leader,
// and if the leader knows it, waits for its own replica to apply it (for
// at most WatchStaleness; then Unavailable, and the client moves on). Only
// the leader's answer makes a job NotFound.
func (s *server) job(ctx context.Context, id string) (*pb.Job, error) {
	var deadline time.Time
	for {
		changed := s.n.fsm.Changed()
		if j := s.n.fsm.Job(id); j != nil {
			return j, nil
		}
		if deadline.IsZero() {
			c, fctx, err := s.leader(ctx)
			if err != nil {
				return nil, err
			}
			if c == nil { // this node leads: its replica is the newest
				return nil, status.Errorf(codes.NotFound, "job %q not found", id)
			}
			if _, err := c.GetJob(fctx, &pb.GetJobRequest{JobId: id}); err != nil {
				return nil, err // NotFound from the leader, or why it could not answer
			}
			deadline = time.Now().Add(s.n.cfg.WatchStaleness)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, status.Errorf(codes.Unavailable, "coordinator %s has not applied job %q, which the leader holds, within %v; ask another coordinator",
				s.n.cfg.ID, id, s.n.cfg.WatchStaleness)
		}
		select {
		case <-changed:
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, toStatus(ctx.Err())
		case <-s.n.ctx.Done():
			return nil, status.Error(codes.Unavailable, "coordinator shutting down")
		}
	}
}

func (s *server) ListJobs(context.Context, *pb.ListJobsRequest) (*pb.ListJobsResponse, error) {
	return &pb.ListJobsResponse{Jobs: sortedJobs(s.n.fsm.State())}, nil
}

func (s *server) CancelJob(ctx context.Context, req *pb.CancelJobRequest) (*pb.CancelJobResponse, error) {
	if err := need("job_id", req.JobId); err != nil {
		return nil, err
	}
	return onLeader(s, ctx, req, pb.ControlClient.CancelJob, func() (*pb.CancelJobResponse, error) {
		r, err := s.write(&pb.Command{Op: &pb.Command_CancelJob{CancelJob: &pb.CancelJobCmd{JobId: req.JobId, Reason: req.Reason}}})
		if err != nil {
			return nil, err
		}
		return &pb.CancelJobResponse{Job: r.(*pb.Job)}, nil
	})
}

// stale returns a codes.Unavailable error when this node is not the
// leader and has had no contact with one (raft's LastContact, or its own
// leadership) for longer than WatchStaleness: its replica may be
// arbitrarily far behind, so a watcher should move to another
// coordinator. It returns nil otherwise.
func (n *Node) stale() error {
	if n.IsLeader() {
		n.ledUntil.Store(time.Now().UnixNano())
		return nil
	}
	last := n.raft.LastContact()
	if led := time.Unix(0, n.ledUntil.Load()); led.After(last) {
		last = led
	}
	since := time.Since(last)
	if since <= n.cfg.WatchStaleness {
		return nil
	}
	heard := fmt.Sprintf("for %v", since.Round(time.Millisecond))
	if last.Before(n.started) {
		heard = "since it started"
	}
	return status.Errorf(codes.Unavailable, "coordinator %s has had no contact with a raft leader %s (watch staleness %v): its state may be stale; watch through another coordinator",
		n.cfg.ID, heard, n.cfg.WatchStaleness)
}

// watchTick is how often a watch checks, without any change of the state,
// that its coordinator is still in touch with a leader.
func (n *Node) watchTick() time.Duration {
	return min(max(n.cfg.WatchStaleness/4, 10*time.Millisecond), 500*time.Millisecond)
}

// WatchJob sends the job now and after every change, and ends after
// sending a finished job, or with codes.Unavailable once this node is
// stale (see stale).
func (s *server) WatchJob(req *pb.WatchJobRequest, stream grpc.ServerStreamingServer[pb.WatchJobResponse]) error {
	if err := need("job_id", req.JobId); err != nil {
		return err
	}
	tick := time.NewTicker(s.n.watchTick())
	defer tick.Stop()
	var last *pb.Job
	for {
		if err := s.n.stale(); err != nil {
			return err
		}
		changed := s.n.fsm.Changed()
		j := s.n.fsm.Job(req.JobId)
		if j == nil {
			if last != nil {
				return status.Errorf(codes.NotFound, "job %q not found", req.JobId)
			}
			// Not applied here yet? (see job)
			var err error
			if j, err = s.job(stream.Context(), req.JobId); err != nil {
				return err
			}
		}
		if !proto.Equal(j, last) {
			if err := stream.Send(&pb.WatchJobResponse{Job: j}); err != nil {
				return err
			}
			last = j
		}
		if client.Terminal(j.State) {
			return nil
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-s.n.ctx.Done():
			return status.Error(codes.Unavailable, "coordinator shutting down")
		case <-changed:
		case <-tick.C:
		}
	}
}

func (s *server) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.RegisterResponse, error) {
	if err := need("worker_id", req.WorkerId); err != nil {
		return nil, err
	}
	return onLeader(s, ctx, req, pb.ControlClient.Register, func() (*pb.RegisterResponse, error) {
		r, err := s.write(registerCmd(req.WorkerId, req.GrpcAddr, req.RingAddr))
		if err != nil {
			return nil, err
		}
		return &pb.RegisterResponse{Worker: r.(*pb.Worker)}, nil
	})
}

// assignment is the part of a job a worker acts on; WatchGeneration sends
// when it changes, not on every progress report.
func assignment(j *pb.Job) *pb.Job {
	if j == nil {
		return nil
	}
	return &pb.Job{Id: j.Id, Spec: j.Spec, State: j.State, Reason: j.Reason, Generation: j.Generation, Checkpoints: j.Checkpoints}
}

// WatchGeneration streams the worker's assignment: its job with the current
// generation whenever that is announced, started or ended. When the worker
// leaves a job (dropped from the ring or the job finished) the stream first
// sends that job as it now stands, then the new assignment (an empty job
// while idle). It ends with codes.Unavailable once this node is stale (see
// stale), so that a worker does not wait on a coordinator cut off from the
// leader.
func (s *server) WatchGeneration(req *pb.WatchGenerationRequest, stream grpc.ServerStreamingServer[pb.WatchGenerationResponse]) error {
	if err := need("worker_id", req.WorkerId); err != nil {
		return err
	}
	tick := time.NewTicker(s.n.watchTick())
	defer tick.Stop()
	var last *pb.Job
	first := true
	for {
		if err := s.n.stale(); err != nil {
			return err
		}
		changed := s.n.fsm.Changed()
		var cur *pb.Job
		if w := s.n.fsm.Worker(req.WorkerId); w != nil && w.JobId != "" {
			cur = assignment(s.n.fsm.Job(w.JobId))
		}
		if last != nil && cur.GetId() != last.Id {
			if old := assignment(s.n.fsm.Job(last.Id)); !proto.Equal(old, last) {
				if err := stream.Send(&pb.WatchGenerationResponse{Job: old}); err != nil {
					return err
				}
			}
		}
		if first || !proto.Equal(cur, last) {
			if err := stream.Send(&pb.WatchGenerationResponse{Job: cur}); err != nil {
				return err
			}
			last, first = cur, false
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-s.n.ctx.Done():
			return status.Error(codes.Unavailable, "coordinator shutting down")
		case <-changed:
		case <-tick.C:
		}
	}
}

func (s *server) ReportReady(ctx context.Context, req *pb.ReportReadyRequest) (*pb.ReportReadyResponse, error) {
	if err := firstErr(need("job_id", req.JobId), need("worker_id", req.WorkerId)); err != nil {
		return nil, err
	}
	return onLeader(s, ctx, req, pb.ControlClient.ReportReady, func() (*pb.ReportReadyResponse, error) {
		r, err := s.write(&pb.Command{Op: &pb.Command_Ready{Ready: &pb.ReadyCmd{JobId: req.JobId, Generation: req.Generation,
			WorkerId: req.WorkerId, RequestId: req.RequestId, Report: &pb.ReadyReport{LastStep: req.LastStep, Checksum: req.Checksum}}}})
		if err != nil {
			return nil, err
		}
		return &pb.ReportReadyResponse{Generation: r.(*pb.Generation)}, nil
	})
}

func (s *server) ReportProgress(ctx context.Context, req *pb.ReportProgressRequest) (*pb.ReportProgressResponse, error) {
	if err := firstErr(need("job_id", req.JobId), need("worker_id", req.WorkerId)); err != nil {
		return nil, err
	}
	if req.Metrics == nil {
		return nil, toStatus(fieldErr("metrics", "missing"))
	}
	return onLeader(s, ctx, req, pb.ControlClient.ReportProgress, func() (*pb.ReportProgressResponse, error) {
		_, err := s.write(&pb.Command{Op: &pb.Command_Progress{Progress: &pb.ProgressCmd{JobId: req.JobId, Generation: req.Generation,
			WorkerId: req.WorkerId, RequestId: req.RequestId, Metrics: req.Metrics}}})
		if err != nil {
			return nil, err
		}
		return &pb.ReportProgressResponse{}, nil
	})
}

func (s *server) ReportCheckpoint(ctx context.Context, req *pb.ReportCheckpointRequest) (*pb.ReportCheckpointResponse, error) {
	if err := firstErr(need("job_id", req.JobId), need("worker_id", req.WorkerId)); err != nil {
		return nil, err
	}
	if req.Checkpoint == nil {
		return nil, toStatus(fieldErr("checkpoint", "missing"))
	}
	return onLeader(s, ctx, req, pb.ControlClient.ReportCheckpoint, func() (*pb.ReportCheckpointResponse, error) {
		_, err := s.write(&pb.Command{Op: &pb.Command_Checkpoint{Checkpoint: &pb.CheckpointCmd{JobId: req.JobId, Generation: req.Generation,
			WorkerId: req.WorkerId, RequestId: req.RequestId, Checkpoint: req.Checkpoint}}})
		if err != nil {
			return nil, err
		}
		return &pb.ReportCheckpointResponse{}, nil
	})
}

func (s *server) ReportPeerFailure(ctx context.Context, req *pb.ReportPeerFailureRequest) (*pb.ReportPeerFailureResponse, error) {
	if err := firstErr(need("job_id", req.JobId), need("worker_id", req.WorkerId), need("peer_id", req.PeerId)); err != nil {
		return nil, err
	}
	return onLeader(s, ctx, req, pb.ControlClient.ReportPeerFailure, func() (*pb.ReportPeerFailureResponse, error) {
		if err := s.n.peerFailure(req); err != nil {
			return nil, toStatus(err)
		}
		return &pb.ReportPeerFailureResponse{}, nil
	})
}

func (s *server) ReportResult(ctx context.Context, req *pb.ReportResultRequest) (*pb.ReportResultResponse, error) {
	if err := firstErr(need("job_id", req.JobId), need("worker_id", req.WorkerId)); err != nil {
		return nil, err
	}
	return onLeader(s, ctx, req, pb.ControlClient.ReportResult, func() (*pb.ReportResultResponse, error) {
		r, err := s.write(&pb.Command{Op: &pb.Command_Result{Result: &pb.ResultCmd{JobId: req.JobId, Generation: req.Generation,
			WorkerId: req.WorkerId, RequestId: req.RequestId, State: req.State, Reason: req.Reason, FinalMetrics: req.FinalMetrics, ModelKey: req.ModelKey}}})
		if err != nil {
			return nil, err
		}
		return &pb.ReportResultResponse{Job: r.(*pb.Job)}, nil
	})
}

func (s *server) Join(ctx context.Context, req *pb.JoinRequest) (*pb.JoinResponse, error) {
	c := req.GetCoordinator()
	if err := firstErr(need("coordinator.id", c.GetId()), need("coordinator.raft_addr", c.GetRaftAddr()),
		need("coordinator.grpc_addr", c.GetGrpcAddr())); err != nil {
		return nil, err
	}
	return onLeader(s, ctx, req, pb.ControlClient.Join, func() (*pb.JoinResponse, error) {
		coords, err := s.n.addVoter(c)
		if err != nil {
			return nil, toStatus(err)
		}
		s.n.log.Info("coordinator joined", "id", c.Id, "raft_addr", c.RaftAddr)
		return &pb.JoinResponse{Coordinators: coords}, nil
	})
}

func (s *server) RemoveCoordinator(ctx context.Context, req *pb.RemoveCoordinatorRequest) (*pb.RemoveCoordinatorResponse, error) {
	if err := need("id", req.Id); err != nil {
		return nil, err
	}
	return onLeader(s, ctx, req, pb.ControlClient.RemoveCoordinator, func() (*pb.RemoveCoordinatorResponse, error) {
		if err := s.n.removeVoter(req.Id); err != nil {
			return nil, toStatus(err)
		}
		return &pb.RemoveCoordinatorResponse{}, nil
	})
}

func (s *server) GetCluster(context.Context, *pb.GetClusterRequest) (*pb.GetClusterResponse, error) {
	st := s.n.fsm.State()
	_, leader := s.n.raft.LeaderWithID()
	resp := &pb.GetClusterResponse{Coordinators: s.n.coordinators(), LeaderId: string(leader)}
	for _, id := range sortedKeys(st.Workers) {
		resp.Workers = append(resp.Workers, st.Workers[id])
	}
	return resp, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
