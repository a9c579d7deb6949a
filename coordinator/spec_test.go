package coordinator

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

const goodYAML = `
name: mnist-kl
dataset: mnist
model:
  d: 784
  h: 196
  activation: sigmoid
  output: sigmoid
  sparsity: kl
  rho: 0.1
  beta: 3
  weight_decay: 0.0001
  seed: 42
optimizer:
  kind: adam
  lr: 0.001
  schedule: cosine
  warmup_steps: 10
batch_size: 256
steps: 2000
workers: 3
checkpoint_every: 100
`

func TestParseSpec(t *testing.T) {
	s, err := ParseSpec(strings.NewReader(goodYAML))
	if err != nil {
		t.Fatal(err)
	}
	ApplyDefaults(s)
	if err := ValidateSpec(s); err != nil {
		t.Fatal(err)
	}
	want := &pb.JobSpec{Name: "mnist-kl", Dataset: "mnist", BatchSize: 256, Steps: 2000, MaxWorkers: 3, CheckpointEvery: 100,
		Model:     &pb.ModelConfig{D: 784, H: 196, Activation: "sigmoid", Output: "sigmoid", Sparsity: "kl", Rho: 0.1, Beta: 3, WeightDecay: 0.0001, Seed: 42},
		Optimizer: &pb.OptimizerConfig{Kind: "adam", Lr: 0.001, Schedule: "cosine", WarmupSteps: 10, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}}
	if !proto.Equal(s, want) {
		t.Fatalf("parsed\n%v\nwant\n%v", s, want)
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"", "empty"},
		{"dataset: mnist\nmodle: {d: 3}\n", "line 2: field modle not found"},
		{"dataset: mnist\nmodel: {d: many}\n", "line 2"},
		{"steps: [1, 2]\n", "line 1"},
	} {
		_, err := ParseSpec(strings.NewReader(tc.yaml))
		if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want ErrInvalidSpec containing %q", tc.yaml, err, tc.want)
		}
	}
}

func TestValidateSpecNamesField(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*pb.JobSpec)
	}{
		{"dataset", func(s *pb.JobSpec) { s.Dataset = "" }},
		{"dataset", func(s *pb.JobSpec) { s.Dataset = "../etc" }},
		{"name", func(s *pb.JobSpec) { s.Name = "bad name" }},
		{"model.d", func(s *pb.JobSpec) { s.Model.D = 0 }},
		{"model.h", func(s *pb.JobSpec) { s.Model.H = MaxDim + 1 }},
		{"model.activation", func(s *pb.JobSpec) { s.Model.Activation = "tanh" }},
		{"model.output", func(s *pb.JobSpec) { s.Model.Output = "softmax" }},
		{"model.sparsity", func(s *pb.JobSpec) { s.Model.Activation = "relu" }}, // kl needs sigmoid
		{"model.sparsity", func(s *pb.JobSpec) { s.Model.Sparsity = "dense" }},
		{"model.rho", func(s *pb.JobSpec) { s.Model.Rho = 1 }},
		{"model.beta", func(s *pb.JobSpec) { s.Model.Beta = 0 }},
		{"model.weight_decay", func(s *pb.JobSpec) { s.Model.WeightDecay = -1 }},
		{"model.k", func(s *pb.JobSpec) {
			s.Model.Activation, s.Model.Sparsity, s.Model.Rho, s.Model.Beta, s.Model.K = "topk", "topk", 0, 0, 500
		}},
		{"model.l1", func(s *pb.JobSpec) { s.Model.Sparsity, s.Model.Rho, s.Model.Beta = "l1", 0, 0 }},
		{"optimizer.kind", func(s *pb.JobSpec) { s.Optimizer.Kind = "lbfgs" }},
		{"optimizer.lr", func(s *pb.JobSpec) { s.Optimizer.Lr = -1 }},
		{"optimizer.beta2", func(s *pb.JobSpec) { s.Optimizer.Beta2 = 1 }},
		{"optimizer.schedule", func(s *pb.JobSpec) { s.Optimizer.Schedule = "step" }},
		{"batch_size", func(s *pb.JobSpec) { s.BatchSize = -3 }},
		{"steps", func(s *pb.JobSpec) { s.Steps, s.Epochs = 0, 0 }},
		{"max_workers", func(s *pb.JobSpec) { s.MaxWorkers = MaxWorkers + 1 }},
		{"checkpoint_every", func(s *pb.JobSpec) { s.CheckpointEvery = -1 }},
	} {
		s := testSpec()
		tc.edit(s)
		err := ValidateSpec(s)
		if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: err %v", tc.field, err)
		}
	}
	if err := ValidateSpec(testSpec()); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, seed := range []string{goodYAML, "", "dataset: x\n", "model: {d: -1, h: 1e9}\n", "{{{", "steps: 1\nsteps: 2\n",
		"optimizer: {lr: .nan}\n", "model: &a {d: *a}\n", "- 1\n- 2\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSpec(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("parse error not ErrInvalidSpec: %v", err)
			}
			return
		}
		ApplyDefaults(s)
		if err := ValidateSpec(s); err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("validation error %v", err)
			}
			return
		}
		// A valid spec is accepted by the state machine.
		f := NewFSM()
		if r := f.ApplyCommand(cmdOf(&pb.SubmitJobCmd{Spec: s})); r.Err != nil {
			t.Fatalf("valid spec refused by the FSM: %v", r.Err)
		}
	})
}
