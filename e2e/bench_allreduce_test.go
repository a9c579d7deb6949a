package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchAllReduce runs `dsae bench allreduce` as a user would: real rank
// processes on loopback, for each data path, and checks the report: one
// line per size with times and the nccl-tests bandwidths consistent with
// them. A wrong sum on any rank would fail the run (the ranks check it).
func TestBenchAllReduce(t *testing.T) {
	for _, variant := range [][]string{
		{"--unix=true"},
		{"--unix=false"},
		{"--data-path", "grpc"},
	} {
		t.Run(strings.Join(variant, " "), func(t *testing.T) {
			args := append([]string{"bench", "allreduce", "--ranks", "3", "--bytes", "4KiB,1MiB",
				"--iters", "3", "--warmup", "1", "--json"}, variant...)
			r := mustRun(t, t.TempDir(), args...)
			var res []struct {
				Ranks     int     `json:"ranks"`
				Bytes     int64   `json:"bytes"`
				Iters     int     `json:"iters"`
				MedianUS  float64 `json:"median_us"`
				AlgBWGBps float64 `json:"algbw_gbps"`
				BusBWGBps float64 `json:"busbw_gbps"`
				DataPath  string  `json:"data_path"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("report is not JSON: %v\n%s", err, r.stdout)
			}
			if len(res) != 2 || res[0].Bytes != 4<<10 || res[1].Bytes != 1<<20 {
				t.Fatalf("want results for 4KiB and 1MiB, got %+v", res)
			}
			for _, x := range res {
				if x.Ranks != 3 || x.Iters != 3 || x.MedianUS <= 0 {
					t.Fatalf("bad result %+v", x)
				}
				alg := float64(x.Bytes) / (x.MedianUS * 1e3)
				if d := x.AlgBWGBps/alg - 1; d > 1e-9 || d < -1e-9 {
					t.Fatalf("algbw %g GB/s, want bytes/time = %g", x.AlgBWGBps, alg)
				}
				if d := x.BusBWGBps/(alg*4/3) - 1; d > 1e-9 || d < -1e-9 {
					t.Fatalf("busbw %g GB/s, want algbw*2(N-1)/N = %g", x.BusBWGBps, alg*4/3)
				}
			}
		})
	}
	bad := run(t, t.TempDir(), "bench", "allreduce", "--data-path", "rdma")
	if bad.code != 2 || !strings.Contains(bad.stderr, `--data-path "rdma"`) {
		t.Fatalf("--data-path rdma: exit %d, stderr %q; want exit 2 naming the flag", bad.code, bad.stderr)
	}
}
