// Package worker holds the training loop that every dsae worker runs, and
// the worker process around it.
//
// # The training loop
//
// Trainer drives package sae only through its two-phase step (DESIGN §2):
// the stats phase, a reduction of the stats, the gradient phase, a reduction
// of the gradient and metric sums, then Finalize and the optimizer update.
// The reductions go through the Reducer interface: on one machine that is
// Local (a no-op); in a cluster it is the ring all-reduce of the current
// generation. Because the data order is a pure function of (seed, epoch)
// and each rank takes its contiguous share of every global batch, the same
// Trainer produces the same trajectory whatever the number of members.
//
// Steps are counted as completed steps (0 = fresh), as everywhere in dsae:
// Options.Completed, Trainer.Completed, StepResult.Step, ready reports and
// checkpoints. A step either completes or changes nothing: a failed
// reduction, a non-finite loss (ErrDiverged) or replicas that entered the
// step with different parameters (ErrReplicaMismatch, checked at every step
// in the last reduction) leave parameters, optimizer state and dead-latent
// tracker as they were. Snapshot, Restore and Checksum carry that state
// between members and into checkpoints.
//
//	tr, _ := worker.NewTrainer(worker.Options{...})
//	for !tr.Done() {
//		res, err := tr.Step(ctx)
//		...
//	}
//
// A Trainer belongs to one generation (its reducer and buffers depend on
// the number of members); the Model and Optimizer it updates in place
// outlive it.
//
// # The worker process
//
// Agent is `dsae worker`: it serves the ring service, the state transfer
// service (transferpb) and gRPC health on one gRPC server, joins the gossip
// pool, registers, and follows WatchGeneration. On an announced generation
// it stops the step in flight, holds a copy of its state for members that
// are behind and reports (completed steps, checksum); when the generation
// starts it takes the start state from the donor or the checkpoint if its
// own differs, builds the generation's ring and a Trainer, and trains. A
// failed ring call is reported at once (ReportPeerFailure) so that the
// coordinators probe the members and form the next generation without
// waiting for gossip. Rank 0 reports progress about once a second (loss,
// metrics, samples/s and the step-time breakdown), writes checkpoints in the
// background, and at the end evaluates the model, uploads the model
// directory to jobs/<id>/model/ and reports the result. Every write to the
// control plane carries a request id (client.NewRequestID), so that
// retries are answered once.
//
// The Agent talks to the coordinators only through package
// coordinator/client (Dial, JoinPool) and the generated controlpb, so a
// worker does not link raft or the coordinators' state machine.
package worker
