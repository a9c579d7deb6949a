package sae

import (
	"errors"
	"fmt"
	"math"
)

// Sentinel errors of package sae (model math). Every error returned for bad
// user input wraps one of these; test with errors.Is.
var (
	// ErrInvalidConfig is wrapped by every error returned from Config.Validate
	// (and so from New and FromSAELens for a bad config). The message names the
	// field and the allowed range, for example
	// `sae: rho = 1.5 out of range (0, 1)`.
	ErrInvalidConfig = errors.New("sae: invalid config")

	// ErrShape is wrapped by errors about tensors or state vectors whose size
	// does not match the model (FromSAELens, SetTrainState). The message names
	// the tensor and both shapes.
	ErrShape = errors.New("sae: shape mismatch")
)

// Activation, output and sparsity names accepted by Config.
const (
	ActSigmoid = "sigmoid"
	ActReLU    = "relu"
	ActTopK    = "topk"

	OutSigmoid = "sigmoid"
	OutLinear  = "linear"

	SparsityKL   = "kl"
	SparsityL1   = "l1"
	SparsityTopK = "topk"
	SparsityNone = "none"
)

// maxWeights bounds h*d so that parameter and gradient buffers stay
// addressable and a typo in a size is reported rather than allocated.
const maxWeights = 1 << 30

// Config describes a sparse autoencoder: its sizes, nonlinearities, sparsity
// penalty and initialisation seed. The zero value is not valid; start from
// DefaultConfig. JSON field names are snake_case (this struct is stored in
// exported cfg.json files).
type Config struct {
	// D is the input size d >= 1, H the hidden size (number of latents)
	// h >= 1 (JSON and flag name "hidden").
	D int `json:"d"`
	H int `json:"hidden"`

	// Activation f of the hidden layer: "sigmoid", "relu" or "topk" (ReLU,
	// then keep the K largest per row).
	Activation string `json:"activation"`
	// K is the number of latents kept per row by the topk activation,
	// 1 <= K <= H. Ignored by other activations.
	K int `json:"k"`
	// Output g of the decoder: "sigmoid" (data in [0,1]) or "linear".
	Output string `json:"output"`

	// Sparsity is the penalty: "kl" (needs activation sigmoid), "l1"
	// (sigmoid or relu), "topk" (exactly when activation is topk) or "none"
	// (sigmoid or relu).
	Sparsity string `json:"sparsity"`
	// Rho is the KL target proportion, 0 < Rho < 1; Beta its weight, >= 0.
	Rho  float64 `json:"rho"`
	Beta float64 `json:"beta"`
	// L1 is λ₁ >= 0 of the l1 penalty (λ₁/m)Σ_i Σ_j w_j |a_ij|.
	L1 float64 `json:"l1"`
	// L1DecoderNorm sets w_j = ‖decoder vector j‖ in the l1 penalty (else
	// w_j = 1). Only valid with sparsity l1.
	L1DecoderNorm bool `json:"l1_decoder_norm"`

	// WeightDecay is λ >= 0 of the term (λ/2)(‖W1‖² + ‖W2‖²). It applies to
	// the weight matrices only, never to biases. With Tied the shared matrix
	// is counted once: (λ/2)‖W‖².
	WeightDecay float64 `json:"weight_decay"`
	// Tied makes the decoder the transpose of the encoder (W2 = W1ᵀ), one
	// shared matrix.
	Tied bool `json:"tied"`

	// AuxK (topk only) is the number of dead latents used by the auxiliary
	// loss, 0 <= AuxK <= H; 0 turns it off. See the package documentation.
	AuxK int `json:"aux_k"`
	// AuxCoef >= 0 weighs the AuxK loss (Gao et al. use 1/32).
	AuxCoef float64 `json:"aux_coef"`
	// DeadWindow >= 1: a latent is dead when it was active on no row of the
	// last DeadWindow training steps. Default 1000.
	DeadWindow int `json:"dead_window"`

	// Seed drives the deterministic initialisation.
	Seed uint64 `json:"seed"`
}

// DefaultConfig returns the classic sparse autoencoder of the UFLDL exercise:
// d = 784 (28×28 images), h = 196, sigmoid hidden and output layers, KL
// sparsity with ρ = 0.1 and β = 3, weight decay 3e-3, untied weights, seed 1.
// The TopK fields are preset (K = 32, AuxK off, AuxCoef = 1/32) so that
// switching Activation and Sparsity to "topk" gives a sensible model.
func DefaultConfig() Config {
	return Config{
		D:           784,
		H:           196,
		Activation:  ActSigmoid,
		K:           32,
		Output:      OutSigmoid,
		Sparsity:    SparsityKL,
		Rho:         0.1,
		Beta:        3,
		WeightDecay: 3e-3,
		AuxCoef:     1.0 / 32,
		DeadWindow:  1000,
		Seed:        1,
	}
}

// ConfigError is the concrete type of Validate's errors. Field is the
// offending config field (JSON name). It unwraps to ErrInvalidConfig.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return "sae: " + e.Msg }

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

func cfgErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// nonNegative reports an error unless x is finite and >= 0.
func nonNegative(field string, x float64) error {
	if !finite(x) || x < 0 {
		return cfgErr(field, "%s = %v out of range [0, +inf)", field, x)
	}
	return nil
}

// Validate checks every field and the rules between fields. The first
// violation is returned as a *ConfigError wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	if c.D < 1 {
		return cfgErr("d", "d = %d out of range [1, +inf)", c.D)
	}
	if c.H < 1 {
		return cfgErr("hidden", "hidden = %d out of range [1, +inf)", c.H)
	}
	if c.D > maxWeights/c.H {
		return cfgErr("hidden", "d*hidden = %d*%d too large (max %d weights)", c.D, c.H, maxWeights)
	}
	switch c.Activation {
	case ActSigmoid, ActReLU, ActTopK:
	default:
		return cfgErr("activation", "activation %q unknown (want sigmoid, relu or topk)", c.Activation)
	}
	switch c.Output {
	case OutSigmoid, OutLinear:
	default:
		return cfgErr("output", "output %q unknown (want sigmoid or linear)", c.Output)
	}
	switch c.Sparsity {
	case SparsityKL, SparsityL1, SparsityTopK, SparsityNone:
	default:
		return cfgErr("sparsity", "sparsity %q unknown (want kl, l1, topk or none)", c.Sparsity)
	}
	if c.Activation == ActTopK {
		if c.K < 1 || c.K > c.H {
			return cfgErr("k", "k = %d out of range [1, hidden=%d]", c.K, c.H)
		}
		if c.Sparsity != SparsityTopK {
			return cfgErr("sparsity", "activation topk requires sparsity topk, got %s", c.Sparsity)
		}
	}
	switch c.Sparsity {
	case SparsityTopK:
		if c.Activation != ActTopK {
			return cfgErr("activation", "sparsity topk requires activation topk, got %s", c.Activation)
		}
	case SparsityKL:
		if c.Activation != ActSigmoid {
			return cfgErr("activation", "sparsity kl requires activation sigmoid (outputs in (0,1)), got %s", c.Activation)
		}
		if !(c.Rho > 0 && c.Rho < 1) {
			return cfgErr("rho", "rho = %v out of range (0, 1)", c.Rho)
		}
		if err := nonNegative("beta", c.Beta); err != nil {
			return err
		}
	case SparsityL1:
		if err := nonNegative("l1", c.L1); err != nil {
			return err
		}
	}
	if c.L1DecoderNorm && c.Sparsity != SparsityL1 {
		return cfgErr("l1_decoder_norm", "l1_decoder_norm requires sparsity l1, got %s", c.Sparsity)
	}
	if err := nonNegative("weight_decay", c.WeightDecay); err != nil {
		return err
	}
	if c.AuxK < 0 || c.AuxK > c.H {
		return cfgErr("aux_k", "aux_k = %d out of range [0, hidden=%d]", c.AuxK, c.H)
	}
	if c.AuxK > 0 && c.Sparsity != SparsityTopK {
		return cfgErr("aux_k", "aux_k = %d requires sparsity topk, got %s", c.AuxK, c.Sparsity)
	}
	if err := nonNegative("aux_coef", c.AuxCoef); err != nil {
		return err
	}
	if c.DeadWindow < 1 {
		return cfgErr("dead_window", "dead_window = %d out of range [1, +inf)", c.DeadWindow)
	}
	return nil
}
