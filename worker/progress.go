package worker

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// progressReporter sends rank 0's progress to the coordinators every
// AgentConfig.ProgressEvery, from a goroutine of its own so that a slow
// control plane (an election) never holds up training; a report not yet
// sent is replaced by a newer one.
type progressReporter struct {
	a       *Agent
	job     string
	gen     uint64
	members int
	total   int64

	last  time.Time
	n     int64
	rows  int64
	wall  time.Duration
	times StepTimes

	mu      sync.Mutex
	pending *pb.Metrics
	kick    chan struct{}
	stopped chan struct{}
	wg      sync.WaitGroup
}

func newProgressReporter(a *Agent, job string, gen uint64, members int, total int64) *progressReporter {
	// The first step of a generation is reported at once, so that a watcher
	// sees training resume without waiting a whole interval.
	p := &progressReporter{a: a, job: job, gen: gen, members: members, total: total,
		kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	p.wg.Add(1)
	go p.loop()
	return p
}

// add accounts for one step that took el and queues a report when one is due.
func (p *progressReporter) add(res StepResult, el time.Duration) {
	p.n++
	p.rows += int64(res.Metrics.Rows)
	p.wall += el
	t := &p.times
	t.Data += res.Times.Data
	t.Compute += res.Times.Compute
	t.StatsReduce += res.Times.StatsReduce
	t.GradReduce += res.Times.GradReduce
	t.Update += res.Times.Update
	if time.Since(p.last) < p.a.cfg.ProgressEvery && res.Step != p.total {
		return
	}
	p.queue(res)
}

func (p *progressReporter) queue(res StepResult) {
	if p.n == 0 {
		return
	}
	k := float64(p.n)
	m := res.Metrics
	v := map[string]float64{
		"loss": m.Loss, "mse": m.MSE, "fvu": m.FVU, "l0": m.L0, "mean_activation": m.MeanActivation, "dead_fraction": m.DeadFraction,
		"lr": res.LR, "epoch": float64(res.Epoch), "total_steps": float64(p.total), "members": float64(p.members),
		"time_data": p.times.Data.Seconds() / k, "time_compute": p.times.Compute.Seconds() / k,
		"time_stats_reduce": p.times.StatsReduce.Seconds() / k, "time_grad_reduce": p.times.GradReduce.Seconds() / k,
		"time_update": p.times.Update.Seconds() / k, "time_step": p.wall.Seconds() / k,
	}
	if p.wall > 0 {
		v["samples_per_sec"] = float64(p.rows) / p.wall.Seconds()
	}
	for key, x := range v {
		if !finite(x) {
			delete(v, key)
		}
	}
	p.mu.Lock()
	p.pending = &pb.Metrics{Step: res.Step, Values: v}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	p.last, p.n, p.rows, p.wall, p.times = time.Now(), 0, 0, 0, StepTimes{}
}

func (p *progressReporter) loop() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stopped:
			return
		case <-p.kick:
		}
		p.send()
	}
}

func (p *progressReporter) send() {
	p.mu.Lock()
	m := p.pending
	p.pending = nil
	p.mu.Unlock()
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.a.ctl.ReportProgress(ctx, &pb.ReportProgressRequest{JobId: p.job, Generation: p.gen, WorkerId: p.a.cfg.ID,
		Metrics: m, RequestId: client.NewRequestID()})
	if err != nil {
		p.a.log.Debug("progress report", "job", p.job, "step", m.Step, "err", err)
	}
}

// flush sends what is queued now, synchronously.
func (p *progressReporter) flush() { p.send() }

func (p *progressReporter) close() {
	close(p.stopped)
	p.wg.Wait()
}

// agentMetrics are the worker's Prometheus metrics.
type agentMetrics struct {
	steps *prometheus.CounterVec
	parts *prometheus.CounterVec
}

func newAgentMetrics(reg prometheus.Registerer) *agentMetrics {
	m := &agentMetrics{
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dsae_worker_steps_total", Help: "Training steps applied by this worker."}, nil),
		parts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dsae_worker_step_seconds_total",
			Help: "Time spent in each part of the applied steps: data (waiting for rows), compute, stats_reduce, grad_reduce, update."}, []string{"part"}),
	}
	reg.MustRegister(m.steps, m.parts)
	// Export zeros from the start, so a scrape before the first step shows
	// every series rather than none.
	m.steps.WithLabelValues()
	for _, part := range []string{"data", "compute", "stats_reduce", "grad_reduce", "update"} {
		m.parts.WithLabelValues(part)
	}
	return m
}

func (m *agentMetrics) observe(t StepTimes) {
	m.steps.WithLabelValues().Inc()
	m.parts.WithLabelValues("data").Add(t.Data.Seconds())
	m.parts.WithLabelValues("compute").Add(t.Compute.Seconds())
	m.parts.WithLabelValues("stats_reduce").Add(t.StatsReduce.Seconds())
	m.parts.WithLabelValues("grad_reduce").Add(t.GradReduce.Seconds())
	m.parts.WithLabelValues("update").Add(t.Update.Seconds())
}
