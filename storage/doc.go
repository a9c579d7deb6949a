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
// [WriteNPY] writes a float32 matrix as a .npy file numpy loads as it is;
// [WriteNPYHeader] writes the header of any dtype, order and shape, for a
// caller that streams the data after it. They are the one .npy writer in
// dsae: ingest's shards and labels use the same code.
//
// # Datasets in object storage
//
// A dataset is a prefix datasets/<name>/ holding float32 .npy shards, optional
// int32 labels shards and a manifest.json written last, so that a dataset is
// visible only once it is whole ([Manifest] lists d, rows, the chunk size and,
// per shard, its key, size, SHA-256 and one CRC32C per chunk). [Ingest] and
// [IngestMNIST] stream local files into shards with bounded memory; nothing
// is published unless everything succeeded. [ListDatasets], [LoadManifest]
// and [DeleteDataset] manage them. The store is any [ObjectStore], such as
// [*Client].
//
// Training reads a dataset in the order given by [EpochOrder]: a seeded
// permutation of fixed-size chunks of rows, rows shuffled inside each chunk,
// a pure function of (layout, seed, epoch). Global batch s is the next B rows
// of that order and rank r of N reads its contiguous share ([BatchSlice]).
// A [Reader] fetches chunks with ranged GETs, checks their CRC32C, prefetches
// a rank's next shares and keeps a small cache:
//
//	rd, err := storage.OpenReader(ctx, client, "acts", storage.ReaderOptions{})
//	if err != nil {
//		return err
//	}
//	defer rd.Close()
//	order := storage.NewEpochOrder(rd.Manifest().Layout(), seed, epoch)
//	for step := int64(0); step*int64(batch) < order.Len(); step++ {
//		n, err := rd.ReadStep(ctx, order, batch, step, rank, ranks, x, nil)
//		...
//	}
//
// [Reader.ReadRows] reads rows in storage order instead, for one bounded
// pass over the dataset such as an evaluation, and [LoadDataset] reads a
// whole (small) dataset into memory.
//
// # The S3 client
//
// [Client] wraps minio-go for one bucket: every call takes a ctx, transient
// failures are retried with capped exponential backoff and jitter until
// [ClientConfig].RetryTimeout, after which the error wraps [ErrUnreachable];
// wrong credentials ([ErrAccessDenied]) are never retried. Credentials come
// from the config or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and are
// redacted wherever a config is printed or logged. Package s3server is an
// embedded S3-compatible server for local use and tests.
//
// # Checkpoints and models
//
// A [CheckpointStore] saves a [Checkpoint] (parameters, optimizer and
// tracker state, step, epoch, seed, metrics) under a unique key and
// publishes it by writing its commit marker last, so a half-written
// checkpoint is never listed or loaded; loads verify its SHA-256, and Prune
// keeps the last K. [UploadModel] copies a model directory (sae.safetensors,
// cfg.json, metrics.json, pictures) under jobs/<id>/model/ with a manifest
// written last; [PullModel] downloads and verifies it into a local directory
// atomically.
package storage
