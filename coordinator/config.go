package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/coordinator/client"
	"github.com/dsae/dsae/coordinator/controlpb"
)

// Config configures one coordinator. Start it with Start. DefaultConfig
// holds the default of every field that has one; a zero duration or
// timing struct means that default too. Validate checks every field.
type Config struct {
	ID         string   // raft server id and memberlist node name; unique in the cluster
	DataDir    string   // raft log, stable store and snapshots
	RaftAddr   string   // host:port for raft traffic (port 0 picks one)
	GRPCAddr   string   // host:port of the control API (port 0 picks one)
	GossipAddr string   // host:port of memberlist gossip (port 0 picks one)
	Join       []string // gRPC addresses (host:port) of existing coordinators; empty bootstraps a new cluster

	// ReadyTimeout is how long members of an announced generation have to
	// report ready; the leader quarantines those that stay silent and
	// forms a generation without them. Default 30 s.
	ReadyTimeout time.Duration
	// PeerProbeTimeout bounds the gRPC health probe the leader sends to
	// every member of a generation when a worker reports a broken ring
	// peer; members that do not answer SERVING in time are quarantined.
	// Default 500 ms.
	PeerProbeTimeout time.Duration
	// WatchStaleness is how long a follower may go without contact with a
	// raft leader before it ends its WatchGeneration and WatchJob streams
	// with codes.Unavailable, so that watchers move to a coordinator that
	// is not cut off. Default 3 s.
	WatchStaleness time.Duration

	// Auth secures gRPC, raft and gossip. A coordinator serves TLS, so a
	// CAFile needs a CertFile and KeyFile.
	Auth   auth.Config
	Raft   RaftTimings
	Gossip client.GossipTimings

	// Datasets, when set, lets SubmitJob refuse jobs whose data or test
	// dataset is not in the store, and fill the spec's model d and steps
	// from the data's manifest, so that `dsae job status` shows the total.
	Datasets DatasetChecker
	// JobSpecs, when set, validates the model and optimizer of every
	// submitted spec and turns epochs into steps. The coordinator does not
	// know model math: cmd/dsae sets it to jobspec.Rules, whose errors are
	// the ones `dsae train` gives for the same settings. Without it SubmitJob
	// checks only the job-level fields (ValidateSpec).
	JobSpecs SpecRules
	// Registerer, when set, receives the coordinator's gauges (raft state,
	// gossip members, workers, jobs by state). The coordinator serves no
	// HTTP: the process serves the registry as /metrics (cmd/dsae does,
	// with --metrics-addr).
	Registerer prometheus.Registerer
	Logger     *slog.Logger // nil: slog.Default()

	// wrapRaftStream, when set, wraps the raft stream layer; the tests'
	// harness installs its partitioning wrapper through it.
	wrapRaftStream func(*streamLayer) raft.StreamLayer
}

// DatasetChecker looks datasets up in the store. SubmitJob calls it from
// gRPC handler goroutines, concurrently.
type DatasetChecker interface {
	// LookupDataset returns the row count and width of the named dataset
	// (from its manifest); found is false, with a nil error, when the store
	// has no such dataset. An error means the store did not answer.
	LookupDataset(ctx context.Context, name string) (info DatasetInfo, found bool, err error)
}

// DatasetSuggester is an optional capability of a DatasetChecker: when a
// job names a dataset the store does not have, SubmitJob's refusal lists
// the published names close to it ("mnist" → mnist-test, mnist-train).
// Called from gRPC handler goroutines, concurrently; a store that cannot
// answer returns nil.
type DatasetSuggester interface {
	SuggestDatasets(ctx context.Context, missing string) []string
}

// DatasetInfo is what SubmitJob learns of a dataset.
type DatasetInfo struct {
	Rows int64 // rows in the dataset
	D    int   // values per row
	// Mean and Std are the per-feature mean and population standard
	// deviation the store records (nil when it records none).
	Mean, Std []float64
}

// SpecRules is the model's view of a job spec, injected by the binary so
// that the coordinator does not import the model package. Its methods are
// called concurrently and must be deterministic.
type SpecRules interface {
	// Steps returns the steps spec trains for on a dataset of rows rows:
	// spec.steps when set, else steps from spec.epochs.
	Steps(spec *controlpb.JobSpec, rows int64) int64
	// Validate returns nil or an error naming the first model or optimizer
	// setting of spec outside its range.
	Validate(spec *controlpb.JobSpec) error
}

// DataRules is an optional capability of SpecRules: whether the model of
// spec can reconstruct training data with these per-feature statistics (a
// sigmoid output cannot reconstruct data outside [0, 1]). SubmitJob asks
// it when the DatasetChecker gives the statistics.
type DataRules interface {
	CheckData(spec *controlpb.JobSpec, mean, std []float64) error
}

// RaftTimings are the raft timeouts. DefaultRaftTimings suits a LAN.
type RaftTimings struct {
	Heartbeat, Election, LeaderLease, Commit time.Duration
	// SnapshotThreshold is the number of log entries between snapshots.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
}

// DefaultRaftTimings elect a new leader within a few seconds of a crash.
func DefaultRaftTimings() RaftTimings {
	return RaftTimings{Heartbeat: time.Second, Election: time.Second, LeaderLease: 500 * time.Millisecond,
		Commit: 50 * time.Millisecond, SnapshotThreshold: 4096, SnapshotInterval: 2 * time.Minute}
}

// DefaultConfig returns the default of every field that has one: the
// listen addresses on loopback with dsae's usual ports, the timeouts,
// DefaultRaftTimings and client.DefaultGossipTimings. ID and DataDir have
// none; set them, and Auth, before Start. `dsae coordinator` takes its
// flag defaults from here.
func DefaultConfig() Config {
	return Config{
		RaftAddr:         "127.0.0.1:7000",
		GRPCAddr:         "127.0.0.1:7100",
		GossipAddr:       "127.0.0.1:7200",
		ReadyTimeout:     30 * time.Second,
		PeerProbeTimeout: 500 * time.Millisecond,
		WatchStaleness:   3 * time.Second,
		Raft:             DefaultRaftTimings(),
		Gossip:           client.DefaultGossipTimings(),
	}
}

// setDefaults fills the fields whose zero value means "the default".
func (c *Config) setDefaults() {
	d := DefaultConfig()
	if c.Raft == (RaftTimings{}) {
		c.Raft = d.Raft
	}
	if c.Gossip == (client.GossipTimings{}) {
		c.Gossip = d.Gossip
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = d.ReadyTimeout
	}
	if c.PeerProbeTimeout == 0 {
		c.PeerProbeTimeout = d.PeerProbeTimeout
	}
	if c.WatchStaleness == 0 {
		c.WatchStaleness = d.WatchStaleness
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks every field of the configuration as Start would run it
// (zero values meaning a default count as that default). The error wraps
// ErrInvalidConfig and names the first field outside its allowed values,
// e.g. "ReadyTimeout = -1s out of range (0, +inf)"; errors of Auth wrap
// auth's sentinels too. Datasets, JobSpecs, Registerer and Logger may be
// nil.
func (c *Config) Validate() error {
	d := *c
	d.setDefaults()
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	positive := func(field string, v time.Duration, def time.Duration) error {
		if v > 0 {
			return nil
		}
		return bad(field, "= %v out of range (0, +inf); 0 means the default, %v", v, def)
	}
	def := DefaultConfig()
	switch {
	case d.ID == "":
		return bad("ID", "is empty: want this coordinator's id, unique in the cluster")
	case d.DataDir == "":
		return bad("DataDir", "is empty: want the directory of the raft log and snapshots")
	}
	for _, a := range []struct{ field, addr string }{{"RaftAddr", d.RaftAddr}, {"GRPCAddr", d.GRPCAddr}, {"GossipAddr", d.GossipAddr}} {
		if err := checkAddr(a.addr, true, true); err != nil {
			return bad(a.field, "= %q: %v", a.addr, err)
		}
	}
	for i, a := range d.Join {
		if err := checkAddr(a, true, false); err != nil {
			return bad(fmt.Sprintf("Join[%d]", i), "= %q: %v", a, err)
		}
	}
	for _, t := range []struct {
		field    string
		v, deflt time.Duration
	}{
		{"ReadyTimeout", d.ReadyTimeout, def.ReadyTimeout},
		{"PeerProbeTimeout", d.PeerProbeTimeout, def.PeerProbeTimeout},
		{"WatchStaleness", d.WatchStaleness, def.WatchStaleness},
	} {
		if err := positive(t.field, t.v, t.deflt); err != nil {
			return err
		}
	}
	if err := d.Auth.Validate(); err != nil {
		return fmt.Errorf("%w: Auth: %w", ErrInvalidConfig, err)
	}
	if d.Auth.CAFile != "" && d.Auth.CertFile == "" {
		return bad("Auth.CAFile", "is set without Auth.CertFile: a coordinator serves TLS, so it needs a certificate")
	}
	if err := d.Raft.validate(); err != nil {
		return err
	}
	// Raft has the last word on its own configuration.
	if err := raft.ValidateConfig(d.raftConfig()); err != nil {
		return bad("Raft", "refused by raft: %v", err)
	}
	return d.Gossip.Validate()
}

// checkAddr checks a host:port. A listen address (listen) may leave the
// port to the system (0); an advertised one (reachable) needs a host that
// others can reach, not an empty or unspecified one.
func checkAddr(addr string, reachable, listen bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port: %v", err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	switch {
	case err != nil:
		return fmt.Errorf("port %q is not a number in [0, 65535]", port)
	case p == 0 && !listen:
		return fmt.Errorf("port 0: want a port in [1, 65535]")
	}
	if ip := net.ParseIP(host); reachable && (host == "" || (ip != nil && ip.IsUnspecified())) {
		return fmt.Errorf("no host others can reach; give an IP or host name")
	}
	return nil
}

// minRaftTimeout is raft's lower bound on its heartbeat, election and
// leader-lease timeouts and its snapshot interval (raft.ValidateConfig).
const minRaftTimeout = 5 * time.Millisecond

// validate checks the timings as raft.ValidateConfig does, in the names of
// RaftTimings' fields.
func (t RaftTimings) validate() error {
	bad := func(field string, v time.Duration, rng string) error {
		return fmt.Errorf("%w: Raft.%s = %v out of range %s", ErrInvalidConfig, field, v, rng)
	}
	switch {
	case t.Heartbeat < minRaftTimeout:
		return bad("Heartbeat", t.Heartbeat, "[5ms, +inf)")
	case t.Election < t.Heartbeat:
		return bad("Election", t.Election, fmt.Sprintf("[Heartbeat = %v, +inf)", t.Heartbeat))
	case t.LeaderLease < minRaftTimeout || t.LeaderLease > t.Heartbeat:
		return bad("LeaderLease", t.LeaderLease, fmt.Sprintf("[5ms, Heartbeat = %v]", t.Heartbeat))
	case t.Commit < time.Millisecond:
		return bad("Commit", t.Commit, "[1ms, +inf)")
	case t.SnapshotInterval != 0 && t.SnapshotInterval < minRaftTimeout:
		return bad("SnapshotInterval", t.SnapshotInterval, "[5ms, +inf); 0 means raft's default")
	}
	return nil
}

// raftConfig is the raft configuration of a node with config c (without
// its logger).
func (c *Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.ID)
	rc.HeartbeatTimeout, rc.ElectionTimeout = c.Raft.Heartbeat, c.Raft.Election
	rc.LeaderLeaseTimeout, rc.CommitTimeout = c.Raft.LeaderLease, c.Raft.Commit
	if c.Raft.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = c.Raft.SnapshotThreshold
		rc.TrailingLogs = c.Raft.SnapshotThreshold
	}
	if c.Raft.SnapshotInterval > 0 {
		rc.SnapshotInterval = c.Raft.SnapshotInterval
	}
	return rc
}
