package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestTrainAndSubmitRefuseAlike: `dsae train` and `dsae job submit` share
// one vocabulary and one validation. For every invalid setting, train (on a
// real file), submit with flags and submit with a YAML spec all exit 2 with
// the same one-line message told in the user's words: the flags (--rho,
// --weight-decay) on the command line, the file's name and its keys (rho,
// weight_decay) for the YAML spec; submit refuses before any network call
// (the coordinator address is unreachable). A valid spec is accepted by
// train and gets as far as the network in both submit forms.
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
		want string // the message after "dsae: ", {name} where a setting is named
	}{
		{"rho above 1", with(map[string]string{"rho": "1.5"}), "{rho} = 1.5 out of range (0, 1)"},
		{"rho zero", with(map[string]string{"rho": "0"}), "{rho} = 0 out of range (0, 1)"},
		{"negative beta", with(map[string]string{"beta": "-1"}), "{beta} = -1 out of range [0, +inf)"},
		{"negative l1", with(map[string]string{"sparsity": "l1", "activation": "relu", "l1": "-0.1"}), "{l1} = -0.1 out of range [0, +inf)"},
		{"negative weight decay", with(map[string]string{"weight-decay": "-1"}), "{weight_decay} = -1 out of range [0, +inf)"},
		{"kl with relu", with(map[string]string{"activation": "relu"}), "{sparsity} kl requires {activation} sigmoid (outputs in (0,1)), got relu"},
		{"k zero", with(topk, map[string]string{"k": "0"}), "{k} = 0 out of range [1, {hidden}=3]"},
		{"k above hidden", with(topk, map[string]string{"k": "4"}), "{k} = 4 out of range [1, {hidden}=3]"},
		{"topk activation with kl", with(map[string]string{"activation": "topk", "k": "2"}), "{activation} topk requires {sparsity} topk, got kl"},
		{"hidden zero", with(map[string]string{"hidden": "0"}), "{hidden} = 0 out of range [1, +inf)"},
		{"lr zero", with(map[string]string{"lr": "0"}), "{lr} = 0, must be finite and > 0"},
		{"lr negative", with(map[string]string{"lr": "-1"}), "{lr} = -1, must be finite and > 0"},
		{"unknown activation", with(map[string]string{"activation": "tanh"}), `{activation} "tanh" unknown (want sigmoid, relu or topk)`},
		{"unknown output", with(map[string]string{"output": "identity"}), `{output} "identity" unknown (want sigmoid or linear)`},
		{"unknown sparsity", with(map[string]string{"sparsity": "l2"}), `{sparsity} "l2" unknown (want kl, l1, topk or none)`},
		{"unknown optimizer", with(map[string]string{"optimizer": "momentum"}), `{optimizer} = "momentum", must be "sgd" or "adam"`},
		{"unknown schedule", with(map[string]string{"schedule": "linear"}), `{schedule} = "linear", must be "constant" or "cosine"`},
		{"nesterov without momentum", with(map[string]string{"optimizer": "sgd", "nesterov": "true"}),
			"{nesterov} needs {momentum} in (0, 1), got {momentum} = 0"},
		{"momentum 1", with(map[string]string{"optimizer": "sgd", "momentum": "1"}), "{momentum} = 1, must be in [0, 1)"},
		{"aux_k without topk", with(map[string]string{"aux-k": "1"}), "{aux_k} = 1 requires {sparsity} topk, got kl"},
		{"aux_k above hidden", with(topk, map[string]string{"aux-k": "4"}), "{aux_k} = 4 out of range [0, {hidden}=3]"},
		{"negative aux_coef", with(map[string]string{"aux-coef": "-1"}), "{aux_coef} = -1 out of range [0, +inf)"},
		{"dead_window zero", with(map[string]string{"dead-window": "0"}), "{dead_window} = 0 out of range [1, +inf)"},
		{"l1_decoder_norm without l1", with(map[string]string{"l1-decoder-norm": "true"}), "{l1_decoder_norm} requires {sparsity} l1, got kl"},
		{"beta1 1", with(map[string]string{"beta1": "1"}), "{beta1} = 1, must be in [0, 1)"},
		{"eps zero", with(map[string]string{"eps": "0"}), "{eps} = 0, must be finite and > 0"},
		{"negative clip_norm", with(map[string]string{"clip-norm": "-1"}), "{clip_norm} = -1, must be finite and >= 0 (0 = off)"},
		{"negative warmup", with(map[string]string{"warmup-steps": "-1"}), "{warmup_steps} = -1, must be >= 0"},
		{"min_lr above lr", with(map[string]string{"min-lr": "1"}), "{min_lr} = 1, must be in [0, {lr}=0.003]"},
		{"cosine warmup past the end", with(map[string]string{"schedule": "cosine", "warmup-steps": "5"}),
			"{steps} = 1, must be > {warmup_steps} = 5 for the cosine schedule"},
		{"batch zero", with(map[string]string{"batch": "0"}), "{batch} = 0 out of range [1, +inf)"},
		{"negative steps", with(map[string]string{"steps": "-1"}), "{steps} = -1 out of range [0, +inf) (0: from {epochs})"},
		{"no steps nor epochs", with(map[string]string{"steps": "0", "epochs": "0"}), "{epochs} = 0 out of range (0, +inf) (or set {steps})"},
		{"epochs zero", map[string]string{"hidden": "3", "batch": "4", "epochs": "0"}, "{epochs} = 0 out of range (0, +inf) (or set {steps})"},
	}
	offline := []string{"--coordinator", "127.0.0.1:1", "--insecure", "--timeout", "2s"}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := with(base, tc.set)
			if tc.name == "epochs zero" {
				spec = tc.set // no --steps: the default, 0
			}
			train := append([]string{"train", "--data", data, "--out", "x", "--progress", "0"}, asFlags(spec)...)
			flags := append(append([]string{"job", "submit", "--data", "acts"}, asFlags(spec)...), offline...)
			file := filepath.Join(dir, fmt.Sprintf("case%d.yaml", i))
			if err := os.WriteFile(file, []byte("data: acts\n"+asYAML(spec)), 0o644); err != nil {
				t.Fatal(err)
			}
			yaml := append([]string{"job", "submit", file}, offline...)
			flagWant, keyWant := "dsae: "+inWords(tc.want, flagWord), "dsae: "+file+": "+inWords(tc.want, keyWord)
			for _, c := range []struct {
				args []string
				want string
			}{{train, flagWant}, {flags, flagWant}, {yaml, keyWant}} {
				r := run(t, dir, c.args...)
				msg := strings.TrimSpace(r.stderr)
				if r.code != 2 || msg != c.want {
					t.Errorf("dsae %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(c.args, " "), r.code, msg, c.want)
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

// inWords replaces each {name} of msg (a setting's vocabulary name, as sae
// spells it) with word(name).
func inWords(msg string, word func(string) string) string {
	return regexp.MustCompile(`\{([a-z0-9_]+)\}`).ReplaceAllStringFunc(msg, func(m string) string {
		return word(strings.Trim(m, "{}"))
	})
}

// flagWord is a setting's flag; keyWord its YAML key.
func flagWord(name string) string { return "--" + strings.ReplaceAll(name, "_", "-") }
func keyWord(name string) string  { return name }

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
