package e2e

// The packages' layering, as `go list -deps` shows it: a worker and the
// control-plane client link no coordinator server, and the local data files
// and the epoch order do no network I/O.

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// serverOnly are the packages only a coordinator may link: raft, its bolt
// log store, and the coordinator package (the FSM and the server). With
// Tree set, the packages below the path count too; the coordinator's own
// subpackages (client, controlpb, auth) are shared and do not.
var serverOnly = []depPattern{
	{Path: "github.com/hashicorp/raft", Tree: true},
	{Path: "github.com/hashicorp/raft-boltdb", Tree: true}, // and raft-boltdb/v2
	{Path: "go.etcd.io/bbolt", Tree: true},
	{Path: "github.com/boltdb/bolt", Tree: true},
	{Path: "github.com/dsae/dsae/coordinator"},
}

// TestClientLinksNoServer: a worker and a control-plane client link
// neither raft, nor its bolt store, nor the coordinator's FSM and server.
func TestClientLinksNoServer(t *testing.T) {
	for _, pkg := range []string{"github.com/dsae/dsae/coordinator/client", "github.com/dsae/dsae/worker/..."} {
		for _, dep := range goDeps(t, pkg) {
			if s := matchPattern(dep, serverOnly); s != "" {
				t.Errorf("%s depends on %s, which only a coordinator may link", pkg, dep)
			}
		}
	}
	// The check sees what it looks for: the binary, which runs
	// coordinators, links every one of them.
	found := map[string]bool{}
	for _, dep := range goDeps(t, "github.com/dsae/dsae/cmd/dsae") {
		found[matchPattern(dep, serverOnly)] = true
	}
	for _, s := range serverOnly {
		if !found[s.Path] {
			t.Errorf("cmd/dsae does not depend on %s: the check looks for the wrong names", s.Path)
		}
	}
}

// network are the packages that mean talking to the object store: the S3
// client (this package), minio-go and net/http, each with the packages
// below it.
var network = []depPattern{
	{Path: "github.com/dsae/dsae/storage"},
	{Path: "github.com/minio/minio-go/v7", Tree: true},
	{Path: "net/http", Tree: true},
}

// TestPurePackagesLinkNoNetwork: the local data files and the epoch order
// link neither the S3 client nor minio-go nor net/http.
func TestPurePackagesLinkNoNetwork(t *testing.T) {
	for _, pkg := range []string{"github.com/dsae/dsae/storage/datafile", "github.com/dsae/dsae/storage/order"} {
		for _, dep := range goDeps(t, pkg) {
			if n := matchPattern(dep, network); n != "" {
				t.Errorf("%s depends on %s; it must do no network I/O", pkg, dep)
			}
		}
	}
	// The check sees what it looks for: the dataset package, which reads
	// from the store, links every one of them.
	found := map[string]bool{}
	for _, dep := range goDeps(t, "github.com/dsae/dsae/storage/dataset") {
		found[matchPattern(dep, network)] = true
	}
	for _, n := range network {
		if !found[n.Path] {
			t.Errorf("storage/dataset does not depend on %s: the check looks for the wrong names", n.Path)
		}
	}
}

// goTool finds the go command: on PATH, else in GOROOT.
func goTool(t testing.TB) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := runtime.GOROOT(); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	t.Fatal("this test runs `go list -deps` and found no go command on PATH or in GOROOT/bin; put one on PATH")
	return ""
}

// goDeps returns the import paths of pkgs and of every package they depend
// on, as `go list -deps pkgs...` prints them, failing t if it fails.
func goDeps(t testing.TB, pkgs ...string) []string {
	t.Helper()
	out, err := exec.Command(goTool(t), append([]string{"list", "-deps"}, pkgs...)...).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg += ": " + string(ee.Stderr)
		}
		t.Fatalf("go list -deps %v: %s", pkgs, msg)
	}
	return strings.Fields(string(out))
}

// depPattern names a package by import path, and with Tree the packages
// below that path too.
type depPattern struct {
	Path string
	Tree bool
}

// matchPattern returns the Path of the first of patterns that pkg falls under,
// or "".
func matchPattern(pkg string, patterns []depPattern) string {
	for _, p := range patterns {
		if pkg == p.Path || (p.Tree && strings.HasPrefix(pkg, p.Path+"/")) {
			return p.Path
		}
	}
	return ""
}
