package sae_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/dsae/dsae/sae"
)

// Example runs the two-phase step the way a cluster does, with the batch
// split over two workers and the "all-reduce" done by adding slices, then
// applies plain gradient descent.
func Example() {
	cfg := sae.DefaultConfig() // sigmoid/sigmoid, KL sparsity ρ = 0.1, β = 3
	cfg.D, cfg.H = 16, 8
	m, err := sae.New(cfg)
	if err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 64*cfg.D) // 64 rows in [0,1)
	for i := range x {
		x[i] = rng.Float32()
	}
	halves := [][]float32{x[:32*cfg.D], x[32*cfg.D:]}
	workers := []*sae.Step{m.NewStep(32), m.NewStep(32)}

	stats := make([]float64, m.StatsLen())
	grad := make([]float32, m.GradLen())
	sums := make([]float64, m.SumsLen())
	local := make([]float32, m.GradLen())
	localSums := make([]float64, m.SumsLen())
	localStats := make([]float64, m.StatsLen())
	var first, last sae.Metrics
	for step := 0; step < 200; step++ {
		// phase 1: local Σa and row counts, summed over workers
		clear(stats)
		for w, s := range workers {
			s.Stats(halves[w], 32, localStats)
			for i, v := range localStats {
				stats[i] += v
			}
		}
		// phase 2: local gradient and metric sums given the global stats
		clear(grad)
		clear(sums)
		for _, s := range workers {
			s.Gradient(stats, local, localSums)
			for i, v := range local {
				grad[i] += v
			}
			for i, v := range localSums {
				sums[i] += v
			}
		}
		// finalize on every worker (here: once), then update
		met := m.Finalize(grad, sums)
		for i, g := range grad {
			m.Params[i] -= 0.5 * g
		}
		if step == 0 {
			first = met
		}
		last = met
	}
	fmt.Println("rows per step:", last.Rows)
	fmt.Println("loss decreased:", last.Loss < first.Loss)
	fmt.Println("mean activation moved towards rho:", exampleAbs(last.MeanActivation-cfg.Rho) < exampleAbs(first.MeanActivation-cfg.Rho))
	// Output:
	// rows per step: 64
	// loss decreased: true
	// mean activation moved towards rho: true
}

func exampleAbs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
