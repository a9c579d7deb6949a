package coordinator

import (
	"strconv"
	"strings"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// metrics exports the node's raft and control-plane state to Prometheus.
// Values are read at scrape time, so nothing needs updating on the way.
// The coordinator only registers its gauges on Config.Registerer; serving
// them (with the Go runtime and process metrics) is the binary's job.
type metrics struct {
	reg  prometheus.Registerer
	cols []prometheus.Collector
}

// startMetrics registers the gauges on cfg.Registerer, when set; Close
// unregisters them, so a node restarted on the same registry registers
// again.
func (n *Node) startMetrics() error {
	if n.cfg.Registerer == nil {
		return nil
	}
	m, err := newMetrics(n, n.cfg.Registerer)
	if err != nil {
		return err
	}
	n.met = append(n.met, m)
	return nil
}

func newMetrics(n *Node, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{reg: reg}
	gauge := func(name, help string, f func() float64) {
		m.cols = append(m.cols, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "dsae", Subsystem: "coordinator",
			Name: name, Help: help}, f))
	}
	stat := func(key string) func() float64 {
		return func() float64 {
			v, _ := strconv.ParseFloat(n.raft.Stats()[key], 64)
			return v
		}
	}
	gauge("raft_leader", "1 if this node is the raft leader.", func() float64 {
		if n.raft.State() == raft.Leader {
			return 1
		}
		return 0
	})
	gauge("raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.", func() float64 { return float64(n.raft.State()) })
	gauge("raft_term", "Current raft term.", stat("term"))
	gauge("raft_commit_index", "Raft commit index.", stat("commit_index"))
	gauge("raft_applied_index", "Last log index applied to the state machine.", stat("applied_index"))
	gauge("raft_peers", "Voters in the raft configuration, this node included.", func() float64 {
		f := n.raft.GetConfiguration()
		if f.Error() != nil {
			return 0
		}
		return float64(len(f.Configuration().Servers))
	})
	gauge("gossip_members", "Alive members of the gossip pool.", func() float64 { return float64(len(n.pool.Members())) })
	gauge("workers_alive", "Workers the state machine holds alive.", func() float64 {
		c := 0
		for _, w := range n.fsm.State().Workers {
			if w.Alive {
				c++
			}
		}
		return float64(c)
	})
	gauge("generations_total", "Generations announced, summed over all jobs.", func() float64 {
		var s uint64
		for _, j := range n.fsm.State().Jobs {
			s += j.LastGenerationId
		}
		return float64(s)
	})
	for v, name := range pb.JobState_name {
		if v == 0 {
			continue
		}
		st := pb.JobState(v)
		m.cols = append(m.cols, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "dsae", Subsystem: "coordinator",
			Name: "jobs", Help: "Jobs by state.", ConstLabels: prometheus.Labels{"state": strings.ToLower(strings.TrimPrefix(name, "JOB_STATE_"))}}, func() float64 {
			c := 0
			for _, j := range n.fsm.State().Jobs {
				if j.State == st {
					c++
				}
			}
			return float64(c)
		}))
	}
	for i, c := range m.cols {
		if err := reg.Register(c); err != nil {
			for _, r := range m.cols[:i] {
				reg.Unregister(r)
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) unregister() {
	for _, c := range m.cols {
		m.reg.Unregister(c)
	}
}
