package coordinator

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/coordinator/client"
)

// validConfig is DefaultConfig with the fields that have no default.
func validConfig(t *testing.T) Config {
	c := DefaultConfig()
	c.ID, c.DataDir = "c1", t.TempDir()
	return c
}

func TestDefaultConfig(t *testing.T) {
	c := validConfig(t)
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig with ID and DataDir: %v", err)
	}
	// setDefaults fills zero values with DefaultConfig's.
	var z Config
	z.setDefaults()
	d := DefaultConfig()
	if z.Raft != d.Raft || z.Gossip != d.Gossip || z.ReadyTimeout != d.ReadyTimeout ||
		z.PeerProbeTimeout != d.PeerProbeTimeout || z.WatchStaleness != d.WatchStaleness || z.Logger == nil {
		t.Fatalf("setDefaults gives %+v, DefaultConfig %+v", z, d)
	}
	if d.ReadyTimeout != 30*time.Second || d.PeerProbeTimeout != 500*time.Millisecond || d.WatchStaleness != 3*time.Second {
		t.Fatalf("defaults: ready %v, probe %v, staleness %v", d.ReadyTimeout, d.PeerProbeTimeout, d.WatchStaleness)
	}
	// Zero durations and timing structs mean the defaults.
	c.ReadyTimeout, c.PeerProbeTimeout, c.WatchStaleness, c.Raft, c.Gossip = 0, 0, 0, RaftTimings{}, client.GossipTimings{}
	if err := c.Validate(); err != nil {
		t.Fatalf("zero values meaning defaults: %v", err)
	}
}

// TestConfigValidate changes one field at a time from a valid config; each
// error wraps ErrInvalidConfig and names the field (and its range).
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // in the message; "" means valid
		is   error  // a sentinel the error wraps besides ErrInvalidConfig
	}{
		{"id", func(c *Config) { c.ID = "" }, "ID is empty", nil},
		{"data dir", func(c *Config) { c.DataDir = "" }, "DataDir is empty", nil},
		{"raft addr empty", func(c *Config) { c.RaftAddr = "" }, `RaftAddr = "": want host:port`, nil},
		{"raft addr unspecified", func(c *Config) { c.RaftAddr = "0.0.0.0:7000" }, "RaftAddr = \"0.0.0.0:7000\": no host others can reach", nil},
		{"raft addr port 0", func(c *Config) { c.RaftAddr = "127.0.0.1:0" }, "", nil},
		{"grpc addr no port", func(c *Config) { c.GRPCAddr = "127.0.0.1" }, `GRPCAddr = "127.0.0.1": want host:port`, nil},
		{"grpc addr port", func(c *Config) { c.GRPCAddr = "127.0.0.1:70000" }, `GRPCAddr = "127.0.0.1:70000": port "70000" is not a number in [0, 65535]`, nil},
		{"grpc addr no host", func(c *Config) { c.GRPCAddr = ":7100" }, "GRPCAddr = \":7100\": no host others can reach", nil},
		{"gossip addr", func(c *Config) { c.GossipAddr = "[::]:7200" }, "GossipAddr = \"[::]:7200\": no host others can reach", nil},
		{"gossip addr host name", func(c *Config) { c.GossipAddr = "localhost:7200" }, "", nil},
		{"join", func(c *Config) { c.Join = []string{"127.0.0.1:7101", "c2"} }, `Join[1] = "c2": want host:port`, nil},
		{"join port 0", func(c *Config) { c.Join = []string{"127.0.0.1:0"} }, "Join[0] = \"127.0.0.1:0\": port 0: want a port in [1, 65535]", nil},
		{"join ok", func(c *Config) { c.Join = []string{"127.0.0.1:7101", "c2.example:7101"} }, "", nil},
		{"ready timeout", func(c *Config) { c.ReadyTimeout = -time.Second }, "ReadyTimeout = -1s out of range (0, +inf); 0 means the default, 30s", nil},
		{"peer probe timeout", func(c *Config) { c.PeerProbeTimeout = -time.Second }, "PeerProbeTimeout = -1s out of range (0, +inf)", nil},
		{"watch staleness", func(c *Config) { c.WatchStaleness = -time.Second }, "WatchStaleness = -1s out of range (0, +inf)", nil},
		{"auth secret", func(c *Config) { c.Auth.Secret = []byte("short") }, "Auth: bad cluster secret: 5 bytes, want at least 16", auth.ErrBadSecret},
		{"auth cert without key", func(c *Config) { c.Auth.CertFile = "c.pem" }, "Auth: bad TLS configuration", auth.ErrBadTLS},
		{"auth ca without cert", func(c *Config) { c.Auth.CAFile = "ca.pem" }, "Auth.CAFile is set without Auth.CertFile", nil},
		{"auth tls", func(c *Config) {
			c.Auth = auth.Config{Secret: testSecret, CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}
		}, "", nil},
		{"raft heartbeat", func(c *Config) { c.Raft.Heartbeat = time.Millisecond }, "Raft.Heartbeat = 1ms out of range [5ms, +inf)", nil},
		{"raft election", func(c *Config) { c.Raft.Election = c.Raft.Heartbeat / 2 }, "Raft.Election = 500ms out of range [Heartbeat = 1s, +inf)", nil},
		{"raft lease", func(c *Config) { c.Raft.LeaderLease = 2 * c.Raft.Heartbeat }, "Raft.LeaderLease = 2s out of range [5ms, Heartbeat = 1s]", nil},
		{"raft lease low", func(c *Config) { c.Raft.LeaderLease = time.Millisecond }, "Raft.LeaderLease = 1ms out of range", nil},
		{"raft commit", func(c *Config) { c.Raft.Commit = 0 }, "Raft.Commit = 0s out of range [1ms, +inf)", nil},
		{"raft snapshot interval", func(c *Config) { c.Raft.SnapshotInterval = time.Millisecond }, "Raft.SnapshotInterval = 1ms out of range [5ms, +inf)", nil},
		{"raft snapshot interval default", func(c *Config) { c.Raft.SnapshotInterval, c.Raft.SnapshotThreshold = 0, 0 }, "", nil},
		{"gossip probe interval", func(c *Config) { c.Gossip.ProbeInterval = 0 }, "Gossip.ProbeInterval = 0s out of range (0, +inf)", nil},
		{"gossip probe timeout", func(c *Config) { c.Gossip.ProbeTimeout = c.Gossip.ProbeInterval }, "Gossip.ProbeTimeout = 500ms out of range (0, ProbeInterval = 500ms)", nil},
		{"gossip interval", func(c *Config) { c.Gossip.GossipInterval = -1 }, "Gossip.GossipInterval = -1ns out of range [0, +inf)", nil},
		{"gossip suspicion", func(c *Config) { c.Gossip.SuspicionMult = 0 }, "Gossip.SuspicionMult = 0 out of range [1, +inf)", nil},
		{"gossip push pull", func(c *Config) { c.Gossip.PushPull = -time.Second }, "Gossip.PushPull = -1s out of range [0, +inf)", nil},
		{"optional fields nil", func(c *Config) { c.Datasets, c.JobSpecs, c.Registerer, c.Logger = nil, nil, nil, nil }, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidConfig with %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want it to wrap %v too", err, tc.is)
			}
		})
	}
}

// TestStartValidates: Start refuses what Validate refuses, before it
// touches the data dir.
func TestStartValidates(t *testing.T) {
	c := validConfig(t)
	c.DataDir += "/not-created"
	c.ReadyTimeout = -time.Second
	if _, err := Start(t.Context(), c); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Start: %v, want ErrInvalidConfig", err)
	}
	if _, err := os.Stat(c.DataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Start created the data dir of a refused config: %v", err)
	}
}
