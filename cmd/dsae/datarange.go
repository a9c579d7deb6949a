package main

import (
	"context"
	"fmt"
	"math"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage/dataset"
	"github.com/dsae/dsae/storage/order"
	"github.com/dsae/dsae/worker"
	"github.com/dsae/dsae/worker/jobspec"
)

// Values of --normalize.
const (
	normNone        = "none"
	normMinMax      = "minmax"
	normStandardize = "standardize"
)

// normalizationFile records in the model directory how the data were
// scaled before training, so that new inputs can be scaled the same way.
const normalizationFile = "normalization.json"

// normalization is x' = (x - Shift[j]) * Scale[j] for feature j.
type normalization struct {
	Kind  string    `json:"kind"`
	Shift []float32 `json:"shift"`
	Scale []float32 `json:"scale"`
}

func (n *normalization) apply(x []float32) {
	d := len(n.Shift)
	for i := range x {
		j := i % d
		x[i] = (x[i] - n.Shift[j]) * n.Scale[j]
	}
}

// normalizationOf derives kind's normalization from the per-feature
// minimum and maximum (minmax: to [0, 1]) or mean and population standard
// deviation (standardize: mean 0, std 1). Constant features are shifted
// only.
func normalizationOf(kind string, lo, hi, mean, std []float64) *normalization {
	d := max(len(lo), len(mean))
	n := &normalization{Kind: kind, Shift: make([]float32, d), Scale: make([]float32, d)}
	for j := range d {
		var shift, span float64
		if kind == normMinMax {
			shift, span = lo[j], hi[j]-lo[j]
		} else {
			shift, span = mean[j], std[j]
		}
		n.Shift[j], n.Scale[j] = float32(shift), 1
		if span > 0 {
			n.Scale[j] = float32(1 / span)
		}
	}
	return n
}

// featureStats returns the per-feature minimum, maximum, mean and
// population standard deviation of x (rows of d values).
func featureStats(x []float32, d int) (lo, hi, mean, std []float64) {
	lo, hi, mean, std = make([]float64, d), make([]float64, d), make([]float64, d), make([]float64, d)
	for j := range d {
		lo[j], hi[j] = math.Inf(1), math.Inf(-1)
	}
	for i, v := range x {
		j, f := i%d, float64(v)
		lo[j], hi[j] = min(lo[j], f), max(hi[j], f)
		mean[j] += f
	}
	rows := float64(len(x) / d)
	for j := range d {
		mean[j] /= rows
	}
	for i, v := range x {
		dv := float64(v) - mean[i%d]
		std[i%d] += dv * dv
	}
	for j := range d {
		std[j] = math.Sqrt(std[j] / rows)
	}
	return lo, hi, mean, std
}

// checkOutputRange stops a sigmoid-output model from training on data
// outside [0, 1], which it cannot reconstruct: it would train to a large
// FVU without a word. x are the rows the model trains on.
func checkOutputRange(cfg sae.Config, data string, x []float32, d int) error {
	if cfg.Output != sae.OutSigmoid || len(x) == 0 {
		return nil
	}
	lo, hi := 0, 0
	for i, v := range x {
		if v < x[lo] {
			lo = i
		}
		if v > x[hi] {
			hi = i
		}
	}
	if x[lo] >= 0 && x[hi] <= 1 {
		return nil
	}
	bad := lo
	if x[lo] >= 0 {
		bad = hi
	}
	return invalid(fmt.Errorf("--data %s holds values in [%g, %g] (row %d, feature %d is %g), but --output sigmoid reconstructs values in [0, 1]: "+
		"use --output linear, or --normalize minmax to scale each feature to [0, 1]", data, x[lo], x[hi], bad/d, bad%d, x[bad]))
}

// checkManifestRange is checkOutputRange for a dataset in the store, from
// the per-feature mean and standard deviation its manifest records (the
// rule job submit applies too: jobspec.CheckStatsRange).
func checkManifestRange(cfg sae.Config, data string, m *dataset.Manifest) error {
	if err := jobspec.CheckStatsRange(cfg.Output, m.Mean, m.Std); err != nil {
		return invalid(fmt.Errorf("--data %s: its manifest's %v (--output linear), or --normalize standardize", data, err))
	}
	return nil
}

// normalizedSource scales the rows a Source (and, when it is one, a
// RowReader) returns.
type normalizedSource struct {
	worker.Source
	n *normalization
}

func (s normalizedSource) ReadStep(ctx context.Context, o *order.EpochOrder, batch int, step int64, rank, ranks int, dst []float32) (int, error) {
	k, err := s.Source.ReadStep(ctx, o, batch, step, rank, ranks, dst)
	if err == nil {
		s.n.apply(dst[:k*len(s.n.Shift)])
	}
	return k, err
}

func (s normalizedSource) ReadRows(ctx context.Context, lo, n int64, dst []float32) error {
	rr, ok := s.Source.(worker.RowReader)
	if !ok {
		return fmt.Errorf("normalized source: %T reads no rows", s.Source)
	}
	if err := rr.ReadRows(ctx, lo, n, dst); err != nil {
		return err
	}
	s.n.apply(dst[:n*int64(len(s.n.Shift))])
	return nil
}

// normalize applies --normalize to the training data (and the test data,
// with the training data's statistics), then checks the training data's
// range against the model's output. It returns the normalization applied
// (nil for none), which the model directory records.
func normalize(kind string, spec string, cfg sae.Config, td *trainData) (*normalization, error) {
	if kind == normStandardize && cfg.Output == sae.OutSigmoid {
		return nil, invalid(fmt.Errorf("--normalize standardize gives values outside [0, 1], which --output sigmoid cannot reconstruct: use --output linear, or --normalize minmax"))
	}
	var n *normalization
	switch kind {
	case normNone:
	case normMinMax, normStandardize:
		switch {
		case td.train != nil:
			lo, hi, mean, std := featureStats(td.train.X, td.d)
			n = normalizationOf(kind, lo, hi, mean, std)
			n.apply(td.train.X)
		case td.manifest != nil && kind == normStandardize && len(td.manifest.Mean) == td.d:
			n = normalizationOf(kind, nil, nil, td.manifest.Mean, td.manifest.Std)
		default:
			return nil, invalid(fmt.Errorf("--normalize %s needs each feature's minimum and maximum, and the manifest of %s records mean and standard deviation only: use --normalize standardize", kind, spec))
		}
		if td.source != nil {
			td.source = normalizedSource{td.source, n}
		}
		if td.test != nil {
			n.apply(td.test.X)
		}
	default:
		return nil, invalid(fmt.Errorf("--normalize = %q: want %s, %s or %s", kind, normNone, normMinMax, normStandardize))
	}
	switch {
	case td.train != nil:
		return n, checkOutputRange(cfg, spec, td.train.X, td.d)
	case td.manifest != nil && n == nil:
		return nil, checkManifestRange(cfg, spec, td.manifest)
	}
	return n, nil
}

// writeNormalization records n in the model directory dir.
func writeNormalization(dir string, n *normalization) error {
	if n == nil {
		return nil
	}
	return sae.WriteJSON(dir, normalizationFile, n)
}
