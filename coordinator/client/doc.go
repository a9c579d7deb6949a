// Package client is the control-plane client of dsae: what a worker, the
// CLI or any other program needs to talk to the coordinators, without the
// coordinators' own machinery. It is to package coordinator what etcd's
// client/v3 is to its server.
//
//   - Dial connects to the cluster through any coordinators given, spreads
//     calls over them and retries a call on another one when it fails with
//     Unavailable; every call carries the cluster token (package auth).
//   - JoinPool makes a process a member of the memberlist gossip pool with
//     its NodeMeta (role, id, addresses); Pool tells who is alive.
//     GossipTimings are the failure detector's timings.
//   - The worker's side of the protocol (described in package coordinator,
//     "Membership and generations") uses NewRequestID for every write, so
//     that a retried report is applied once; Refused to tell refusals,
//     which no retry can turn into a success, from failures worth a retry;
//     and Terminal to tell when a job is over.
//
// # What it links
//
// The package imports gRPC, memberlist, auth and controlpb, never raft,
// its bolt log store or the coordinator's state machine and server: a
// test (TestClientLinksNoServer in e2e/layering_test.go) runs `go list -deps` on this package and
// on the worker and fails if any of those appears. The gossip pool lives
// here, not in package coordinator, because both sides gossip in the same
// pool: package coordinator imports this package for it, for Terminal and
// for the sentinel ErrInvalidConfig (the same value under both names), so
// that the dependencies point from server to client only. Two internal
// packages are shared by both sides: internal/logbridge (hashicorp log
// lines into slog) and internal/faults (the coordinator tests' crash of a
// pool member, which is not part of this API).
//
// A worker joins like this:
//
//	conn, _ := client.Dial([]string{"10.0.0.1:7100", "10.0.0.2:7100"}, auth.Config{Secret: secret})
//	ctl := controlpb.NewControlClient(conn)
//	cl, _ := ctl.GetCluster(ctx, &controlpb.GetClusterRequest{})
//	pool, _ := client.JoinPool(client.PoolConfig{Addr: "10.0.0.7:7400", Secret: secret,
//		Meta: client.NodeMeta{Role: client.RoleWorker, ID: "w1", GRPC: "10.0.0.7:7300", Ring: "10.0.0.7:7300"}})
//	var gossip []string // the coordinators' gossip addresses
//	for _, c := range cl.Coordinators {
//		gossip = append(gossip, c.GossipAddr)
//	}
//	pool.Join(gossip)
//	ctl.Register(ctx, &controlpb.RegisterRequest{WorkerId: "w1", GrpcAddr: "10.0.0.7:7300", RingAddr: "10.0.0.7:7300"})
//
// See ExampleJoinPool for a runnable pool of two.
package client
