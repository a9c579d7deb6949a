package main

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestCommandTree walks the tree newRootCmd builds. The list of command
// paths is written out here on purpose, as the list of what dsae offers: a
// command listed here but not wired into root.go fails, and so does one
// wired there but not listed. (cobra adds "help" and "completion" when the
// tree is executed; they are not part of it here.)
func TestCommandTree(t *testing.T) {
	want := []string{
		"dsae",
		"dsae bench",
		"dsae bench allreduce",
		"dsae bench allreduce-rank",
		"dsae coordinator",
		"dsae dataset",
		"dsae dataset ls",
		"dsae dataset put",
		"dsae dataset rm",
		"dsae dataset show",
		"dsae dataset verify",
		"dsae demo",
		"dsae job",
		"dsae job cancel",
		"dsae job ls",
		"dsae job status",
		"dsae job submit",
		"dsae job wait",
		"dsae model",
		"dsae model features",
		"dsae model pull",
		"dsae s3",
		"dsae s3 serve",
		"dsae train",
		"dsae version",
		"dsae worker",
	}
	var got []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := c.CommandPath()
		got = append(got, path)
		if strings.TrimSpace(c.Short) == "" {
			t.Errorf("%s: no Short help", path)
		}
		runs := c.RunE != nil || c.Run != nil
		switch {
		case c.HasSubCommands() && runs:
			t.Errorf("%s both runs and holds subcommands", path)
		case !c.HasSubCommands() && !runs:
			t.Errorf("%s neither runs nor holds subcommands", path)
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("%s --%s: no usage text", path, f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("command paths differ from the list in this test\n got: %q\nwant: %q", got, want)
	}
}

// TestInvalidInputErrors checks the classification list: every entry is a
// real sentinel, listed once, and each one (wrapped, as callers return
// them) exits 2.
func TestInvalidInputErrors(t *testing.T) {
	for i, s := range invalidInputErrors {
		if s == nil {
			t.Fatalf("invalidInputErrors[%d] is nil", i)
		}
		if slices.Index(invalidInputErrors, s) != i {
			t.Errorf("%v is listed twice", s)
		}
		if got := exitCode(errors.Join(errors.New("context"), s)); got != exitInvalid {
			t.Errorf("an error wrapping %v exits %d, want %d", s, got, exitInvalid)
		}
	}
	if got := exitCode(errors.New("disk on fire")); got != exitFailure {
		t.Errorf("an unclassified error exits %d, want %d", got, exitFailure)
	}
}
