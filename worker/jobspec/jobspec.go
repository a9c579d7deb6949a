package jobspec

import (
	"errors"
	"fmt"
	"math"

	"github.com/dsae/dsae/sae"
)

// ErrInvalidSpec is wrapped by the errors about a spec's own fields (batch,
// steps, epochs) and about YAML spec files. Model and optimizer settings are
// refused with sae's errors instead, which wrap sae.ErrInvalidConfig and
// sae.ErrInvalidOptimizer.
var ErrInvalidSpec = errors.New("jobspec: invalid spec")

// specError is an error of this package: msg wraps ErrInvalidSpec, and
// setting, when set, is the setting at fault (Validate's errors, which
// Explain renames).
type specError struct{ setting, msg string }

func (e *specError) Error() string { return ErrInvalidSpec.Error() + ": " + e.msg }
func (e *specError) Unwrap() error { return ErrInvalidSpec }

func specErr(format string, args ...any) error {
	return &specError{msg: fmt.Sprintf(format, args...)}
}

// settingErr is specErr naming the setting at fault.
func settingErr(setting, format string, args ...any) error {
	return &specError{setting: setting, msg: fmt.Sprintf(format, args...)}
}

// Spec is a training run in sae's terms. The JSON name of each field is its
// vocabulary name; Model and Optimizer contribute their fields flat (hidden,
// rho, lr, …), not under a prefix.
type Spec struct {
	// Name is the job's name (jobs only).
	Name string `json:"name"`
	// Data is the training set and Test the optional test set: for `dsae
	// train` mnist, a file or s3://[BUCKET/]DATASET; for a job a dataset
	// name in the store.
	Data string `json:"data"`
	Test string `json:"test"`

	// Model is the sparse autoencoder. Model.D = 0 means "from the data":
	// `dsae train` sets it from the file, the coordinator from the dataset's
	// manifest when it has a dataset checker, and otherwise the worker.
	Model sae.Config `json:"model"`
	// Optimizer is the update rule and schedule. Its TotalSteps is not part
	// of the spec; OptimizerConfig derives it from Steps.
	Optimizer sae.OptimizerConfig `json:"optimizer"`

	// Batch is the global batch (rows per step), >= 1.
	Batch int `json:"batch"`
	// Steps is the number of training steps, >= 0; 0 derives them from
	// Epochs and the dataset's row count (StepsFor).
	Steps int64 `json:"steps"`
	// Epochs, finite and >= 0, is the number of passes over the data when
	// Steps is 0; it must then be > 0.
	Epochs float64 `json:"epochs"`

	// MinWorkers and MaxWorkers are a job's elastic bounds (0 = one, 0 = no
	// limit); CheckpointEvery the steps between its checkpoints (0 = none).
	// The coordinator checks them.
	MinWorkers      int   `json:"min_workers"`
	MaxWorkers      int   `json:"max_workers"`
	CheckpointEvery int64 `json:"checkpoint_every"`
}

// Defaults of a run: the classic sparse autoencoder (sae.DefaultConfig:
// KL sparsity, 784→196) trained with Adam at lr 3e-3 on batches of 256 for
// 20 epochs. On MNIST they reach a test mean activation within a few
// percent of rho.
const (
	DefaultLR     = 3e-3
	DefaultBatch  = 256
	DefaultEpochs = 20
)

// Default returns the defaults of `dsae train` and `dsae job submit`: no
// name or data, sae.DefaultConfig with d = 0 (from the data),
// sae.DefaultOptimizerConfig with lr DefaultLR, DefaultBatch rows per step
// and DefaultEpochs epochs.
func Default() Spec {
	m := sae.DefaultConfig()
	m.D = 0
	o := sae.DefaultOptimizerConfig()
	o.LR = DefaultLR
	return Spec{Model: m, Optimizer: o, Batch: DefaultBatch, Epochs: DefaultEpochs}
}

// StepsFor returns the number of steps s trains for on a dataset of rows
// rows: Steps when it is set, else round(Epochs·ceil(rows/Batch)) and at
// least 1. It returns 0 when Steps is 0 and rows or Batch is below 1 (the
// count is not known yet).
func (s *Spec) StepsFor(rows int64) int64 {
	if s.Steps > 0 {
		return s.Steps
	}
	if rows < 1 || s.Batch < 1 {
		return 0
	}
	perEpoch := (rows + int64(s.Batch) - 1) / int64(s.Batch)
	return max(1, int64(math.Round(s.Epochs*float64(perEpoch))))
}

// OptimizerConfig returns s.Optimizer with TotalSteps = Steps, the end of
// the cosine schedule. Call it once Steps is known (after StepsFor).
func (s *Spec) OptimizerConfig() sae.OptimizerConfig {
	o := s.Optimizer
	o.TotalSteps = int(s.Steps)
	return o
}

// Validate checks the model and optimizer with sae's own Validate (the
// error is sae's, naming the field) and then Batch, Steps and Epochs
// (wrapping ErrInvalidSpec); Explain renames the settings in the words of
// a command line, a YAML file or the API. What the data decides may still be unknown:
// with Model.D = 0 the model is checked as if d were 1 (the d·hidden bound
// waits for d), and with Steps = 0 the cosine rule warmup_steps <
// total_steps waits for the step count. Name, Data, Test and the job-only
// fields are the coordinator's to check.
func (s *Spec) Validate() error {
	m := s.Model
	if m.D == 0 {
		m.D = 1
	}
	if err := m.Validate(); err != nil {
		return err
	}
	o := s.OptimizerConfig()
	if s.Steps <= 0 && o.WarmupSteps >= 0 {
		o.TotalSteps = o.WarmupSteps + 1
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if s.Batch < 1 {
		return settingErr("batch", "batch = %d out of range [1, +inf)", s.Batch)
	}
	if s.Steps < 0 {
		return settingErr("steps", "steps = %d out of range [0, +inf) (0: from epochs)", s.Steps)
	}
	if math.IsNaN(s.Epochs) || math.IsInf(s.Epochs, 0) || s.Epochs < 0 {
		return settingErr("epochs", "epochs = %v out of range [0, +inf)", s.Epochs)
	}
	if s.Steps == 0 && s.Epochs == 0 {
		return settingErr("epochs", "epochs = 0 out of range (0, +inf) (or set steps)")
	}
	return nil
}
