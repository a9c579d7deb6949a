package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/dsae/dsae/sae"
)

// `dsae version` and `dsae --version` print the same line: the module
// version, the commit, the Go version and the matrix backend in use.
func TestVersion(t *testing.T) {
	var outs []string
	for _, args := range [][]string{{"version"}, {"--version"}} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		for _, want := range []string{"dsae ", " commit ", runtime.Version(), "blas " + sae.Backend(), runtime.GOOS + "/" + runtime.GOARCH} {
			if !strings.Contains(s, want) {
				t.Errorf("dsae %s output %q lacks %q", args[0], s, want)
			}
		}
		outs = append(outs, s)
	}
	if outs[0] != outs[1] {
		t.Errorf("dsae version %q and dsae --version %q differ", outs[0], outs[1])
	}
}
