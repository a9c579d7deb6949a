// Package storetest holds what the tests of package storage and of the
// packages built on it (dataset, artifact) share: MemStore, an in-memory
// storage.ObjectStore with fault injection, and PrefixStore; the embedded
// S3 server with test credentials (StartS3, ClientConfig) and Store, the
// store a conformance test runs against (an embedded server, or the one
// named by DSAE_TEST_S3_ENDPOINT); ObjectStoreContract, the behaviour
// every ObjectStore shares; and SeededReader and SeededBytes, reproducible
// payloads. Only tests import it.
//
// It imports storage, so storage's own tests that use it are in package
// storage_test.
package storetest
