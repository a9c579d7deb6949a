package jobspec

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
)

const goodYAML = `# a topk job
name: acts-topk
data: acts
test: acts-test
hidden: 4096
activation: topk
sparsity: topk
output: linear
k: 32
aux_k: 256
aux-coef: 0.03125
dead_window: 500
weight_decay: 0
optimizer: adam
lr: 1e-4
schedule: cosine
warmup_steps: 100
min_lr: 1e-6
clip_norm: 1
batch: 4096
epochs: 2.5
min_workers: 2
max_workers: 8
checkpoint_every: 500
`

func TestParseYAML(t *testing.T) {
	s := Default()
	if err := ParseYAML(strings.NewReader(goodYAML), &s); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Name, want.Data, want.Test = "acts-topk", "acts", "acts-test"
	m := &want.Model
	m.H, m.Activation, m.Sparsity, m.Output, m.K, m.AuxK, m.AuxCoef, m.DeadWindow, m.WeightDecay = 4096, "topk", "topk", "linear", 32, 256, 0.03125, 500, 0
	o := &want.Optimizer
	o.Kind, o.LR, o.Schedule, o.WarmupSteps, o.MinLR, o.ClipNorm = "adam", 1e-4, "cosine", 100, 1e-6, 1
	want.Batch, want.Epochs, want.MinWorkers, want.MaxWorkers, want.CheckpointEvery = 4096, 2.5, 2, 8, 500
	if !reflect.DeepEqual(s, want) {
		t.Errorf("parsed\n %+v\nwant\n %+v", s, want)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestParseYAMLErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"empty", "", "spec is empty"},
		{"old nested form", "data: mnist\nmodel:\n  h: 196\n", `line 2: unknown key "model"`},
		{"old key", "batch_size: 3\n", `line 1: unknown key "batch_size"`},
		{"derived d", "hidden: 3\nd: 784\n", `line 2: unknown key "d"`},
		{"derived total_steps", "total_steps: 9\n", `line 1: unknown key "total_steps"`},
		{"repeat across spellings", "weight_decay: 1\nweight-decay: 2\n", `line 2: key "weight-decay" repeats line 1`},
		{"bad number", "hidden: 3\nrho: lots\n", `line 2: rho: invalid value "lots"`},
		{"float for int", "hidden: 1.5\n", `line 1: hidden: invalid value "1.5"`},
		{"list value", "hidden:\n  - 3\n", "line 2: hidden: want a single value"},
		{"not a mapping", "- hidden\n", "line 1: want a mapping"},
		{"bad yaml", "hidden: [\n", "yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Default()
			err := ParseYAML(strings.NewReader(c.yaml), &s)
			if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseYAML = %v, want ErrInvalidSpec containing %q", err, c.want)
			}
		})
	}
}

func TestOverrideFlagsBeatFile(t *testing.T) {
	s := Default()
	if err := ParseYAML(strings.NewReader("hidden: 100\nrho: 0.2\ndata: a\n"), &s); err != nil {
		t.Fatal(err)
	}
	cli := Default()
	fs := pflag.NewFlagSet("submit", pflag.ContinueOnError)
	AddFlags(fs, &cli)
	AddDataFlags(fs, &cli, "", "")
	fs.String("coordinator", "", "not a spec flag")
	if err := fs.Parse([]string{"--rho", "0.05", "--coordinator", "x:1", "--seed", "9"}); err != nil {
		t.Fatal(err)
	}
	if err := Override(&s, fs); err != nil {
		t.Fatal(err)
	}
	if s.Model.H != 100 || s.Model.Rho != 0.05 || s.Data != "a" || s.Model.Seed != 9 || s.Model.Beta != 3 {
		t.Errorf("after override %+v", s)
	}
}

func FuzzParseYAML(f *testing.F) {
	for _, seed := range []string{goodYAML, "", "hidden: 3", "hidden: [", "rho: .nan\nepochs: -1", "? [a]\n: b", "k: 99999999999999999999"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s := Default()
		if err := ParseYAML(strings.NewReader(in), &s); err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("error %v does not wrap ErrInvalidSpec", err)
			}
			return
		}
		_ = s.Validate()
		p := s.Proto()
		back := FromProto(p)
		if p2 := back.Proto(); !proto.Equal(p, p2) {
			t.Fatalf("round trip of %q: %v != %v", in, p2, p)
		}
	})
}
