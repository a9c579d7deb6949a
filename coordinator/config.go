package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/coordinator/client"
	"github.com/dsae/dsae/coordinator/controlpb"
)

// Config configures one coordinator. Start it with Start.
type Config struct {
	ID         string   // raft server id and memberlist node name; unique in the cluster
	DataDir    string   // raft log, stable store and snapshots
	RaftAddr   string   // host:port for raft traffic (port 0 picks one)
	GRPCAddr   string   // host:port of the control API
	GossipAddr string   // host:port of memberlist gossip
	Join       []string // gRPC addresses of existing coordinators; empty bootstraps a new cluster

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
	// MetricsAddr, when set, serves Prometheus /metrics (the coordinator's
	// gauges plus Go runtime and process metrics) on this host:port.
	MetricsAddr string
	// Registerer, when set, also receives the coordinator's gauges (for a
	// process that serves its own /metrics).
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	// wrapRaftStream, when set, wraps the raft stream layer; the tests'
	// harness installs its partitioning wrapper through it.
	wrapRaftStream func(raft.StreamLayer) raft.StreamLayer
}

// DatasetChecker looks datasets up in the store. SubmitJob calls it from
// gRPC handler goroutines, concurrently.
type DatasetChecker interface {
	// LookupDataset returns the row count and width of the named dataset
	// (from its manifest); found is false, with a nil error, when the store
	// has no such dataset. An error means the store did not answer.
	LookupDataset(ctx context.Context, name string) (info DatasetInfo, found bool, err error)
}

// DatasetInfo is what SubmitJob learns of a dataset.
type DatasetInfo struct {
	Rows int64 // rows in the dataset
	D    int   // values per row
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

func (c *Config) setDefaults() {
	if c.Raft == (RaftTimings{}) {
		c.Raft = DefaultRaftTimings()
	}
	if c.Gossip == (client.GossipTimings{}) {
		c.Gossip = client.DefaultGossipTimings()
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 30 * time.Second
	}
	if c.PeerProbeTimeout == 0 {
		c.PeerProbeTimeout = 500 * time.Millisecond
	}
	if c.WatchStaleness == 0 {
		c.WatchStaleness = 3 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: id is empty", ErrInvalidConfig)
	case c.DataDir == "":
		return fmt.Errorf("%w: data dir is empty", ErrInvalidConfig)
	case c.RaftAddr == "" || c.GRPCAddr == "" || c.GossipAddr == "":
		return fmt.Errorf("%w: raft, grpc and gossip addresses are all required", ErrInvalidConfig)
	case c.Raft.Heartbeat <= 0 || c.Raft.Election <= 0 || c.Raft.LeaderLease <= 0:
		return fmt.Errorf("%w: raft timeouts must be positive", ErrInvalidConfig)
	case c.Raft.LeaderLease > c.Raft.Heartbeat:
		return fmt.Errorf("%w: raft leader lease %v exceeds heartbeat timeout %v", ErrInvalidConfig, c.Raft.LeaderLease, c.Raft.Heartbeat)
	case c.Gossip.ProbeInterval <= 0 || c.Gossip.ProbeTimeout <= 0 || c.Gossip.SuspicionMult < 1:
		return fmt.Errorf("%w: gossip timings must be positive", ErrInvalidConfig)
	case c.ReadyTimeout < 0:
		return fmt.Errorf("%w: ready timeout %v is negative", ErrInvalidConfig, c.ReadyTimeout)
	case c.PeerProbeTimeout < 0:
		return fmt.Errorf("%w: peer probe timeout %v is negative", ErrInvalidConfig, c.PeerProbeTimeout)
	case c.WatchStaleness < 0:
		return fmt.Errorf("%w: watch staleness %v is negative", ErrInvalidConfig, c.WatchStaleness)
	}
	return nil
}
