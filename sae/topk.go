package sae

// topK selects, among the entries of row+bias (or only those listed in cand,
// which must be ascending, when cand is non-nil), the at most k largest
// strictly positive values: ReLU first, so rows with fewer than k positive
// entries keep fewer. Equal values are broken by the lower index. It writes
// the chosen indices in ascending order to idx and their values to val and
// returns how many it chose. The scan keeps a min-heap of the k best so far,
// so it costs O(h) comparisons plus O(log k) per heap change.
func topK(row, bias []float32, k int, cand []int32, idx []int32, val []float32) int {
	// An entry must beat thr: 0 until the heap is full, then the heap's
	// worst value (> 0). Scanning in ascending index, an entry equal to the
	// worst loses the tie, so <= rejects it. One well-predicted comparison
	// per entry keeps the scan fast.
	n := 0
	var thr float32
	if cand == nil {
		bias = bias[:len(row)]
		for j, v := range row {
			v += bias[j]
			if v <= thr {
				continue
			}
			if n = heapOffer(idx, val, n, k, int32(j), v); n == k {
				thr = val[0]
			}
		}
	} else {
		for _, j := range cand {
			v := row[j] + bias[j]
			if v <= thr {
				continue
			}
			if n = heapOffer(idx, val, n, k, j, v); n == k {
				thr = val[0]
			}
		}
	}
	// insertion sort by index: n is small (k), and the heap is nearly random
	for a := 1; a < n; a++ {
		ji, jv := idx[a], val[a]
		b := a - 1
		for ; b >= 0 && idx[b] > ji; b-- {
			idx[b+1], val[b+1] = idx[b], val[b]
		}
		idx[b+1], val[b+1] = ji, jv
	}
	return n
}

// heapWorse orders the min-heap: the root is the smallest value, and among
// equal values the highest index.
func heapWorse(va float32, ia int32, vb float32, ib int32) bool {
	return va < vb || (va == vb && ia > ib)
}

// heapOffer inserts (j, v) into the heap of n elements (capacity k), replacing
// the root when full, and returns the new size.
func heapOffer(idx []int32, val []float32, n, k int, j int32, v float32) int {
	var pos int
	if n < k {
		// sift up from the end
		pos = n
		n++
		for pos > 0 {
			p := (pos - 1) / 2
			if !heapWorse(v, j, val[p], idx[p]) {
				break
			}
			idx[pos], val[pos] = idx[p], val[p]
			pos = p
		}
		idx[pos], val[pos] = j, v
		return n
	}
	// replace the root and sift down
	pos = 0
	for {
		c := 2*pos + 1
		if c >= n {
			break
		}
		if c+1 < n && heapWorse(val[c+1], idx[c+1], val[c], idx[c]) {
			c++
		}
		if !heapWorse(val[c], idx[c], v, j) {
			break
		}
		idx[pos], val[pos] = idx[c], val[c]
		pos = c
	}
	idx[pos], val[pos] = j, v
	return n
}

// selectAux picks, per row, the AuxK dead latents with the largest positive
// pre-activations z+b1 (s.z holds z without the bias) (the AuxK loss of Gao et al.). Dead latents are those of
// the model's tracker at encode time.
func (s *Step) selectAux() {
	c := s.m.Cfg
	h, kk, rows := c.H, c.AuxK, s.rows
	s.dead = s.dead[:0]
	for j := 0; j < h; j++ {
		if s.m.dead(j) {
			s.dead = append(s.dead, int32(j))
		}
	}
	if len(s.dead) == 0 {
		clear(s.auxN[:rows])
		return
	}
	parallelFor(workersFor(s.workers, rows, len(s.dead)), rows, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s.auxN[i] = int32(topK(s.z[i*h:(i+1)*h], s.m.BEnc(), kk, s.dead, s.auxIdx[i*kk:(i+1)*kk], s.auxVal[i*kk:(i+1)*kk]))
		}
	})
}

// auxResidual completes s.auxRes = ê − e per row, with ê = Σ_{j∈aux} a_j Dec_j
// (no bias) and e = x − x̂ treated as a constant, and the per-row ½‖ê−e‖².
func (s *Step) auxResidual() {
	c := s.m.Cfg
	d, kk, rows := c.D, c.AuxK, s.rows
	dec := s.m.Dec()
	parallelFor(workersFor(s.workers, rows, kk*d), rows, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			res := s.auxRes[i*d : (i+1)*d]
			for t := 0; t < int(s.auxN[i]); t++ {
				j := int(s.auxIdx[i*kk+t])
				axpyUnit(s.auxVal[i*kk+t], dec[j*d:(j+1)*d], res)
			}
			s.rowAux[i] = float64(dotUnit(res, res)) / 2
		}
	})
}

// backwardSparse computes the gradient for the topk activation touching
// only the active (and AuxK-selected) latents of each row: decoder and
// encoder rows are gathered and scattered, so the cost is O(rows·k·d)
// instead of O(rows·h·d).
func (s *Step) backwardSparse(grad []float32) {
	m := s.m
	c := m.Cfg
	d, h, k, kk, rows := c.D, c.H, c.K, c.AuxK, s.rows
	l := m.layout
	dec := m.Dec()
	d3 := s.xh
	aux := s.auxRes != nil
	auxCoef := float32(c.AuxCoef)
	gEnc := grad[l.Enc.Off:l.Enc.End()]
	gDec := grad[l.Dec.Off:l.Dec.End()]
	if s.denseDecoder {
		// ∇Dec += aᵀ δ3 (grad is zero or holds nothing of Dec yet) and
		// δa = δ3 Decᵀ into g, which held a.
		a := s.g[:rows*h]
		gemm(true, false, 1, a, rows, h, d3, rows, d, 1, gDec, h, d)
		gemm(false, true, 1, d3, rows, d, dec, h, d, 0, a, rows, h)
	}
	// δ2 on the active entries: δ3_i · Dec_j (f' = 1 there), and for AuxK
	// auxCoef·(ê−e)_i · Dec_j.
	parallelFor(workersFor(s.workers, rows, k*d), rows, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			di := d3[i*d : (i+1)*d]
			for t := 0; t < int(s.nact[i]); t++ {
				j := int(s.idx[i*k+t])
				if s.denseDecoder {
					s.dval[i*k+t] = s.g[i*h+j]
				} else {
					s.dval[i*k+t] = dotUnit(di, dec[j*d:(j+1)*d])
				}
			}
			if aux {
				ri := s.auxRes[i*d : (i+1)*d]
				for t := 0; t < int(s.auxN[i]); t++ {
					j := int(s.auxIdx[i*kk+t])
					s.auxDval[i*kk+t] = auxCoef * dotUnit(ri, dec[j*d:(j+1)*d])
				}
			}
		}
	})
	// Scatter into the weight gradients, each worker owning a range of
	// latents (rows of Enc and Dec), rows visited in order.
	parallelFor(workersFor(s.workers, h, rows*k*d/h+1), h, func(lo, hi int) {
		jlo, jhi := int32(lo), int32(hi)
		for i := 0; i < rows; i++ {
			xi := s.x[i*d : (i+1)*d]
			di := d3[i*d : (i+1)*d]
			for t := i * k; t < i*k+int(s.nact[i]); t++ {
				j := s.idx[t]
				if j < jlo || j >= jhi {
					continue
				}
				o := int(j) * d
				if !s.denseDecoder {
					axpyUnit(s.val[t], di, gDec[o:o+d])
				}
				axpyUnit(s.dval[t], xi, gEnc[o:o+d])
			}
			if aux {
				ri := s.auxRes[i*d : (i+1)*d]
				for t := i * kk; t < i*kk+int(s.auxN[i]); t++ {
					j := s.auxIdx[t]
					if j < jlo || j >= jhi {
						continue
					}
					o := int(j) * d
					axpyUnit(auxCoef*s.auxVal[t], ri, gDec[o:o+d])
					axpyUnit(s.auxDval[t], xi, gEnc[o:o+d])
				}
			}
		}
	})
	// ∇b1: Σ over rows of δ2 on the selected entries.
	acc := s.colB[:h]
	clear(acc)
	for i := 0; i < rows; i++ {
		for t := i * k; t < i*k+int(s.nact[i]); t++ {
			acc[s.idx[t]] += float64(s.dval[t])
		}
		if aux {
			for t := i * kk; t < i*kk+int(s.auxN[i]); t++ {
				acc[s.auxIdx[t]] += float64(s.auxDval[t])
			}
		}
	}
	for j, v := range acc {
		grad[l.BEnc.Off+j] = float32(v)
	}
	s.biasGrads(grad, nil)
}

// useDenseDecoder switches a topk Step to the dense decoder (see
// Step.denseDecoder).
func (s *Step) useDenseDecoder() {
	s.denseDecoder = true
	if s.g == nil {
		s.g = make([]float32, s.maxRows*s.m.Cfg.H)
	}
}
