package coordinator

import (
	"errors"
	"math"
	"strings"
	"testing"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

func TestValidateSpecNamesField(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*pb.JobSpec)
	}{
		{"data", func(s *pb.JobSpec) { s.Data = "" }},
		{"data", func(s *pb.JobSpec) { s.Data = "../etc" }},
		{"test", func(s *pb.JobSpec) { s.Test = "Bad Name" }},
		{"name", func(s *pb.JobSpec) { s.Name = "bad name" }},
		{"name", func(s *pb.JobSpec) { s.Name = strings.Repeat("n", MaxNameLen+1) }},
		{"batch", func(s *pb.JobSpec) { s.Batch = 0 }},
		{"batch", func(s *pb.JobSpec) { s.Batch = MaxBatchSize + 1 }},
		{"steps", func(s *pb.JobSpec) { s.Steps = -1 }},
		{"steps", func(s *pb.JobSpec) { s.Steps, s.Epochs = 0, 0 }},
		{"epochs", func(s *pb.JobSpec) { s.Epochs = -0.5 }},
		{"epochs", func(s *pb.JobSpec) { s.Epochs = math.NaN() }},
		{"min_workers", func(s *pb.JobSpec) { s.MinWorkers = -1 }},
		{"min_workers", func(s *pb.JobSpec) { s.MinWorkers, s.MaxWorkers = 3, 2 }},
		{"max_workers", func(s *pb.JobSpec) { s.MaxWorkers = MaxWorkers + 1 }},
		{"max_workers", func(s *pb.JobSpec) { s.Batch, s.MaxWorkers = 2, 3 }},
		{"checkpoint_every", func(s *pb.JobSpec) { s.CheckpointEvery = -1 }},
	} {
		s := testSpec()
		tc.edit(s)
		err := ValidateSpec(s)
		if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), ": "+tc.field+":") {
			t.Errorf("%s: err %v", tc.field, err)
		}
	}
	if err := ValidateSpec(testSpec()); err != nil {
		t.Fatal(err)
	}
	if err := ValidateSpec(nil); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("nil spec: %v", err)
	}
}

// TestValidateSpecLeavesModelAlone: the coordinator's own check does not
// know model math; a model sae refuses passes it, and the state machine
// accepts it (SubmitJob refuses it through Config.JobSpecs instead).
func TestValidateSpecLeavesModelAlone(t *testing.T) {
	s := testSpec()
	s.Model.Rho, s.Model.Activation, s.Optimizer.Optimizer = 7, "tanh", "lbfgs"
	if err := ValidateSpec(s); err != nil {
		t.Fatalf("ValidateSpec checked the model: %v", err)
	}
	f := NewFSM()
	if r := f.ApplyCommand(cmdOf(&pb.SubmitJobCmd{Spec: s})); r.Err != nil {
		t.Fatalf("FSM refused a job-level-valid spec: %v", r.Err)
	}
}
