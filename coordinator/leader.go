package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// registerGrace is how long a worker that registered over gRPC may be
// missing from the leader's gossip view, without the leader having seen it
// leave, before it is declared down: its join may still be spreading.
const registerGrace = 5 * time.Second

// reconcileEvery bounds how long the leader goes without reconciling, even
// with no event.
const reconcileEvery = time.Second

// leaderLoop runs the leader's duties while this node leads.
func (n *Node) leaderLoop() {
	var stop context.CancelFunc
	done := make(chan struct{})
	for {
		select {
		case <-n.ctx.Done():
			if stop != nil {
				stop()
				<-done
			}
			return
		case lead := <-n.raft.LeaderCh():
			if lead && stop == nil {
				var ctx context.Context
				ctx, stop = context.WithCancel(n.ctx)
				done = make(chan struct{})
				go func() { defer close(done); n.lead(ctx) }()
			} else if !lead && stop != nil {
				stop()
				<-done
				stop = nil
			}
		}
	}
}

// lead makes the memberlist view and the FSM agree, over and over, until
// ctx ends (leadership lost or node closing).
func (n *Node) lead(ctx context.Context) {
	n.log.Info("became leader")
	if err := n.raft.Barrier(applyTimeout).Error(); err != nil {
		n.log.Warn("barrier failed", "err", err)
		return
	}
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		if err := n.reconcile(); err != nil && ctx.Err() == nil {
			n.log.Warn("reconcile", "err", err)
		}
		changed := n.fsm.Changed()
		select {
		case <-ctx.Done():
			n.log.Info("leadership ended")
			return
		case <-n.pool.Changed():
		case <-changed:
		case <-t.C:
		}
	}
}

// reconcile proposes the raft entries that bring the FSM in line with the
// gossip view: coordinator addresses, worker liveness, and for each
// unfinished job (in submission order) a generation made of its alive
// members plus free workers up to workers_wanted. It is idempotent.
func (n *Node) reconcile() error {
	st := n.fsm.State()
	if c := st.Coordinators[n.cfg.ID]; !proto.Equal(c, n.self()) {
		if _, err := n.apply(&pb.Command{Op: &pb.Command_SetCoordinator{SetCoordinator: &pb.SetCoordinatorCmd{Coordinator: n.self()}}}); err != nil {
			return err
		}
	}
	alive := map[string]NodeMeta{}
	for _, m := range n.pool.Members() {
		if m.Role == RoleWorker {
			alive[m.ID] = m
		}
	}
	for _, id := range sortedKeys(alive) {
		m := alive[id]
		if w := st.Workers[id]; w == nil || !w.Alive || w.GrpcAddr != m.GRPC || w.RingAddr != m.Ring {
			if _, err := n.apply(registerCmd(id, m.GRPC, m.Ring)); err != nil {
				return err
			}
		}
	}
	now := time.Now().UnixNano()
	for _, id := range sortedKeys(st.Workers) {
		w := st.Workers[id]
		if _, ok := alive[id]; ok || !w.Alive || (!n.pool.Gone(id) && now-w.UpdatedUnixNano < int64(registerGrace)) {
			continue
		}
		n.log.Info("worker left the gossip pool", "worker", id)
		if _, err := n.apply(&pb.Command{Op: &pb.Command_WorkerDown{WorkerDown: &pb.WorkerDownCmd{WorkerId: id, Reason: "left the gossip pool"}}}); err != nil {
			return err
		}
	}
	st = n.fsm.State()
	var free []string
	for _, id := range sortedKeys(st.Workers) {
		if w := st.Workers[id]; w.Alive && w.JobId == "" {
			free = append(free, id)
		}
	}
	for _, j := range sortedJobs(st) {
		if Terminal(j.State) {
			continue
		}
		var cur, want []string
		for _, m := range j.Generation.GetMembers() {
			cur = append(cur, m.WorkerId)
			if w := st.Workers[m.WorkerId]; w != nil && w.Alive {
				want = append(want, m.WorkerId)
			}
		}
		limit := int(j.Spec.GetWorkersWanted())
		for len(free) > 0 && (limit == 0 || len(want) < limit) {
			want, free = append(want, free[0]), free[1:]
		}
		if slices.Equal(cur, want) {
			continue
		}
		n.log.Info("new generation", "job", j.Id, "members", want, "previous", cur)
		if _, err := n.apply(newGenCmd(j.Id, want, "membership changed")); err != nil {
			return err
		}
	}
	return nil
}

func registerCmd(id, grpcAddr, ring string) *pb.Command {
	return &pb.Command{Op: &pb.Command_RegisterWorker{RegisterWorker: &pb.RegisterWorkerCmd{WorkerId: id, GrpcAddr: grpcAddr, RingAddr: ring}}}
}

func newGenCmd(job string, ids []string, reason string) *pb.Command {
	return &pb.Command{Op: &pb.Command_NewGeneration{NewGeneration: &pb.NewGenerationCmd{JobId: job, WorkerIds: ids, Reason: reason}}}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// peerFailure acts, on the leader, on a worker's report that a ring peer
// broke in generation gen: a peer that gossip no longer sees is declared
// down (and the reconciler forms a generation without it); a peer that is
// still alive gets a fresh generation with the same members, which restarts
// the ring. A report about an older generation is already answered.
func (n *Node) peerFailure(req *pb.ReportPeerFailureRequest) error {
	j := n.fsm.Job(req.JobId)
	if j == nil {
		return fmt.Errorf("%w: job %q", ErrNotFound, req.JobId)
	}
	if g := j.GetGeneration(); g == nil || req.Generation < g.Id || Terminal(j.State) {
		return nil
	}
	if _, err := memberOf(j, req.Generation, req.WorkerId); err != nil {
		return err
	}
	var ids []string
	peerIsMember := false
	for _, m := range j.Generation.Members {
		ids = append(ids, m.WorkerId)
		peerIsMember = peerIsMember || m.WorkerId == req.PeerId
	}
	if !peerIsMember {
		return fmt.Errorf("%w: peer_id %q, job %s generation %d", ErrNotMember, req.PeerId, j.Id, req.Generation)
	}
	n.log.Info("worker reports a broken ring peer", "job", j.Id, "generation", req.Generation, "worker", req.WorkerId, "peer", req.PeerId, "detail", req.Detail)
	inPool := false
	for _, m := range n.pool.Members() {
		inPool = inPool || m.ID == req.PeerId
	}
	if !inPool {
		_, err := n.apply(&pb.Command{Op: &pb.Command_WorkerDown{WorkerDown: &pb.WorkerDownCmd{WorkerId: req.PeerId, Reason: "reported by " + req.WorkerId}}})
		if err != nil {
			return err
		}
		return n.reconcile()
	}
	_, err := n.apply(newGenCmd(j.Id, ids, fmt.Sprintf("%s reported peer %s broken", req.WorkerId, req.PeerId)))
	return err
}

// joinLoop asks the cluster (through any of cfg.Join) to add this node as a
// voter, retrying with capped, jittered backoff until it succeeds, then
// joins the gossip pool through the coordinators it learned of.
func (n *Node) joinLoop() {
	backoff := 100 * time.Millisecond
	for {
		for _, addr := range n.cfg.Join {
			coords, err := n.joinVia(addr)
			if err == nil {
				var gossip []string
				for _, c := range coords {
					if c.Id != n.cfg.ID && c.GossipAddr != "" {
						gossip = append(gossip, c.GossipAddr)
					}
				}
				if err := n.pool.Join(gossip); err != nil {
					n.log.Warn("gossip join", "err", err)
				}
				n.log.Info("joined the cluster", "via", addr)
				return
			}
			n.log.Warn("join attempt failed", "via", addr, "err", err)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, 3*time.Second)
	}
}

func (n *Node) joinVia(addr string) ([]*pb.Coordinator, error) {
	c, err := n.dials.client(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	resp, err := c.Join(ctx, &pb.JoinRequest{Coordinator: n.self()})
	if err != nil {
		return nil, err
	}
	return resp.Coordinators, nil
}

// addVoter adds (or re-adds) a coordinator on the leader and records its
// addresses.
func (n *Node) addVoter(c *pb.Coordinator) ([]*pb.Coordinator, error) {
	if err := n.raft.AddVoter(raft.ServerID(c.Id), raft.ServerAddress(c.RaftAddr), 0, applyTimeout).Error(); err != nil {
		return nil, err
	}
	if _, err := n.apply(&pb.Command{Op: &pb.Command_SetCoordinator{SetCoordinator: &pb.SetCoordinatorCmd{Coordinator: c}}}); err != nil {
		return nil, err
	}
	return n.coordinators(), nil
}

// removeVoter removes a coordinator from the raft group and the state.
func (n *Node) removeVoter(id string) error {
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, applyTimeout).Error(); err != nil {
		return err
	}
	_, err := n.apply(&pb.Command{Op: &pb.Command_RemoveCoordinator{RemoveCoordinator: &pb.RemoveCoordinatorCmd{Id: id}}})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

func (n *Node) coordinators() []*pb.Coordinator {
	st := n.fsm.State()
	out := make([]*pb.Coordinator, 0, len(st.Coordinators))
	for _, id := range sortedKeys(st.Coordinators) {
		out = append(out, st.Coordinators[id])
	}
	return out
}
