package client

import (
	"cmp"
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
	"github.com/dsae/dsae/coordinator/internal/faults"
	"github.com/dsae/dsae/coordinator/internal/logbridge"
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
	Addr   string // host:port to bind and advertise; port 0 picks one
	Meta   NodeMeta
	Secret []byte // cluster secret; the gossip key derives from it
	// Gossip are the failure-detector timings; the zero value means
	// DefaultGossipTimings.
	Gossip GossipTimings
	Logger *slog.Logger
}

// GossipTimings are the memberlist failure-detector timings.
type GossipTimings struct {
	ProbeInterval, ProbeTimeout, GossipInterval time.Duration
	SuspicionMult                               int
	// PushPull is the interval of full state syncs.
	PushPull time.Duration
}

// DefaultGossipTimings declare a silent node dead within about 3-5 s on a
// LAN: probes every 500 ms, and suspicion lasting SuspicionMult ×
// log10(N) × ProbeInterval.
func DefaultGossipTimings() GossipTimings {
	return GossipTimings{ProbeInterval: 500 * time.Millisecond, ProbeTimeout: 250 * time.Millisecond,
		GossipInterval: 100 * time.Millisecond, SuspicionMult: 3, PushPull: 15 * time.Second}
}

// Validate checks every timing; the error wraps ErrInvalidConfig and names
// the first field outside its range. A probe timeout must leave part of
// the probe interval for memberlist's indirect probes.
func (t GossipTimings) Validate() error {
	bad := func(field string, v any, rng string) error {
		return fmt.Errorf("%w: Gossip.%s = %v out of range %s", ErrInvalidConfig, field, v, rng)
	}
	switch {
	case t.ProbeInterval <= 0:
		return bad("ProbeInterval", t.ProbeInterval, "(0, +inf)")
	case t.ProbeTimeout <= 0 || t.ProbeTimeout >= t.ProbeInterval:
		return bad("ProbeTimeout", t.ProbeTimeout, fmt.Sprintf("(0, ProbeInterval = %v)", t.ProbeInterval))
	case t.GossipInterval < 0:
		return bad("GossipInterval", t.GossipInterval, "[0, +inf) (0: memberlist's default)")
	case t.SuspicionMult < 1:
		return bad("SuspicionMult", t.SuspicionMult, "[1, +inf)")
	case t.PushPull < 0:
		return bad("PushPull", t.PushPull, "[0, +inf) (0: memberlist's default)")
	}
	return nil
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

func init() {
	faults.KillPool = func(p any) error { return p.(*Pool).shutdown(false) }
}

// JoinPool starts gossiping as cfg.Meta describes; call Join to meet the
// pool. A node with a different secret cannot exchange a single message
// with the pool. A cfg outside the allowed values is refused with an error
// wrapping ErrInvalidConfig.
func JoinPool(cfg PoolConfig) (*Pool, error) {
	if cfg.Gossip == (GossipTimings{}) {
		cfg.Gossip = DefaultGossipTimings()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Gossip.Validate(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Meta.ID == "":
		return nil, fmt.Errorf("%w: node metadata: empty id", ErrInvalidConfig)
	case cfg.Meta.Role != RoleCoordinator && cfg.Meta.Role != RoleWorker:
		return nil, fmt.Errorf("%w: node metadata: role %q, want %q or %q", ErrInvalidConfig, cfg.Meta.Role, RoleCoordinator, RoleWorker)
	}
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, err
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: node metadata is %d bytes, limit %d", ErrInvalidConfig, len(meta), memberlist.MetaMaxSize)
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: gossip address %q: %v", ErrInvalidConfig, cfg.Addr, err)
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("%w: gossip address %q: cannot resolve host", ErrInvalidConfig, cfg.Addr)
	}
	p := &Pool{meta: meta, changed: make(chan struct{}, 1), gone: map[string]bool{}, alive: map[string]NodeMeta{}}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Meta.ID
	mc.BindAddr = ips[0].String()
	mc.BindPort, _ = strconv.Atoi(port)
	mc.AdvertiseAddr, mc.AdvertisePort = mc.BindAddr, mc.BindPort
	mc.SecretKey = auth.GossipKey(cfg.Secret)
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	t := cfg.Gossip
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
	mc.Logger = log.New(logbridge.Writer{L: cfg.Logger.With("component", "memberlist")}, "", 0)
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
	slices.SortFunc(out, func(a, b NodeMeta) int { return cmp.Compare(a.ID, b.ID) })
	return out
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
// calls do nothing; so does Close on a nil Pool.
func (p *Pool) Close() error { return p.shutdown(true) }

// shutdown stops gossiping, after a leave message when leave is set.
// Without one, peers detect a failure: that is how the coordinator's tests
// simulate a crash (faults.KillPool).
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

var (
	_ memberlist.Delegate      = poolDelegate{}
	_ memberlist.EventDelegate = poolEvents{}
)

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
