package main

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/worker"
)

// titled keeps the picture whole under a band that holds the title: the
// width is the picture's, the band has ink, and a title too long for one
// line wraps onto more.
func TestTitled(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 120, 50))
	for i := range img.Pix {
		img.Pix[i] = uint8(i % 251)
	}
	short, long := titled(img, "784 -> 196", 1), titled(img, strings.Repeat("word ", 20), 1)
	for _, out := range []*image.Gray{short, long} {
		b := out.Bounds()
		band := b.Dy() - 50
		if b.Dx() != 120 || band <= 0 {
			t.Fatalf("titled image %v, want 120 wide and taller than 50", b)
		}
		for y := range 50 {
			for x := range 120 {
				if out.GrayAt(x, band+y) != img.GrayAt(x, y) {
					t.Fatalf("pixel (%d, %d) of the picture changed", x, y)
				}
			}
		}
		ink := false
		for y := range band {
			for x := range 120 {
				ink = ink || out.GrayAt(x, y).Y < 128
			}
		}
		if !ink {
			t.Error("the title band is blank")
		}
	}
	if long.Bounds().Dy() <= short.Bounds().Dy() {
		t.Errorf("a long title did not wrap: %v vs %v", long.Bounds(), short.Bounds())
	}
	if z := titled(img, "x", 2); z.Bounds().Dy()-50 != 2*(short.Bounds().Dy()-50) {
		t.Errorf("zoom 2 band %d, want twice %d", z.Bounds().Dy()-50, short.Bounds().Dy()-50)
	}
}

func TestModelTitle(t *testing.T) {
	dir := t.TempDir()
	if err := sae.WriteJSON(dir, sae.MetricsFile, map[string]any{"steps": 4700}); err != nil {
		t.Fatal(err)
	}
	kl := sae.DefaultConfig()
	topk := kl
	topk.Activation, topk.Sparsity, topk.Output, topk.AuxK, topk.Tied = "topk", "topk", "linear", 16, true
	for _, c := range []struct {
		cfg  sae.Config
		dir  string
		want string
	}{
		{kl, dir, "784 -> 196 -> 784, sigmoid/sigmoid, kl rho=0.1 beta=3, 4700 steps"},
		{topk, t.TempDir(), "784 -> 196 -> 784, topk/linear, topk k=32 aux_k=16, tied"},
	} {
		if got := modelTitle(c.dir, c.cfg); got != c.want {
			t.Errorf("modelTitle = %q, want %q", got, c.want)
		}
	}
}

func TestLogTicks(t *testing.T) {
	labels := func(lo, hi float64) []string {
		var out []string
		for _, tk := range (logTicks{}).Ticks(lo, hi) {
			if tk.Value < lo || tk.Value > hi {
				t.Errorf("tick %v outside [%v, %v]", tk.Value, lo, hi)
			}
			if tk.Label != "" {
				out = append(out, tk.Label)
			}
		}
		return out
	}
	if got, want := labels(0.015, 3), []string{"0.02", "0.05", "0.1", "0.2", "0.5", "1", "2"}; !slices.Equal(got, want) {
		t.Errorf("labels over [0.015, 3]: %q, want %q", got, want)
	}
	if got := labels(18, 40); !slices.Equal(got, []string{"20", "30", "40"}) {
		t.Errorf("labels over a narrow range [18, 40]: %q", got)
	}
}

// plotLoss draws train and test together on a log scale, falls back to a
// linear axis for a loss of 0, draws a one-point history (one value below
// 1: gonum's ±1 widening would cross 0), and refuses a directory without
// history.
func TestPlotLoss(t *testing.T) {
	dir := t.TempDir()
	hist := []historyPoint{
		{HistoryPoint: worker.HistoryPoint{Step: 10, Loss: 100}},
		{HistoryPoint: worker.HistoryPoint{Step: 20, Loss: 3}, Test: &testPoint{Rows: 5, Loss: 4}},
		{HistoryPoint: worker.HistoryPoint{Step: 30, Loss: 0.5}, Test: &testPoint{Rows: 5, Loss: 0.7}},
	}
	if err := sae.WriteJSON(dir, historyFile, hist); err != nil {
		t.Fatal(err)
	}
	zero, one := t.TempDir(), t.TempDir()
	if err := sae.WriteJSON(zero, historyFile, []historyPoint{{HistoryPoint: worker.HistoryPoint{Step: 1, Loss: 0}}}); err != nil {
		t.Fatal(err)
	}
	if err := sae.WriteJSON(one, historyFile, []historyPoint{{HistoryPoint: worker.HistoryPoint{Step: 1, Loss: 0.25}}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, scale string }{{dir, lossScaleLog}, {dir, lossScaleLinear}, {zero, lossScaleLog}, {one, lossScaleLog}} {
		out := filepath.Join(t.TempDir(), "loss.png")
		if err := plotLoss(filepath.Join(c.dir, historyFile), out, c.scale); err != nil {
			t.Fatalf("%s: %v", c.scale, err)
		}
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() < 900 {
			t.Errorf("loss.png: %v, %v", err, img.Bounds())
		}
	}
	if err := plotLoss(filepath.Join(t.TempDir(), historyFile), filepath.Join(dir, "x.png"), lossScaleLog); err == nil || exitCode(err) != exitInvalid {
		t.Errorf("no history: %v", err)
	}
}
