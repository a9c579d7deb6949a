package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// errJobUnsuccessful is returned by `job wait` when the job failed or was
// canceled.
var errJobUnsuccessful = errors.New("job did not complete")

func newJobWaitCmd() *cobra.Command {
	var every time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "wait JOB",
		Short: "Follow a job until it ends, with a live progress bar; fails unless it completed",
		Long: `Follow JOB until it completes, fails or is canceled. On a terminal one status
line is redrawn in place (step/total, epoch, loss, samples/s, ETA, members,
generation); otherwise a plain line is printed every --progress and whenever the
state or the generation changes. A summary follows at the end. Exits 0 only
if the job completed. With --json the progress and the summary go to stderr
and stdout gets one JSON document: the job as it ended.`,
		Args: exactArgs(1),
	}
	cf := addControlFlags(cmd.Flags())
	cmd.Flags().DurationVar(&every, "progress", 5*time.Second, "interval between plain progress lines when the output is not a terminal")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the ended job as JSON on stdout (progress on stderr)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if every <= 0 {
			return invalid(fmt.Errorf("--progress %v: want > 0", every))
		}
		cl, done, err := cf.client()
		if err != nil {
			return err
		}
		defer done()
		out := cmd.OutOrStdout()
		if asJSON {
			out = cmd.ErrOrStderr()
		}
		p := newProgress(out, isTerminal(out), every)
		last, err := watchJob(cmd.Context(), cl, args[0], cf.timeout, func(j *pb.Job) { p.Update(j) })
		p.Done()
		if err != nil {
			return err
		}
		writeJobSummary(out, last, p.Generations())
		if asJSON {
			if err := printJSON(cmd.OutOrStdout(), last); err != nil {
				return err
			}
		}
		if last.State != pb.JobState_JOB_STATE_COMPLETED {
			return fmt.Errorf("%w: %s %s: %s", errJobUnsuccessful, last.Id, stateName(last.State), last.Reason)
		}
		return nil
	}
	return cmd
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// jobEnded reports whether s is a final state.
func jobEnded(s pb.JobState) bool {
	return s == pb.JobState_JOB_STATE_COMPLETED || s == pb.JobState_JOB_STATE_FAILED || s == pb.JobState_JOB_STATE_CANCELED
}

// watchJob follows job id through WatchJob, calling fn with every update,
// until the job ends or ctx is done, and returns the last update. A stream
// broken by an unavailable coordinator is reopened (the client fails over to
// another); it gives up after unavailable for longer than patience.
func watchJob(ctx context.Context, cl pb.ControlClient, id string, patience time.Duration, fn func(*pb.Job)) (*pb.Job, error) {
	var last *pb.Job
	failingSince := time.Time{}
	for {
		ws, err := cl.WatchJob(ctx, &pb.WatchJobRequest{JobId: id})
		for err == nil {
			var u *pb.WatchJobResponse
			if u, err = ws.Recv(); err == nil {
				failingSince = time.Time{}
				last = u.Job
				fn(last)
				if jobEnded(last.State) {
					return last, nil
				}
			}
		}
		if errors.Is(err, io.EOF) && last != nil && jobEnded(last.State) {
			return last, nil
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		if c := status.Code(err); c != codes.Unavailable && !errors.Is(err, io.EOF) {
			return last, rpcErr(err)
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		} else if time.Since(failingSince) > patience {
			if last == nil {
				return nil, fmt.Errorf("job %s: watch ended without an update: %w", id, rpcErr(err))
			}
			return last, rpcErr(err)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// totalSteps is the length of job j: spec.steps if set, else the
// total_steps the workers report (0 while unknown).
func totalSteps(j *pb.Job) int64 {
	if s := j.Spec.GetSteps(); s > 0 {
		return s
	}
	return int64(j.LatestMetrics.GetValues()["total_steps"])
}

// genSeen is one generation of a job as a follower saw it.
type genSeen struct {
	ID      uint64   `json:"id"`
	Members []string `json:"members"`
	// FirstStep is the job's last completed step when the generation was
	// first seen.
	FirstStep int64 `json:"first_step"`
}

func memberIDs(g *pb.Generation) []string {
	ids := make([]string, 0, len(g.GetMembers()))
	for _, m := range g.GetMembers() {
		ids = append(ids, m.WorkerId)
	}
	return ids
}

// progress renders the progress of one job from a stream of its states. On
// a terminal it redraws one line in place; otherwise it prints a plain line
// at most every `every`, and at once on a change of state or generation.
// Feed it with Update, end with Done. Not safe for concurrent use.
type progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
	now   func() time.Time

	started   bool
	state     pb.JobState
	gen       uint64
	gens      []genSeen
	lastPrint time.Time
	lastLine  string
	drawn     int // runes of the line on screen (tty)
	// rate: the first observation with a completed step, for the ETA
	t0    time.Time
	step0 int64
}

func newProgress(w io.Writer, tty bool, every time.Duration) *progress {
	return &progress{w: w, tty: tty, every: every, now: time.Now}
}

// Generations returns the generations seen so far, in order.
func (p *progress) Generations() []genSeen { return p.gens }

// Update renders j.
func (p *progress) Update(j *pb.Job) {
	now := p.now()
	changed := !p.started || j.State != p.state
	if g := j.Generation; g != nil && g.Id != p.gen {
		p.gen = g.Id
		p.gens = append(p.gens, genSeen{ID: g.Id, Members: memberIDs(g), FirstStep: j.LastStep})
		changed = true
		p.event(fmt.Sprintf("generation %d: %s", g.Id, strings.Join(memberIDs(g), ", ")) + reasonSuffix(j))
	}
	if !p.started || j.State != p.state {
		p.event(fmt.Sprintf("job %s %s", j.Id, stateName(j.State)) + reasonSuffix(j))
	}
	p.started, p.state = true, j.State
	if p.t0.IsZero() && j.LastStep > 0 {
		p.t0, p.step0 = now, j.LastStep
	}
	line := p.line(j, now)
	if p.tty {
		if p.drawn == 0 || line != p.lastLine {
			p.draw(line)
			p.lastLine = line
		}
		return
	}
	if line != p.lastLine && (changed || now.Sub(p.lastPrint) >= p.every || jobEnded(j.State)) {
		fmt.Fprintln(p.w, line)
		p.lastPrint, p.lastLine = now, line
	}
}

func reasonSuffix(j *pb.Job) string {
	if j.Reason == "" {
		return ""
	}
	return " (" + j.Reason + ")"
}

// event prints a line that stays, above the progress line on a terminal.
func (p *progress) event(s string) {
	if p.tty {
		p.clear()
	}
	fmt.Fprintf(p.w, "%s %s\n", p.now().Format(time.TimeOnly), s)
}

func (p *progress) clear() {
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.drawn))
		p.drawn = 0
	}
}

func (p *progress) draw(line string) {
	n := len([]rune(line))
	pad := ""
	if n < p.drawn {
		pad = strings.Repeat(" ", p.drawn-n)
	}
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.drawn = n
}

// Done ends the progress display (the terminal line is kept).
func (p *progress) Done() {
	if p.tty && p.drawn > 0 {
		fmt.Fprintln(p.w)
		p.drawn = 0
	}
}

// line is the progress line of j at now.
func (p *progress) line(j *pb.Job, now time.Time) string {
	v := j.LatestMetrics.GetValues()
	total := totalSteps(j)
	var b strings.Builder
	if total > 0 {
		const width = 20
		done := min(width, int(float64(width)*float64(j.LastStep)/float64(total)))
		fmt.Fprintf(&b, "[%s%s] step %d/%d", strings.Repeat("=", done), strings.Repeat(" ", width-done), j.LastStep, total)
	} else {
		fmt.Fprintf(&b, "step %d", j.LastStep)
	}
	if e, ok := v["epoch"]; ok {
		fmt.Fprintf(&b, "  epoch %g", e)
	}
	if l, ok := v["loss"]; ok {
		fmt.Fprintf(&b, "  loss %.4g", l)
	}
	if s, ok := v["samples_per_sec"]; ok {
		fmt.Fprintf(&b, "  %.0f samples/s", s)
	}
	if eta, ok := p.eta(j, total, now); ok {
		fmt.Fprintf(&b, "  ETA %s", fmtDuration(eta))
	}
	fmt.Fprintf(&b, "  members %d  gen %d", len(j.Generation.GetMembers()), j.Generation.GetId())
	return b.String()
}

// eta estimates the time left from the steps completed since the first
// observation; before two observations it uses samples_per_sec.
func (p *progress) eta(j *pb.Job, total int64, now time.Time) (time.Duration, bool) {
	left := total - j.LastStep
	if total <= 0 || left < 0 || jobEnded(j.State) {
		return 0, false
	}
	if dt := now.Sub(p.t0).Seconds(); !p.t0.IsZero() && j.LastStep > p.step0 && dt > 0 {
		rate := float64(j.LastStep-p.step0) / dt
		return time.Duration(float64(left) / rate * float64(time.Second)), true
	}
	sps, bs := j.LatestMetrics.GetValues()["samples_per_sec"], j.Spec.GetBatch()
	if sps > 0 && bs > 0 {
		return time.Duration(float64(left) * float64(bs) / sps * float64(time.Second)), true
	}
	return 0, false
}

// fmtDuration prints d as m:ss or h:mm:ss.
func fmtDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// stepTimes is the per-step time breakdown the workers report, in seconds.
type stepTimes struct {
	Data        float64 `json:"data"`
	StatsReduce float64 `json:"stats_reduce"`
	Compute     float64 `json:"compute"`
	GradReduce  float64 `json:"grad_reduce"`
	Update      float64 `json:"update"`
	Step        float64 `json:"step"`
	// CommFraction is (stats_reduce + grad_reduce) / step.
	CommFraction float64 `json:"communication_fraction"`
}

// stepTimesOf reads the time_* metrics; ok is false when there are none.
func stepTimesOf(m *pb.Metrics) (stepTimes, bool) {
	v := m.GetValues()
	step, ok := v["time_step"]
	if !ok || step <= 0 {
		return stepTimes{}, false
	}
	t := stepTimes{Data: v["time_data"], StatsReduce: v["time_stats_reduce"], Compute: v["time_compute"],
		GradReduce: v["time_grad_reduce"], Update: v["time_update"], Step: step}
	t.CommFraction = (t.StatsReduce + t.GradReduce) / step
	return t, true
}

// String is one line: the step time and its parts, with the communication
// fraction.
func (t stepTimes) String() string {
	ms := func(s float64) string { return fmt.Sprintf("%.1f ms", s*1e3) }
	return fmt.Sprintf("step %s = data %s + stats reduce %s + compute %s + gradient reduce %s + update %s; communication %.0f%%",
		ms(t.Step), ms(t.Data), ms(t.StatsReduce), ms(t.Compute), ms(t.GradReduce), ms(t.Update), 100*t.CommFraction)
}

// describeStepTimes writes the step-time breakdown of j's latest metrics,
// if the workers reported one.
func describeStepTimes(w io.Writer, j *pb.Job) {
	if t, ok := stepTimesOf(j.LatestMetrics); ok {
		fmt.Fprintf(w, "  time per step: %s\n", t)
	}
}

// writeJobSummary writes the end-of-job summary: the job's description
// (with its step-time breakdown), the generations seen and the run time.
func writeJobSummary(w io.Writer, j *pb.Job, gens []genSeen) {
	describe(w, j)
	if len(gens) > 0 {
		var parts []string
		for _, g := range gens {
			parts = append(parts, fmt.Sprintf("%d [%s] from step %d", g.ID, strings.Join(g.Members, " "), g.FirstStep))
		}
		fmt.Fprintf(w, "  generations seen: %s\n", strings.Join(parts, "; "))
	}
	if j.SubmittedUnixNano > 0 && j.FinishedUnixNano > j.SubmittedUnixNano {
		fmt.Fprintf(w, "  ran %s from submission\n", time.Duration(j.FinishedUnixNano-j.SubmittedUnixNano).Round(100*time.Millisecond))
	}
}
