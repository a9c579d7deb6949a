// Package coordinator is the control plane of dsae: a raft group of
// coordinators that decides who trains which job, on which generation and
// from which step, and remembers every job and checkpoint through failures
// of the coordinators themselves.
//
// The replicated state (FSM) holds jobs, workers, per job the current
// generation (members in ring order, start step, donor), the last completed
// step and checkpoints — pointers and counters, never tensors. Every change
// is a controlpb.Command in the raft log; applying commands is
// deterministic, and a snapshot is the protobuf encoding of the state.
//
// Workers and coordinators join one memberlist pool. Only the raft leader
// acts on membership: it turns joins, failures and a worker's report that a
// ring peer broke into new generations. A generation is announced with its
// members; each member reports its last completed step and parameter
// checksum (ReportReady); when all have reported, the start step is the
// highest step any member (or the latest checkpoint) holds and the donor is
// the first member holding it (or the checkpoint); members then fetch
// state from the donor if needed and train from the start step.
//
// The gRPC API (controlpb.Control) is served by every coordinator: reads
// come from the local replica, writes are forwarded to the leader.
//
//	n, err := coordinator.Start(ctx, coordinator.Config{ID: "c1", DataDir: dir, ...})
//	defer n.Close()
package coordinator
