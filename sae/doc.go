// Package sae is the model math of dsae: sparse autoencoder configs,
// parameters, the forward and backward pass split in two phases so that a
// batch can be spread over many workers, losses, metrics, optimizers and
// model files.
//
// # Model
//
// Input x ∈ R^d, hidden a = f(W1·x + b1) ∈ R^h, output x̂ = g(W2·a + b2).
// f is sigmoid, ReLU, or TopK (ReLU, then keep the k largest per row; equal
// values go to the lower latent index). g is sigmoid or linear. With Tied,
// W2 = W1ᵀ. All parameters live in one float32 buffer, Model.Params, laid out
// as Model.Layout says: the encoder W1 (h×d, row j = latent j), b1, the
// decoder stored as W2ᵀ (h×d, row j = latent j's decoder vector, absent when
// tied), b2. New draws weights uniformly in ±sqrt(6/(d+h+1)) from the seed
// and sets biases to zero. SAELens and FromSAELens convert to and from the
// SAELens tensor layout (W_enc [d,h], W_dec [h,d], b_enc, b_dec).
//
// The objective over a batch of m rows is
//
//	J = (1/m) Σ_i ½‖x̂_i − x_i‖² + (λ/2)(‖W1‖² + ‖W2‖²) + sparsity + AuxK
//
// with the weight-decay term counting the shared matrix once when tied, and
// sparsity one of
//
//   - kl: β Σ_j KL(ρ‖ρ̂_j), ρ̂_j = (1/m) Σ_i a_ij (sigmoid activation only;
//     ρ̂ is clamped to [1e-6, 1−1e-6] so a saturated latent stays finite);
//   - l1: (λ₁/m) Σ_i Σ_j w_j |a_ij|, w_j = ‖decoder vector j‖ with
//     L1DecoderNorm, else 1;
//   - topk: no penalty (sparsity is the hard k), optionally AuxK;
//   - none.
//
// AuxK (TopK only, after Gao et al., "Scaling and evaluating sparse
// autoencoders") models the residual e = x − x̂, held constant, with the
// dead latents: ê_i = Σ_{j∈S_i} relu(z_ij)·Dec_j, S_i the AuxK dead latents
// with the largest positive pre-activations z_ij in row i, and adds
// AuxCoef·(1/m) Σ_i ½‖ê_i − e_i‖². It trains dead latents' encoder and
// decoder rows towards what the live ones miss. (Gao et al. normalise this
// loss by the residual's variance; here it is a plain weighted squared error
// so that it stays a sum over rows and splits across workers exactly.)
//
// A latent is active in a row when its pre-activation is positive (a > 0.5
// for sigmoid, a > 0 for ReLU) and, for TopK, it is among the kept. L0 counts
// active latents. A latent is dead when it was active on no row of the last
// DeadWindow training steps; Model.TrainState exports that tracker for
// checkpoints.
//
// # The two-phase step
//
// The KL term couples all rows of a batch through ρ̂, so a step is split:
//
//  1. Step.Stats runs the encoder on the local rows and returns Σ_i a_ij and
//     the row count (Model.StatsLen = h+1 numbers). These are summed over
//     workers; only KL needs them (Model.NeedsStats).
//  2. Step.Gradient, given the summed stats, finishes the forward and
//     backward pass and writes unnormalised gradient sums (Model.GradLen,
//     same layout as Params) and loss/metric sums (Model.SumsLen). Both are
//     summed over workers.
//  3. Model.Finalize, on every worker alike, divides by the global row
//     count, adds λW to the weight gradients (never biases), updates the
//     dead-latent tracker and returns Metrics.
//
// The result equals the single-process gradient of the whole batch up to
// float summation order; Step.Compute runs the three phases back to back.
// An optimizer (NewOptimizer) then updates Params in place.
//
// # Speed
//
// Matrix products go through gonum's blas32. The default backend is the
// packed, cache-blocked SGEMM of sae/internal/kernels, pure Go and Go
// assembly (no cgo): an AVX-512 or AVX2+FMA micro-kernel picked at run time
// (Backend names it; the environment variable DSAE_KERNEL overrides it),
// gonum's native Sgemm on CPUs without AVX2. It runs each product on up to
// Threads() goroutines: GOMAXPROCS unless SetThreads chose fewer, the knob
// for processes sharing a machine (see SetThreads for why it is apart from
// GOMAXPROCS). The
// gonumblas build tag selects gonum's pure Go; the openblas tag OpenBLAS
// (cgo, needs libopenblas-dev; no environment variable). With OpenBLAS each
// call runs single-threaded and the package splits every product by output
// rows across Threads() goroutines, so no BLAS thread busy-waits while the
// elementwise work between products runs.
// Elementwise work is split across goroutines too, with AVX2/FMA kernels
// for sigmoid, axpy, dot and the reconstruction residual on amd64 (the
// build tag purego disables them and the GEMM kernels).
// The TopK decoder, its backward pass and the encoder's weight gradient
// touch only the k active latents of each row, so they cost O(m·k·d) instead
// of O(m·h·d). A Step holds all scratch buffers; a step allocates only a few
// small bookkeeping values (goroutine closures).
package sae
