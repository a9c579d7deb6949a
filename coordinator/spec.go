package coordinator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/dsae/dsae/coordinator/controlpb"
)

// Limits of a job spec. They bound what one coordinator accepts, not what
// the model math could do.
const (
	MaxDim          = 1 << 20
	MaxBatchSize    = 1 << 24
	MaxWorkers      = 4096
	MaxNameLen      = 128
	MaxLearningRate = 10.0
)

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)
	// datasetPattern is the store's rule for dataset names.
	datasetPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,99}$`)
)

// SpecFile is the YAML form of a job spec, as read by ParseSpec. Field names
// follow the protobuf fields; unknown keys are errors.
type SpecFile struct {
	Name            string        `yaml:"name"`
	Dataset         string        `yaml:"dataset"`
	Model           ModelFile     `yaml:"model"`
	Optimizer       OptimizerFile `yaml:"optimizer"`
	BatchSize       int32         `yaml:"batch_size"`
	Steps           int64         `yaml:"steps"`
	Epochs          int32         `yaml:"epochs"`
	Workers         int32         `yaml:"workers"`
	CheckpointEvery int64         `yaml:"checkpoint_every"`
}

// ModelFile is the YAML form of the model configuration.
type ModelFile struct {
	D           int32   `yaml:"d"`
	H           int32   `yaml:"h"`
	Activation  string  `yaml:"activation"`
	K           int32   `yaml:"k"`
	Output      string  `yaml:"output"`
	Sparsity    string  `yaml:"sparsity"`
	Rho         float64 `yaml:"rho"`
	Beta        float64 `yaml:"beta"`
	L1          float64 `yaml:"l1"`
	WeightDecay float64 `yaml:"weight_decay"`
	Tied        bool    `yaml:"tied"`
	Seed        uint64  `yaml:"seed"`
}

// OptimizerFile is the YAML form of the optimizer configuration.
type OptimizerFile struct {
	Kind        string  `yaml:"kind"`
	LR          float64 `yaml:"lr"`
	Schedule    string  `yaml:"schedule"`
	WarmupSteps int64   `yaml:"warmup_steps"`
	Momentum    float64 `yaml:"momentum"`
	Beta1       float64 `yaml:"beta1"`
	Beta2       float64 `yaml:"beta2"`
	Eps         float64 `yaml:"eps"`
	GradClip    float64 `yaml:"grad_clip"`
}

// ParseSpec reads a YAML job spec. It only decodes: unknown keys and values
// of the wrong type are errors (wrapping ErrInvalidSpec, naming the line),
// while ranges are checked by ValidateSpec after defaults are applied.
func ParseSpec(r io.Reader) (*controlpb.JobSpec, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	if err != nil {
		return nil, err
	}
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%w: spec larger than 1 MiB", ErrInvalidSpec)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f SpecFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: spec is empty", ErrInvalidSpec)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	return f.Proto(), nil
}

// Proto converts the YAML form to the protobuf spec.
func (f *SpecFile) Proto() *controlpb.JobSpec {
	m, o := f.Model, f.Optimizer
	return &controlpb.JobSpec{
		Name: f.Name, Dataset: f.Dataset, BatchSize: f.BatchSize, Steps: f.Steps, Epochs: f.Epochs,
		MaxWorkers: f.Workers, CheckpointEvery: f.CheckpointEvery,
		Model: &controlpb.ModelConfig{
			D: m.D, H: m.H, Activation: m.Activation, K: m.K, Output: m.Output, Sparsity: m.Sparsity,
			Rho: m.Rho, Beta: m.Beta, L1: m.L1, WeightDecay: m.WeightDecay, Tied: m.Tied, Seed: m.Seed,
		},
		Optimizer: &controlpb.OptimizerConfig{
			Kind: o.Kind, Lr: o.LR, Schedule: o.Schedule, WarmupSteps: o.WarmupSteps, Momentum: o.Momentum,
			Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, GradClip: o.GradClip,
		},
	}
}

// ApplyDefaults fills the optional fields of s that are unset: sigmoid
// activation, identity output, no sparsity penalty, Adam with lr 1e-3 and a
// constant schedule, and batch size 256. It never overwrites a set field.
func ApplyDefaults(s *controlpb.JobSpec) {
	if s.Model == nil {
		s.Model = &controlpb.ModelConfig{}
	}
	if s.Optimizer == nil {
		s.Optimizer = &controlpb.OptimizerConfig{}
	}
	m, o := s.Model, s.Optimizer
	setStr(&m.Activation, "sigmoid")
	setStr(&m.Output, "identity")
	if m.Sparsity == "" {
		m.Sparsity = "none"
		if m.Activation == "topk" {
			m.Sparsity = "topk"
		}
	}
	setStr(&o.Kind, "adam")
	setStr(&o.Schedule, "constant")
	if o.Lr == 0 {
		o.Lr = 1e-3
	}
	if o.Kind == "adam" {
		setF(&o.Beta1, 0.9)
		setF(&o.Beta2, 0.999)
		setF(&o.Eps, 1e-8)
	}
	if s.BatchSize == 0 {
		s.BatchSize = 256
	}
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setF(p *float64, v float64) {
	if *p == 0 {
		*p = v
	}
}

// ValidateSpec checks every field of s and the rules between fields. The
// error wraps ErrInvalidSpec and names the first offending field, e.g.
// "model.rho: 1.5 out of range (0, 1)".
func ValidateSpec(s *controlpb.JobSpec) error {
	if s == nil {
		return fieldErr("spec", "missing")
	}
	if len(s.Name) > MaxNameLen || (s.Name != "" && !namePattern.MatchString(s.Name)) {
		return fieldErr("name", "%q: want at most %d of A-Z a-z 0-9 . _ : - starting with a letter or digit", s.Name, MaxNameLen)
	}
	if s.Dataset == "" {
		return fieldErr("dataset", "empty")
	}
	if !datasetPattern.MatchString(s.Dataset) || strings.Contains(s.Dataset, "..") {
		return fieldErr("dataset", "%q: want 1-100 of a-z 0-9 . _ - starting with a letter or digit, no '..'", s.Dataset)
	}
	if err := validateModel(s.Model); err != nil {
		return err
	}
	if err := validateOptimizer(s.Optimizer); err != nil {
		return err
	}
	if s.BatchSize < 1 || s.BatchSize > MaxBatchSize {
		return fieldErr("batch_size", "%d out of range [1, %d]", s.BatchSize, MaxBatchSize)
	}
	if s.Steps < 0 {
		return fieldErr("steps", "%d is negative", s.Steps)
	}
	if s.Epochs < 0 {
		return fieldErr("epochs", "%d is negative", s.Epochs)
	}
	if s.Steps == 0 && s.Epochs == 0 {
		return fieldErr("steps", "steps and epochs are both 0; set one of them")
	}
	if s.MaxWorkers < 0 || s.MaxWorkers > MaxWorkers {
		return fieldErr("max_workers", "%d out of range [0, %d]", s.MaxWorkers, MaxWorkers)
	}
	if s.MaxWorkers > s.BatchSize {
		return fieldErr("max_workers", "%d exceeds batch_size %d: every worker needs at least one row", s.MaxWorkers, s.BatchSize)
	}
	if s.CheckpointEvery < 0 {
		return fieldErr("checkpoint_every", "%d is negative", s.CheckpointEvery)
	}
	return nil
}

func validateModel(m *controlpb.ModelConfig) error {
	if m == nil {
		return fieldErr("model", "missing")
	}
	if m.D < 1 || m.D > MaxDim {
		return fieldErr("model.d", "%d out of range [1, %d]", m.D, MaxDim)
	}
	if m.H < 1 || m.H > MaxDim {
		return fieldErr("model.h", "%d out of range [1, %d]", m.H, MaxDim)
	}
	switch m.Activation {
	case "sigmoid", "relu":
	case "topk":
		if m.K < 1 || m.K > m.H {
			return fieldErr("model.k", "%d out of range [1, h=%d] for topk activation", m.K, m.H)
		}
	default:
		return fieldErr("model.activation", "%q: want sigmoid, relu or topk", m.Activation)
	}
	if m.Activation != "topk" && m.K != 0 {
		return fieldErr("model.k", "%d set but activation is %s, not topk", m.K, m.Activation)
	}
	switch m.Output {
	case "identity", "sigmoid":
	default:
		return fieldErr("model.output", "%q: want identity or sigmoid", m.Output)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"model.rho", m.Rho}, {"model.beta", m.Beta}, {"model.l1", m.L1}, {"model.weight_decay", m.WeightDecay}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fieldErr(f.name, "%v: want a finite number >= 0", f.v)
		}
	}
	switch m.Sparsity {
	case "none":
	case "kl":
		if m.Activation != "sigmoid" {
			return fieldErr("model.sparsity", "kl needs activations in (0,1), i.e. activation sigmoid, not %s", m.Activation)
		}
		if !(m.Rho > 0 && m.Rho < 1) {
			return fieldErr("model.rho", "%v out of range (0, 1)", m.Rho)
		}
		if m.Beta <= 0 {
			return fieldErr("model.beta", "%v: want > 0 with kl sparsity", m.Beta)
		}
	case "l1":
		if m.L1 <= 0 {
			return fieldErr("model.l1", "%v: want > 0 with l1 sparsity", m.L1)
		}
	case "topk":
		if m.Activation != "topk" {
			return fieldErr("model.sparsity", "topk needs activation topk, not %s", m.Activation)
		}
	default:
		return fieldErr("model.sparsity", "%q: want none, kl, l1 or topk", m.Sparsity)
	}
	if m.Sparsity != "kl" && (m.Rho != 0 || m.Beta != 0) {
		return fieldErr("model.rho", "rho/beta set but sparsity is %s, not kl", m.Sparsity)
	}
	if m.Sparsity != "l1" && m.L1 != 0 {
		return fieldErr("model.l1", "%v set but sparsity is %s, not l1", m.L1, m.Sparsity)
	}
	return nil
}

func validateOptimizer(o *controlpb.OptimizerConfig) error {
	if o == nil {
		return fieldErr("optimizer", "missing")
	}
	switch o.Kind {
	case "sgd", "momentum", "adam":
	default:
		return fieldErr("optimizer.kind", "%q: want sgd, momentum or adam", o.Kind)
	}
	if math.IsNaN(o.Lr) || !(o.Lr > 0 && o.Lr <= MaxLearningRate) {
		return fieldErr("optimizer.lr", "%v out of range (0, %v]", o.Lr, MaxLearningRate)
	}
	switch o.Schedule {
	case "constant", "cosine", "linear":
	default:
		return fieldErr("optimizer.schedule", "%q: want constant, cosine or linear", o.Schedule)
	}
	if o.WarmupSteps < 0 {
		return fieldErr("optimizer.warmup_steps", "%d is negative", o.WarmupSteps)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"optimizer.momentum", o.Momentum}, {"optimizer.beta1", o.Beta1}, {"optimizer.beta2", o.Beta2}} {
		if math.IsNaN(f.v) || f.v < 0 || f.v >= 1 {
			return fieldErr(f.name, "%v out of range [0, 1)", f.v)
		}
	}
	if math.IsNaN(o.Eps) || math.IsInf(o.Eps, 0) || o.Eps < 0 || o.Eps > 1 {
		return fieldErr("optimizer.eps", "%v out of range [0, 1]", o.Eps)
	}
	if o.Kind == "adam" && o.Eps == 0 {
		return fieldErr("optimizer.eps", "0: adam needs eps > 0")
	}
	if math.IsNaN(o.GradClip) || math.IsInf(o.GradClip, 0) || o.GradClip < 0 {
		return fieldErr("optimizer.grad_clip", "%v: want a finite number >= 0", o.GradClip)
	}
	return nil
}
