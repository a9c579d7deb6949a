// Package deptest lists what packages link, with `go list -deps`, for the
// tests that check a package keeps clear of another's dependencies
// (coordinator/client's of raft, storage/datafile's and storage/order's of
// the S3 client). Only tests import it.
package deptest

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

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

// Deps returns the import paths of pkgs and of every package they depend
// on, as `go list -deps pkgs...` prints them, failing t if it fails.
func Deps(t testing.TB, pkgs ...string) []string {
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

// Pattern names a package by import path, and with Tree the packages
// below that path too.
type Pattern struct {
	Path string
	Tree bool
}

// Match returns the Path of the first of patterns that pkg falls under,
// or "".
func Match(pkg string, patterns []Pattern) string {
	for _, p := range patterns {
		if pkg == p.Path || (p.Tree && strings.HasPrefix(pkg, p.Path+"/")) {
			return p.Path
		}
	}
	return ""
}
