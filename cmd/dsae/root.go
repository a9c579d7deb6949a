package main

import (
	"errors"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// invalidInputErrors lists the sentinel errors of the packages below cmd
// that mean "the input was wrong"; errors wrapping any of them exit 2.
var invalidInputErrors []error

func isInvalidInput(err error) bool {
	for _, s := range invalidInputErrors {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func newRootCmd() *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:           "dsae",
		Short:         "Train sparse autoencoders on one machine or a cluster",
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
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

// subcommands is filled by the init functions of the per-command files, so
// adding a command touches only its own file.
var subcommands []func() *cobra.Command

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
