//go:build !purego

package sae

//go:noescape
func residSigAVX2(out, x []float32) (recon, xx float64)

//go:noescape
func residLinAVX2(out, x, b []float32) (recon, xx float64)

//go:noescape
func addF64AVX2(acc []float64, v []float32)

// residual is residualGo with AVX2 on the multiple-of-8 prefix.
func residual(out, x, b []float32, sig bool) (recon, xx float64) {
	if !haveSigmoidAVX2 {
		return residualGo(out, x, b, sig)
	}
	n := len(out) &^ 7
	if sig {
		recon, xx = residSigAVX2(out[:n], x[:n])
	} else {
		recon, xx = residLinAVX2(out[:n], x[:n], b[:n])
	}
	if n < len(out) {
		var bt []float32
		if !sig {
			bt = b[n:]
		}
		r, s := residualGo(out[n:], x[n:], bt, sig)
		recon += r
		xx += s
	}
	return recon, xx
}

// addF64 sets acc[j] += float64(v[j]) for j < len(v) (len(acc) >= len(v)).
func addF64(acc []float64, v []float32) {
	n := 0
	if haveSigmoidAVX2 {
		n = len(v) &^ 7
		addF64AVX2(acc[:n], v[:n])
	}
	acc = acc[n:len(v)]
	for j, x := range v[n:] {
		acc[j] += float64(x)
	}
}

//go:noescape
func sigGradKLAVX2(g, a, extra []float32)

//go:noescape
func colSumsFiredAVX2(sa []float64, sf []uint32, row []float32, tb uint32)

// sigGradKL is sigGradKLGo with AVX2 on the multiple-of-8 prefix.
func sigGradKL(g, a, extra []float32) {
	n := 0
	if haveSigmoidAVX2 {
		n = len(g) &^ 7
		sigGradKLAVX2(g[:n], a[:n], extra[:n])
	}
	sigGradKLGo(g[n:], a[n:len(g)], extra[n:len(g)])
}

// colSumsFired is colSumsFiredGo with AVX2 on the multiple-of-8 prefix.
func colSumsFired(sa []float64, sf []uint32, row []float32, tb uint32) {
	n := 0
	if haveSigmoidAVX2 {
		n = len(row) &^ 7
		colSumsFiredAVX2(sa[:n], sf[:n], row[:n], tb)
	}
	colSumsFiredGo(sa[n:len(row)], sf[n:len(row)], row[n:], tb)
}
