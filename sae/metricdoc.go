package sae

import "fmt"

// MetricDoc says what one number of Metrics measures.
type MetricDoc struct {
	Name string // the field's JSON name, as metrics.json writes it
	Doc  string
}

// MetricDocs documents every field of Metrics, in field order, for reports
// (metrics.json) and help texts. Given a model's config it says what the
// numbers mean for that model (the activation threshold of its L0, the
// window of its dead latents, its sparsity term); given nil it states every
// case. A test checks that every field of Metrics is documented.
func MetricDocs(c *Config) []MetricDoc {
	l0 := "mean number of active latents per row; a latent is active when its activation is above 0.5 for sigmoid encoders " +
		"and above 0 otherwise (relu; topk: among the k kept)"
	sparsity := "the sparsity term of the loss: β Σ_j KL(ρ‖ρ̂_j) for kl (ρ̂_j the mean activation of latent j), " +
		"(λ₁/m) Σ_ij w_j|a_ij| for l1, 0 for topk and none"
	deadWindow := "dead_window steps"
	if c != nil {
		switch c.Activation {
		case ActSigmoid:
			l0 = "mean number of active latents per row: latents with activation above 0.5 (sigmoid encoder)"
		case ActReLU:
			l0 = "mean number of active latents per row: latents with activation above 0 (relu encoder)"
		case ActTopK:
			l0 = fmt.Sprintf("mean number of active latents per row: latents kept by topk (k = %d) with activation above 0", c.K)
		}
		switch c.Sparsity {
		case SparsityKL:
			sparsity = fmt.Sprintf("the sparsity term of the loss: β Σ_j KL(ρ‖ρ̂_j) with ρ = %g, β = %g, ρ̂_j the mean activation of latent j",
				c.Rho, c.Beta)
		case SparsityL1:
			sparsity = fmt.Sprintf("the sparsity term of the loss: (λ₁/m) Σ_ij w_j|a_ij| with λ₁ = %g", c.L1)
		default:
			sparsity = "the sparsity term of the loss: 0 (" + c.Sparsity + " sparsity has none)"
		}
		deadWindow = fmt.Sprintf("dead_window = %d steps", c.DeadWindow)
	}
	return []MetricDoc{
		{"rows", "number of rows the metrics are computed over"},
		{"loss", "the objective J = recon + sparsity + weight_decay + aux_k that training minimises"},
		{"recon", "reconstruction term of the loss: (1/m) Σ_i ½‖x̂_i − x_i‖² over the m rows"},
		{"sparsity", sparsity},
		{"weight_decay", "weight-decay term of the loss: (λ/2)(‖W_enc‖² + ‖W_dec‖²), biases excluded"},
		{"aux_k", "AuxK term of the loss: aux_coef · (1/m) Σ_i ½‖ê_i − e_i‖², the dead latents' fit of the residual (topk with aux_k > 0; else 0)"},
		{"mse", "mean squared reconstruction error per value: Σ_i ‖x̂_i − x_i‖² / (m·d)"},
		{"fvu", "fraction of variance unexplained: Σ_i ‖x_i − x̂_i‖² / Σ_i ‖x_i − x̄‖², x̄ the mean row; " +
			"0 is a perfect reconstruction, 1 no better than predicting the mean; null when the rows have no variance"},
		{"l0", l0},
		{"mean_activation", "mean activation over rows and latents, (1/h) Σ_j ρ̂_j (for kl, compare with ρ)"},
		{"dead_fraction", "fraction of latents active (as for l0) on no row: over every row evaluated for final metrics (metrics.json); " +
			"for a training step, over the rows of the last " + deadWindow},
	}
}
