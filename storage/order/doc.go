// Package order is the order in which training reads a dataset's rows:
// pure functions of their arguments, with no I/O (a test checks that it
// links neither minio-go nor net/http).
//
// A [Layout] says how the rows are cut: shards of rows, each cut into
// chunks of ChunkRows rows. An [EpochOrder] is a seeded permutation of
// the chunks with the rows shuffled inside each chunk, a pure function of
// (layout, seed, epoch) that holds memory proportional to the number of
// shards. Global batch s is the next B rows of that order, and rank r of N
// reads its contiguous share of it ([BatchSlice]):
//
//	o := order.NewEpochOrder(layout, seed, epoch)
//	for step := int64(0); step*int64(batch) < o.Len(); step++ {
//		lo, hi := order.BatchSlice(o.Len(), batch, step, rank, ranks)
//		rows := o.Rows(lo, hi-lo, nil) // global row ids, in order
//		...
//	}
//
// dataset.Reader fetches the rows of such a slice from the object store
// (Manifest.Layout gives a dataset's layout); worker.MemorySource reads
// them from memory.
package order
