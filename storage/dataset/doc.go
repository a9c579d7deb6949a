// Package dataset keeps datasets in S3-compatible object storage: ingest,
// the training Reader, verification, listing and deletion.
//
// A dataset is a prefix datasets/<name>/ holding float32 .npy shards,
// optional int32 labels shards and a manifest.json written last, so that a
// dataset is visible only once it is whole ([Manifest] lists d, rows, the
// chunk size and, per shard, its key, size, SHA-256 and one CRC32C per
// chunk). [Ingest] and [IngestMNIST] stream local files (read by package
// datafile) into shards with bounded memory; nothing is published unless
// everything succeeded. [ListDatasets], [LoadManifest] and [DeleteDataset]
// manage them. The store is any storage.ObjectStore, such as a
// *storage.Client.
//
// Training reads a dataset in the order package order gives: a seeded
// permutation of fixed-size chunks of rows, rows shuffled inside each
// chunk ([Manifest.Layout] is the layout it permutes), each rank reading
// its contiguous share of each global batch (order.BatchSlice). A [Reader]
// fetches chunks with ranged GETs, checks their CRC32C, prefetches a
// rank's next shares and keeps a small cache:
//
//	rd, err := dataset.OpenReader(ctx, client, "acts", dataset.ReaderOptions{})
//	if err != nil {
//		return err
//	}
//	defer rd.Close()
//	o := order.NewEpochOrder(rd.Manifest().Layout(), seed, epoch)
//	for step := int64(0); step*int64(batch) < o.Len(); step++ {
//		n, err := rd.ReadStep(ctx, o, batch, step, rank, ranks, x, nil)
//		...
//	}
//
// [Reader.ReadRows] reads rows in storage order instead, for one bounded
// pass over the dataset such as an evaluation, and [LoadDataset] reads a
// whole (small) dataset into memory, as a datafile.Matrix. [VerifyDataset]
// reads every object whole and checks it against the manifest.
//
// Bad user input (a dataset name, an ingest option, a local file) is an
// error wrapping datafile.ErrBadInput, the one sentinel for it; stored data
// that fails its checks wraps [ErrCorrupt].
package dataset
