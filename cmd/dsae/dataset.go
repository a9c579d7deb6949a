package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dsae/dsae/storage/dataset"
)

func newDatasetPutCmd() *cobra.Command {
	var (
		opt     dataset.IngestOptions
		builtin string
		s3      *s3ClientFlags
	)
	cmd := &cobra.Command{
		Use:   "put NAME [FILE...]",
		Short: "Ingest local files (or the built-in MNIST) as dataset NAME",
		Long: `Stream the rows of FILE... (in order) into dataset NAME as float32: 2-D .npy
(float32; float64 converted; uint8 kept as 0..255, not scaled), numeric CSV
(a first line of only non-numeric fields is a header), or IDX (optionally
gzipped; bytes kept as 0..255). All files must have the same number of columns. Memory stays
bounded whatever the input size; shards are staged on local disk.

With --labels, each FILE gets a labels file (integers, one per row) stored
alongside its rows as int32 .npy shards.

With --builtin mnist, no FILE is given and two datasets are written:
NAME-train (60,000 rows) and NAME-test (10,000 rows), pixels/255, labels kept.

Nothing is published if anything fails; rerunning a failed or killed ingest
cleans up what it left. An existing NAME is an error unless --overwrite.`,
		Example: `  dsae dataset put acts layer6-*.npy --shard-rows 65536 --s3-endpoint 127.0.0.1:9000
  dsae dataset put mnist --builtin mnist --s3-endpoint 127.0.0.1:9000`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return invalid(errors.New("dataset put needs NAME"))
			}
			if builtin == "" && len(args) < 2 {
				return invalid(errors.New("dataset put needs NAME and at least one FILE (or --builtin mnist)"))
			}
			if builtin != "" && len(args) > 1 {
				return invalid(errors.New("--builtin takes no FILE arguments"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if builtin != "" && builtin != "mnist" {
				return invalid(fmt.Errorf("--builtin %q unknown; want mnist", builtin))
			}
			if err := dataset.ValidateDatasetName(args[0]); err != nil {
				return err
			}
			c, err := s3.client()
			if err != nil {
				return err
			}
			if err := c.EnsureBucket(cmd.Context()); err != nil {
				return err
			}
			start := time.Now()
			var ms []*dataset.Manifest
			if builtin != "" {
				ms, err = dataset.IngestMNIST(cmd.Context(), c, args[0], opt)
			} else {
				var m *dataset.Manifest
				m, err = dataset.Ingest(cmd.Context(), c, args[0], args[1:], opt)
				ms = append(ms, m)
			}
			if err != nil {
				return err
			}
			secs := time.Since(start).Seconds()
			var total int64
			for _, m := range ms {
				fmt.Fprintf(cmd.OutOrStdout(), "published dataset %s: %d rows × %d, %d shards, %d bytes\n",
					m.Name, m.Rows, m.D, len(m.Shards), m.DataBytes())
				total += m.DataBytes()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ingested %d bytes in %.1fs (%.1f MB/s)\n", total, secs, float64(total)/1e6/secs)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opt.Format, "format", "", "input format: npy, csv or idx (default: from each file's extension)")
	f.Int64Var(&opt.ShardRows, "shard-rows", 0, "rows per shard (default: about 64 MiB per shard)")
	f.IntVar(&opt.ChunkRows, "chunk-rows", 0, "rows per chunk, the unit of ranged reads and shuffling (default: about 512 KiB, a power of two)")
	f.BoolVar(&opt.Overwrite, "overwrite", false, "replace an existing dataset of the same name")
	f.StringVar(&opt.TempDir, "tmp-dir", "", "directory for staging shards before upload (default: the system temp dir)")
	f.StringVar(&builtin, "builtin", "", "ingest a built-in dataset instead of files: mnist")
	f.StringSliceVar(&opt.Labels, "labels", nil, "labels files, one per FILE in the same order (.npy integer (rows,), one-column .csv, or IDX)")
	s3 = addS3ClientFlags(f)
	return cmd
}

func newDatasetLsCmd() *cobra.Command {
	var s3 *s3ClientFlags
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the published datasets",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := s3.client()
			if err != nil {
				return err
			}
			names, err := dataset.ListDatasets(cmd.Context(), c)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROWS\tD\tSHARDS\tBYTES\tLABELS\tCREATED")
			for _, n := range names {
				m, err := dataset.LoadManifest(cmd.Context(), c, n)
				if err != nil {
					return err
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%v\t%s\n", m.Name, m.Rows, m.D, len(m.Shards), m.DataBytes(),
					m.HasLabels, m.Created.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	s3 = addS3ClientFlags(cmd.Flags())
	return cmd
}

func newDatasetShowCmd() *cobra.Command {
	var (
		asJSON bool
		s3     *s3ClientFlags
	)
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Describe a dataset (--json prints its whole manifest)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := s3.client()
			if err != nil {
				return err
			}
			m, err := dataset.LoadManifest(cmd.Context(), c, args[0])
			if err != nil {
				return withSuggestions(cmd.Context(), c, "dataset "+args[0], args[0], err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(m)
			}
			fmt.Fprintf(out, "dataset %s\n  rows %d, d %d, dtype %s, chunk rows %d, labels %v\n  source %s %v\n  created %s\n",
				m.Name, m.Rows, m.D, m.Dtype, m.ChunkRows, m.HasLabels, m.Source.Format, m.Source.Files, m.Created.Format(time.RFC3339))
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  SHARD\tROWS\tBYTES\tCHUNKS\tSHA256")
			for _, s := range m.Shards {
				fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\n", s.Key, s.Rows, s.Bytes, len(s.ChunkCRC32C), s.SHA256)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the manifest as JSON")
	s3 = addS3ClientFlags(cmd.Flags())
	return cmd
}

func newDatasetVerifyCmd() *cobra.Command {
	var s3 *s3ClientFlags
	cmd := &cobra.Command{
		Use:   "verify NAME",
		Short: "Read a whole dataset and check every object against its manifest",
		Long: `Download every shard and labels object of dataset NAME and check its size,
SHA-256 and the CRC32C of every chunk against the manifest. The first
mismatch is reported with its shard and chunk.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := s3.client()
			if err != nil {
				return err
			}
			m, err := dataset.VerifyDataset(cmd.Context(), c, args[0])
			if err != nil {
				return withSuggestions(cmd.Context(), c, "dataset "+args[0], args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dataset %s verified: %d shards, %d rows, %d bytes\n", m.Name, len(m.Shards), m.Rows, m.DataBytes())
			return nil
		},
	}
	s3 = addS3ClientFlags(cmd.Flags())
	return cmd
}

func newDatasetRmCmd() *cobra.Command {
	var s3 *s3ClientFlags
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a dataset (unpublished first, then its objects deleted)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := s3.client()
			if err != nil {
				return err
			}
			if err := dataset.DeleteDataset(cmd.Context(), c, args[0]); err != nil {
				return withSuggestions(cmd.Context(), c, "dataset "+args[0], args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed dataset %s\n", args[0])
			return nil
		},
	}
	s3 = addS3ClientFlags(cmd.Flags())
	return cmd
}
