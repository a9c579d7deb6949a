// Package storage is dsae's client of S3-compatible object storage, the
// one store that holds datasets, checkpoints and finished models.
//
// [Client] wraps minio-go for one bucket: every call takes a ctx, transient
// failures are retried with capped exponential backoff and jitter until
// [ClientConfig].RetryTimeout, after which the error wraps [ErrUnreachable];
// wrong credentials ([ErrAccessDenied]) are never retried. Credentials come
// from the config or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and are
// redacted wherever a config is printed or logged. [ObjectStore] is the
// part of the client that the dataset code needs, so that it can also run
// on an in-memory store.
//
// # The storage tree
//
// The folders under storage/ have one concern each, named by the folder:
//
//	storage             the S3 client: Client, ClientConfig, ObjectStore, its errors
//	storage/datafile    local data files (.npy, CSV, IDX, labels, MNIST) and the
//	                    in-memory Matrix; no network
//	storage/order       the epoch order of a dataset's rows and the batch slices
//	                    of each rank; pure functions, no I/O
//	storage/dataset     datasets in the store: manifest, ingest, the training
//	                    Reader, verification, listing and deletion
//	storage/artifact    what a training job leaves in the store: checkpoints and
//	                    the finished model
//	storage/s3server    an embedded S3-compatible server for local use and tests
//	storage/mnistdata   the MNIST files, embedded in the binary
//	storage/storetest   test helpers: an in-memory ObjectStore, the embedded
//	                    server with test credentials, the ObjectStore contract
//
// The client is here, at the top, because everything that talks to the
// store is built on it and "storage" is the name a reader looks for it
// under. Datasets and artifacts are packages of their own beside it: they
// are two layouts of keys in the one bucket (datasets/<name>/ and
// jobs/<id>/) with their own formats, checks and errors, used by different
// callers (ingest and training reads; the worker's checkpoints and `dsae
// model pull`). The imports go one way: datafile and order import nothing
// of storage's (a test checks that they link neither minio-go nor
// net/http), dataset imports storage, datafile and order, artifact imports
// storage.
package storage
