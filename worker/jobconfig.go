package worker

import (
	"fmt"

	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/sae"
)

// jobConfigs turns a job spec into sae's model and optimizer configs for
// data of dimension d, and the global batch.
func jobConfigs(spec *pb.JobSpec, d int) (sae.Config, sae.OptimizerConfig, int, error) {
	m, o := spec.GetModel(), spec.GetOptimizer()
	c := sae.DefaultConfig()
	c.D, c.H = d, int(m.GetH())
	c.Activation, c.K, c.Output, c.Sparsity = m.GetActivation(), int(m.GetK()), m.GetOutput(), m.GetSparsity()
	if c.Output == "identity" {
		c.Output = sae.OutLinear
	}
	c.Rho, c.Beta, c.L1, c.WeightDecay, c.Tied, c.Seed = m.GetRho(), m.GetBeta(), m.GetL1(), m.GetWeightDecay(), m.GetTied(), m.GetSeed()
	if err := c.Validate(); err != nil {
		return c, sae.OptimizerConfig{}, 0, err
	}
	oc := sae.DefaultOptimizerConfig()
	oc.Kind, oc.LR, oc.Schedule, oc.WarmupSteps = o.GetKind(), o.GetLr(), o.GetSchedule(), int(o.GetWarmupSteps())
	oc.Momentum, oc.Beta1, oc.Beta2, oc.Eps, oc.ClipNorm = o.GetMomentum(), o.GetBeta1(), o.GetBeta2(), o.GetEps(), o.GetGradClip()
	if oc.Kind == "momentum" {
		oc.Kind = sae.OptimizerSGD
	}
	batch := int(spec.GetBatchSize())
	if batch < 1 {
		return c, oc, 0, fmt.Errorf("%w: batch = %d", ErrOptions, batch)
	}
	return c, oc, batch, nil
}
