//go:build !gonumblas && !openblas

package sae

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dsae/dsae/sae/internal/kernels"
)

// TestBackendKernel: Backend names the kernel the products run on, and
// DSAE_KERNEL selects it when the package starts (checked in a child
// process, since the variable is read once); an unknown name stops the
// program with a message that names the variable and the choices.
func TestBackendKernel(t *testing.T) {
	if os.Getenv("SAE_TEST_PRINT_BACKEND") == "1" {
		os.Stdout.WriteString("backend=" + Backend() + "\n")
		return
	}
	if got, want := Backend(), "kernels/"+kernels.Name(); got != want {
		t.Fatalf("Backend() = %q, want %q", got, want)
	}
	if os.Getenv(KernelEnv) == "" && kernels.Name() != kernels.Names()[0] {
		t.Fatalf("default kernel %q, want the best of %v", kernels.Name(), kernels.Names())
	}
	run := func(value string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestBackendKernel$")
		cmd.Env = append(os.Environ(), "SAE_TEST_PRINT_BACKEND=1", KernelEnv+"="+value)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, name := range kernels.Names() {
		out, err := run(name)
		if err != nil || !strings.Contains(out, "backend=kernels/"+name+"\n") {
			t.Fatalf("%s=%s: %v, output:\n%s", KernelEnv, name, err, out)
		}
	}
	out, err := run("sse9")
	if err == nil || !strings.Contains(out, "sae: DSAE_KERNEL=sse9: kernels: no kernel \"sse9\"") {
		t.Fatalf("%s=sse9: %v, output:\n%s", KernelEnv, err, out)
	}
}
