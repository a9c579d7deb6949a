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
// Steps are counted as completed steps everywhere: 0 is a fresh replica,
// n means steps 1..n are done. A ready report's last_step, a generation's
// start_step, a job's last_step, a checkpoint's step and a metric's step
// all use that count, and a generation that starts at start_step runs step
// start_step+1 next.
//
// # Idempotent writes
//
// A client that loses its answer (its coordinator or the leader died
// mid-call) retries with the same request id. SubmitJob with a request id
// that already created a job returns that job instead of creating a
// second. For the worker reports (ready, progress, checkpoint, result) the
// state keeps, per worker, the id of the last report applied; a report
// carrying it again is answered from the state without being applied, so
// a retried ReportResult gets the finished job instead of an error. Peer
// failure reports need no id: each one replaces the generation it names,
// and a report about an older generation changes nothing.
//
// # Membership and generations
//
// Workers and coordinators join one memberlist pool (client.JoinPool); node
// metadata carries the role and addresses. Only the raft leader acts on it:
// joins, failures, and a worker's report that a ring peer broke become raft
// entries and new generations. Each generation is announced with its
// members; every member reports its last completed step and parameter
// checksum (ReportReady); when all have, the start step is the highest step
// any member (or the latest checkpoint) holds, and the donor is the first
// member in ring order holding it (or that checkpoint, whose checksum is
// then the donor checksum).
//
// Jobs take workers in submission order. A job takes free workers up to
// its max_workers (0: no limit); newcomers join at its next generation.
// While fewer than max(1, min_workers) are alive for it, it has no
// generation and waits in the queue with a reason such as "waiting for
// workers: 1 available, min_workers 2" — when members die and the rest
// fall below the minimum, its generation is ended — and the free workers
// it counted are not given to jobs submitted after it.
//
// A member that crashes is seen by gossip only after a few seconds. A
// worker that finds a ring peer broken therefore reports it
// (ReportPeerFailure), and on the first report for a generation the leader
// probes every other member's gRPC health service (cluster token,
// Config.PeerProbeTimeout, 500 ms by default) in parallel. Members that do
// not answer SERVING are marked down and quarantined — gossip, which may
// still list them, does not bring them back; their own Register call does —
// and the next generation is formed of the rest within the call. When every
// probe succeeds, the same members get a fresh generation (the ring
// restarts), unless the peer was reported in the previous generation too,
// in which case it is quarantined.
//
// A worker therefore: joins the pool with role "worker" (addresses of the
// pool from GetCluster), calls Register, and follows WatchGeneration; on
// every announcement naming it, it stops the step in flight and calls
// ReportReady; when the generation has started it fetches state from the
// donor if its own checksum or step differs, trains from StartStep+1,
// reports progress every few steps, records checkpoints (rank 0) with
// ReportCheckpoint, a broken ring peer with ReportPeerFailure, and the end
// with ReportResult. Reports naming an old generation are refused with
// FailedPrecondition. It gives every report a fresh request id and repeats
// the id when it retries, serves the gRPC health service on its gRPC
// address (with the cluster token) from before it registers until it
// exits, for the leader's probes, and watches again through another
// coordinator when a watch ends with Unavailable.
//
// # API and security
//
// Every coordinator serves the controlpb.Control gRPC API and the gRPC
// health service: reads come from the local replica, writes are forwarded
// to the leader. A follower asked for a job it does not hold asks the
// leader, and waits for its replica to apply a job the leader holds, so a
// client reads its own submission through any coordinator. Clients use client.Dial, which spreads calls over the
// coordinators given and retries on another one when a call fails with
// Unavailable. Package auth derives from one cluster secret the gossip
// encryption key, the raft connection key and the token every gRPC call
// must carry.
//
// # Watches
//
// WatchGeneration and WatchJob are served from the local replica too, so a
// coordinator cut off from the leader would keep a worker waiting for
// announcements that never reach it. Their staleness is therefore bounded:
// a coordinator that is not the leader and has had no contact with one for
// longer than Config.WatchStaleness (3 s by default) ends its watches with
// codes.Unavailable and a message saying so, and the watcher watches again
// through another coordinator. The watch loops check on a ticker (a
// quarter of the bound, at most 500 ms), so they notice while the state
// stands still. The test is raft's LastContact (the last message from a
// leader) rather than a round trip to the leader per check, which would
// cost a call per watch and tick; 3 s is three default heartbeat timeouts,
// so a healthy follower, which hears from the leader about every 100 ms,
// never trips it, while an election that has found no leader for that long
// does.
//
// # Client and server
//
// Everything a worker or the CLI needs to talk to the coordinators — Dial,
// the gossip pool, the helpers of the worker session — is in package
// client, which links neither raft nor its bolt store nor this package;
// this package imports it for the pool it shares with the workers. The
// errors of both use the same sentinel for a bad setting,
// ErrInvalidConfig. Config has DefaultConfig and Validate, which checks
// every field and which Start runs.
//
// See Example for a one-node cluster.
package coordinator
