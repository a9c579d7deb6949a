package client

import (
	"testing"

	"github.com/dsae/dsae/internal/deptest"
)

// serverOnly are the packages only a coordinator may link: raft, its bolt
// log store, and the coordinator package (the FSM and the server). With
// Tree set, the packages below the path count too; the coordinator's own
// subpackages (client, controlpb, auth) are shared and do not.
var serverOnly = []deptest.Pattern{
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
		for _, dep := range deptest.Deps(t, pkg) {
			if s := deptest.Match(dep, serverOnly); s != "" {
				t.Errorf("%s depends on %s, which only a coordinator may link", pkg, dep)
			}
		}
	}
	// The check sees what it looks for: the binary, which runs
	// coordinators, links every one of them.
	found := map[string]bool{}
	for _, dep := range deptest.Deps(t, "github.com/dsae/dsae/cmd/dsae") {
		found[deptest.Match(dep, serverOnly)] = true
	}
	for _, s := range serverOnly {
		if !found[s.Path] {
			t.Errorf("cmd/dsae does not depend on %s: the check looks for the wrong names", s.Path)
		}
	}
}
