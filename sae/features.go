package sae

import (
	"fmt"
	"image"
	"image/color"
	"math"
)

// FeatureGrid draws every latent's encoder weight vector as a tw×th
// grey-scale tile (tw·th must equal d), tiles in a near-square grid with a
// one-pixel border, each pixel scaled by `scale`. Each tile is normalised by
// its own largest |w|: mid-grey is 0, white positive, black negative. For
// a sigmoid autoencoder on 28×28 digits these are the familiar pen-stroke
// detectors. Latents are drawn in index order up to limit (0 = all).
func (m *Model) FeatureGrid(tw, th, scale, limit int) (*image.Gray, error) {
	c := m.Cfg
	if tw < 1 || th < 1 || tw*th != c.D {
		return nil, fmt.Errorf("%w: tile %d×%d does not have d = %d pixels", ErrShape, tw, th, c.D)
	}
	if scale < 1 {
		scale = 1
	}
	n := c.H
	if limit > 0 && limit < n {
		n = limit
	}
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	rows := (n + cols - 1) / cols
	cw, ch := tw*scale+1, th*scale+1
	img := image.NewGray(image.Rect(0, 0, cols*cw+1, rows*ch+1))
	for i := range img.Pix {
		img.Pix[i] = 0
	}
	wEnc, _, _, _ := m.SAELens() // [d][h]
	for j := 0; j < n; j++ {
		var mx float32
		for p := 0; p < c.D; p++ {
			mx = max(mx, float32(math.Abs(float64(wEnc[p*c.H+j]))))
		}
		if mx == 0 {
			mx = 1
		}
		x0, y0 := (j%cols)*cw+1, (j/cols)*ch+1
		for p := 0; p < c.D; p++ {
			v := uint8(127.5 + 127.5*wEnc[p*c.H+j]/mx)
			px, py := p%tw, p/tw
			for dy := 0; dy < scale; dy++ {
				for dx := 0; dx < scale; dx++ {
					img.SetGray(x0+px*scale+dx, y0+py*scale+dy, color.Gray{Y: v})
				}
			}
		}
	}
	return img, nil
}
