package coordinator

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// BenchmarkFSMApply measures decoding and applying one progress report, the
// most frequent command, on a state with jobs×workers entries.
func BenchmarkFSMApply(b *testing.B) {
	for _, size := range []struct{ jobs, workers int }{{1, 4}, {16, 64}} {
		b.Run(fmt.Sprintf("jobs=%d,workers=%d", size.jobs, size.workers), func(b *testing.B) {
			f := NewFSM()
			for w := 0; w < size.workers; w++ {
				f.ApplyCommand(cmdOf(&pb.RegisterWorkerCmd{WorkerId: fmt.Sprint("w", w)}))
			}
			per := size.workers / size.jobs
			for j := 0; j < size.jobs; j++ {
				job := f.ApplyCommand(cmdOf(&pb.SubmitJobCmd{Spec: testSpec()})).Reply.(*pb.Job)
				var ids []string
				for w := j * per; w < (j+1)*per; w++ {
					ids = append(ids, fmt.Sprint("w", w))
				}
				f.ApplyCommand(cmdOf(&pb.NewGenerationCmd{JobId: job.Id, WorkerIds: ids}))
				for _, id := range ids {
					f.ApplyCommand(cmdOf(&pb.ReadyCmd{JobId: job.Id, Generation: 1, WorkerId: id, Report: &pb.ReadyReport{}}))
				}
			}
			logs := make([]*raft.Log, 64)
			for i := range logs {
				data, _ := EncodeCommand(cmdOf(&pb.ProgressCmd{JobId: JobID(1), Generation: 1, WorkerId: "w0",
					Metrics: &pb.Metrics{Step: int64(i + 1), Values: map[string]float64{"mse": 0.1, "fvu": 0.2, "l0": 12, "loss": 0.3}}}))
				logs[i] = &raft.Log{Type: raft.LogCommand, Data: data}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if r := f.Apply(logs[i%len(logs)]).(ApplyResult); r.Err != nil {
					b.Fatal(r.Err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
		})
	}
}

// BenchmarkClusterWrite measures a write through the gRPC API to the leader
// and its raft commit on a majority (real TCP on loopback, bolt log store).
func BenchmarkClusterWrite(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			c := MakeCluster(b, nodes)
			cl := c.Client(c.nodes[c.Leader()].GRPCAddr())
			ctx := ctxT(b)
			req := &pb.SubmitJobRequest{Spec: testSpec()}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := cl.SubmitJob(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}
