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
	"google.golang.org/protobuf/proto"

	"github.com/dsae/dsae/coordinator"
	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/worker/jobspec"
)

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
	conn, err := client.Dial(f.addrs, a)
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

// submitExample is the YAML spec shown by `dsae job submit --help`: every
// setting of the vocabulary with its default (jobspec.Default) or an
// example value.
const submitExample = `  name: mnist-kl             # job name (optional)
  data: mnist                # dataset in the store (dsae dataset put); its manifest gives d
  test: mnist-test           # optional test set for the final metrics
  # model (sae.Config)
  hidden: 196                # latents
  activation: sigmoid        # sigmoid | relu | topk
  output: sigmoid            # sigmoid (data in [0,1]) | linear
  sparsity: kl               # kl (rho, beta) | l1 (l1, l1_decoder_norm) | topk (k, aux_k) | none
  rho: 0.1
  beta: 3
  l1: 0
  l1_decoder_norm: false
  k: 32
  aux_k: 0                   # dead latents of the auxiliary loss (topk; 0 = off)
  aux_coef: 0.03125
  dead_window: 1000
  weight_decay: 0.003
  tied: false
  seed: 1
  # optimizer (sae.OptimizerConfig)
  optimizer: adam            # adam | sgd
  lr: 0.003
  beta1: 0.9                 # adam
  beta2: 0.999               # adam
  eps: 1e-8                  # adam
  momentum: 0                # sgd
  nesterov: false            # sgd, needs momentum > 0
  schedule: constant         # constant | cosine (to min_lr at the last step)
  warmup_steps: 0
  min_lr: 0
  clip_norm: 0               # 0 = off
  # run
  batch: 256                 # global batch, split over the workers
  steps: 0                   # 0: from epochs and the dataset's rows
  epochs: 20
  min_workers: 1             # wait in the queue for this many free workers
  max_workers: 0             # 0: every free worker
  checkpoint_every: 500      # 0: none`

func newJobSubmitCmd() *cobra.Command {
	spec := jobspec.Default()
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "submit [SPEC.yaml]",
		Short: "Submit a job described by a YAML spec and/or flags (flags override the file)",
		Long: `Submit a training job. The spec is a YAML file, flags, or both (flags
override the file); unset settings take the defaults of dsae train. The keys
are the flag names, written with _ or - (the flags of dsae train and of this
command are one vocabulary, sae's own names). The spec is checked here, with
the same rules and messages as dsae train, before it is sent; the
coordinators check it again and fill d and steps from the dataset. Example
spec:

` + submitExample,
		Example: `  dsae job submit mnist.yaml --coordinator 127.0.0.1:7100
  dsae job submit --data mnist --hidden 196 --sparsity kl --rho 0.05 --beta 3 --steps 2000 --coordinator 127.0.0.1:7100`,
		Args: func(cmd *cobra.Command, args []string) error { return invalid(cobra.MaximumNArgs(1)(cmd, args)) },
	}
	f := cmd.Flags()
	cf := addControlFlags(f)
	jobspec.AddFlags(f, &spec)
	jobspec.AddDataFlags(f, &spec, "training dataset: a name in the store (dsae dataset ls)", "test dataset in the store (optional)")
	jobspec.AddJobFlags(f, &spec)
	f.BoolVar(&asJSON, "json", false, "print the accepted job as JSON")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		req, err := submitSpec(args, f)
		if err != nil {
			return err
		}
		return cf.call(cmd, func(ctx context.Context, cl pb.ControlClient) error {
			// One request id for every attempt: the coordinators answer a
			// retry with the job the first attempt created, so retrying
			// through a leader election (a few seconds) is safe.
			sub := &pb.SubmitJobRequest{Spec: req, RequestId: client.NewRequestID()}
			var resp *pb.SubmitJobResponse
			err := retryUnavailable(ctx, func() error {
				var err error
				resp, err = cl.SubmitJob(ctx, sub)
				return err
			})
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

// submitSpec builds the spec of `dsae job submit`: the defaults, then the
// YAML file of args (if any), then the flags set on fs. It validates it as
// `dsae train` does (the same message), then the job-level fields as the
// coordinators do, so a bad spec fails before any network call.
func submitSpec(args []string, fs *pflag.FlagSet) (*pb.JobSpec, error) {
	s := jobspec.Default()
	if len(args) == 1 {
		fh, err := os.Open(args[0])
		if err != nil {
			return nil, invalid(err)
		}
		err = jobspec.ParseYAML(fh, &s)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", args[0], err)
		}
	}
	if err := jobspec.Override(&s, fs); err != nil {
		return nil, invalid(err)
	}
	file := ""
	if len(args) == 1 {
		file = args[0]
	}
	if err := s.Validate(); err != nil {
		return nil, explainSpecErr(err, file, fs)
	}
	p := s.Proto()
	if err := coordinator.ValidateSpec(p); err != nil {
		return nil, explainSpecErr(err, file, fs)
	}
	return p, nil
}

// explainSpecErr tells a refused spec in the words the user wrote (see
// jobspec.Explain): a setting set by a flag by its flag, any other by its
// key when the spec comes from a file (prefixed with the file's name when
// the setting at fault is one of the file's), else by its flag. It renames
// the errors of jobspec's validation and coordinator.ValidateSpec.
func explainSpecErr(err error, file string, fs *pflag.FlagSet) error {
	words := func(name string) string {
		if file == "" || fs.Changed(jobspec.FlagName(jobspec.Keys(name))) {
			return jobspec.Flags(name)
		}
		return jobspec.Keys(name)
	}
	var fe *coordinator.FieldError
	if errors.As(err, &fe) {
		err = &jobspec.SettingError{Setting: fe.Field, Msg: words(fe.Field) + ": " + fe.Msg, Err: err}
	} else {
		err = jobspec.Explain(err, words)
	}
	var se *jobspec.SettingError
	if errors.As(err, &se) && file != "" && !fs.Changed(jobspec.FlagName(se.Setting)) {
		return fmt.Errorf("%s: %w", file, err)
	}
	return err
}

// retryUnavailable calls f until it returns something other than
// codes.Unavailable (no coordinator or no leader reachable) or ctx ends,
// with capped exponential backoff. gRPC's own retries (client.Dial)
// give up after about 1.5 s, less than a raft election can take.
func retryUnavailable(ctx context.Context, f func() error) error {
	backoff := 100 * time.Millisecond
	for {
		err := f()
		if status.Code(err) != codes.Unavailable {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// printJSON writes m (a job, a job list) as one JSON document: the
// output of --json for scripts.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true}.Marshal(m)
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
	var asJSON bool
	cmd := &cobra.Command{Use: "ls", Short: "List jobs", Args: exactArgs(0)}
	cf := addControlFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, `print the jobs as one JSON document ({"jobs": [...]})`)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return cf.call(cmd, func(ctx context.Context, cl pb.ControlClient) error {
			resp, err := cl.ListJobs(ctx, &pb.ListJobsRequest{})
			if err != nil {
				return rpcErr(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATE\tDATASET\tGEN\tWORKERS\tSTEP\tREASON")
			for _, j := range resp.Jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", j.Id, j.Spec.GetName(), stateName(j.State), j.Spec.GetData(),
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
	fmt.Fprintf(w, "  data %s, model d=%d hidden=%d %s/%s sparsity %s, batch %d, steps %d, epochs %g\n", s.GetData(),
		s.GetModel().GetD(), s.GetModel().GetHidden(), s.GetModel().GetActivation(), s.GetModel().GetOutput(), s.GetModel().GetSparsity(),
		s.GetBatch(), s.GetSteps(), s.GetEpochs())
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
	var asJSON bool
	cmd := &cobra.Command{Use: "cancel JOB", Short: "Cancel a job", Args: exactArgs(1)}
	cf := addControlFlags(cmd.Flags())
	cmd.Flags().StringVar(&reason, "reason", "", "reason recorded with the job")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the canceled job as JSON")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return cf.call(cmd, func(ctx context.Context, cl pb.ControlClient) error {
			resp, err := cl.CancelJob(ctx, &pb.CancelJobRequest{JobId: args[0], Reason: reason})
			if err != nil {
				if status.Code(err) == codes.FailedPrecondition {
					return invalid(errors.New(status.Convert(err).Message()))
				}
				return rpcErr(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp.Job)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "canceled %s\n", resp.Job.Id)
			return nil
		})
	}
	return cmd
}
