package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dsae/dsae/storage/artifact"
)

func newModelPullCmd() *cobra.Command {
	var overwrite bool
	var s3 *s3ClientFlags
	cmd := &cobra.Command{
		Use:   "pull JOB DIR",
		Short: "Download the model a job published to S3 into DIR",
		Long: `Download the model of JOB (jobs/JOB/model/ in the bucket) into DIR.

Each file is checked against the size and SHA-256 recorded when the model was
uploaded. The files go to a temporary directory next to DIR, which is renamed
to DIR at the end: DIR either holds the whole model or is left as it was.`,
		Example: `  dsae model pull mnist-sae-1 ./model --s3-endpoint 127.0.0.1:9000`,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := s3.client()
			if err != nil {
				return err
			}
			m, err := artifact.PullModel(cmd.Context(), c, args[0], args[1], overwrite)
			if err != nil {
				return err
			}
			var total int64
			for _, f := range m.Files {
				total += f.Size
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pulled model of job %s: %d files, %d bytes -> %s\n", args[0], len(m.Files), total, args[1])
			return nil
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace DIR if it exists and is not empty")
	s3 = addS3ClientFlags(cmd.Flags())
	return cmd
}
