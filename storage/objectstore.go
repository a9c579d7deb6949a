package storage

import (
	"context"
	"io"
)

// ObjectStore is the object access that package dataset needs (its
// ingest, reader, verification, listing and deletion take one). *Client
// implements it; tests also use an in-memory implementation
// (storetest.MemStore). Every method takes a ctx and may block on the
// network. A missing object is reported with an error wrapping ErrNotFound.
type ObjectStore interface {
	// Put stores size bytes from r under key, replacing any object there.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens the whole object; the caller closes it.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange opens n ≥ 1 bytes of the object from offset off.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// Stat describes the object.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns every object whose key starts with prefix, in key order.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

var _ ObjectStore = (*Client)(nil)
