package kernels

import (
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Implementation is gonum's native BLAS with Sgemm replaced by the packed
// kernels of this package; pass it to blas32.Use.
type Implementation struct{ gonum.Implementation }

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices, where
// op(A) is m×k, op(B) k×n and C m×n, as blas.Float32Level3 specifies: with
// beta == 0, C is not read, and with alpha == 0 or k == 0, A and B are not.
// It panics on bad arguments with gonum's messages. It may run on several goroutines
// (see the package doc) and is safe for concurrent use.
func (impl Implementation) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	kern := active
	if kern == nil {
		impl.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	transA := checkTrans(tA)
	transB := checkTrans(tB)
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	sgemm(kern, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Threads())
}

func checkTrans(t blas.Transpose) bool {
	switch t {
	case blas.NoTrans:
		return false
	case blas.Trans, blas.ConjTrans:
		return true
	}
	panic("blas: illegal transpose")
}

// checkArgs panics with gonum's messages when a dimension, stride or slice
// length does not fit.
func checkArgs(tA, tB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 {
		panic("blas: m < 0")
	}
	if n < 0 {
		panic("blas: n < 0")
	}
	if k < 0 {
		panic("blas: k < 0")
	}
	rowA, colA := m, k
	if tA {
		rowA, colA = k, m
	}
	rowB, colB := k, n
	if tB {
		rowB, colB = n, k
	}
	if lda < max(1, colA) {
		panic("blas: bad leading dimension of A")
	}
	if ldb < max(1, colB) {
		panic("blas: bad leading dimension of B")
	}
	if ldc < max(1, n) {
		panic("blas: bad leading dimension of C")
	}
	if m == 0 || n == 0 {
		return
	}
	if len(a) < lda*(rowA-1)+colA {
		panic("blas: insufficient length of a")
	}
	if len(b) < ldb*(rowB-1)+colB {
		panic("blas: insufficient length of b")
	}
	if len(c) < ldc*(m-1)+n {
		panic("blas: insufficient length of c")
	}
}

// minThreadFlops is the product size (2mnk) below which one goroutine does
// it all: a goroutine costs a few microseconds, about 1e5 flops.
var minThreadFlops = 1 << 21

// sgemm runs the product on up to threads goroutines, each owning a block of
// rows or of columns of C (whichever split packs less twice: each goroutine
// packs the whole of the operand it does not split).
func sgemm(kern *kernel, tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int, threads int) {
	if alpha == 0 || k == 0 {
		scale(m, n, beta, c, ldc)
		return
	}
	w := max(1, threads)
	if 2*m*n*k < minThreadFlops*2 {
		w = 1
	}
	splitRows := m >= n
	if splitRows && m < w*kern.mr && n >= w*kern.nr {
		splitRows = false
	} else if !splitRows && n < w*kern.nr && m >= w*kern.mr {
		splitRows = true
	}
	unit, total := kern.nr, n
	if splitRows {
		unit, total = kern.mr, m
	}
	blocks := (total + unit - 1) / unit
	w = min(w, blocks)
	if w <= 1 {
		block(kern, tA, tB, 0, m, 0, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	var wg sync.WaitGroup
	for t := range w {
		lo := min(total, blocks*t/w*unit)
		hi := min(total, blocks*(t+1)/w*unit)
		run := func() {
			if splitRows {
				block(kern, tA, tB, lo, hi, 0, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
			} else {
				block(kern, tA, tB, 0, m, lo, hi, k, alpha, a, lda, b, ldb, beta, c, ldc)
			}
		}
		if t == w-1 {
			run()
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run()
		}()
	}
	wg.Wait()
}

// scale sets C = beta*C (C = 0 when beta == 0, whatever C held).
func scale(m, n int, beta float32, c []float32, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// buffers are one goroutine's packing buffers.
type buffers struct {
	a, b []float32
	tile []float32
}

var bufPool = sync.Pool{New: func() any { return new(buffers) }}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// block computes rows [m0,m1) and columns [n0,n1) of C on the calling
// goroutine: for each nc-wide column block and kc-deep slice of k it packs
// op(B), then for each mc-high row block it packs op(A) and runs the
// micro-kernel over the tiles; partial tiles at the edges go through a
// scratch tile.
func block(kern *kernel, tA, tB bool, m0, m1, n0, n1, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	mr, nr := kern.mr, kern.nr
	buf := bufPool.Get().(*buffers)
	defer bufPool.Put(buf)
	// Equal slices of k and row blocks, so that no slice is much thinner
	// than the others (k = 784 runs as 4×196, not 3×256 + 16).
	kcb := ceilDiv(k, ceilDiv(k, kern.kc))
	mcb := roundUp(ceilDiv(m1-m0, ceilDiv(m1-m0, kern.mc)), mr)
	kcMax := kcb
	ncMax := min(kern.nc, roundUp(n1-n0, nr))
	mcMax := min(mcb, roundUp(m1-m0, mr))
	buf.b = grow(buf.b, kcMax*ncMax)
	buf.a = grow(buf.a, kcMax*mcMax)
	buf.tile = grow(buf.tile, mr*nr)
	bp, ap, tile := buf.b, buf.a, buf.tile
	for jc := n0; jc < n1; jc += kern.nc {
		nc := min(kern.nc, n1-jc)
		for pc := 0; pc < k; pc += kcb {
			kc := min(kcb, k-pc)
			packB(kern, bp, b, ldb, tB, pc, kc, jc, nc)
			be := beta
			if pc > 0 {
				be = 1
			}
			for ic := m0; ic < m1; ic += mcb {
				mc := min(mcb, m1-ic)
				packA(kern, ap, a, lda, tA, ic, mc, pc, kc)
				for jr := 0; jr < nc; jr += nr {
					cols := min(nr, nc-jr)
					bpan := &bp[jr*kc]
					for ir := 0; ir < mc; ir += mr {
						rows := min(mr, mc-ir)
						apan := &ap[ir*kc]
						ci := (ic+ir)*ldc + jc + jr
						fn, width := kern.fn, nr
						if kern.half != nil && cols <= nr/2 {
							fn, width = kern.half, nr/2
						}
						if rows == mr && cols == width {
							fn(kc, apan, bpan, &c[ci], ldc, alpha, be)
							continue
						}
						fn(kc, apan, bpan, &tile[0], nr, alpha, 0)
						for i := range rows {
							row := c[ci+i*ldc : ci+i*ldc+cols]
							t := tile[i*nr : i*nr+cols]
							if be == 0 {
								copy(row, t)
								continue
							}
							for j, v := range t {
								row[j] = v + be*row[j]
							}
						}
					}
				}
			}
		}
	}
}

func roundUp(x, to int) int { return (x + to - 1) / to * to }

func ceilDiv(x, y int) int { return (x + y - 1) / y }

// packA packs rows [i0,i0+mc) and columns [p0,p0+kc) of op(A) into dst as
// micro-panels of mr rows: panel q holds, for each p, the mr values
// op(A)[i0+q*mr+ii][p0+p] at dst[q*mr*kc + p*mr + ii], zero past row i0+mc.
func packA(kern *kernel, dst, a []float32, lda int, tA bool, i0, mc, p0, kc int) {
	mr := kern.mr
	for ir := 0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		d := dst[ir*kc : ir*kc+mr*kc]
		if rows < mr {
			clear(d)
		}
		if tA {
			// op(A)[i][p] = a[p*lda+i]
			kern.packN(d, a[p0*lda+i0+ir:], lda, kc, rows, mr)
		} else {
			kern.packT(d, a[(i0+ir)*lda+p0:], lda, kc, rows, mr)
		}
	}
}

// packB packs rows [p0,p0+kc) and columns [j0,j0+nc) of op(B) into dst as
// micro-panels of nr columns: panel q holds, for each p, the nr values
// op(B)[p0+p][j0+q*nr+jj] at dst[q*nr*kc + p*nr + jj], zero past column j0+nc.
func packB(kern *kernel, dst, b []float32, ldb int, tB bool, p0, kc, j0, nc int) {
	nr := kern.nr
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		d := dst[jr*kc : jr*kc+nr*kc]
		if cols < nr {
			clear(d)
		}
		if tB {
			// op(B)[p][j] = b[j*ldb+p]
			kern.packT(d, b[(j0+jr)*ldb+p0:], ldb, kc, cols, nr)
		} else {
			kern.packN(d, b[p0*ldb+j0+jr:], ldb, kc, cols, nr)
		}
	}
}
