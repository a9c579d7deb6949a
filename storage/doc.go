// Package storage keeps dsae's data, checkpoints and models in
// S3-compatible object storage, and reads local data files.
//
// # Data files
//
// [Open] loads a local data reference into memory as a [Dataset]: the
// built-in MNIST ("mnist", "mnist:train", "mnist:test"), a 2-D .npy file or a
// numeric CSV file. Every problem with the input is an error that names the
// file and the position (row/line, column) and wraps [ErrBadInput].
//
//	ds, err := storage.Open("mnist:test")
//	if err != nil {
//		return err // errors.Is(err, storage.ErrBadInput) for user errors
//	}
//	row := ds.Row(0) // ds.D float32 values
//
// # Datasets in object storage
//
// A dataset is a prefix datasets/<name>/ holding float32 .npy shards, optional
// labels shards and a manifest.json written last, so that a dataset is visible
// only once it is whole. [Ingest] streams local files into shards with bounded
// memory; [OpenReader] reads a dataset for training in the order given by
// [EpochOrder]: a seeded permutation of fixed-size chunks of rows, rows
// shuffled inside each chunk, a pure function of (seed, epoch).
package storage
