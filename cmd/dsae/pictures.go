package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/worker"
)

// historyPoint is one point of history.json: the training metrics since
// the previous point and, at some points of a `dsae train` run with a test
// split, the test split's (the workers' histories have none).
type historyPoint struct {
	worker.HistoryPoint
	Test *testPoint `json:"test,omitempty"`
}

// testPoint is the loss of the model on (up to testCurveRows rows of) the
// test split at a history point.
type testPoint struct {
	Rows int     `json:"rows"`
	Loss float64 `json:"loss"`
	MSE  float64 `json:"mse"`
}

// readHistory reads a history.json.
func readHistory(path string) ([]historyPoint, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var hist []historyPoint
	if err := json.Unmarshal(raw, &hist); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return hist, nil
}

// Scales of the loss curve's y axis (--loss-scale).
const (
	lossScaleLog    = "log"
	lossScaleLinear = "linear"
)

// plotLoss draws the loss curve of a history.json into the PNG file out:
// the training loss (the batch mean over each history interval) and, when
// the history has test points, the test split's loss, with the y axis in
// scale (log by default, so that the first steps do not squash the rest;
// linear when asked or when a loss is not positive).
func plotLoss(historyPath, out, scale string) error {
	hist, err := readHistory(historyPath)
	if errors.Is(err, os.ErrNotExist) {
		return invalid(fmt.Errorf("loss curve: %w (the model directory has no training history)", err))
	}
	if err != nil {
		return invalid(fmt.Errorf("loss curve: %w", err))
	}
	if len(hist) == 0 {
		return invalid(fmt.Errorf("loss curve: %s has no points", historyPath))
	}
	var train, test plotter.XYs
	testRows := 0
	for _, h := range hist {
		train = append(train, plotter.XY{X: float64(h.Step), Y: h.Loss})
		if h.Test != nil {
			test = append(test, plotter.XY{X: float64(h.Step), Y: h.Test.Loss})
			testRows = h.Test.Rows
		}
	}
	log := scale != lossScaleLinear
	for _, xy := range append(append(plotter.XYs{}, train...), test...) {
		if !(xy.Y > 0) || math.IsInf(xy.Y, 0) {
			log = false // a log axis cannot show it
		}
	}
	p := plot.New()
	p.Title.Text = "loss"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss"
	if log {
		p.Y.Label.Text = "loss (log scale)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
	}
	p.Title.TextStyle.Font.Size = vg.Points(15)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = vg.Points(13)
		a.Tick.Label.Font.Size = vg.Points(12)
	}
	p.Legend.TextStyle.Font.Size = vg.Points(12)
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	line, err := plotter.NewLine(train)
	if err != nil {
		return err
	}
	line.Width = vg.Points(1.5)
	line.Color = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	p.Add(line)
	p.Legend.Add("train (batch mean)", line)
	if len(test) > 0 {
		tl, pts, err := plotter.NewLinePoints(test)
		if err != nil {
			return err
		}
		tl.Width = vg.Points(1.5)
		tl.Color = color.RGBA{R: 214, G: 39, B: 40, A: 255}
		pts.Color = tl.Color
		p.Add(tl, pts)
		p.Legend.Add(fmt.Sprintf("test (%d rows)", testRows), tl, pts)
	}
	if log && p.Y.Min == p.Y.Max {
		// One value (a one-step run): gonum would widen the range by ±1,
		// past 0 for a loss below 1.
		p.Y.Min, p.Y.Max = p.Y.Min/2, p.Y.Max*2
	}
	w, err := p.WriterTo(10*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return err
	}
	return writePNG(out, func(f *os.File) error { _, err := w.WriteTo(f); return err })
}

// logTicks marks a log axis at 1, 2 and 5 times the powers of ten (labelled
// %g: 0.05, 0.1, 0.2, …), with minor ticks at the other integers; over
// less than a factor of three it labels every integer multiple instead, so
// that a narrow range still shows numbers.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 3, 64)}}
	}
	label := map[int]bool{1: true, 2: true, 5: true}
	if hi/lo < 3 {
		label = map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true}
	}
	var ticks []plot.Tick
	for e := int(math.Floor(math.Log10(lo))); e <= int(math.Ceil(math.Log10(hi))); e++ {
		base := math.Pow10(e)
		for m := 1; m < 10; m++ {
			v := float64(m) * base
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if label[m] {
				t.Label = strconv.FormatFloat(v, 'g', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// writeFeatures draws the feature grid of m (sae.FeatureGrid) under a
// title naming the model, its sparsity and the steps it was trained
// (modelTitle), into the PNG file out.
func writeFeatures(out, dir string, m *sae.Model, tw, th, scale, limit int) error {
	grid, err := m.FeatureGrid(tw, th, scale, limit)
	if err != nil {
		return err
	}
	img := titled(grid, modelTitle(dir, m.Cfg), max(1, scale/2))
	return writePNG(out, func(f *os.File) error { return png.Encode(f, img) })
}

// modelTitle describes a model in one line of ASCII (the title font has no
// other glyphs): sizes, activations, sparsity and, when the model
// directory dir records it, the steps it was trained.
func modelTitle(dir string, c sae.Config) string {
	var sp string
	switch c.Sparsity {
	case sae.SparsityKL:
		sp = fmt.Sprintf("kl rho=%g beta=%g", c.Rho, c.Beta)
	case sae.SparsityL1:
		sp = fmt.Sprintf("l1=%g", c.L1)
	case sae.SparsityTopK:
		sp = fmt.Sprintf("topk k=%d", c.K)
		if c.AuxK > 0 {
			sp += fmt.Sprintf(" aux_k=%d", c.AuxK)
		}
	default:
		sp = "no sparsity penalty"
	}
	s := fmt.Sprintf("%d -> %d -> %d, %s/%s, %s", c.D, c.H, c.D, c.Activation, c.Output, sp)
	if c.Tied {
		s += ", tied"
	}
	if steps := trainedSteps(dir); steps > 0 {
		s += fmt.Sprintf(", %d steps", steps)
	}
	return s
}

// trainedSteps is the steps of the training that wrote model directory
// dir, from its metrics.json (else the last point of history.json), or 0.
func trainedSteps(dir string) int64 {
	if raw, err := os.ReadFile(filepath.Join(dir, sae.MetricsFile)); err == nil {
		var m struct{ Steps int64 }
		if json.Unmarshal(raw, &m) == nil && m.Steps > 0 {
			return m.Steps
		}
	}
	if hist, err := readHistory(filepath.Join(dir, historyFile)); err == nil && len(hist) > 0 {
		return hist[len(hist)-1].Step
	}
	return 0
}

// titled returns img with a white band above it holding title in black,
// its 7×13 glyphs enlarged zoom times, wrapped at word boundaries to the
// image's width.
func titled(img *image.Gray, title string, zoom int) *image.Gray {
	face := basicfont.Face7x13
	w := img.Bounds().Dx()
	perLine := max(1, (w-4)/(face.Advance*zoom))
	var lines []string
	for _, word := range strings.Fields(title) {
		switch n := len(lines); {
		case n > 0 && len(lines[n-1])+1+len(word) <= perLine:
			lines[n-1] += " " + word
		default:
			lines = append(lines, word)
		}
	}
	lineH := face.Height + 2
	text := image.NewGray(image.Rect(0, 0, w/zoom+1, len(lines)*lineH+4))
	draw.Draw(text, text.Bounds(), image.White, image.Point{}, draw.Src)
	d := font.Drawer{Dst: text, Src: image.Black, Face: face}
	for i, l := range lines {
		d.Dot = fixed.P(2, 2+i*lineH+face.Ascent)
		d.DrawString(l)
	}
	band := text.Bounds().Dy() * zoom
	out := image.NewGray(image.Rect(0, 0, w, band+img.Bounds().Dy()))
	for y := range band {
		for x := range w {
			out.SetGray(x, y, text.GrayAt(x/zoom, y/zoom))
		}
	}
	draw.Draw(out, image.Rect(0, band, w, out.Bounds().Dy()), img, img.Bounds().Min, draw.Src)
	return out
}
