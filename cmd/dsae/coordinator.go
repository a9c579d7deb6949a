package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dsae/dsae/coordinator"
	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/dataset"
	"github.com/dsae/dsae/worker/jobspec"
)

// securityFlags are the cluster-secret and TLS flags shared by every command
// that talks to the control plane.
type securityFlags struct {
	secretFile, cert, key, ca, serverName string
	insecure                              bool
}

func addSecurityFlags(fs *pflag.FlagSet) *securityFlags {
	f := &securityFlags{}
	fs.StringVar(&f.secretFile, "secret-file", "", "file holding the cluster secret (default $"+auth.EnvSecret+")")
	fs.StringVar(&f.cert, "tls-cert", "", "PEM certificate: serve TLS (servers) or present it (clients, with --tls-ca); a coordinator also presents it to other coordinators, so give it both server and client usage under mutual TLS")
	fs.StringVar(&f.key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&f.ca, "tls-ca", "", "PEM CA: verify peers with it (servers then require client certificates)")
	fs.StringVar(&f.serverName, "tls-server-name", "", "name to verify in the server certificate (default: the host dialed)")
	fs.BoolVar(&f.insecure, "insecure", false, "run without a cluster secret (trusted networks only)")
	return f
}

// config loads the secret and checks the combination of flags.
func (f *securityFlags) config() (auth.Config, error) {
	secret, err := auth.LoadSecret(f.secretFile)
	if err != nil {
		return auth.Config{}, invalid(err)
	}
	if len(secret) == 0 && !f.insecure {
		return auth.Config{}, invalid(fmt.Errorf("%w: no cluster secret: give --secret-file or $%s (or --insecure on a trusted network)", auth.ErrBadSecret, auth.EnvSecret))
	}
	if (f.cert == "") != (f.key == "") {
		return auth.Config{}, invalid(fmt.Errorf("%w: --tls-cert and --tls-key go together", auth.ErrBadTLS))
	}
	return auth.Config{Secret: secret, CertFile: f.cert, KeyFile: f.key, CAFile: f.ca, ServerName: f.serverName}, nil
}

func newCoordinatorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a coordinator: a member of the raft group that runs the control plane",
		Long: `Run one coordinator. The first coordinator of a cluster starts without --join
and bootstraps it; the others give --join with the gRPC address of any
member. A coordinator restarted on the same --data-dir rejoins with its
state. Every gRPC call and gossip message is authenticated with the cluster
secret (--secret-file or $DSAE_CLUSTER_SECRET).`,
		Example: `  export DSAE_CLUSTER_SECRET=$(head -c 32 /dev/urandom | base64)
  dsae coordinator --id c1 --data-dir ./c1 --raft-addr 127.0.0.1:7001 --grpc-addr 127.0.0.1:7101 --gossip-addr 127.0.0.1:7201
  dsae coordinator --id c2 --data-dir ./c2 --raft-addr 127.0.0.1:7002 --grpc-addr 127.0.0.1:7102 --gossip-addr 127.0.0.1:7202 --join 127.0.0.1:7101`,
		Args: exactArgs(0),
	}
	f := cmd.Flags()
	sec := addSecurityFlags(f)
	s3 := addS3ClientFlags(f)
	cf := addCoordinatorFlags(f)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		a, err := sec.config()
		if err != nil {
			return err
		}
		cfg := cf.config()
		cfg.Auth = a
		checkData := cf.checkData
		if !f.Changed("check-datasets") {
			checkData = f.Lookup("s3-endpoint").Value.String() != ""
		}
		if checkData {
			client, err := s3.client()
			if err != nil {
				return err
			}
			cfg.Datasets = storeDatasets{client}
		}
		cfg.JobSpecs = jobspec.Rules{}
		cfg.Logger = slog.Default()
		if err := cfg.Validate(); err != nil {
			return invalid(err)
		}
		reg, ms, err := startRoleMetrics(cf.metricsAddr)
		if err != nil {
			return err
		}
		defer ms.Close()
		cfg.Registerer = reg
		n, err := coordinator.Start(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		slog.Info("coordinator running", "id", cfg.ID, "raft", n.RaftAddr(), "grpc", n.GRPCAddr(), "gossip", n.GossipAddr(),
			"metrics", ms.Addr(), "join", strings.Join(cfg.Join, ","), "auth", cfg.Auth)
		fmt.Fprintf(cmd.OutOrStdout(), "dsae coordinator %s: grpc %s, raft %s, gossip %s\n", cfg.ID, n.GRPCAddr(), n.RaftAddr(), n.GossipAddr())
		<-cmd.Context().Done()
		slog.Info("coordinator stopping", "id", cfg.ID)
		return n.Close()
	}
	return cmd
}

// coordinatorFlags are the coordinator settings of `dsae coordinator`.
// Every default comes from coordinator.DefaultConfig; the flags that set
// two fields at once (--raft-timeout, --gossip-probe-interval) derive the
// dependent field as config says.
type coordinatorFlags struct {
	cfg         coordinator.Config
	checkData   bool
	probe       time.Duration
	suspicion   int
	raftTimeout time.Duration
	metricsAddr string // served by the binary, not the coordinator package
}

func addCoordinatorFlags(f *pflag.FlagSet) *coordinatorFlags {
	c := &coordinatorFlags{cfg: coordinator.DefaultConfig()}
	d := &c.cfg
	f.StringVar(&d.ID, "id", d.ID, "unique id of this coordinator (required)")
	f.StringVar(&d.DataDir, "data-dir", d.DataDir, "directory for the raft log and snapshots (required)")
	f.StringVar(&d.RaftAddr, "raft-addr", d.RaftAddr, "host:port for raft traffic")
	f.StringVar(&d.GRPCAddr, "grpc-addr", d.GRPCAddr, "host:port of the control API")
	f.StringVar(&d.GossipAddr, "gossip-addr", d.GossipAddr, "host:port of membership gossip")
	addMetricsFlag(f, &c.metricsAddr)
	f.StringSliceVar(&d.Join, "join", d.Join, "gRPC addresses of existing coordinators (comma-separated); empty bootstraps a new cluster")
	f.BoolVar(&c.checkData, "check-datasets", false, "refuse jobs whose data or test dataset is not published in the store, and fill d and steps from its manifest (default: on when an S3 endpoint is configured)")
	f.DurationVar(&c.probe, "gossip-probe-interval", d.Gossip.ProbeInterval, "failure-detector probe interval; a dead worker is declared within a few intervals")
	f.IntVar(&c.suspicion, "gossip-suspicion-mult", d.Gossip.SuspicionMult, "suspicion timeout multiplier of the failure detector")
	f.DurationVar(&d.ReadyTimeout, "ready-timeout", d.ReadyTimeout, "how long members of a new generation have to report ready before the silent ones are quarantined")
	f.DurationVar(&c.raftTimeout, "raft-timeout", d.Raft.Heartbeat, "raft heartbeat and election timeout")
	return c
}

// config is the configuration the flags give, without Auth, Datasets,
// JobSpecs and Logger. With no flag set it is coordinator.DefaultConfig.
func (c *coordinatorFlags) config() coordinator.Config {
	cfg, def := c.cfg, coordinator.DefaultConfig()
	cfg.Gossip.ProbeInterval, cfg.Gossip.SuspicionMult = c.probe, c.suspicion
	cfg.Gossip.ProbeTimeout = min(def.Gossip.ProbeTimeout, c.probe/2)
	cfg.Raft.Heartbeat, cfg.Raft.Election = c.raftTimeout, c.raftTimeout
	cfg.Raft.LeaderLease = min(def.Raft.LeaderLease, c.raftTimeout/2)
	return cfg
}

// storeDatasets looks datasets up in the store through their manifests,
// which are written last: a dataset without one is not published.
type storeDatasets struct{ c *storage.Client }

var (
	_ coordinator.DatasetChecker   = storeDatasets{}
	_ coordinator.DatasetSuggester = storeDatasets{}
	_ coordinator.SpecRules        = jobspec.Rules{}
)

// SuggestDatasets lists the published datasets close to a missing name.
func (s storeDatasets) SuggestDatasets(ctx context.Context, missing string) []string {
	return suggestDatasets(ctx, s.c, missing)
}

func (s storeDatasets) LookupDataset(ctx context.Context, name string) (coordinator.DatasetInfo, bool, error) {
	m, err := dataset.LoadManifest(ctx, s.c, name)
	if errors.Is(err, dataset.ErrDatasetNotFound) {
		return coordinator.DatasetInfo{}, false, nil
	}
	if err != nil {
		return coordinator.DatasetInfo{}, false, err
	}
	return coordinator.DatasetInfo{Rows: m.Rows, D: m.D, Mean: m.Mean, Std: m.Std}, true, nil
}
