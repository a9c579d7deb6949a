package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dsae/dsae/allreduce"
	"github.com/dsae/dsae/coordinator/client"
	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/worker"
	"github.com/dsae/dsae/worker/cpuset"
)

func newWorkerCmd() *cobra.Command {
	var (
		cfg         worker.AgentConfig
		probe       time.Duration
		suspicion   int
		tracePath   string
		metricsAddr string
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker: join the cluster and train the jobs the coordinators assign",
		Long: `Run one worker. It joins the gossip pool of the coordinators given with
--coordinators, registers, and trains whatever job the coordinators assign it,
together with the other workers of the job's current generation (ring
all-reduce over gRPC). Datasets, checkpoints and models are read from and
written to the S3 store (--s3-endpoint or $DSAE_S3_ENDPOINT, credentials from
the AWS variables). It leaves the pool and exits on SIGTERM or SIGINT.`,
		Example: `  export DSAE_CLUSTER_SECRET=... DSAE_S3_ENDPOINT=127.0.0.1:9000 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
  dsae worker --id w1 --coordinators 127.0.0.1:7101 --grpc-addr 127.0.0.1:7301 --gossip-addr 127.0.0.1:7401 --data-dir ./w1`,
		Args: exactArgs(0),
	}
	f := cmd.Flags()
	f.SetNormalizeFunc(coordinatorsAlias)
	sec := addSecurityFlags(f)
	s3 := addS3ClientFlags(f)
	f.StringVar(&cfg.ID, "id", "", "unique id of this worker (required)")
	f.StringSliceVar(&cfg.Coordinators, "coordinators", envList(envCoordinator), "gRPC address(es) of any coordinator(s), comma-separated (env "+envCoordinator+")")
	f.StringVar(&cfg.GRPCAddr, "grpc-addr", "127.0.0.1:7300", "host:port of this worker's gRPC server (ring all-reduce, state transfer, health)")
	f.StringVar(&cfg.GossipAddr, "gossip-addr", "127.0.0.1:7400", "host:port of membership gossip")
	f.StringVar(&cfg.DataDir, "data-dir", "", "scratch directory (required)")
	addMetricsFlag(f, &metricsAddr)
	f.DurationVar(&cfg.RingTimeout, "ring-timeout", allreduce.DefaultConfig().Timeout, "a ring call without progress for this long fails (hung peer)")
	f.DurationVar(&cfg.ProgressEvery, "progress-every", time.Second, "interval between progress reports (rank 0)")
	def := client.DefaultGossipTimings()
	f.DurationVar(&probe, "gossip-probe-interval", def.ProbeInterval, "failure-detector probe interval")
	f.IntVar(&suspicion, "gossip-suspicion-mult", def.SuspicionMult, "suspicion timeout multiplier of the failure detector")
	threads := addThreadsFlag(f)
	cpus := addCPUsFlag(f)
	f.StringVar(&tracePath, "trace-rows", "", "debug: append one JSON line per step read and applied (feature 0 of each row) to this file")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		pinned, err := cpus.apply()
		if err != nil {
			return err
		}
		if err := threads.apply(); err != nil {
			return err
		}
		a, err := sec.config()
		if err != nil {
			return err
		}
		cfg.Auth = a
		if cfg.Store, err = s3.client(); err != nil {
			return err
		}
		cfg.Gossip = def
		cfg.Gossip.ProbeInterval, cfg.Gossip.SuspicionMult = probe, suspicion
		cfg.Gossip.ProbeTimeout = min(def.ProbeTimeout, probe/2)
		if cfg.DataDir != "" {
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return err
			}
		}
		if tracePath != "" {
			tf, err := os.OpenFile(tracePath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				return invalid(err)
			}
			defer tf.Close()
			cfg.Trace = tf
		}
		reg, ms, err := startRoleMetrics(metricsAddr)
		if err != nil {
			return err
		}
		defer ms.Close()
		cfg.Registerer = reg
		cfg.WriteModelFiles = writeModelExtras
		cfg.Logger = slog.Default()
		ag, err := worker.NewAgent(cfg)
		if err != nil {
			return err
		}
		where := ""
		if pinned != nil {
			where = ", CPUs " + cpuset.Format(pinned)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "dsae worker %s: grpc %s, gossip %s, %d kernel threads (GOMAXPROCS %d)%s, blas %s\n", cfg.ID, ag.GRPCAddr(), cfg.GossipAddr, sae.Threads(), runtime.GOMAXPROCS(0), where, sae.Backend())
		return ag.Run(cmd.Context())
	}
	return cmd
}

// coordinatorsAlias lets `dsae worker` take --coordinator (the spelling of
// the job commands) for --coordinators.
func coordinatorsAlias(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	if name == "coordinator" {
		name = "coordinators"
	}
	return pflag.NormalizedName(name)
}

func envList(name string) []string {
	if v := os.Getenv(name); v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

// writeModelExtras completes a model directory that holds the model,
// metrics.json and history.json (`dsae train`'s and the workers'): the
// definitions in metrics.json, and the pictures.
func writeModelExtras(dir string, m *sae.Model) error {
	if err := addMetricDefinitions(dir, m.Cfg); err != nil {
		return err
	}
	return modelPictures(dir, m)
}

// modelPictures adds features.png (the learned features as a grid of
// images, when d is a square) and loss.png (the loss curve) to a model
// directory.
func modelPictures(dir string, m *sae.Model) error {
	if tw, th, err := tileShape("", m.Cfg.D); err == nil {
		if err := writeFeatures(filepath.Join(dir, "features.png"), dir, m, tw, th, 2, 0); err != nil {
			return err
		}
	} else if err := os.Remove(filepath.Join(dir, "features.png")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err // a previous model's picture in a directory written with --overwrite
	}
	return plotLoss(filepath.Join(dir, historyFile), filepath.Join(dir, "loss.png"), lossScaleLog)
}
