package main

import "github.com/spf13/cobra"

func init() { subcommands = append(subcommands, newBenchCmd) }

// benchSubcommands are the `dsae bench ...` commands; each file that adds
// one appends its constructor here from init.
var benchSubcommands []func() *cobra.Command

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the performance of dsae's components on this machine",
	}
	for _, add := range benchSubcommands {
		cmd.AddCommand(add())
	}
	return cmd
}
