package client

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// serverOnly are the packages only a coordinator may link: raft, its bolt
// log store, and the coordinator package (the FSM and the server). With
// tree set, the packages below path count too; the coordinator's own
// subpackages (client, controlpb, auth) are shared and do not.
var serverOnly = []struct {
	path string
	tree bool
}{
	{"github.com/hashicorp/raft", true},
	{"github.com/hashicorp/raft-boltdb", true}, // and raft-boltdb/v2
	{"go.etcd.io/bbolt", true},
	{"github.com/boltdb/bolt", true},
	{"github.com/dsae/dsae/coordinator", false},
}

// serverOnlyMatch returns the serverOnly path that pkg falls under, or "".
func serverOnlyMatch(pkg string) string {
	for _, s := range serverOnly {
		if pkg == s.path || (s.tree && strings.HasPrefix(pkg, s.path+"/")) {
			return s.path
		}
	}
	return ""
}

// goTool finds the go command: on PATH, else in GOROOT.
func goTool(t *testing.T) string {
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

func goListDeps(t *testing.T, pkgs ...string) []string {
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

// TestClientLinksNoServer: a worker and a control-plane client link
// neither raft, nor its bolt store, nor the coordinator's FSM and server.
func TestClientLinksNoServer(t *testing.T) {
	for _, pkg := range []string{"github.com/dsae/dsae/coordinator/client", "github.com/dsae/dsae/worker/..."} {
		for _, dep := range goListDeps(t, pkg) {
			if s := serverOnlyMatch(dep); s != "" {
				t.Errorf("%s depends on %s, which only a coordinator may link", pkg, dep)
			}
		}
	}
	// The check sees what it looks for: the binary, which runs
	// coordinators, links every one of them.
	found := map[string]bool{}
	for _, dep := range goListDeps(t, "github.com/dsae/dsae/cmd/dsae") {
		found[serverOnlyMatch(dep)] = true
	}
	for _, s := range serverOnly {
		if !found[s.path] {
			t.Errorf("cmd/dsae does not depend on %s: the check looks for the wrong names", s.path)
		}
	}
}
