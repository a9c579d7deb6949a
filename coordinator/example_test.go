package coordinator_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/dsae/dsae/coordinator"
	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/worker/jobspec"
)

// A one-node cluster: start a coordinator, then submit a job through the
// client that workers and the CLI use. JobSpecs gives the coordinator the
// model's validation, as cmd/dsae does.
func Example() {
	dir, err := os.MkdirTemp("", "dsae-coordinator-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sec := auth.Config{Secret: []byte("example-cluster-secret-0123")}
	n, err := coordinator.Start(context.Background(), coordinator.Config{
		ID: "c1", DataDir: dir, Auth: sec,
		RaftAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0",
		Logger:   slog.New(slog.DiscardHandler),
		JobSpecs: jobspec.Rules{},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()

	conn, err := client.Dial([]string{n.GRPCAddr()}, sec)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	cl := pb.NewControlClient(conn)
	spec := jobspec.Default() // the vocabulary of dsae train: 784→196 KL, Adam
	spec.Data, spec.Steps, spec.Model.Rho = "mnist", 1000, 0.05
	resp, err := cl.SubmitJob(context.Background(), &pb.SubmitJobRequest{Spec: spec.Proto()})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Job.Id, resp.Job.State, resp.Job.Reason)
	// Output: job-000001 JOB_STATE_QUEUED waiting for workers
}
