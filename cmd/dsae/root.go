package main

import (
	"errors"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/dsae/dsae/allreduce"
	"github.com/dsae/dsae/coordinator"
	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/artifact"
	"github.com/dsae/dsae/storage/datafile"
	"github.com/dsae/dsae/storage/dataset"
	"github.com/dsae/dsae/storage/s3server"
	"github.com/dsae/dsae/worker"
	"github.com/dsae/dsae/worker/jobspec"
)

// newRootCmd builds the whole command tree: every command dsae has is
// wired here, and nowhere else. Each leaf is built by its own file
// (train.go, job.go, ...); the groups that only hold subcommands are
// defined here. TestCommandTree lists the same tree, so a command that is
// built but not wired here (or wired but not listed there) fails a test.
// cobra adds, when the tree runs, help, --version (versionLine) and
// `dsae completion bash|zsh|fish|powershell`.
func newRootCmd() *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:           "dsae",
		Short:         "Train sparse autoencoders on one machine or a cluster",
		Version:       versionLine(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return invalid(err)
			}
			setupLogging(lvl)
			return nil
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return invalid(err) })
	root.SetVersionTemplate("{{.Version}}\n") // dsae --version prints what dsae version prints

	root.AddCommand(
		newTrainCmd(),
		newDemoCmd(),
		newCoordinatorCmd(),
		newWorkerCmd(),
		group(&cobra.Command{
			Use:   "job",
			Short: "Submit, list, inspect, wait for and cancel training jobs",
		},
			newJobSubmitCmd(),
			newJobLsCmd(),
			newJobStatusCmd(),
			newJobWaitCmd(),
			newJobCancelCmd(),
		),
		group(&cobra.Command{
			Use:   "dataset",
			Short: "Publish, list, inspect, verify and remove datasets in S3",
			Long: `Datasets live in the bucket under datasets/NAME/: float32 .npy shards that
numpy reads as they are, optional int32 label shards, and a manifest.json
written last, so a dataset is visible only once it is whole.`,
		},
			newDatasetPutCmd(),
			newDatasetLsCmd(),
			newDatasetShowCmd(),
			newDatasetVerifyCmd(),
			newDatasetRmCmd(),
		),
		group(&cobra.Command{
			Use:   "model",
			Short: "Inspect, export and use trained models",
		},
			newModelFeaturesCmd(),
			newModelPullCmd(),
		),
		group(&cobra.Command{
			Use:   "s3",
			Short: "Run the embedded S3-compatible object server",
		},
			newS3ServeCmd(),
		),
		group(&cobra.Command{
			Use:   "bench",
			Short: "Measure the performance of dsae's components on this machine",
		},
			newBenchAllReduceCmd(),
			newBenchAllReduceRankCmd(),
		),
		newVersionCmd(),
	)
	return root
}

// group adds subs to parent, a command that only holds subcommands.
func group(parent *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	parent.AddCommand(subs...)
	return parent
}

// invalidInputErrors are the sentinel errors of the packages below cmd
// that mean "the input was wrong" (a flag, a config, a data file, a name);
// an error wrapping any of them exits 2 (exitInvalid). One a line, by
// package.
var invalidInputErrors = []error{
	allreduce.ErrInvalidConfig,
	auth.ErrBadSecret,
	auth.ErrBadTLS,
	coordinator.ErrInvalidConfig,
	coordinator.ErrInvalidSpec,
	jobspec.ErrInvalidSpec,
	sae.ErrInvalidConfig,
	sae.ErrInvalidOptimizer,
	sae.ErrModelDir,
	sae.ErrOptimizerState,
	sae.ErrSafetensors,
	sae.ErrShape,
	s3server.ErrConfig,
	datafile.ErrBadInput,
	dataset.ErrDatasetExists,
	dataset.ErrDatasetNotFound,
	storage.ErrInvalidConfig,
	artifact.ErrInvalidJobID,
	artifact.ErrModelExists,
	worker.ErrInvalidConfig,
}

func isInvalidInput(err error) bool {
	for _, s := range invalidInputErrors {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// setupLogging logs text to a terminal and JSON otherwise.
func setupLogging(lvl slog.Level) {
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		h = slog.NewTextHandler(os.Stderr, opts)
	} else {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	slog.SetDefault(slog.New(h))
}

// exactArgs is cobra.ExactArgs with a usage error (exit code 2).
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		return invalid(cobra.ExactArgs(n)(cmd, args))
	}
}
