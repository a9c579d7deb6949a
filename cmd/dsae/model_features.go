package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/worker"
)

func newModelFeaturesCmd() *cobra.Command {
	var pngPath, lossPath, tile string
	var scale, limit int
	cmd := &cobra.Command{
		Use:   "features DIR",
		Short: "Draw a model's learned features as a grid of images, and its loss curve",
		Example: `  dsae model features out --png features.png --loss-png loss.png
  dsae model features out --png features.png --tile 16x32 --limit 256`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if pngPath == "" && lossPath == "" {
				return invalid(errors.New("nothing to draw: give --png FILE and/or --loss-png FILE"))
			}
			if pngPath != "" {
				m, err := sae.Load(dir)
				if err != nil {
					return err
				}
				tw, th, err := tileShape(tile, m.Cfg.D)
				if err != nil {
					return invalid(err)
				}
				img, err := m.FeatureGrid(tw, th, scale, limit)
				if err != nil {
					return invalid(err)
				}
				if err := writePNG(pngPath, func(f *os.File) error { return png.Encode(f, img) }); err != nil {
					return err
				}
				n := m.Cfg.H
				if limit > 0 && limit < n {
					n = limit
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "features: %d tiles of %dx%d written to %s\n", n, tw, th, pngPath)
			}
			if lossPath != "" {
				if err := plotLoss(filepath.Join(dir, historyFile), lossPath); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "loss curve written to %s\n", lossPath)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pngPath, "png", "", "write the feature grid to this PNG file")
	cmd.Flags().StringVar(&lossPath, "loss-png", "", "write the training loss curve to this PNG file")
	cmd.Flags().StringVar(&tile, "tile", "", "tile shape WxH with W·H = d (default: square when d is a square)")
	cmd.Flags().IntVar(&scale, "scale", 2, "pixels per weight")
	cmd.Flags().IntVar(&limit, "limit", 0, "draw only the first N latents (0 = all)")
	return cmd
}

// tileShape parses --tile, defaulting to a square tile when d is a square.
func tileShape(spec string, d int) (int, int, error) {
	if spec == "" {
		s := int(math.Round(math.Sqrt(float64(d))))
		if s*s != d {
			return 0, 0, fmt.Errorf("d = %d is not a square: give --tile WxH with W·H = %d", d, d)
		}
		return s, s, nil
	}
	var w, h int
	if _, err := fmt.Sscanf(spec, "%dx%d", &w, &h); err != nil || w < 1 || h < 1 || w*h != d {
		return 0, 0, fmt.Errorf("--tile %q: want WxH with W·H = d = %d", spec, d)
	}
	return w, h, nil
}

// plotLoss draws the loss and reconstruction MSE of a history.json.
func plotLoss(historyPath, out string) error {
	raw, err := os.ReadFile(historyPath)
	if err != nil {
		return invalid(fmt.Errorf("loss curve: %w (the model directory has no training history)", err))
	}
	var hist []worker.HistoryPoint
	if err := json.Unmarshal(raw, &hist); err != nil {
		return invalid(fmt.Errorf("loss curve: %s: %w", historyPath, err))
	}
	if len(hist) == 0 {
		return invalid(fmt.Errorf("loss curve: %s has no points", historyPath))
	}
	p := plot.New()
	p.Title.Text = "training loss"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss (batch mean)"
	pts := make(plotter.XYs, len(hist))
	for i, h := range hist {
		pts[i] = plotter.XY{X: float64(h.Step), Y: h.Loss}
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	p.Add(line, plotter.NewGrid())
	w, err := p.WriterTo(8*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return err
	}
	return writePNG(out, func(f *os.File) error { _, err := w.WriteTo(f); return err })
}

// writePNG writes a file through a temporary name so that a failed write
// never leaves a truncated picture behind.
func writePNG(path string, write func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*.png")
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
