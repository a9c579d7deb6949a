package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dsae/dsae/coordinator"
	pb "github.com/dsae/dsae/coordinator/controlpb"
)

func init() { subcommands = append(subcommands, newJobCmd) }

// envCoordinator names the default coordinator addresses.
const envCoordinator = "DSAE_COORDINATOR"

// controlFlags are the flags of every command that calls the control API.
type controlFlags struct {
	addrs   []string
	timeout time.Duration
	sec     *securityFlags
}

func addControlFlags(fs *pflag.FlagSet) *controlFlags {
	f := &controlFlags{sec: addSecurityFlags(fs)}
	var def []string
	if v := os.Getenv(envCoordinator); v != "" {
		def = strings.Split(v, ",")
	}
	fs.StringSliceVar(&f.addrs, "coordinator", def, "gRPC address(es) of any coordinator(s), comma-separated (env "+envCoordinator+")")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up on the control plane after this long")
	return f
}

// client connects to the control plane; close the returned function.
func (f *controlFlags) client() (pb.ControlClient, func(), error) {
	if len(f.addrs) == 0 {
		return nil, nil, invalid(errors.New("no coordinator: give --coordinator or $" + envCoordinator))
	}
	a, err := f.sec.config()
	if err != nil {
		return nil, nil, err
	}
	conn, err := coordinator.Dial(f.addrs, a)
	if err != nil {
		return nil, nil, invalid(err)
	}
	return pb.NewControlClient(conn), func() { conn.Close() }, nil
}

// call runs fn with a control-plane client and a context bounded by
// --timeout.
func (f *controlFlags) call(cmd *cobra.Command, fn func(context.Context, pb.ControlClient) error) error {
	cl, done, err := f.client()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	return fn(ctx, cl)
}

// rpcErr turns a control-plane error into a one-line CLI error; a rejected
// argument exits 2.
func rpcErr(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.NotFound:
		return invalid(errors.New(st.Message()))
	case codes.Unauthenticated:
		return fmt.Errorf("refused by the coordinator: %s (check the cluster secret)", st.Message())
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("control plane unreachable: %s", st.Message())
	}
	return fmt.Errorf("%s: %s", st.Code(), st.Message())
}

func newJobCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Submit, list, inspect, wait for and cancel training jobs"}
	cmd.AddCommand(newJobSubmitCmd(), newJobLsCmd(), newJobStatusCmd(), newJobWaitCmd(), newJobCancelCmd())
	return cmd
}

func newJobSubmitCmd() *cobra.Command {
	var spec coordinator.SpecFile
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "submit [SPEC.yaml]",
		Short: "Submit a job described by a YAML spec and/or flags (flags override the file)",
		Long: `Submit a training job. The spec is a YAML file, flags, or both (flags
override the file); unset fields take their defaults. The coordinators check
every field and name the first one out of range. Example spec:

  name: mnist-kl
  dataset: mnist              # published in the store with dsae dataset put
  model:
    d: 784                    # input dimension
    h: 196                    # latents
    activation: sigmoid       # sigmoid | relu | topk (with k)
    output: sigmoid           # identity | sigmoid
    sparsity: kl              # none | kl (rho, beta) | l1 (l1) | topk
    rho: 0.1
    beta: 3
    weight_decay: 0.0001
    tied: false
    seed: 1
  optimizer:
    kind: adam                # sgd | momentum | adam
    lr: 0.001
    schedule: cosine          # constant | cosine | linear
    warmup_steps: 100
  batch_size: 256             # global batch, split over the workers
  steps: 20000                # or epochs: 20
  workers: 4                  # 0: every free worker
  checkpoint_every: 500`,
		Example: `  dsae job submit mnist.yaml --coordinator 127.0.0.1:7100
  dsae job submit --dataset mnist --d 784 --h 196 --sparsity kl --rho 0.05 --beta 3 --steps 2000 --coordinator 127.0.0.1:7100`,
		Args: func(cmd *cobra.Command, args []string) error { return invalid(cobra.MaximumNArgs(1)(cmd, args)) },
	}
	f := cmd.Flags()
	cf := addControlFlags(f)
	f.StringVar(&spec.Name, "name", "", "job name")
	f.StringVar(&spec.Dataset, "dataset", "", "dataset name in the store")
	f.Int32Var(&spec.Model.D, "d", 0, "input dimension")
	f.Int32Var(&spec.Model.H, "h", 0, "hidden (latent) dimension")
	f.StringVar(&spec.Model.Activation, "activation", "", "sigmoid | relu | topk (default sigmoid)")
	f.Int32Var(&spec.Model.K, "k", 0, "active latents per row (topk)")
	f.StringVar(&spec.Model.Output, "output", "", "identity | sigmoid (default identity)")
	f.StringVar(&spec.Model.Sparsity, "sparsity", "", "none | kl | l1 | topk")
	f.Float64Var(&spec.Model.Rho, "rho", 0, "KL target activation, in (0,1)")
	f.Float64Var(&spec.Model.Beta, "beta", 0, "KL weight")
	f.Float64Var(&spec.Model.L1, "l1", 0, "L1 weight")
	f.Float64Var(&spec.Model.WeightDecay, "weight-decay", 0, "weight decay (lambda)")
	f.BoolVar(&spec.Model.Tied, "tied", false, "tie decoder to encoder weights")
	f.Uint64Var(&spec.Model.Seed, "seed", 0, "initialisation and data-order seed")
	f.StringVar(&spec.Optimizer.Kind, "optimizer", "", "sgd | momentum | adam (default adam)")
	f.Float64Var(&spec.Optimizer.LR, "lr", 0, "learning rate (default 1e-3)")
	f.StringVar(&spec.Optimizer.Schedule, "schedule", "", "constant | cosine | linear")
	f.Int64Var(&spec.Optimizer.WarmupSteps, "warmup-steps", 0, "learning-rate warm-up steps")
	f.Float64Var(&spec.Optimizer.Momentum, "momentum", 0, "momentum (momentum optimizer)")
	f.Int32Var(&spec.BatchSize, "batch-size", 0, "global batch size (default 256)")
	f.Int64Var(&spec.Steps, "steps", 0, "total training steps")
	f.Int32Var(&spec.Epochs, "epochs", 0, "epochs (when --steps is 0)")
	f.Int32Var(&spec.Workers, "workers", 0, "workers wanted (0: every free worker)")
	f.Int64Var(&spec.CheckpointEvery, "checkpoint-every", 0, "steps between checkpoints (0: none)")
	f.BoolVar(&asJSON, "json", false, "print the accepted job as JSON")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		req := &pb.JobSpec{Model: &pb.ModelConfig{}, Optimizer: &pb.OptimizerConfig{}}
		if len(args) == 1 {
			fh, err := os.Open(args[0])
			if err != nil {
				return invalid(err)
			}
			req, err = coordinator.ParseSpec(fh)
			fh.Close()
			if err != nil {
				return invalid(fmt.Errorf("%s: %w", args[0], err))
			}
		}
		overrideSpec(req, spec.Proto(), f)
		coordinator.ApplyDefaults(req)
		if err := coordinator.ValidateSpec(req); err != nil {
			return invalid(err)
		}
		return cf.call(cmd, func(ctx context.Context, cl pb.ControlClient) error {
			resp, err := cl.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: req})
			if err != nil {
				return rpcErr(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp.Job)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "submitted %s (%s)\n", resp.Job.Id, strings.ToLower(strings.TrimPrefix(resp.Job.State.String(), "JOB_STATE_")))
			return nil
		})
	}
	return cmd
}

// overrideSpec copies into dst the fields of flags whose flag was set.
func overrideSpec(dst, flags *pb.JobSpec, fs *pflag.FlagSet) {
	set := func(name string, apply func()) {
		if fs.Changed(name) {
			apply()
		}
	}
	if dst.Model == nil {
		dst.Model = &pb.ModelConfig{}
	}
	if dst.Optimizer == nil {
		dst.Optimizer = &pb.OptimizerConfig{}
	}
	m, o, fm, fo := dst.Model, dst.Optimizer, flags.Model, flags.Optimizer
	set("name", func() { dst.Name = flags.Name })
	set("dataset", func() { dst.Dataset = flags.Dataset })
	set("d", func() { m.D = fm.D })
	set("h", func() { m.H = fm.H })
	set("activation", func() { m.Activation = fm.Activation })
	set("k", func() { m.K = fm.K })
	set("output", func() { m.Output = fm.Output })
	set("sparsity", func() { m.Sparsity = fm.Sparsity })
	set("rho", func() { m.Rho = fm.Rho })
	set("beta", func() { m.Beta = fm.Beta })
	set("l1", func() { m.L1 = fm.L1 })
	set("weight-decay", func() { m.WeightDecay = fm.WeightDecay })
	set("tied", func() { m.Tied = fm.Tied })
	set("seed", func() { m.Seed = fm.Seed })
	set("optimizer", func() { o.Kind = fo.Kind })
	set("lr", func() { o.Lr = fo.Lr })
	set("schedule", func() { o.Schedule = fo.Schedule })
	set("warmup-steps", func() { o.WarmupSteps = fo.WarmupSteps })
	set("momentum", func() { o.Momentum = fo.Momentum })
	set("batch-size", func() { dst.BatchSize = flags.BatchSize })
	set("steps", func() { dst.Steps = flags.Steps })
	set("epochs", func() { dst.Epochs = flags.Epochs })
	set("workers", func() { dst.MaxWorkers = flags.MaxWorkers })
	set("checkpoint-every", func() { dst.CheckpointEvery = flags.CheckpointEvery })
}

func printJSON(w io.Writer, j *pb.Job) error {
	b, err := protojson.MarshalOptions{Multiline: true}.Marshal(j)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func stateName(s pb.JobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}

func newJobLsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ls", Short: "List jobs", Args: exactArgs(0)}
	cf := addControlFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return cf.call(cmd, func(ctx context.Context, cl pb.ControlClient) error {
			resp, err := cl.ListJobs(ctx, &pb.ListJobsRequest{})
			if err != nil {
				return rpcErr(err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATE\tDATASET\tGEN\tWORKERS\tSTEP\tREASON")
			for _, j := range resp.Jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", j.Id, j.Spec.GetName(), stateName(j.State), j.Spec.GetDataset(),
					j.Generation.GetId(), len(j.Generation.GetMembers()), j.LastStep, j.Reason)
			}
			return tw.Flush()
		})
	}
	return cmd
}

// describe writes a human-readable account of job j.
func describe(w io.Writer, j *pb.Job) {
	fmt.Fprintf(w, "job %s", j.Id)
	if n := j.Spec.GetName(); n != "" {
		fmt.Fprintf(w, " (%s)", n)
	}
	fmt.Fprintf(w, ": %s", stateName(j.State))
	if j.Reason != "" {
		fmt.Fprintf(w, " — %s", j.Reason)
	}
	fmt.Fprintln(w)
	s := j.Spec
	fmt.Fprintf(w, "  dataset %s, model d=%d h=%d %s/%s sparsity %s, batch %d, steps %d, epochs %d\n", s.GetDataset(),
		s.GetModel().GetD(), s.GetModel().GetH(), s.GetModel().GetActivation(), s.GetModel().GetOutput(), s.GetModel().GetSparsity(),
		s.GetBatchSize(), s.GetSteps(), s.GetEpochs())
	fmt.Fprintf(w, "  last step %d\n", j.LastStep)
	if g := j.Generation; g != nil {
		var ms []string
		for _, m := range g.Members {
			ms = append(ms, m.WorkerId)
		}
		fmt.Fprintf(w, "  generation %d (%s): %s", g.Id, strings.ToLower(strings.TrimPrefix(g.Phase.String(), "GENERATION_PHASE_")), strings.Join(ms, " → "))
		if g.Phase == pb.GenerationPhase_GENERATION_PHASE_STARTED {
			fmt.Fprintf(w, "; start step %d from %s", g.StartStep, firstNonEmpty(g.Donor, g.DonorCheckpoint))
		}
		fmt.Fprintln(w)
	}
	if n := len(j.Checkpoints); n > 0 {
		ck := j.Checkpoints[n-1]
		fmt.Fprintf(w, "  latest checkpoint: step %d at %s\n", ck.Step, ck.Key)
	}
	for _, m := range []struct {
		label string
		m     *pb.Metrics
	}{{"metrics", j.LatestMetrics}, {"final metrics", j.FinalMetrics}} {
		if m.m == nil {
			continue
		}
		keys := make([]string, 0, len(m.m.Values))
		for k := range m.m.Values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%.6g", k, m.m.Values[k]))
		}
		fmt.Fprintf(w, "  %s at step %d: %s\n", m.label, m.m.Step, strings.Join(parts, " "))
	}
	describeStepTimes(w, j)
	if j.ModelKey != "" {
		fmt.Fprintf(w, "  model: %s\n", j.ModelKey)
	}
}

func newJobStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{Use: "status JOB", Short: "Show a job's state, generation, progress and checkpoints", Args: exactArgs(1)}
	cf := addControlFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the job as JSON")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return cf.call(cmd, func(ctx context.Context, cl pb.ControlClient) error {
			resp, err := cl.GetJob(ctx, &pb.GetJobRequest{JobId: args[0]})
			if err != nil {
				return rpcErr(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp.Job)
			}
			describe(cmd.OutOrStdout(), resp.Job)
			return nil
		})
	}
	return cmd
}

func newJobCancelCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{Use: "cancel JOB", Short: "Cancel a job", Args: exactArgs(1)}
	cf := addControlFlags(cmd.Flags())
	cmd.Flags().StringVar(&reason, "reason", "", "reason recorded with the job")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return cf.call(cmd, func(ctx context.Context, cl pb.ControlClient) error {
			resp, err := cl.CancelJob(ctx, &pb.CancelJobRequest{JobId: args[0], Reason: reason})
			if err != nil {
				if status.Code(err) == codes.FailedPrecondition {
					return invalid(errors.New(status.Convert(err).Message()))
				}
				return rpcErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "canceled %s\n", resp.Job.Id)
			return nil
		})
	}
	return cmd
}
