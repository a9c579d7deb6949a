package main

import "github.com/spf13/cobra"

func init() { subcommands = append(subcommands, newModelCmd) }

// modelSubcommands are the `dsae model ...` commands; each file that adds
// one appends its constructor here from init.
var modelSubcommands []func() *cobra.Command

func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Inspect, export and use trained models",
	}
	for _, add := range modelSubcommands {
		cmd.AddCommand(add())
	}
	return cmd
}
