package coordinator

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// testRegistry is the registry the harness gives each node: the Go
// collector, as the binary's registry has, and then the node's gauges.
func testRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	return reg
}

// scrape renders n's registry as a /metrics response would. The
// coordinator serves no HTTP; cmd/dsae's tests scrape the served endpoint.
func scrape(t *testing.T, n *Node) string {
	t.Helper()
	g, ok := n.cfg.Registerer.(prometheus.Gatherer)
	if !ok {
		t.Fatalf("node %s has no registry to scrape", n.cfg.ID)
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(g, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func TestMetricsEndpoint(t *testing.T) {
	c := MakeCluster(t, 3)
	cl := c.Client()
	runningJob(t, c, cl, "w1", "w2")
	if _, err := cl.SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: testSpec()}); err != nil {
		t.Fatal(err)
	}
	l := c.nodes[c.Leader()]
	WaitFor(t, waitTimeout, "leader metrics", func() bool {
		m := scrape(t, l)
		for _, want := range []string{
			"dsae_coordinator_raft_leader 1\n",
			"dsae_coordinator_raft_peers 3\n",
			`dsae_coordinator_jobs{state="running"} 1` + "\n",
			`dsae_coordinator_jobs{state="queued"} 1` + "\n",
			"dsae_coordinator_workers_alive 2\n",
			"dsae_coordinator_gossip_members 5\n",
			"go_goroutines ",
		} {
			if !strings.Contains(m, want) {
				return false
			}
		}
		return !strings.Contains(m, "dsae_coordinator_raft_term 0\n") && !strings.Contains(m, "dsae_coordinator_raft_commit_index 0\n")
	})
	m := scrape(t, l)
	if !strings.Contains(m, "dsae_coordinator_generations_total ") {
		t.Fatalf("no generations gauge in\n%s", m)
	}
	f := c.nodes[c.Follower()]
	if m := scrape(t, f); !strings.Contains(m, "dsae_coordinator_raft_leader 0\n") {
		t.Fatal("follower claims to lead")
	}
}
