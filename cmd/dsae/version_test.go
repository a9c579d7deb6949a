package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/dsae/dsae/sae"
)

// `dsae version` names the Go version and the matrix backend in use.
func TestVersion(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{runtime.Version(), "blas " + sae.Backend(), runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(s, want) {
			t.Errorf("version output %q lacks %q", s, want)
		}
	}
}
