package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/dsae/dsae/sae"
)

func newModelFeaturesCmd() *cobra.Command {
	var pngPath, lossPath, lossScale, tile string
	var scale, limit int
	cmd := &cobra.Command{
		Use:   "features DIR",
		Short: "Draw a model's learned features as a grid of images, and its loss curve",
		Long: `Draw the encoder's features of the model in DIR as a grid of grey-scale
images under a title (sizes, activations, sparsity, steps), and the loss
curve of its training history: the training loss and, for a dsae train run
with a test split, the test loss, on a log scale by default.`,
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
				if err := writeFeatures(pngPath, dir, m, tw, th, scale, limit); err != nil {
					if errors.Is(err, sae.ErrShape) {
						return invalid(err)
					}
					return err
				}
				n := m.Cfg.H
				if limit > 0 && limit < n {
					n = limit
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "features: %d tiles of %dx%d written to %s\n", n, tw, th, pngPath)
			}
			if lossPath != "" {
				if lossScale != lossScaleLog && lossScale != lossScaleLinear {
					return invalid(fmt.Errorf("--loss-scale %q: want log or linear", lossScale))
				}
				if err := plotLoss(filepath.Join(dir, historyFile), lossPath, lossScale); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "loss curve written to %s\n", lossPath)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pngPath, "png", "", "write the feature grid to this PNG file")
	cmd.Flags().StringVar(&lossPath, "loss-png", "", "write the loss curve (train, and test when the history has it) to this PNG file")
	cmd.Flags().StringVar(&lossScale, "loss-scale", lossScaleLog, "y axis of --loss-png: log (the first steps do not squash the rest) or linear")
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
