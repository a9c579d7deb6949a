// Package coordinator is the control plane of dsae: a raft group of 1, 3
// or 5 coordinators that decides who trains which job, on which generation
// and from which step, and remembers every job and checkpoint through
// failures of the coordinators themselves.
//
// # State
//
// The replicated state machine (FSM) holds jobs (spec, state, reason),
// workers, per job the current generation (members in ring order, start
// step, donor), the last completed step, checkpoints, final metrics and the
// model location — pointers and counters, never tensors. Every change is a
// controlpb.Command in the raft log, stamped with the leader's clock;
// applying commands is deterministic, and a snapshot is the protobuf
// encoding of the state.
//
// # Membership and generations
//
// Workers and coordinators join one memberlist pool (JoinPool); node
// metadata carries the role and addresses. Only the raft leader acts on it:
// joins, failures, and a worker's report that a ring peer broke become raft
// entries and new generations. Each generation is announced with its
// members; every member reports its last completed step and parameter
// checksum (ReportReady); when all have, the start step is the highest step
// any member (or the latest checkpoint) holds, and the donor is the first
// member in ring order holding it (or that checkpoint). A job with no live
// worker waits in the queue.
//
// A worker therefore: joins the pool with role "worker" (addresses of the
// pool from GetCluster), calls Register, and follows WatchGeneration; on
// every announcement naming it, it stops the step in flight and calls
// ReportReady; when the generation has started it fetches state from the
// donor if its own checksum or step differs, trains from StartStep+1,
// reports progress every few steps, records checkpoints (rank 0) with
// ReportCheckpoint, a broken ring peer with ReportPeerFailure, and the end
// with ReportResult. Reports naming an old generation are refused with
// FailedPrecondition.
//
// # API and security
//
// Every coordinator serves the controlpb.Control gRPC API and the gRPC
// health service: reads come from the local replica, writes are forwarded
// to the leader. Clients use Dial, which spreads calls over the
// coordinators given and retries on another one when a call fails with
// Unavailable. Package auth derives from one cluster secret the gossip
// encryption key, the raft connection key and the token every gRPC call
// must carry.
//
// See Example for a one-node cluster.
package coordinator
