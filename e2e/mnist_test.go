package e2e

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The classic sparse autoencoder of the issue trains on MNIST with the
// embedded defaults, reaches a test mean activation within 15% of ρ, and
// its features and loss curve can be drawn.
func TestMNISTClassicSAE(t *testing.T) {
	skipSlow(t, "full MNIST training")
	dir := t.TempDir()
	r := mustRun(t, dir, "train", "--data", "mnist", "--hidden", "196", "--sparsity", "kl", "--rho", "0.1",
		"--beta", "3", "--weight-decay", "3e-3", "--out", "out", "--progress", "1s")
	t.Logf("dsae train:\n%s", r.stderr)
	m := readMetrics(t, filepath.Join(dir, "out", "metrics.json"))
	if m.Train == nil || m.Test == nil || m.Steps == nil || m.SamplesPerSec == nil {
		t.Fatalf("metrics.json lacks train, test, steps or samples_per_sec: %+v", m)
	}
	for name, split := range map[string]*struct {
		MSE            *float64 `json:"mse"`
		FVU            *float64 `json:"fvu"`
		L0             *float64 `json:"l0"`
		MeanActivation *float64 `json:"mean_activation"`
		DeadFraction   *float64 `json:"dead_fraction"`
		Loss           *float64 `json:"loss"`
	}{"train": m.Train, "test": m.Test} {
		if split.MSE == nil || split.FVU == nil || split.L0 == nil || split.MeanActivation == nil || split.DeadFraction == nil || split.Loss == nil {
			t.Fatalf("metrics.json %s lacks one of mse, fvu, l0, mean_activation, dead_fraction, loss", name)
		}
	}
	rho := 0.1
	if got := *m.Test.MeanActivation; math.Abs(got-rho)/rho > 0.15 {
		t.Errorf("test mean activation %.4f is not within 15%% of rho = %.2f", got, rho)
	}
	// An autoencoder that learned nothing has FVU ≈ 1 (it predicts the mean).
	if fvu := *m.Test.FVU; !(fvu > 0 && fvu < 0.5) {
		t.Errorf("test FVU = %.4f, want in (0, 0.5)", fvu)
	}
	t.Logf("test: fvu %.4f mse %.5f mean activation %.4f l0 %.1f; %.0f samples/s",
		*m.Test.FVU, *m.Test.MSE, *m.Test.MeanActivation, *m.Test.L0, *m.SamplesPerSec)

	mustRun(t, dir, "model", "features", "out", "--png", "features.png", "--loss-png", "loss.png", "--scale", "1")
	f, err := os.Open(filepath.Join(dir, "features.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 196 latents: a 14×14 grid of 28×28 tiles with one-pixel borders,
	// under a title band of one to three 13-pixel lines.
	if b := img.Bounds(); b.Dx() != 14*29+1 || b.Dy() <= 14*29+1 || b.Dy() > 14*29+1+3*15+4 {
		t.Errorf("features.png is %v, want %d wide and %d high plus a title band", b, 14*29+1, 14*29+1)
	}
	if fi, err := os.Stat(filepath.Join(dir, "loss.png")); err != nil || fi.Size() < 1000 {
		t.Errorf("loss.png missing or empty: %v", err)
	}
}
