package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// fakeJob is a job of 100 steps of batch 100 at step, in generation gen
// with the given members.
func fakeJob(state pb.JobState, step int64, gen uint64, members ...string) *pb.Job {
	g := &pb.Generation{Id: gen}
	for i, m := range members {
		g.Members = append(g.Members, &pb.Member{WorkerId: m, Rank: int32(i)})
	}
	return &pb.Job{Id: "job-000001", State: state, LastStep: step, Generation: g,
		Spec: &pb.JobSpec{Steps: 100, Batch: 100},
		LatestMetrics: &pb.Metrics{Step: step, Values: map[string]float64{
			"loss": 0.5, "epoch": 1, "samples_per_sec": 1000,
			"time_data": 0.001, "time_stats_reduce": 0.002, "time_compute": 0.004, "time_grad_reduce": 0.002, "time_update": 0.001, "time_step": 0.010,
		}}}
}

// clock is a fake time source advanced by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

const (
	running   = pb.JobState_JOB_STATE_RUNNING
	completed = pb.JobState_JOB_STATE_COMPLETED
)

func TestProgressPlainLines(t *testing.T) {
	var out bytes.Buffer
	c := &clock{time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)}
	p := newProgress(&out, false, 5*time.Second)
	p.now = c.now
	p.Update(fakeJob(running, 0, 1, "w1", "w2"))
	c.t = c.t.Add(1 * time.Second)
	p.Update(fakeJob(running, 10, 1, "w1", "w2")) // within 5 s: no line
	c.t = c.t.Add(5 * time.Second)
	p.Update(fakeJob(running, 20, 1, "w1", "w2")) // 10 steps in 5 s: 80 left at 2 steps/s
	c.t = c.t.Add(1 * time.Second)
	p.Update(fakeJob(running, 22, 2, "w1")) // generation change: at once; 12 steps in 6 s since step 10
	c.t = c.t.Add(1 * time.Second)
	p.Update(fakeJob(completed, 100, 2, "w1"))
	p.Done()
	got := out.String()
	if strings.Contains(got, "\r") {
		t.Errorf("plain output has a carriage return:\n%q", got)
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	want := []string{
		"10:00:00 generation 1: w1, w2",
		"10:00:00 job job-000001 running",
		"[                    ] step 0/100  epoch 1  loss 0.5  1000 samples/s  ETA 0:10  members 2  gen 1",
		"[====                ] step 20/100  epoch 1  loss 0.5  1000 samples/s  ETA 0:40  members 2  gen 1",
		"10:00:07 generation 2: w1",
		"[====                ] step 22/100  epoch 1  loss 0.5  1000 samples/s  ETA 0:39  members 1  gen 2",
		"10:00:08 job job-000001 completed",
		"[====================] step 100/100  epoch 1  loss 0.5  1000 samples/s  members 1  gen 2",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), got)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i, lines[i], want[i])
		}
	}
	gens := p.Generations()
	if len(gens) != 2 || gens[0].ID != 1 || gens[1].ID != 2 || gens[1].FirstStep != 22 || strings.Join(gens[0].Members, ",") != "w1,w2" {
		t.Errorf("generations seen: %+v", gens)
	}
}

func TestProgressTerminalRedrawsOneLine(t *testing.T) {
	var out bytes.Buffer
	c := &clock{time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)}
	p := newProgress(&out, true, time.Hour)
	p.now = c.now
	p.Update(fakeJob(running, 5, 1, "w1", "w2"))
	c.t = c.t.Add(time.Second)
	p.Update(fakeJob(running, 6, 1, "w1", "w2"))
	p.Update(fakeJob(running, 6, 1, "w1", "w2")) // the same line: not redrawn
	c.t = c.t.Add(time.Second)
	p.Update(fakeJob(running, 7, 2, "w1"))
	p.Done()
	got := out.String()
	// Each update redraws the line in place: every progress line starts
	// with \r, and the events (generation, state) are whole lines.
	if n := strings.Count(got, "step 6/100"); n != 1 {
		t.Errorf("step 6 drawn %d times: %q", n, got)
	}
	if !strings.Contains(got, "\r[=                   ] step 6/100  epoch 1  loss 0.5  1000 samples/s  ETA 1:34  members 2  gen 1") {
		t.Errorf("no redraw of step 6 with a measured ETA of 94 s:\n%q", got)
	}
	// The generation event clears the drawn line before printing.
	i := strings.Index(got, "10:00:02 generation 2: w1\n")
	if i < 0 || !strings.HasSuffix(got[:i], "\r") {
		t.Errorf("generation event not on a cleared line:\n%q", got)
	}
	if !strings.HasSuffix(got, "members 1  gen 2\n") {
		t.Errorf("Done does not end the drawn line:\n%q", got)
	}
}

func TestStepTimes(t *testing.T) {
	st, ok := stepTimesOf(fakeJob(running, 1, 1).LatestMetrics)
	if !ok {
		t.Fatal("no step times")
	}
	if st.CommFraction < 0.3999 || st.CommFraction > 0.4001 {
		t.Errorf("communication fraction %g, want (2+2)/10 = 0.4", st.CommFraction)
	}
	want := "step 10.0 ms = data 1.0 ms + stats reduce 2.0 ms + compute 4.0 ms + gradient reduce 2.0 ms + update 1.0 ms; communication 40%"
	if s := st.String(); s != want {
		t.Errorf("got  %q\nwant %q", s, want)
	}
	if _, ok := stepTimesOf(&pb.Metrics{Values: map[string]float64{"loss": 1}}); ok {
		t.Error("step times from metrics without time_step")
	}
	var b bytes.Buffer
	describe(&b, fakeJob(running, 1, 1, "w1"))
	if !strings.Contains(b.String(), "  time per step: "+want+"\n") {
		t.Errorf("job status does not show the breakdown:\n%s", b.String())
	}
}

// watchClient serves WatchJob from a script: each call returns the next
// stream, which yields its jobs and then its error.
type watchClient struct {
	pb.ControlClient
	streams []fakeStream
	calls   int
}

type fakeStream struct {
	grpc.ServerStreamingClient[pb.WatchJobResponse]
	jobs []*pb.Job
	err  error
}

func (s *fakeStream) Recv() (*pb.WatchJobResponse, error) {
	if len(s.jobs) == 0 {
		return nil, s.err
	}
	j := s.jobs[0]
	s.jobs = s.jobs[1:]
	return &pb.WatchJobResponse{Job: j}, nil
}

func (c *watchClient) WatchJob(ctx context.Context, in *pb.WatchJobRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[pb.WatchJobResponse], error) {
	if c.calls >= len(c.streams) {
		return nil, status.Error(codes.Unavailable, "no more streams")
	}
	s := &c.streams[c.calls]
	c.calls++
	return s, nil
}

func TestWatchJobReopensUnavailableStream(t *testing.T) {
	cl := &watchClient{streams: []fakeStream{
		{jobs: []*pb.Job{fakeJob(running, 1, 1, "w1")}, err: status.Error(codes.Unavailable, "coordinator gone")},
		{jobs: []*pb.Job{fakeJob(running, 2, 1, "w1"), fakeJob(completed, 100, 1, "w1")}, err: io.EOF},
	}}
	var steps []int64
	last, err := watchJob(context.Background(), cl, "job-000001", 10*time.Second, func(j *pb.Job) { steps = append(steps, j.LastStep) })
	if err != nil {
		t.Fatal(err)
	}
	if last.State != completed || len(steps) != 3 || steps[2] != 100 || cl.calls != 2 {
		t.Errorf("last %v, steps %v, %d streams opened", last.State, steps, cl.calls)
	}
}

func TestWatchJobGivesUpOnOtherErrors(t *testing.T) {
	cl := &watchClient{streams: []fakeStream{{err: status.Error(codes.NotFound, "job job-9 not found")}}}
	_, err := watchJob(context.Background(), cl, "job-9", time.Minute, func(*pb.Job) {})
	if err == nil || !strings.Contains(err.Error(), "job job-9 not found") || exitCode(err) != exitInvalid {
		t.Errorf("err = %v (exit %d), want the not-found message, exit 2", err, exitCode(err))
	}
	// Unavailable for longer than the patience: an error, not a hang.
	cl = &watchClient{}
	start := time.Now()
	_, err = watchJob(context.Background(), cl, "job-1", 500*time.Millisecond, func(*pb.Job) {})
	if err == nil || !strings.Contains(err.Error(), "unreachable") || time.Since(start) > 10*time.Second {
		t.Errorf("err = %v after %v", err, time.Since(start))
	}
}
