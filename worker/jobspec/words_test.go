package jobspec

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dsae/dsae/sae"
)

// TestExplain renames every kind of validation message: each case is a
// spec edit, the setting at fault, and the message with {name} where a
// setting's name must appear; the test renders it with flags, YAML keys
// and proto fields. Quoted values and prose ("the cosine schedule",
// "sparsity l1" where l1 is a value) keep their words.
func TestExplain(t *testing.T) {
	topk := func(s *Spec) { s.Model.Activation, s.Model.Sparsity, s.Model.Output = "topk", "topk", "linear" }
	cases := []struct {
		edit    func(*Spec)
		setting string
		want    string
	}{
		{func(s *Spec) { s.Model.H = 0 }, "hidden", "{hidden} = 0 out of range [1, +inf)"},
		{func(s *Spec) { s.Model.D = -1 }, "d", "{d} = -1 out of range [1, +inf)"},
		{func(s *Spec) { s.Model.D, s.Model.H = 1<<20, 1<<11 }, "hidden", "{hidden}: d*hidden = 1048576*2048 too large (max 1073741824 weights)"},
		{func(s *Spec) { s.Model.Rho = 1.5 }, "rho", "{rho} = 1.5 out of range (0, 1)"},
		{func(s *Spec) { s.Model.WeightDecay = -1 }, "weight_decay", "{weight_decay} = -1 out of range [0, +inf)"},
		{func(s *Spec) { s.Model.Activation = "tanh" }, "activation", `{activation} "tanh" unknown (want sigmoid, relu or topk)`},
		{func(s *Spec) { s.Model.Activation = "relu" }, "activation", "{sparsity} kl requires {activation} sigmoid (outputs in (0,1)), got relu"},
		{func(s *Spec) { s.Model.Activation = "topk" }, "sparsity", "{activation} topk requires {sparsity} topk, got kl"},
		{func(s *Spec) { topk(s); s.Model.K = 0 }, "k", "{k} = 0 out of range [1, {hidden}=196]"},
		{func(s *Spec) { topk(s); s.Model.AuxK = 500 }, "aux_k", "{aux_k} = 500 out of range [0, {hidden}=196]"},
		{func(s *Spec) { s.Model.AuxK = 3 }, "aux_k", "{aux_k} = 3 requires {sparsity} topk, got kl"},
		{func(s *Spec) { s.Model.L1DecoderNorm = true }, "l1_decoder_norm", "{l1_decoder_norm} requires {sparsity} l1, got kl"},
		{func(s *Spec) { s.Model.Activation, s.Model.Sparsity, s.Model.L1 = "relu", "l1", -1 }, "l1", "{l1} = -1 out of range [0, +inf)"},
		{func(s *Spec) { s.Optimizer.LR = 0 }, "lr", "{lr} = 0, must be finite and > 0"},
		{func(s *Spec) { s.Optimizer.Kind = "momentum" }, "optimizer", `{optimizer} = "momentum", must be "sgd" or "adam"`},
		{func(s *Spec) { s.Optimizer.Kind = "sgd"; s.Optimizer.Nesterov = true }, "nesterov",
			"{nesterov} needs {momentum} in (0, 1), got {momentum} = 0"},
		{func(s *Spec) { s.Optimizer.MinLR = 1 }, "min_lr", "{min_lr} = 1, must be in [0, {lr}=0.003]"},
		{func(s *Spec) { s.Optimizer.Schedule, s.Optimizer.WarmupSteps, s.Steps = "cosine", 5, 5 }, "steps",
			"{steps} = 5, must be > {warmup_steps} = 5 for the cosine schedule"},
		{func(s *Spec) { s.Batch = 0 }, "batch", "{batch} = 0 out of range [1, +inf)"},
		{func(s *Spec) { s.Steps = -1 }, "steps", "{steps} = -1 out of range [0, +inf) (0: from {epochs})"},
		{func(s *Spec) { s.Epochs = 0 }, "epochs", "{epochs} = 0 out of range (0, +inf) (or set {steps})"},
	}
	words := map[string]Words{"flags": Flags, "keys": Keys, "fields": Fields}
	for _, c := range cases {
		s := Default()
		c.edit(&s)
		err := s.Validate()
		if err == nil {
			t.Errorf("%s: edit gave a valid spec", c.want)
			continue
		}
		for form, w := range words {
			want := c.want
			for name := range vocabulary() {
				want = strings.ReplaceAll(want, "{"+name+"}", w(name))
			}
			got := Explain(err, w)
			var se *SettingError
			if !errors.As(got, &se) || se.Setting != c.setting || got.Error() != want {
				t.Errorf("%s: Explain(%q) = %q (setting %v), want %q (setting %s)", form, err, got, se, want, c.setting)
				continue
			}
			if !errors.Is(got, sae.ErrInvalidConfig) && !errors.Is(got, sae.ErrInvalidOptimizer) && !errors.Is(got, ErrInvalidSpec) {
				t.Errorf("%s: %v unwraps to no validator sentinel", form, got)
			}
		}
	}
}

func TestWords(t *testing.T) {
	for _, c := range []struct{ name, flag, key, field string }{
		{"hidden", "--hidden", "hidden", "model.hidden"},
		{"weight_decay", "--weight-decay", "weight_decay", "model.weight_decay"},
		{"d", "d", "d", "model.d"},
		{"lr", "--lr", "lr", "optimizer.lr"},
		{"optimizer", "--optimizer", "optimizer", "optimizer.optimizer"},
		{"total_steps", "--steps", "steps", "steps"},
		{"min_workers", "--min-workers", "min_workers", "min_workers"},
	} {
		if got := fmt.Sprint(Flags(c.name), " ", Keys(c.name), " ", Fields(c.name)); got != c.flag+" "+c.key+" "+c.field {
			t.Errorf("%s: %s, want %s %s %s", c.name, got, c.flag, c.key, c.field)
		}
	}
}

// Errors that are not a validator's own are returned as they are.
func TestExplainOthers(t *testing.T) {
	plain := errors.New("hidden = 3 is fine")
	yamlErr := ParseYAML(strings.NewReader("nope: 1\n"), new(Spec))
	for _, err := range []error{nil, plain, yamlErr} {
		if got := Explain(err, Flags); got != err {
			t.Errorf("Explain(%v) = %v, want it unchanged", err, got)
		}
	}
	s := Default()
	s.Model.Rho = 2
	ctx := fmt.Errorf("loading: %w", s.Validate())
	if got := Explain(ctx, Flags); got != ctx {
		t.Errorf("Explain of a wrapped error = %v, want it unchanged", got)
	}
}
