package coordinator

import (
	"io"
	"net/http"
	"strings"
	"testing"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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
		m := scrape(t, l.MetricsAddr())
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
	m := scrape(t, l.MetricsAddr())
	if !strings.Contains(m, "dsae_coordinator_generations_total ") {
		t.Fatalf("no generations gauge in\n%s", m)
	}
	f := c.nodes[c.Follower()]
	if m := scrape(t, f.MetricsAddr()); !strings.Contains(m, "dsae_coordinator_raft_leader 0\n") {
		t.Fatal("follower claims to lead")
	}
}
