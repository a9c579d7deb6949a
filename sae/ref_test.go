package sae

import (
	"math"
	"sort"
)

// refModel is an independent float64 implementation of the objective J, used
// only by tests: it evaluates the loss from its definition (no gradients),
// so that central differences of it check the analytic gradient.
type refModel struct {
	cfg  Config
	p    []float64 // same layout as Model.Params
	dead []bool    // dead latents for AuxK
	// e is the AuxK target x − x̂ per row, held constant (stop-gradient) as in
	// the implementation; computed at the unperturbed parameters.
	e [][]float64
}

func newRef(m *Model) *refModel {
	r := &refModel{cfg: m.Cfg, p: make([]float64, len(m.Params)), dead: make([]bool, m.Cfg.H)}
	for i, v := range m.Params {
		r.p[i] = float64(v)
	}
	for j := range r.dead {
		r.dead[j] = m.dead(j)
	}
	return r
}

// refForward is the per-row result of the reference forward pass.
type refForward struct {
	z, a  []float64 // pre-activations and activations (h)
	xhat  []float64 // output (d)
	aux   []int     // AuxK-selected latents
	topk  []int     // kept latents (topk)
	sel   []float64 // margins: smallest |z| and top-k gaps seen
	lossA float64   // ½‖ê − e‖² (needs e)
}

// refTop returns the up to k indices with the largest positive values among
// cand, ties to the lower index, plus the gap between the k-th and the next
// candidate (or to 0).
func refTop(z []float64, cand []int, k int) ([]int, float64) {
	c := append([]int(nil), cand...)
	sort.SliceStable(c, func(a, b int) bool { return z[c[a]] > z[c[b]] })
	var out []int
	for _, j := range c {
		if len(out) < k && z[j] > 0 {
			out = append(out, j)
		}
	}
	gap := math.Inf(1)
	if len(out) == k && len(c) > k {
		gap = z[c[k-1]] - math.Max(z[c[k]], 0)
	}
	return out, gap
}

func (r *refModel) forward(x []float64, row int) refForward {
	c := r.cfg
	d, h := c.D, c.H
	l := layoutFor(c)
	enc, b1 := r.p[l.Enc.Off:l.Enc.End()], r.p[l.BEnc.Off:l.BEnc.End()]
	dec, b2 := r.p[l.Dec.Off:l.Dec.End()], r.p[l.BDec.Off:l.BDec.End()]
	f := refForward{z: make([]float64, h), a: make([]float64, h), xhat: make([]float64, d)}
	minAbs := math.Inf(1)
	for j := 0; j < h; j++ {
		z := b1[j]
		for i := 0; i < d; i++ {
			z += enc[j*d+i] * x[i]
		}
		f.z[j] = z
		minAbs = math.Min(minAbs, math.Abs(z))
	}
	switch c.Activation {
	case ActSigmoid:
		for j, z := range f.z {
			f.a[j] = 1 / (1 + math.Exp(-z))
		}
	case ActReLU:
		for j, z := range f.z {
			f.a[j] = math.Max(z, 0)
		}
	case ActTopK:
		all := make([]int, h)
		for j := range all {
			all[j] = j
		}
		var gap float64
		f.topk, gap = refTop(f.z, all, c.K)
		f.sel = append(f.sel, gap)
		for _, j := range f.topk {
			f.a[j] = f.z[j]
		}
	}
	if c.Activation != ActSigmoid {
		f.sel = append(f.sel, minAbs) // ReLU kinks
	}
	for o := 0; o < d; o++ {
		v := b2[o]
		for j := 0; j < h; j++ {
			v += f.a[j] * dec[j*d+o]
		}
		if c.Output == OutSigmoid {
			v = 1 / (1 + math.Exp(-v))
		}
		f.xhat[o] = v
	}
	if c.AuxK > 0 {
		var dead []int
		for j, isDead := range r.dead {
			if isDead {
				dead = append(dead, j)
			}
		}
		var gap float64
		f.aux, gap = refTop(f.z, dead, c.AuxK)
		f.sel = append(f.sel, gap)
		if r.e != nil {
			for o := 0; o < d; o++ {
				v := 0.0
				for _, j := range f.aux {
					v += f.z[j] * dec[j*d+o]
				}
				diff := v - r.e[row][o]
				f.lossA += diff * diff / 2
			}
		}
	}
	return f
}

// setAuxTarget fixes e = x − x̂ at the current parameters.
func (r *refModel) setAuxTarget(x [][]float64) {
	r.e = nil
	e := make([][]float64, len(x))
	for i, xi := range x {
		f := r.forward(xi, i)
		e[i] = make([]float64, len(xi))
		for o := range xi {
			e[i][o] = xi[o] - f.xhat[o]
		}
	}
	r.e = e
}

// loss returns J at r.p and the smallest selection margin seen (|z| for
// ReLU kinks and top-k gaps), which tests keep away from zero.
func (r *refModel) loss(x [][]float64) (float64, float64) {
	c := r.cfg
	d, h := c.D, c.H
	m := float64(len(x))
	l := layoutFor(c)
	dec := r.p[l.Dec.Off:l.Dec.End()]
	var recon, aux float64
	margin := math.Inf(1)
	rhoHat := make([]float64, h)
	l1 := 0.0
	for i, xi := range x {
		f := r.forward(xi, i)
		for _, s := range f.sel {
			margin = math.Min(margin, s)
		}
		for o := range xi {
			diff := f.xhat[o] - xi[o]
			recon += diff * diff / 2
		}
		aux += f.lossA
		for j, a := range f.a {
			rhoHat[j] += a / m
			w := 1.0
			if c.L1DecoderNorm {
				w = 0
				for o := 0; o < d; o++ {
					w += dec[j*d+o] * dec[j*d+o]
				}
				w = math.Sqrt(w)
			}
			l1 += w * math.Abs(a)
		}
	}
	j := recon / m
	switch c.Sparsity {
	case SparsityKL:
		for _, rh := range rhoHat {
			j += c.Beta * (c.Rho*math.Log(c.Rho/rh) + (1-c.Rho)*math.Log((1-c.Rho)/(1-rh)))
		}
	case SparsityL1:
		j += c.L1 * l1 / m
	}
	j += c.AuxCoef * aux / m
	wsq := 0.0
	for _, s := range l.Weights() {
		for _, v := range r.p[s.Off:s.End()] {
			wsq += v * v
		}
	}
	j += c.WeightDecay / 2 * wsq
	return j, margin
}

// numGrad returns the central-difference gradient of J and the smallest
// selection margin over all evaluations.
func (r *refModel) numGrad(x [][]float64, eps float64) ([]float64, float64) {
	g := make([]float64, len(r.p))
	_, margin := r.loss(x)
	for i := range r.p {
		orig := r.p[i]
		r.p[i] = orig + eps
		jp, mp := r.loss(x)
		r.p[i] = orig - eps
		jm, mm := r.loss(x)
		r.p[i] = orig
		g[i] = (jp - jm) / (2 * eps)
		margin = math.Min(margin, math.Min(mp, mm))
	}
	return g, margin
}
