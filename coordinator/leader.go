package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/dsae/dsae/coordinator/client"
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
				n.ledUntil.Store(time.Now().UnixNano())
				stop()
				<-done
				stop = nil
			}
		}
	}
}

// leaderMemory is what a leader remembers outside the FSM. It starts empty
// with each term of leadership, so losing it costs at most one extra wait.
type leaderMemory struct {
	mu        sync.Mutex
	firstSeen map[string]time.Time // "job/generation" → when this leader first saw it announced
	strikes   map[string]uint64    // "job/peer" → generation of the last peer-failure report acted on
}

func newLeaderMemory() *leaderMemory {
	return &leaderMemory{firstSeen: map[string]time.Time{}, strikes: map[string]uint64{}}
}

// lead makes the memberlist view and the FSM agree, over and over, until
// ctx ends (leadership lost or node closing).
func (n *Node) lead(ctx context.Context) {
	n.log.Info("became leader")
	n.mem.Store(newLeaderMemory())
	// Act only on a state that includes every entry of earlier terms.
	for {
		err := n.raft.Barrier(applyTimeout).Error()
		if err == nil {
			break
		}
		n.log.Warn("barrier failed", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(reconcileEvery):
		}
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
// members plus free workers up to max_workers (0 = no limit). A job that
// would have fewer than max(1, min_workers) has no generation and waits in
// the queue; the free workers it counted are not given to later jobs. It is
// idempotent.
func (n *Node) reconcile() error {
	n.reconcileMu.Lock() // the leader loop and peer-failure reports both act on generations
	defer n.reconcileMu.Unlock()
	return n.reconcileLocked()
}

func (n *Node) reconcileLocked() error {
	st := n.fsm.State()
	if c := st.Coordinators[n.cfg.ID]; !proto.Equal(c, n.self()) {
		if _, err := n.apply(&pb.Command{Op: &pb.Command_SetCoordinator{SetCoordinator: &pb.SetCoordinatorCmd{Coordinator: n.self()}}}); err != nil {
			return err
		}
	}
	alive := map[string]client.NodeMeta{}
	for _, m := range n.pool.Members() {
		if m.Role == client.RoleWorker {
			alive[m.ID] = m
		}
	}
	for _, id := range sortedKeys(alive) {
		m := alive[id]
		w := st.Workers[id]
		if w != nil && w.Quarantined {
			continue // only the worker's own Register call brings it back
		}
		if w == nil || !w.Alive || w.GrpcAddr != m.GRPC || w.RingAddr != m.Ring {
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
		if _, err := n.apply(downCmd(id, "left the gossip pool", false)); err != nil {
			return err
		}
	}
	if err := n.expireAnnouncements(st); err != nil {
		return err
	}
	st = n.fsm.State()
	var free []string
	for _, id := range sortedKeys(st.Workers) {
		if w := st.Workers[id]; w.Alive && w.JobId == "" {
			free = append(free, id)
		}
	}
	for _, j := range sortedJobs(st) {
		if client.Terminal(j.State) {
			continue
		}
		var cur, want []string
		for _, m := range j.Generation.GetMembers() {
			cur = append(cur, m.WorkerId)
			if w := st.Workers[m.WorkerId]; w != nil && w.Alive {
				want = append(want, m.WorkerId)
			}
		}
		limit := int(j.Spec.GetMaxWorkers())
		for len(free) > 0 && (limit == 0 || len(want) < limit) {
			want, free = append(want, free[0]), free[1:]
		}
		if need := minWorkers(j.Spec); len(want) < need {
			// Too few: the job waits without a generation, and the workers
			// it counted stay free but out of reach of later jobs, so that
			// jobs start in submission order.
			reason := fmt.Sprintf("waiting for workers: %d available, min_workers %d", len(want), need)
			if limit > 0 && limit < need {
				reason = fmt.Sprintf("waiting forever: max_workers %d is below min_workers %d", limit, need)
			}
			if len(cur) == 0 && j.Reason == reason {
				continue
			}
			n.log.Info("job waits for workers", "job", j.Id, "available", want, "min_workers", need, "previous", cur)
			if _, err := n.apply(newGenCmd(j.Id, nil, reason)); err != nil {
				return err
			}
			continue
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

// minWorkers is the number of workers a job needs before it gets a
// generation: min_workers, and at least one.
func minWorkers(s *pb.JobSpec) int { return max(1, int(s.GetMinWorkers())) }

// expireAnnouncements quarantines the members of generations that have
// been announced for longer than ReadyTimeout (as seen by this leader)
// without their ready report.
func (n *Node) expireAnnouncements(st *pb.State) error {
	mem := n.mem.Load()
	if mem == nil {
		return nil
	}
	now := time.Now()
	for _, j := range sortedJobs(st) {
		g := j.Generation
		if client.Terminal(j.State) || g == nil || g.Phase != pb.GenerationPhase_GENERATION_PHASE_ANNOUNCED {
			continue
		}
		key := fmt.Sprintf("%s/%d", j.Id, g.Id)
		mem.mu.Lock()
		seen, ok := mem.firstSeen[key]
		if !ok {
			mem.firstSeen[key] = now
			seen = now
		}
		mem.mu.Unlock()
		if now.Sub(seen) < n.cfg.ReadyTimeout {
			continue
		}
		for _, m := range g.Members {
			if _, ok := g.Reports[m.WorkerId]; ok {
				continue
			}
			reason := fmt.Sprintf("no ready report for %s generation %d within %v", j.Id, g.Id, n.cfg.ReadyTimeout)
			n.log.Warn("quarantining a silent worker", "worker", m.WorkerId, "reason", reason)
			if _, err := n.apply(downCmd(m.WorkerId, reason, true)); err != nil {
				return err
			}
		}
	}
	return nil
}

func downCmd(id, reason string, quarantine bool) *pb.Command {
	return &pb.Command{Op: &pb.Command_WorkerDown{WorkerDown: &pb.WorkerDownCmd{WorkerId: id, Reason: reason, Quarantine: quarantine}}}
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
// broke in generation gen. On the first report for the current generation
// it probes every other member's gRPC health at once (PeerProbeTimeout):
// members that do not answer are marked down and quarantined (gossip may
// still see a crashed process for seconds; their own Register lifts it),
// and the reconciler forms the generation of the rest. When every probe
// succeeds, a peer that gossip no longer sees is declared down; a peer
// still alive gets a fresh generation with the same members, which
// restarts the ring — unless it was also reported in the generation
// before, in which case it is quarantined. Every outcome replaces the
// generation, so a report about an older one (a retry, or another
// member's report of the same break) is already answered and changes
// nothing.
func (n *Node) peerFailure(req *pb.ReportPeerFailureRequest) error {
	n.reconcileMu.Lock()
	defer n.reconcileMu.Unlock()
	j := n.fsm.Job(req.JobId)
	if j == nil {
		return fmt.Errorf("%w: job %q", ErrNotFound, req.JobId)
	}
	if g := j.GetGeneration(); g == nil || req.Generation < g.Id || client.Terminal(j.State) {
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
	failed := n.probeMembers(j.Generation, req.WorkerId)
	inPool := false
	for _, m := range n.pool.Members() {
		inPool = inPool || m.ID == req.PeerId
	}
	strike := false
	if mem := n.mem.Load(); mem != nil {
		key := j.Id + "/" + req.PeerId
		mem.mu.Lock()
		prev, ok := mem.strikes[key]
		strike = ok && prev+1 == req.Generation
		mem.strikes[key] = req.Generation
		mem.mu.Unlock()
	}
	var downs []*pb.Command
	for _, id := range ids {
		if err, ok := failed[id]; ok {
			reason := fmt.Sprintf("no answer to a health probe after %s reported peer %s broken in %s generation %d: %v",
				req.WorkerId, req.PeerId, j.Id, req.Generation, err)
			n.log.Warn("quarantining a worker that failed its health probe", "worker", id, "reason", reason)
			downs = append(downs, downCmd(id, reason, true))
		}
	}
	if _, ok := failed[req.PeerId]; !ok && (!inPool || strike) {
		reason := "reported by " + req.WorkerId + ": " + req.Detail
		if strike {
			reason = "reported broken in two generations in a row, last by " + req.WorkerId + ": " + req.Detail
		}
		downs = append(downs, downCmd(req.PeerId, reason, inPool))
	}
	if len(downs) > 0 {
		for _, cmd := range downs {
			if _, err := n.apply(cmd); err != nil {
				return err
			}
		}
		return n.reconcileLocked()
	}
	_, err := n.apply(newGenCmd(j.Id, ids, fmt.Sprintf("%s reported peer %s broken", req.WorkerId, req.PeerId)))
	return err
}

// probeMembers probes, in parallel and within PeerProbeTimeout, the gRPC
// health of every member of g except skip (the reporter, which has just
// called), and returns the members whose probe failed with the error.
func (n *Node) probeMembers(g *pb.Generation, skip string) map[string]error {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.PeerProbeTimeout)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed = map[string]error{}
	)
	for _, m := range g.Members {
		if m.WorkerId == skip {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.dials.probe(ctx, m.GrpcAddr); err != nil {
				mu.Lock()
				failed[m.WorkerId] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
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
