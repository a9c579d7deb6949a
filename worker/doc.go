// Package worker holds the training loop that every dsae worker runs.
//
// The loop drives package sae only through its two-phase step (DESIGN §2):
// the stats phase, a reduction of the stats, the gradient phase, a reduction
// of the gradient and metric sums, then Finalize and the optimizer update.
// The reductions go through the Reducer interface: on one machine that is
// Local (a no-op); in a cluster it is the ring all-reduce. Because the data
// order is a pure function of (seed, epoch) and each rank takes its
// contiguous share of every global batch, the same Trainer produces the
// same trajectory whatever the number of members.
//
//	tr, _ := worker.NewTrainer(worker.Options{...})
//	for !tr.Done() {
//		m, err := tr.Step(ctx)
//		...
//	}
package worker
