package storage_test

import (
	"testing"

	"github.com/dsae/dsae/internal/deptest"
)

// network are the packages that mean talking to the object store: the S3
// client (this package), minio-go and net/http, each with the packages
// below it.
var network = []deptest.Pattern{
	{Path: "github.com/dsae/dsae/storage"},
	{Path: "github.com/minio/minio-go/v7", Tree: true},
	{Path: "net/http", Tree: true},
}

// TestPurePackagesLinkNoNetwork: the local data files and the epoch order
// link neither the S3 client nor minio-go nor net/http.
func TestPurePackagesLinkNoNetwork(t *testing.T) {
	for _, pkg := range []string{"github.com/dsae/dsae/storage/datafile", "github.com/dsae/dsae/storage/order"} {
		for _, dep := range deptest.Deps(t, pkg) {
			if n := deptest.Match(dep, network); n != "" {
				t.Errorf("%s depends on %s; it must do no network I/O", pkg, dep)
			}
		}
	}
	// The check sees what it looks for: the dataset package, which reads
	// from the store, links every one of them.
	found := map[string]bool{}
	for _, dep := range deptest.Deps(t, "github.com/dsae/dsae/storage/dataset") {
		found[deptest.Match(dep, network)] = true
	}
	for _, n := range network {
		if !found[n.Path] {
			t.Errorf("storage/dataset does not depend on %s: the check looks for the wrong names", n.Path)
		}
	}
}
