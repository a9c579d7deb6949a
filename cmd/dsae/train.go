package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/worker"
)

func init() {
	subcommands = append(subcommands, newTrainCmd)
	invalidInputErrors = append(invalidInputErrors,
		sae.ErrInvalidConfig, sae.ErrShape, sae.ErrModelDir, sae.ErrSafetensors, sae.ErrInvalidOptimizer, sae.ErrOptimizerState,
		storage.ErrBadInput, worker.ErrOptions)
}

// trainFlags are the flags of `dsae train`.
type trainFlags struct {
	model    sae.Config
	opt      sae.OptimizerConfig
	data     string
	test     string
	init     string
	out      string
	batch    int
	epochs   float64
	steps    int64
	progress time.Duration
	s3       *s3ClientFlags
}

// Defaults of `dsae train`: the classic sparse autoencoder on MNIST trained
// with Adam. They reach a test mean activation within a few percent of rho.
const (
	defaultBatch  = 256
	defaultEpochs = 20
	defaultLR     = 3e-3
)

func newTrainCmd() *cobra.Command {
	f := trainFlags{model: sae.DefaultConfig(), opt: sae.DefaultOptimizerConfig()}
	f.opt.LR = defaultLR
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a sparse autoencoder in this process and write the model to --out",
		Long: `Train a sparse autoencoder on one machine.

The model, its configuration and its metrics are written to --out:
  sae.safetensors  W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc, b_dec (SAELens layout)
  cfg.json         architecture, d_in, d_sae, dtype and dsae's full config
  metrics.json     final train and test metrics, steps, samples/s
  history.json     the loss curve (see 'dsae model features --loss-png')`,
		Example: `  dsae train --data mnist --hidden 196 --sparsity kl --rho 0.1 --beta 3 --weight-decay 3e-3
  dsae train --data acts.npy --activation topk --sparsity topk --k 32 --output linear --hidden 4096
  dsae train --data mnist --init out/ --steps 100 --lr 1e-4 --out out-finetuned/`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrain(cmd, &f)
		},
	}
	fl := cmd.Flags()
	c := &f.model
	fl.IntVar(&c.H, "hidden", c.H, "hidden size h (number of latents)")
	fl.StringVar(&c.Activation, "activation", c.Activation, "hidden activation: sigmoid | relu | topk")
	fl.StringVar(&c.Output, "output", c.Output, "output activation: sigmoid (data in [0,1]) | linear")
	fl.StringVar(&c.Sparsity, "sparsity", c.Sparsity, "sparsity penalty: kl | l1 | topk | none")
	fl.Float64Var(&c.Rho, "rho", c.Rho, "kl: target mean activation ρ in (0,1)")
	fl.Float64Var(&c.Beta, "beta", c.Beta, "kl: weight β >= 0 of the KL term")
	fl.Float64Var(&c.L1, "l1", c.L1, "l1: penalty λ₁ >= 0 on activations")
	fl.BoolVar(&c.L1DecoderNorm, "l1-decoder-norm", c.L1DecoderNorm, "l1: weight each |a_j| by the norm of decoder column j")
	fl.IntVar(&c.K, "k", c.K, "topk: active latents per row, in [1, hidden]")
	fl.IntVar(&c.AuxK, "aux-k", c.AuxK, "topk: dead latents used by the auxiliary loss (0 = off)")
	fl.Float64Var(&c.AuxCoef, "aux-coef", c.AuxCoef, "topk: weight of the auxiliary loss")
	fl.IntVar(&c.DeadWindow, "dead-window", c.DeadWindow, "steps without activation after which a latent counts as dead")
	fl.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "λ >= 0 of (λ/2)(‖W_enc‖²+‖W_dec‖²); biases are not decayed")
	fl.BoolVar(&c.Tied, "tied", c.Tied, "tie the decoder to the encoder (W_dec = W_encᵀ)")
	fl.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the initialisation and of the data order")
	o := &f.opt
	fl.StringVar(&o.Kind, "optimizer", o.Kind, "optimizer: adam | sgd")
	fl.Float64Var(&o.LR, "lr", o.LR, "learning rate")
	fl.Float64Var(&o.Momentum, "momentum", o.Momentum, "sgd: momentum in [0,1)")
	fl.StringVar(&o.Schedule, "schedule", o.Schedule, "learning-rate schedule: constant | cosine (linear warmup, then cosine decay)")
	fl.IntVar(&o.WarmupSteps, "warmup", o.WarmupSteps, "warmup steps (linear ramp of the learning rate)")
	fl.Float64Var(&o.MinLR, "min-lr", o.MinLR, "cosine: final learning rate")
	fl.Float64Var(&o.ClipNorm, "clip-norm", o.ClipNorm, "clip the gradient's L2 norm to this value (0 = off)")
	fl.IntVar(&f.batch, "batch", defaultBatch, "global batch size (rows per step)")
	fl.Float64Var(&f.epochs, "epochs", defaultEpochs, "passes over the training data (ignored when --steps is set)")
	fl.Int64Var(&f.steps, "steps", 0, "number of steps (overrides --epochs)")
	fl.StringVar(&f.data, "data", "mnist", "training data: mnist | FILE.npy | FILE.csv | s3://[BUCKET/]DATASET (streamed with ranged reads)")
	fl.StringVar(&f.test, "test", "", "test data, as --data (default for --data mnist: the MNIST test set)")
	fl.StringVar(&f.init, "init", "", "start from the model in this directory (continue training or fine-tune)")
	fl.StringVar(&f.out, "out", "out", "directory to write the model into")
	fl.DurationVar(&f.progress, "progress", 2*time.Second, "interval between progress lines (0 = none)")
	f.s3 = addS3ClientFlags(fl)
	return cmd
}

func runTrain(cmd *cobra.Command, f *trainFlags) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	if f.steps < 0 || f.epochs <= 0 {
		return invalid(fmt.Errorf("--steps = %d and --epochs = %g: steps must be >= 0 and epochs > 0", f.steps, f.epochs))
	}
	data, err := openTrainData(ctx, f)
	if err != nil {
		return err
	}
	defer data.close()
	model, err := buildModel(cmd, f, data.d)
	if err != nil {
		return err
	}
	if data.test != nil && data.test.D != data.d {
		return invalid(fmt.Errorf("--test %s has d = %d but --data %s has d = %d", f.test, data.test.D, f.data, data.d))
	}
	if f.batch < 1 || int64(f.batch) > data.rows {
		return invalid(fmt.Errorf("--batch = %d out of range [1, %d] (rows of %s)", f.batch, data.rows, f.data))
	}
	spe := (data.rows + int64(f.batch) - 1) / int64(f.batch)
	steps := f.steps
	if steps == 0 {
		steps = max(1, int64(f.epochs*float64(spe)+0.5))
	}
	if f.opt.TotalSteps == 0 {
		f.opt.TotalSteps = int(steps)
	}
	if err := f.opt.Validate(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "training %s: d=%d h=%d %s/%s sparsity=%s on %s (%d rows), batch %d, %d steps (%.2f epochs), %s lr=%g\n",
		archName(model.Cfg), model.Cfg.D, model.Cfg.H, model.Cfg.Activation, model.Cfg.Output, model.Cfg.Sparsity,
		f.data, data.rows, f.batch, steps, float64(steps)/float64(spe), f.opt.Kind, f.opt.LR)

	last := time.Now()
	run := worker.LocalRun{
		Model: model, Optimizer: f.opt, Source: data.source, Train: data.train, Test: data.test,
		Batch: f.batch, Steps: steps, Seed: model.Cfg.Seed,
		Progress: func(r worker.StepResult, p worker.Progress) {
			if f.progress <= 0 || (time.Since(last) < f.progress && p.Done != p.Total) {
				return
			}
			last = time.Now()
			printProgress(stderr, r, p)
		},
	}
	rep, err := run.Run(ctx)
	if err != nil {
		return err
	}
	if err := model.Save(f.out); err != nil {
		return fmt.Errorf("write model to %s: %w", f.out, err)
	}
	if err := sae.WriteJSON(f.out, sae.MetricsFile, rep); err != nil {
		return err
	}
	if err := sae.WriteJSON(f.out, historyFile, rep.History); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "train: mse %.5f  fvu %.4f  l0 %.2f  mean activation %.4f  dead %.3f  loss %.4f\n",
		rep.Train.MSE, rep.Train.FVU, rep.Train.L0, rep.Train.MeanActivation, rep.Train.DeadFraction, rep.Train.Loss)
	if rep.Test != nil {
		fmt.Fprintf(stderr, "test:  mse %.5f  fvu %.4f  l0 %.2f  mean activation %.4f  dead %.3f  loss %.4f\n",
			rep.Test.MSE, rep.Test.FVU, rep.Test.L0, rep.Test.MeanActivation, rep.Test.DeadFraction, rep.Test.Loss)
	}
	fmt.Fprintf(stderr, "%d steps at %.0f samples/s; model written to %s\n", rep.Steps, rep.SamplesPerSec, f.out)
	return nil
}

// trainData is what --data and --test resolve to.
type trainData struct {
	source worker.Source    // nil: train from memory
	train  *storage.Dataset // in memory, for training and evaluation (nil for S3)
	test   *storage.Dataset
	d      int
	rows   int64
	close  func()
}

// openTrainData opens --data and --test. Local files and MNIST are loaded
// into memory; an s3:// training set is streamed through a prefetching
// reader, for training and for the final train metrics alike, and never
// loaded whole; an s3:// test set is loaded into memory.
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
	if strings.HasPrefix(f.data, "s3://") {
		name, err := s3Dataset(f.data)
		if err != nil {
			return nil, err
		}
		r, err := storage.OpenReader(ctx, client, name, storage.ReaderOptions{})
		if err != nil {
			return nil, err
		}
		td.close = func() { r.Close() }
		m := r.Manifest()
		td.source, td.d, td.rows = worker.ReaderSource{R: r}, m.D, m.Rows
	} else {
		ds, err := storage.Open(f.data)
		if err != nil {
			return nil, err
		}
		td.train, td.d, td.rows = ds, ds.D, int64(ds.Rows)
	}
	testRef := f.test
	if testRef == "" && (f.data == "mnist" || f.data == "mnist:train") {
		testRef = "mnist:test"
	}
	var err error
	switch {
	case testRef == "":
	case strings.HasPrefix(testRef, "s3://"):
		var name string
		if name, err = s3Dataset(testRef); err == nil {
			td.test, err = storage.LoadDataset(ctx, client, name)
		}
	default:
		td.test, err = storage.Open(testRef)
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
const historyFile = "history.json"

// buildModel creates the model from the flags, or loads --init and applies
// the flags that were set explicitly (those that do not change shapes).
func buildModel(cmd *cobra.Command, f *trainFlags, d int) (*sae.Model, error) {
	if f.init == "" {
		f.model.D = d
		return sae.New(f.model)
	}
	m, err := sae.Load(f.init)
	if err != nil {
		return nil, err
	}
	if m.Cfg.D != d {
		return nil, invalid(fmt.Errorf("--init %s: model has d = %d but --data %s has d = %d", f.init, m.Cfg.D, f.data, d))
	}
	fl := cmd.Flags()
	cfg := m.Cfg
	shapeFlags := []struct {
		name       string
		got, initV any
	}{
		{"hidden", f.model.H, m.Cfg.H},
		{"tied", f.model.Tied, m.Cfg.Tied},
	}
	for _, s := range shapeFlags {
		if fl.Changed(s.name) && s.got != s.initV {
			return nil, invalid(fmt.Errorf("--%s = %v disagrees with the model in --init %s (%v)", s.name, s.got, f.init, s.initV))
		}
	}
	override := map[string]func(){
		"activation": func() { cfg.Activation = f.model.Activation }, "output": func() { cfg.Output = f.model.Output },
		"sparsity": func() { cfg.Sparsity = f.model.Sparsity }, "rho": func() { cfg.Rho = f.model.Rho },
		"beta": func() { cfg.Beta = f.model.Beta }, "l1": func() { cfg.L1 = f.model.L1 },
		"l1-decoder-norm": func() { cfg.L1DecoderNorm = f.model.L1DecoderNorm }, "k": func() { cfg.K = f.model.K },
		"aux-k": func() { cfg.AuxK = f.model.AuxK }, "aux-coef": func() { cfg.AuxCoef = f.model.AuxCoef },
		"dead-window": func() { cfg.DeadWindow = f.model.DeadWindow }, "weight-decay": func() { cfg.WeightDecay = f.model.WeightDecay },
		"seed": func() { cfg.Seed = f.model.Seed },
	}
	for name, apply := range override {
		if fl.Changed(name) {
			apply()
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
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
