package sae

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRejects(t *testing.T) {
	topk := func(c *Config) { c.Activation, c.Sparsity, c.Output = ActTopK, SparsityTopK, OutLinear }
	relu := func(c *Config) { c.Activation, c.Sparsity = ActReLU, SparsityL1 }
	cases := []struct {
		name  string
		edit  func(*Config)
		field string
		msg   string // exact error text
	}{
		{"d zero", func(c *Config) { c.D = 0 }, "d", "sae: d = 0 out of range [1, +inf)"},
		{"d negative", func(c *Config) { c.D = -3 }, "d", "sae: d = -3 out of range [1, +inf)"},
		{"hidden zero", func(c *Config) { c.H = 0 }, "hidden", "sae: hidden = 0 out of range [1, +inf)"},
		{"too large", func(c *Config) { c.D, c.H = 1<<20, 1<<20 }, "hidden", "sae: d*hidden = 1048576*1048576 too large (max 1073741824 weights)"},
		{"activation", func(c *Config) { c.Activation = "tanh" }, "activation", `sae: activation "tanh" unknown (want sigmoid, relu or topk)`},
		{"output", func(c *Config) { c.Output = "softmax" }, "output", `sae: output "softmax" unknown (want sigmoid or linear)`},
		{"sparsity", func(c *Config) { c.Sparsity = "l2" }, "sparsity", `sae: sparsity "l2" unknown (want kl, l1, topk or none)`},
		{"k zero", func(c *Config) { topk(c); c.K = 0 }, "k", "sae: k = 0 out of range [1, hidden=196]"},
		{"k above h", func(c *Config) { topk(c); c.K = 197 }, "k", "sae: k = 197 out of range [1, hidden=196]"},
		{"topk activation without topk sparsity", func(c *Config) { topk(c); c.Sparsity = SparsityL1 }, "sparsity", "sae: activation topk requires sparsity topk, got l1"},
		{"topk sparsity with relu", func(c *Config) { c.Activation, c.Sparsity = ActReLU, SparsityTopK }, "activation", "sae: sparsity topk requires activation topk, got relu"},
		{"kl with relu", func(c *Config) { c.Activation = ActReLU }, "activation", "sae: sparsity kl requires activation sigmoid (outputs in (0,1)), got relu"},
		{"rho too big", func(c *Config) { c.Rho = 1.5 }, "rho", "sae: rho = 1.5 out of range (0, 1)"},
		{"rho one", func(c *Config) { c.Rho = 1 }, "rho", "sae: rho = 1 out of range (0, 1)"},
		{"rho zero", func(c *Config) { c.Rho = 0 }, "rho", "sae: rho = 0 out of range (0, 1)"},
		{"rho NaN", func(c *Config) { c.Rho = math.NaN() }, "rho", "sae: rho = NaN out of range (0, 1)"},
		{"beta negative", func(c *Config) { c.Beta = -1 }, "beta", "sae: beta = -1 out of range [0, +inf)"},
		{"beta inf", func(c *Config) { c.Beta = math.Inf(1) }, "beta", "sae: beta = +Inf out of range [0, +inf)"},
		{"l1 negative", func(c *Config) { relu(c); c.L1 = -0.1 }, "l1", "sae: l1 = -0.1 out of range [0, +inf)"},
		{"decoder norm without l1", func(c *Config) { c.L1DecoderNorm = true }, "l1_decoder_norm", "sae: l1_decoder_norm requires sparsity l1, got kl"},
		{"weight decay negative", func(c *Config) { c.WeightDecay = -3e-3 }, "weight_decay", "sae: weight_decay = -0.003 out of range [0, +inf)"},
		{"weight decay NaN", func(c *Config) { c.WeightDecay = math.NaN() }, "weight_decay", "sae: weight_decay = NaN out of range [0, +inf)"},
		{"aux_k negative", func(c *Config) { topk(c); c.AuxK = -1 }, "aux_k", "sae: aux_k = -1 out of range [0, hidden=196]"},
		{"aux_k above h", func(c *Config) { topk(c); c.AuxK = 197 }, "aux_k", "sae: aux_k = 197 out of range [0, hidden=196]"},
		{"aux_k without topk", func(c *Config) { c.AuxK = 4 }, "aux_k", "sae: aux_k = 4 requires sparsity topk, got kl"},
		{"aux_coef negative", func(c *Config) { topk(c); c.AuxCoef = -1 }, "aux_coef", "sae: aux_coef = -1 out of range [0, +inf)"},
		{"dead_window zero", func(c *Config) { c.DeadWindow = 0 }, "dead_window", "sae: dead_window = 0 out of range [1, +inf)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate accepted %+v", c)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("error %v: field %q, want %q", err, ce.Field, tc.field)
			}
			if err.Error() != tc.msg {
				t.Fatalf("error %q, want %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New accepted the config: %v", err)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for _, c := range modelConfigs() {
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", cfgName(c), err)
		}
	}
	c := DefaultConfig()
	c.Activation, c.Sparsity, c.K, c.AuxK = ActTopK, SparsityTopK, c.H, c.H // k = h and aux_k = h are allowed
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c = DefaultConfig()
	c.Beta, c.WeightDecay = 0, 0
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
