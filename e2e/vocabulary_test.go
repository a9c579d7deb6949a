package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestTrainAndSubmitRefuseAlike: `dsae train` and `dsae job submit` share
// one vocabulary and one validation. For every invalid setting, train (on a
// real file), submit with flags and submit with a YAML spec all exit 2 with
// the same one-line message, before submit makes any network call (the
// coordinator address is unreachable); a valid spec is accepted by train
// and gets as far as the network in both submit forms.
func TestTrainAndSubmitRefuseAlike(t *testing.T) {
	dir := t.TempDir()
	_, data := writeCSV(t, dir, "good.csv", 8, 4, 1)
	// Settings of every run; a case's settings replace them.
	base := map[string]string{"hidden": "3", "steps": "1", "batch": "4"}
	topk := map[string]string{"activation": "topk", "sparsity": "topk", "output": "linear", "k": "2"}
	with := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	cases := []struct {
		name string
		set  map[string]string
		want string // the message after "dsae: "
	}{
		{"rho above 1", with(map[string]string{"rho": "1.5"}), "sae: rho = 1.5 out of range (0, 1)"},
		{"rho zero", with(map[string]string{"rho": "0"}), "sae: rho = 0 out of range (0, 1)"},
		{"negative beta", with(map[string]string{"beta": "-1"}), "sae: beta = -1 out of range [0, +inf)"},
		{"negative l1", with(map[string]string{"sparsity": "l1", "activation": "relu", "l1": "-0.1"}), "sae: l1 = -0.1 out of range [0, +inf)"},
		{"negative weight decay", with(map[string]string{"weight-decay": "-1"}), "sae: weight_decay = -1 out of range [0, +inf)"},
		{"kl with relu", with(map[string]string{"activation": "relu"}), "sae: sparsity kl requires activation sigmoid (outputs in (0,1)), got relu"},
		{"k zero", with(topk, map[string]string{"k": "0"}), "sae: k = 0 out of range [1, hidden=3]"},
		{"k above hidden", with(topk, map[string]string{"k": "4"}), "sae: k = 4 out of range [1, hidden=3]"},
		{"topk activation with kl", with(map[string]string{"activation": "topk", "k": "2"}), "sae: activation topk requires sparsity topk, got kl"},
		{"hidden zero", with(map[string]string{"hidden": "0"}), "sae: hidden = 0 out of range [1, +inf)"},
		{"lr zero", with(map[string]string{"lr": "0"}), "sae: invalid optimizer config: lr = 0, must be finite and > 0"},
		{"lr negative", with(map[string]string{"lr": "-1"}), "sae: invalid optimizer config: lr = -1, must be finite and > 0"},
		{"unknown activation", with(map[string]string{"activation": "tanh"}), `sae: activation "tanh" unknown (want sigmoid, relu or topk)`},
		{"unknown output", with(map[string]string{"output": "identity"}), `sae: output "identity" unknown (want sigmoid or linear)`},
		{"unknown sparsity", with(map[string]string{"sparsity": "l2"}), `sae: sparsity "l2" unknown (want kl, l1, topk or none)`},
		{"unknown optimizer", with(map[string]string{"optimizer": "momentum"}), `sae: invalid optimizer config: optimizer = "momentum", must be "sgd" or "adam"`},
		{"unknown schedule", with(map[string]string{"schedule": "linear"}), `sae: invalid optimizer config: schedule = "linear", must be "constant" or "cosine"`},
		{"nesterov without momentum", with(map[string]string{"optimizer": "sgd", "nesterov": "true"}),
			"sae: invalid optimizer config: nesterov needs momentum in (0, 1), got momentum = 0"},
		{"momentum 1", with(map[string]string{"optimizer": "sgd", "momentum": "1"}), "sae: invalid optimizer config: momentum = 1, must be in [0, 1)"},
		{"aux_k without topk", with(map[string]string{"aux-k": "1"}), "sae: aux_k = 1 requires sparsity topk, got kl"},
		{"aux_k above hidden", with(topk, map[string]string{"aux-k": "4"}), "sae: aux_k = 4 out of range [0, hidden=3]"},
		{"negative aux_coef", with(map[string]string{"aux-coef": "-1"}), "sae: aux_coef = -1 out of range [0, +inf)"},
		{"dead_window zero", with(map[string]string{"dead-window": "0"}), "sae: dead_window = 0 out of range [1, +inf)"},
		{"l1_decoder_norm without l1", with(map[string]string{"l1-decoder-norm": "true"}), "sae: l1_decoder_norm requires sparsity l1, got kl"},
		{"beta1 1", with(map[string]string{"beta1": "1"}), "sae: invalid optimizer config: beta1 = 1, must be in [0, 1)"},
		{"eps zero", with(map[string]string{"eps": "0"}), "sae: invalid optimizer config: eps = 0, must be finite and > 0"},
		{"negative clip_norm", with(map[string]string{"clip-norm": "-1"}), "sae: invalid optimizer config: clip_norm = -1, must be finite and >= 0 (0 = off)"},
		{"negative warmup", with(map[string]string{"warmup-steps": "-1"}), "sae: invalid optimizer config: warmup_steps = -1, must be >= 0"},
		{"min_lr above lr", with(map[string]string{"min-lr": "1"}), "sae: invalid optimizer config: min_lr = 1, must be in [0, lr=0.003]"},
		{"cosine warmup past the end", with(map[string]string{"schedule": "cosine", "warmup-steps": "5"}),
			"sae: invalid optimizer config: total_steps = 1, must be > warmup_steps = 5 for the cosine schedule"},
		{"batch zero", with(map[string]string{"batch": "0"}), "jobspec: invalid spec: batch = 0 out of range [1, +inf)"},
		{"negative steps", with(map[string]string{"steps": "-1"}), "jobspec: invalid spec: steps = -1 out of range [0, +inf) (0: from epochs)"},
		{"no steps nor epochs", with(map[string]string{"steps": "0", "epochs": "0"}), "jobspec: invalid spec: steps = 0 and epochs = 0: set one of them"},
	}
	offline := []string{"--coordinator", "127.0.0.1:1", "--insecure", "--timeout", "2s"}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := with(base, tc.set)
			train := append([]string{"train", "--data", data, "--out", "x", "--progress", "0"}, asFlags(spec)...)
			flags := append(append([]string{"job", "submit", "--data", "acts"}, asFlags(spec)...), offline...)
			file := filepath.Join(dir, fmt.Sprintf("case%d.yaml", i))
			if err := os.WriteFile(file, []byte("data: acts\n"+asYAML(spec)), 0o644); err != nil {
				t.Fatal(err)
			}
			yaml := append([]string{"job", "submit", file}, offline...)
			for _, args := range [][]string{train, flags, yaml} {
				r := run(t, dir, args...)
				msg := strings.TrimSpace(r.stderr)
				if r.code != 2 || msg != "dsae: "+tc.want {
					t.Errorf("dsae %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(args, " "), r.code, msg, "dsae: "+tc.want)
				}
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		mustRun(t, dir, append([]string{"train", "--data", data, "--out", "ok", "--progress", "0"}, asFlags(base)...)...)
		file := filepath.Join(dir, "valid.yaml")
		if err := os.WriteFile(file, []byte("data: acts\n"+asYAML(base)), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			append(append([]string{"job", "submit", "--data", "acts"}, asFlags(base)...), offline...),
			append([]string{"job", "submit", file}, offline...),
		} {
			r := run(t, dir, args...)
			if r.code != 1 || !strings.Contains(r.stderr, "control plane unreachable") {
				t.Errorf("dsae %s: exit %d, stderr %q; want exit 1 at the network", strings.Join(args, " "), r.code, r.stderr)
			}
		}
	})
}

// asFlags writes settings as --name=value flags, in a fixed order.
func asFlags(set map[string]string) []string {
	var out []string
	for _, k := range sortedKeys(set) {
		out = append(out, "--"+k+"="+set[k])
	}
	return out
}

// asYAML writes settings as a YAML spec, keys spelt with '_' as the proto
// fields are.
func asYAML(set map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(set) {
		fmt.Fprintf(&b, "%s: %s\n", strings.ReplaceAll(k, "-", "_"), set[k])
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
