package coordinator

import (
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/dsae/dsae/coordinator/auth"
)

// Roles a pool member announces in its metadata.
const (
	RoleCoordinator = "coordinator"
	RoleWorker      = "worker"
)

// NodeMeta is the metadata every pool member gossips. It must encode to at
// most memberlist.MetaMaxSize (512) bytes.
type NodeMeta struct {
	Role string `json:"role"`
	ID   string `json:"id"`
	GRPC string `json:"grpc"`           // control API (coordinators) or state transfer (workers)
	Ring string `json:"ring,omitempty"` // all-reduce ring address of a worker
}

// PoolConfig configures one process's membership in the gossip pool.
type PoolConfig struct {
	Addr    string // host:port to bind and advertise; port 0 picks one
	Meta    NodeMeta
	Secret  []byte // cluster secret; the gossip key derives from it
	Timings GossipTimings
	Logger  *slog.Logger
}

// Pool is a process's view of the gossip pool: which coordinators and
// workers are alive. Methods are safe for concurrent use.
type Pool struct {
	ml      *memberlist.Memberlist
	meta    []byte
	changed chan struct{} // capacity 1: a pending "membership changed" signal

	closeOnce sync.Once
	closeErr  error

	mu    sync.Mutex
	alive map[string]NodeMeta // by node name
	gone  map[string]bool     // members seen to leave or fail since they last joined
}

// JoinPool starts gossiping as cfg.Meta describes; call Join to meet the
// pool. A node with a different secret cannot exchange a single message
// with the pool.
func JoinPool(cfg PoolConfig) (*Pool, error) {
	if cfg.Timings == (GossipTimings{}) {
		cfg.Timings = DefaultGossipTimings()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, err
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: node metadata is %d bytes, limit %d", ErrBadConfig, len(meta), memberlist.MetaMaxSize)
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: gossip address %q: %v", ErrBadConfig, cfg.Addr, err)
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("%w: gossip address %q: cannot resolve host", ErrBadConfig, cfg.Addr)
	}
	p := &Pool{meta: meta, changed: make(chan struct{}, 1), gone: map[string]bool{}, alive: map[string]NodeMeta{}}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Meta.ID
	mc.BindAddr = ips[0].String()
	mc.BindPort, _ = strconv.Atoi(port)
	mc.AdvertiseAddr, mc.AdvertisePort = mc.BindAddr, mc.BindPort
	mc.SecretKey = auth.GossipKey(cfg.Secret)
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	t := cfg.Timings
	mc.ProbeInterval, mc.ProbeTimeout, mc.SuspicionMult = t.ProbeInterval, t.ProbeTimeout, t.SuspicionMult
	if t.GossipInterval > 0 {
		mc.GossipInterval = t.GossipInterval
	}
	if t.PushPull > 0 {
		mc.PushPullInterval = t.PushPull
	}
	mc.DeadNodeReclaimTime = time.Second // a restarted worker may come back under its name at once
	mc.Delegate = poolDelegate{p}
	mc.Events = poolEvents{p}
	mc.Logger = log.New(slogWriter{cfg.Logger.With("component", "memberlist")}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("memberlist: %w", err)
	}
	p.ml = ml
	return p, nil
}

// Join contacts the given gossip addresses; it succeeds if any answers.
func (p *Pool) Join(addrs []string) error {
	if len(addrs) == 0 {
		return nil
	}
	_, err := p.ml.Join(addrs)
	return err
}

// Addr is this member's advertised gossip address.
func (p *Pool) Addr() string {
	n := p.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Members returns the alive members, sorted by id. Members whose metadata
// cannot be decoded are left out.
//
// The view is kept from the event callbacks (which memberlist calls under
// its own lock) rather than read from memberlist.Members, whose nodes
// memberlist keeps mutating after returning them.
func (p *Pool) Members() []NodeMeta {
	p.mu.Lock()
	out := make([]NodeMeta, 0, len(p.alive))
	for _, m := range p.alive {
		out = append(out, m)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b NodeMeta) int { return cmpString(a.ID, b.ID) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Changed delivers a (coalesced) signal after each join, leave, failure or
// metadata update.
func (p *Pool) Changed() <-chan struct{} { return p.changed }

// Gone reports whether this pool saw member id leave or fail (and not come
// back since).
func (p *Pool) Gone(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gone[id]
}

func (p *Pool) event(n *memberlist.Node, gone bool) {
	var meta NodeMeta
	ok := json.Unmarshal(n.Meta, &meta) == nil && meta.ID != ""
	p.mu.Lock()
	if gone {
		p.gone[n.Name] = true
		delete(p.alive, n.Name)
	} else {
		delete(p.gone, n.Name)
		if ok {
			p.alive[n.Name] = meta
		} else {
			delete(p.alive, n.Name)
		}
	}
	p.mu.Unlock()
	p.signal()
}

func (p *Pool) signal() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Close leaves the pool gracefully (peers see a departure at once). Later
// calls do nothing.
func (p *Pool) Close() error { return p.shutdown(true) }

// Kill stops gossiping without a leave message, so that peers detect a
// failure; tests use it to simulate a crash.
func (p *Pool) Kill() error { return p.shutdown(false) }

func (p *Pool) shutdown(leave bool) error {
	if p == nil || p.ml == nil {
		return nil
	}
	p.closeOnce.Do(func() {
		if leave {
			p.ml.Leave(time.Second)
		}
		p.closeErr = p.ml.Shutdown()
	})
	return p.closeErr
}

type poolDelegate struct{ p *Pool }

func (d poolDelegate) NodeMeta(limit int) []byte              { return d.p.meta }
func (d poolDelegate) NotifyMsg([]byte)                       {}
func (d poolDelegate) GetBroadcasts(int, int) [][]byte        { return nil }
func (d poolDelegate) LocalState(bool) []byte                 { return nil }
func (d poolDelegate) MergeRemoteState(buf []byte, join bool) {}

type poolEvents struct{ p *Pool }

func (e poolEvents) NotifyJoin(n *memberlist.Node)  { e.p.event(n, false) }
func (e poolEvents) NotifyLeave(n *memberlist.Node) { e.p.event(n, true) }
func (e poolEvents) NotifyUpdate(*memberlist.Node)  { e.p.signal() }

// startGossip joins the coordinator to the pool as a coordinator.
func (n *Node) startGossip() (*Pool, error) {
	return JoinPool(PoolConfig{
		Addr:    n.cfg.GossipAddr,
		Meta:    NodeMeta{Role: RoleCoordinator, ID: n.cfg.ID, GRPC: n.grpcAddr},
		Secret:  n.cfg.Auth.Secret,
		Timings: n.cfg.Gossip,
		Logger:  n.log,
	})
}

// gossipRejoinEvery is how often a coordinator checks that it gossips with
// every coordinator the state lists.
const gossipRejoinEvery = 2 * time.Second

// gossipLoop keeps the coordinator in the pool and its health status
// current: a node restarted from its
// data dir, or cut off long enough to be declared dead, joins again
// through the gossip addresses of the coordinators the state lists.
func (n *Node) gossipLoop() {
	t := time.NewTicker(gossipRejoinEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.updateHealth()
		in := map[string]bool{}
		for _, m := range n.pool.Members() {
			in[m.ID] = true
		}
		var missing []string
		for _, c := range n.coordinators() {
			if c.Id != n.cfg.ID && !in[c.Id] && c.GossipAddr != "" {
				missing = append(missing, c.GossipAddr)
			}
		}
		if len(missing) > 0 {
			if err := n.pool.Join(missing); err != nil {
				n.log.Debug("gossip rejoin", "addrs", missing, "err", err)
			}
		}
	}
}
