package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/datafile"
	"github.com/dsae/dsae/storage/dataset"
	"github.com/dsae/dsae/worker"
	"github.com/dsae/dsae/worker/jobspec"
)

// trainFlags are the flags of `dsae train`: the run's settings in the
// vocabulary of jobspec (shared with `dsae job submit`) and the flags of a
// local run.
type trainFlags struct {
	spec      jobspec.Spec
	init      string
	out       string
	overwrite bool
	asJSON    bool
	progress  time.Duration
	s3        *s3ClientFlags
	threads   *threadsFlag
	resume    string
	norm      string
	// resumed are the settings of the checkpoint --resume names.
	resumed *trainSettings
}

// trainSettings are what a checkpoint of `dsae train` records to resume
// with: the run's spec, the scaling of its data and the test-curve points
// evaluated so far.
type trainSettings struct {
	Spec       jobspec.Spec        `json:"spec"`
	Normalize  string              `json:"normalize"`
	TestPoints map[int64]testPoint `json:"test_points,omitempty"`
}

func newTrainCmd() *cobra.Command {
	f := trainFlags{spec: jobspec.Default()}
	f.spec.Data = "mnist"
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a sparse autoencoder in this process and write the model to --out",
		Long: `Train a sparse autoencoder on one machine.

The model, its configuration and its metrics are written to --out:
  sae.safetensors  W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc, b_dec (SAELens layout)
  cfg.json         architecture, d_in, d_sae, dtype and dsae's config (the settings that apply)
  metrics.json     final train and test metrics, steps, samples/s, and "definitions": what each one measures
  history.json     the loss curve, with the test split's loss at some points (see 'dsae model features --loss-png')
  features.png     the encoder's features as images (when d is a square)
  loss.png         the loss curve

Progress and the results go to stderr; with --json, stdout gets one JSON
document: {"out": DIR, "metrics": the content of metrics.json}.

Metrics (metrics.json; the progress lines show loss, mse and l0 of the last
batch):
` + metricsHelp(),
		Example: `  dsae train --data mnist --hidden 196 --sparsity kl --rho 0.1 --beta 3 --weight-decay 3e-3
  dsae train --data acts.npy --activation topk --sparsity topk --k 32 --aux-k 256 --output linear --hidden 4096
  dsae train --data mnist --schedule cosine --warmup-steps 200 --min-lr 1e-5 --clip-norm 1 --batch 128
  dsae train --data mnist --init out/ --steps 100 --lr 1e-4 --out out-finetuned/`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrain(cmd, &f)
		},
	}
	fl := cmd.Flags()
	jobspec.AddFlags(fl, &f.spec)
	jobspec.AddDataFlags(fl, &f.spec,
		"training data: mnist | FILE.npy | FILE.csv | s3://[BUCKET/]DATASET (streamed with ranged reads)",
		"test data, as --data (default for --data mnist: the MNIST test set)")
	fl.StringVar(&f.init, "init", "", "start from the model in this directory (continue training or fine-tune)")
	fl.StringVar(&f.out, "out", "out", "directory to write the model into: absent or empty, checked before training starts")
	fl.BoolVar(&f.overwrite, "overwrite", false, "write into a non-empty --out, replacing the model files there (other files are left alone)")
	fl.DurationVar(&f.progress, "progress", 2*time.Second, "interval between progress lines (0 = none)")
	fl.BoolVar(&f.asJSON, "json", false, "print the result as one JSON document on stdout (progress stays on stderr)")
	f.s3 = addS3ClientFlags(fl)
	f.threads = addThreadsFlag(fl)
	jobspec.AddCheckpointFlag(fl, &f.spec)
	fl.StringVar(&f.norm, "normalize", normNone, "scale each feature before training: none, minmax (to [0, 1], for --output sigmoid) or standardize (mean 0, std 1; the store's manifest gives them for s3:// data); recorded in OUT/"+normalizationFile)
	fl.StringVar(&f.resume, "resume", "", "continue the run whose checkpoint is in this directory (OUT/checkpoint of an interrupted or checkpointed run), with its settings")
	return cmd
}

func runTrain(cmd *cobra.Command, f *trainFlags) (err error) {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	spec := &f.spec
	if err := f.threads.apply(); err != nil {
		return err
	}
	resume, err := loadResume(cmd, f)
	if err != nil {
		return err
	}
	if spec.CheckpointEvery < 0 {
		return invalid(fmt.Errorf("--checkpoint-every = %d out of range [0, …) (0: only when interrupted)", spec.CheckpointEvery))
	}
	if f.init == "" {
		// Before any data is read; `dsae job submit` refuses the same
		// settings for the same reason.
		if err := spec.Validate(); err != nil {
			return jobspec.Explain(err, jobspec.Flags)
		}
	}
	undoOut, err := prepareTrainOut(f.out, f.overwrite)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			undoOut() // removes only the directories it made that are still empty
		}
	}()
	data, err := openTrainData(ctx, f)
	if err != nil {
		return err
	}
	defer data.close()
	model, err := buildModel(cmd, f, data.d)
	if err != nil {
		return err
	}
	spec.Model = model.Cfg
	if data.test != nil && data.test.D != data.d {
		return invalid(fmt.Errorf("--test %s has d = %d but --data %s has d = %d", spec.Test, data.test.D, spec.Data, data.d))
	}
	norm, err := normalize(f.norm, spec.Data, model.Cfg, data)
	if err != nil {
		return err
	}
	if int64(spec.Batch) > data.rows {
		return invalid(fmt.Errorf("--batch = %d out of range [1, %d] (rows of %s)", spec.Batch, data.rows, spec.Data))
	}
	spec.Steps = spec.StepsFor(data.rows)
	if err := spec.Validate(); err != nil { // now with d and the step count
		return jobspec.Explain(err, jobspec.Flags)
	}
	opt := spec.OptimizerConfig()
	spe := (data.rows + int64(spec.Batch) - 1) / int64(spec.Batch)
	fmt.Fprintf(stderr, "training %s: d=%d hidden=%d %s/%s sparsity=%s on %s (%d rows), batch %d, %d steps (%.2f epochs), %s lr=%g, blas %s\n",
		archName(model.Cfg), model.Cfg.D, model.Cfg.H, model.Cfg.Activation, model.Cfg.Output, model.Cfg.Sparsity,
		spec.Data, data.rows, spec.Batch, spec.Steps, float64(spec.Steps)/float64(spe), opt.Kind, opt.LR, sae.Backend())

	ckptDir := filepath.Join(f.out, "checkpoint")
	last := time.Now()
	every := max(1, spe/20) // LocalRun's default history interval, set here for the test curve's points
	curve := newTestCurve(data.test, model, spec.Steps, every)
	if f.resumed != nil {
		curve.restore(f.resumed.TestPoints)
	}
	run := worker.LocalRun{
		Model: model, Optimizer: opt, Source: data.source, Train: data.train, Test: data.test,
		Batch: spec.Batch, Steps: spec.Steps, Seed: model.Cfg.Seed, HistoryEvery: every,
		Resume: resume, CheckpointEvery: spec.CheckpointEvery,
		Checkpoint: func(c *worker.LocalCheckpoint) error {
			b, err := json.Marshal(trainSettings{Spec: *spec, Normalize: f.norm, TestPoints: curve.pointsSoFar()})
			if err != nil {
				return err
			}
			c.Settings = b
			return worker.SaveLocalCheckpoint(ckptDir, c)
		},
		Progress: func(r worker.StepResult, p worker.Progress) {
			curve.observe(r.Step)
			if f.progress <= 0 || (time.Since(last) < f.progress && p.Done != p.Total) {
				return
			}
			last = time.Now()
			printProgress(stderr, r, p)
		},
	}
	rep, err := run.Run(ctx)
	if errors.Is(err, worker.ErrInterrupted) {
		// The model holds the parameters of the last completed step, and
		// the checkpoint was written: keep both.
		if serr := model.Save(f.out); serr != nil {
			return fmt.Errorf("%w; writing the model so far to %s failed: %w", err, f.out, serr)
		}
		if serr := writeNormalization(f.out, norm); serr != nil {
			return fmt.Errorf("%w; writing %s failed: %w", err, normalizationFile, serr)
		}
		fmt.Fprintf(stderr, "stopped: the model so far is in %s and its checkpoint in %s; continue with:\n  dsae train --resume %s --out DIR\n",
			f.out, ckptDir, ckptDir)
		return err
	}
	if err != nil {
		return err
	}
	if err := model.Save(f.out); err != nil {
		return fmt.Errorf("write model to %s: %w", f.out, err)
	}
	if err := sae.WriteJSON(f.out, sae.MetricsFile, rep); err != nil {
		return err
	}
	if err := writeNormalization(f.out, norm); err != nil {
		return err
	}
	if err := sae.WriteJSON(f.out, historyFile, curve.history(rep.History)); err != nil {
		return err
	}
	if err := writeModelExtras(f.out, model); err != nil {
		return fmt.Errorf("%s: %w", f.out, err)
	}
	fmt.Fprintf(stderr, "train: mse %.5f  fvu %.4f  l0 %.2f  mean activation %.4f  dead %.3f  loss %.4f\n",
		rep.Train.MSE, rep.Train.FVU, rep.Train.L0, rep.Train.MeanActivation, rep.Train.DeadFraction, rep.Train.Loss)
	if rep.Test != nil {
		fmt.Fprintf(stderr, "test:  mse %.5f  fvu %.4f  l0 %.2f  mean activation %.4f  dead %.3f  loss %.4f\n",
			rep.Test.MSE, rep.Test.FVU, rep.Test.L0, rep.Test.MeanActivation, rep.Test.DeadFraction, rep.Test.Loss)
	}
	fmt.Fprintf(stderr, "%d steps at %.0f samples/s; model written to %s\n", rep.Steps, rep.SamplesPerSec, f.out)
	if f.asJSON {
		return printTrainJSON(cmd.OutOrStdout(), f.out)
	}
	return nil
}

// printTrainJSON writes the result of `dsae train --json`: the model
// directory and its metrics.json, as one JSON document.
func printTrainJSON(w io.Writer, dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, sae.MetricsFile))
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(struct {
		Out     string          `json:"out"`
		Metrics json.RawMessage `json:"metrics"`
	}{dir, raw}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// trainData is what --data and --test resolve to.
type trainData struct {
	source worker.Source    // nil: train from memory
	train  *datafile.Matrix // in memory, for training and evaluation (nil for S3)
	test   *datafile.Matrix
	// manifest describes an s3:// training set (nil for data in memory).
	manifest *dataset.Manifest
	d        int
	rows     int64
	close    func()
}

// openTrainData opens --data and --test. Local files and MNIST are loaded
// into memory; an s3:// training set is streamed through a prefetching
// reader, for training and for the final train metrics alike, and never
// loaded whole; an s3:// test set is loaded into memory.
// loadResume reads the checkpoint --resume names and replaces f's run
// settings with the ones it was written with; any flag that would change
// them is refused by name.
func loadResume(cmd *cobra.Command, f *trainFlags) (*worker.LocalCheckpoint, error) {
	if f.resume == "" {
		return nil, nil
	}
	var clash []string
	own := map[string]bool{"resume": true, "out": true, "overwrite": true, "json": true, "progress": true, "threads": true, "checkpoint-every": true}
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		if !own[fl.Name] && !strings.HasPrefix(fl.Name, "s3-") && fl.Name != "log-level" {
			clash = append(clash, "--"+fl.Name)
		}
	})
	if len(clash) > 0 {
		return nil, invalid(fmt.Errorf("--resume %s continues that run with its own settings; drop %s", f.resume, strings.Join(clash, ", ")))
	}
	c, err := worker.LoadLocalCheckpoint(f.resume)
	if err != nil {
		return nil, invalid(err)
	}
	var saved trainSettings
	if err := json.Unmarshal(c.Settings, &saved); err != nil || saved.Normalize == "" {
		return nil, invalid(fmt.Errorf("--resume %s: %w: the run settings in checkpoint.json are not those of dsae train (%v)", f.resume, worker.ErrCheckpoint, err))
	}
	every := f.spec.CheckpointEvery
	if !cmd.Flags().Changed("checkpoint-every") {
		every = saved.Spec.CheckpointEvery
	}
	f.spec, f.norm, f.resumed = saved.Spec, saved.Normalize, &saved
	f.spec.CheckpointEvery = every
	return c, nil
}

func openTrainData(ctx context.Context, f *trainFlags) (*trainData, error) {
	td := &trainData{close: func() {}}
	var client *storage.Client
	s3Dataset := func(ref string) (string, error) {
		bucket, name, err := parseS3Ref(ref)
		if err != nil {
			return "", invalid(err)
		}
		if client == nil {
			if bucket != "" {
				f.s3.bucket = bucket
			}
			if client, err = f.s3.client(); err != nil {
				return "", err
			}
		} else if bucket != "" && bucket != client.Bucket() {
			return "", invalid(fmt.Errorf("%s: --data and --test must be in the same bucket (%s)", ref, client.Bucket()))
		}
		return name, nil
	}
	if strings.HasPrefix(f.spec.Data, "s3://") {
		name, err := s3Dataset(f.spec.Data)
		if err != nil {
			return nil, err
		}
		r, err := dataset.OpenReader(ctx, client, name, dataset.ReaderOptions{})
		if err != nil {
			return nil, withSuggestions(ctx, client, "--data "+f.spec.Data, name, err)
		}
		td.close = func() { r.Close() }
		m := r.Manifest()
		td.source, td.d, td.rows, td.manifest = worker.ReaderSource{R: r}, m.D, m.Rows, m
	} else {
		ds, err := datafile.Open(f.spec.Data)
		if err != nil {
			return nil, err
		}
		td.train, td.d, td.rows = ds, ds.D, int64(ds.Rows)
	}
	testRef := f.spec.Test
	if testRef == "" && (f.spec.Data == "mnist" || f.spec.Data == "mnist:train") {
		testRef = "mnist:test"
	}
	var err error
	switch {
	case testRef == "":
	case strings.HasPrefix(testRef, "s3://"):
		var name string
		if name, err = s3Dataset(testRef); err == nil {
			td.test, err = dataset.LoadDataset(ctx, client, name)
			err = withSuggestions(ctx, client, "--test "+testRef, name, err)
		}
	default:
		td.test, err = datafile.Open(testRef)
	}
	if err != nil {
		td.close()
		return nil, err
	}
	return td, nil
}

// parseS3Ref splits s3://[BUCKET/]DATASET; the bucket is empty when the
// reference names only the dataset (then --s3-bucket applies).
func parseS3Ref(ref string) (bucket, name string, err error) {
	rest := strings.TrimPrefix(ref, "s3://")
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return "", parts[0], nil
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return parts[0], parts[1], nil
	}
	return "", "", fmt.Errorf("data reference %q: want s3://DATASET or s3://BUCKET/DATASET", ref)
}

// historyFile holds the loss curve of a training run inside the model directory.
const historyFile = worker.HistoryFile

// buildModel creates the model from the flags, or loads --init and applies
// the model flags that were set explicitly (those that do not change
// shapes).
func buildModel(cmd *cobra.Command, f *trainFlags, d int) (*sae.Model, error) {
	if f.init == "" {
		f.spec.Model.D = d
		m, err := sae.New(f.spec.Model)
		return m, jobspec.Explain(err, jobspec.Flags)
	}
	m, err := sae.Load(f.init)
	if err != nil {
		return nil, err
	}
	if m.Cfg.D != d {
		return nil, invalid(fmt.Errorf("--init %s: model has d = %d but --data %s has d = %d", f.init, m.Cfg.D, f.spec.Data, d))
	}
	fl := cmd.Flags()
	shapeFlags := []struct {
		name       string
		got, initV any
	}{
		{"hidden", f.spec.Model.H, m.Cfg.H},
		{"tied", f.spec.Model.Tied, m.Cfg.Tied},
	}
	for _, s := range shapeFlags {
		if fl.Changed(s.name) && s.got != s.initV {
			return nil, invalid(fmt.Errorf("--%s = %v disagrees with the model in --init %s (%v)", s.name, s.got, f.init, s.initV))
		}
	}
	// The model flags set on the command line override the loaded config.
	merged := f.spec
	merged.Model = m.Cfg
	if err := jobspec.Override(&merged, fl); err != nil {
		return nil, invalid(err)
	}
	cfg := merged.Model
	if err := cfg.Validate(); err != nil {
		return nil, jobspec.Explain(err, jobspec.Flags)
	}
	wEnc, wDec, bEnc, bDec := m.SAELens()
	return sae.FromSAELens(cfg, wEnc, wDec, bEnc, bDec)
}

func archName(c sae.Config) string {
	if c.Tied {
		return "tied sparse autoencoder"
	}
	return "sparse autoencoder"
}

func printProgress(w io.Writer, r worker.StepResult, p worker.Progress) {
	m := r.Metrics
	fmt.Fprintf(w, "step %*d/%d  epoch %d  loss %.4f  mse %.5f  l0 %.1f  %.0f samples/s  eta %s\n",
		len(fmt.Sprint(p.Total)), p.Done, p.Total, r.Epoch, m.Loss, m.MSE, m.L0, p.SamplesPerSec, p.ETA.Round(time.Second))
}

// noArgs rejects positional arguments with a usage error.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return invalid(errors.New("unexpected arguments: " + fmt.Sprint(args)))
	}
	return nil
}
