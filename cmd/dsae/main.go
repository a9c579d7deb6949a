// Command dsae trains sparse autoencoders, on one machine or across a
// cluster. root.go wires the whole command tree; each subcommand is built
// in its own file; this file only maps the outcome of a command to an exit
// code.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dsae/dsae/worker"
)

// Exit codes. Invalid input (flags, configs, data files) exits 2 so that
// scripts can tell a user error from a failure of the run itself.
const (
	exitOK      = 0
	exitFailure = 1
	exitInvalid = 2
	// exitInterrupted: SIGINT or SIGTERM stopped the run (128 + SIGINT, as
	// shells report it); what was done is kept (dsae train: the model so far
	// and a checkpoint).
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsae: "+oneLine(err.Error()))
		os.Exit(exitCode(err))
	}
	os.Exit(exitOK)
}

// usageError marks an error caused by what the user asked for (bad flag,
// bad config, unreadable or malformed input) rather than by the run.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// invalid wraps err so that main exits with exitInvalid.
func invalid(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

func exitCode(err error) int {
	var u usageError
	// cobra reports an unknown subcommand with a plain error.
	if errors.As(err, &u) || isInvalidInput(err) || strings.HasPrefix(err.Error(), "unknown command") {
		return exitInvalid
	}
	if errors.Is(err, worker.ErrInterrupted) {
		return exitInterrupted
	}
	return exitFailure
}

// oneLine keeps error output to a single line however the error was built.
func oneLine(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '\n' || r == '\r' {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}
