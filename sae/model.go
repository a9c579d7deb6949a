package sae

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Span is a contiguous range Params[Off : Off+Len].
type Span struct {
	Off, Len int
}

// End returns Off+Len.
func (s Span) End() int { return s.Off + s.Len }

// Layout says where each tensor lives in Model.Params (and in a gradient
// buffer, which has the same layout).
//
//   - Enc: the encoder weights W1, h×d row-major; row j is latent j's encoder
//     vector, so z = W1·x + b1.
//   - BEnc: the encoder bias b1, h values.
//   - Dec: the decoder weights stored as W2ᵀ, h×d row-major; row j is latent
//     j's decoder vector (the SAELens W_dec layout), so x̂ = g(Σ_j a_j·Dec_j + b2).
//     For tied models Dec == Enc (one shared matrix).
//   - BDec: the decoder bias b2, d values.
//
// The order in Params is Enc, BEnc, Dec (absent when tied), BDec. Weight decay
// applies to Enc and Dec only.
type Layout struct {
	Enc, BEnc, Dec, BDec Span
}

// Weights returns the spans that are weight matrices (decayed): Enc and Dec,
// or just Enc when tied.
func (l Layout) Weights() []Span {
	if l.Dec == l.Enc {
		return []Span{l.Enc}
	}
	return []Span{l.Enc, l.Dec}
}

// IsWeight reports whether Params[i] belongs to a weight matrix.
func (l Layout) IsWeight(i int) bool {
	for _, s := range l.Weights() {
		if i >= s.Off && i < s.End() {
			return true
		}
	}
	return false
}

func layoutFor(c Config) Layout {
	hd := c.H * c.D
	var l Layout
	l.Enc = Span{0, hd}
	l.BEnc = Span{hd, c.H}
	if c.Tied {
		l.Dec = l.Enc
		l.BDec = Span{hd + c.H, c.D}
	} else {
		l.Dec = Span{hd + c.H, hd}
		l.BDec = Span{2*hd + c.H, c.D}
	}
	return l
}

// Model is a sparse autoencoder: its config, all parameters in one flat
// float32 buffer (see Layout), and the dead-latent tracker that training
// updates in Finalize.
//
// Params may be updated in place by an optimizer between steps; Steps read
// it at each call. A Model is not safe for concurrent mutation: Finalize and
// optimizer updates must not run while a Step of the same model computes.
type Model struct {
	Cfg    Config
	Params []float32

	layout Layout
	// sinceActive[j] counts the training steps since latent j was last
	// active (saturating); dead when >= Cfg.DeadWindow.
	sinceActive []uint32
}

// New returns a model with deterministic parameters drawn from Cfg.Seed:
// weights uniform in ±sqrt(6/(d+h+1)), biases zero. Enc is drawn first, then
// Dec (untied only), row-major. It returns an error wrapping
// ErrInvalidConfig if cfg is invalid.
func New(cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := newZero(cfg)
	r := math.Sqrt(6 / float64(cfg.D+cfg.H+1))
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5ae0_d5ae_0000_0001))
	for _, s := range m.layout.Weights() {
		w := m.Params[s.Off:s.End()]
		for i := range w {
			w[i] = float32((2*rng.Float64() - 1) * r)
		}
	}
	return m, nil
}

func newZero(cfg Config) *Model {
	l := layoutFor(cfg)
	return &Model{
		Cfg:         cfg,
		Params:      make([]float32, l.BDec.End()),
		layout:      l,
		sinceActive: make([]uint32, cfg.H),
	}
}

// InitRange returns the bound r of the uniform weight initialisation
// U(-r, r), r = sqrt(6/(d+h+1)).
func (c Config) InitRange() float64 { return math.Sqrt(6 / float64(c.D+c.H+1)) }

// NumParams returns len(m.Params).
func (m *Model) NumParams() int { return len(m.Params) }

// Layout returns where each tensor lives in Params.
func (m *Model) Layout() Layout { return m.layout }

// Enc returns the encoder weights (h×d row-major), a view into Params.
func (m *Model) Enc() []float32 { return m.Params[m.layout.Enc.Off:m.layout.Enc.End()] }

// BEnc returns the encoder bias (h), a view into Params.
func (m *Model) BEnc() []float32 { return m.Params[m.layout.BEnc.Off:m.layout.BEnc.End()] }

// Dec returns the decoder weights (h×d row-major, row j = latent j's decoder
// vector), a view into Params; the same memory as Enc when tied.
func (m *Model) Dec() []float32 { return m.Params[m.layout.Dec.Off:m.layout.Dec.End()] }

// BDec returns the decoder bias (d), a view into Params.
func (m *Model) BDec() []float32 { return m.Params[m.layout.BDec.Off:m.layout.BDec.End()] }

// Clone returns a deep copy of m (parameters and dead-latent tracker).
func (m *Model) Clone() *Model {
	c := newZero(m.Cfg)
	copy(c.Params, m.Params)
	copy(c.sinceActive, m.sinceActive)
	return c
}

// SAELens returns copies of the parameters in the layout SAELens loads:
// wEnc [d][h] row-major (d_in × d_sae), wDec [h][d], bEnc [h], bDec [d].
// For tied models wDec is wEnc transposed.
func (m *Model) SAELens() (wEnc, wDec, bEnc, bDec []float32) {
	d, h := m.Cfg.D, m.Cfg.H
	enc := m.Enc()
	wEnc = make([]float32, d*h)
	for j := 0; j < h; j++ {
		row := enc[j*d : (j+1)*d]
		for i, v := range row {
			wEnc[i*h+j] = v
		}
	}
	wDec = append([]float32(nil), m.Dec()...)
	bEnc = append([]float32(nil), m.BEnc()...)
	bDec = append([]float32(nil), m.BDec()...)
	return wEnc, wDec, bEnc, bDec
}

// FromSAELens builds a model from tensors in SAELens layout (see SAELens);
// the slices are copied. Sizes must match cfg: wEnc d*h, wDec h*d, bEnc h,
// bDec d, else the error wraps ErrShape and names the tensor and both shapes.
// For a tied cfg, wDec must be exactly wEnc transposed. The dead-latent
// tracker starts fresh (see SetTrainState to restore it).
func FromSAELens(cfg Config, wEnc, wDec, bEnc, bDec []float32) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d, h := cfg.D, cfg.H
	for _, t := range []struct {
		name  string
		got   int
		shape string
		want  int
	}{
		{"W_enc", len(wEnc), fmt.Sprintf("[%d %d]", d, h), d * h},
		{"W_dec", len(wDec), fmt.Sprintf("[%d %d]", h, d), h * d},
		{"b_enc", len(bEnc), fmt.Sprintf("[%d]", h), h},
		{"b_dec", len(bDec), fmt.Sprintf("[%d]", d), d},
	} {
		if t.got != t.want {
			return nil, fmt.Errorf("%w: %s has %d values, want shape %s (%d values) for d=%d, h=%d",
				ErrShape, t.name, t.got, t.shape, t.want, d, h)
		}
	}
	m := newZero(cfg)
	enc := m.Enc()
	for i := 0; i < d; i++ {
		for j := 0; j < h; j++ {
			enc[j*d+i] = wEnc[i*h+j]
		}
	}
	if cfg.Tied {
		for k, v := range wDec {
			if v != enc[k] {
				return nil, fmt.Errorf("%w: tied model but W_dec[%d][%d] = %v differs from W_enc[%d][%d] = %v",
					ErrShape, k/d, k%d, v, k%d, k/d, enc[k])
			}
		}
	} else {
		copy(m.Dec(), wDec)
	}
	copy(m.BEnc(), bEnc)
	copy(m.BDec(), bDec)
	return m, nil
}

// TrainState returns a copy of the dead-latent tracker: for each latent j the
// number of training steps since it was last active (saturating at 2^32-1).
// Checkpoints must store it so that dead fractions and AuxK resume exactly.
func (m *Model) TrainState() []uint32 {
	return append([]uint32(nil), m.sinceActive...)
}

// SetTrainState restores a tracker saved by TrainState. It returns an error
// wrapping ErrShape if len(s) != h.
func (m *Model) SetTrainState(s []uint32) error {
	if len(s) != m.Cfg.H {
		return fmt.Errorf("%w: train state has %d values, want h = %d", ErrShape, len(s), m.Cfg.H)
	}
	copy(m.sinceActive, s)
	return nil
}

// dead reports whether latent j counts as dead for this step.
func (m *Model) dead(j int) bool {
	return m.sinceActive[j] >= uint32(m.Cfg.DeadWindow)
}

// DeadFraction returns the fraction of latents currently dead (inactive on
// every row of the last DeadWindow training steps).
func (m *Model) DeadFraction() float64 {
	n := 0
	for j := range m.sinceActive {
		if m.dead(j) {
			n++
		}
	}
	return float64(n) / float64(len(m.sinceActive))
}
