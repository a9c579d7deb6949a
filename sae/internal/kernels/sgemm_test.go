package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// gemmCase is one product with its operands laid out with strides wider
// than the rows, so that a kernel reading or writing past a row shows.
type gemmCase struct {
	tA, tB        bool
	m, n, k       int
	alpha, beta   float32
	a, b, c       []float32
	lda, ldb, ldc int
}

// pad is the value of every element between a row's end and its stride.
const pad = 12345.5

func newCase(rng *rand.Rand, tA, tB bool, m, n, k int, alpha, beta float32) *gemmCase {
	g := &gemmCase{tA: tA, tB: tB, m: m, n: n, k: k, alpha: alpha, beta: beta}
	rowA, colA := m, k
	if tA {
		rowA, colA = k, m
	}
	rowB, colB := k, n
	if tB {
		rowB, colB = n, k
	}
	fill := func(rows, cols, extra int) ([]float32, int) {
		ld := cols + extra
		s := make([]float32, rows*ld)
		for i := range s {
			if i%ld < cols {
				s[i] = float32(rng.Float64()*2 - 1)
			} else {
				s[i] = pad
			}
		}
		return s, ld
	}
	g.a, g.lda = fill(rowA, colA, 1+rng.IntN(4))
	g.b, g.ldb = fill(rowB, colB, 1+rng.IntN(4))
	g.c, g.ldc = fill(m, n, 1+rng.IntN(4))
	if beta == 0 {
		// C must not be read: NaN would spread into the result
		for i := range g.c {
			if i%g.ldc < n {
				g.c[i] = float32(math.NaN())
			}
		}
	}
	return g
}

func (g *gemmCase) opA(i, p int) float64 {
	if g.tA {
		return float64(g.a[p*g.lda+i])
	}
	return float64(g.a[i*g.lda+p])
}

func (g *gemmCase) opB(p, j int) float64 {
	if g.tB {
		return float64(g.b[j*g.ldb+p])
	}
	return float64(g.b[p*g.ldb+j])
}

// check compares got (C after the product) with a float64 product, within
// a float32 rounding bound proportional to k and to the size of the terms,
// and checks that the padding of C is untouched.
func (g *gemmCase) check(t *testing.T, name string, c0, got []float32) {
	t.Helper()
	// op(A) row by row and op(B) column by column, in float64
	opA := make([]float64, g.m*g.k)
	opB := make([]float64, g.n*g.k)
	for i := range g.m {
		for p := range g.k {
			opA[i*g.k+p] = g.opA(i, p)
		}
	}
	for j := range g.n {
		for p := range g.k {
			opB[j*g.k+p] = g.opB(p, j)
		}
	}
	for i := range g.m {
		ra := opA[i*g.k : (i+1)*g.k]
		for j := range g.n {
			var want, size float64
			for p, bv := range opB[j*g.k : (j+1)*g.k] {
				v := ra[p] * bv
				want += v
				size += math.Abs(v)
			}
			want *= float64(g.alpha)
			size *= math.Abs(float64(g.alpha))
			if g.beta != 0 {
				cv := float64(c0[i*g.ldc+j])
				want += float64(g.beta) * cv
				size += math.Abs(float64(g.beta) * cv)
			}
			tol := 6e-8*float64(g.k+4)*size + 1e-30
			if d := math.Abs(float64(got[i*g.ldc+j]) - want); !(d <= tol) {
				t.Fatalf("%s: C[%d][%d] = %g, want %g (|diff| %g > %g)", name, i, j, got[i*g.ldc+j], want, d, tol)
			}
		}
		for j := g.n; j < g.ldc && i*g.ldc+j < len(got); j++ {
			if got[i*g.ldc+j] != pad {
				t.Fatalf("%s: padding C[%d][%d] written: %g", name, i, j, got[i*g.ldc+j])
			}
		}
	}
}

func (g *gemmCase) run(t *testing.T, kern *kernel, threads int) {
	t.Helper()
	c := append([]float32(nil), g.c...)
	sgemm(kern, g.tA, g.tB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, c, g.ldc, threads)
	name := fmt.Sprintf("%s mr=%d nr=%d mc=%d kc=%d nc=%d threads=%d tA=%v tB=%v m=%d n=%d k=%d alpha=%g beta=%g",
		kern.name, kern.mr, kern.nr, kern.mc, kern.kc, kern.nc, threads, g.tA, g.tB, g.m, g.n, g.k, g.alpha, g.beta)
	g.check(t, name, g.c, c)
}

var scalings = []struct{ alpha, beta float32 }{{1, 0}, {1.5, 0.5}, {-0.75, 1}, {1, 1}, {0.5, -2}}

// testKernels: every kernel this CPU runs, with its own cache blocking and
// with tiny blocks so that small sizes cross every block edge (several kc
// slices, mc row blocks and nc column blocks, partial at each end).
func testKernels() []kernel {
	var ks []kernel
	for _, k := range kernelsAvailable() {
		ks = append(ks, k)
		tiny := k
		tiny.mc, tiny.kc, tiny.nc = 2*k.mr, 5, 2*k.nr
		ks = append(ks, tiny)
	}
	return ks
}

// TestSgemmOddSizes runs each dimension over 1…67 (with the other two from
// a set of odd sizes) in all four transposes, with strides wider than the
// rows, against a float64 reference.
func TestSgemmOddSizes(t *testing.T) {
	for i, kern := range testKernels() {
		t.Run(fmt.Sprintf("%s/mc=%d,kc=%d,nc=%d", kern.name, kern.mc, kern.kc, kern.nc), func(t *testing.T) {
			t.Parallel()
			others := []int{1, 5, 17, 67}
			if testing.Short() || kern.name == goKernel.name {
				// the portable kernel is the slow reference: fewer shapes
				others = []int{3, 67}
			}
			rng := rand.New(rand.NewPCG(1, uint64(i)))
			n := 0
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					for dim := range 3 {
						for v := 1; v <= 67; v++ {
							for _, x := range others {
								for _, y := range others {
									var s [3]int // m, n, k
									s[dim], s[(dim+1)%3], s[(dim+2)%3] = v, x, y
									sc := scalings[n%len(scalings)]
									n++
									newCase(rng, tA, tB, s[0], s[1], s[2], sc.alpha, sc.beta).run(t, &kern, 1)
								}
							}
						}
					}
				}
			}
		})
	}
}

// TestSgemmThreads: products split over goroutines by rows or by columns
// (including more goroutines than tiles) give the same results.
func TestSgemmThreads(t *testing.T) {
	defer func(v int) { minThreadFlops = v }(minThreadFlops)
	minThreadFlops = 0
	rng := rand.New(rand.NewPCG(3, 4))
	sizes := [][3]int{{67, 5, 33}, {5, 67, 33}, {1, 300, 7}, {300, 1, 7}, {130, 129, 300}, {13, 17, 1}}
	for _, kern := range testKernels() {
		for _, threads := range []int{2, 3, 8} {
			for i, s := range sizes {
				for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
					sc := scalings[i%len(scalings)]
					newCase(rng, tr[0], tr[1], s[0], s[1], s[2], sc.alpha, sc.beta).run(t, &kern, threads)
				}
			}
		}
	}
}

// TestSgemmLarge crosses the real cache blocks of each kernel (k > kc,
// m > mc) on the default number of goroutines.
func TestSgemmLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, kern := range kernelsAvailable() {
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			newCase(rng, tr[0], tr[1], kern.mc+kern.mr+1, 2*kern.nr+3, kern.kc+7, 1, 0.5).run(t, &kern, 2)
		}
	}
}

// TestSgemmZeroAlphaOrK: with every kernel, alpha == 0 or k == 0 scales C by
// beta without reading A or B, and beta == 0 then clears C even if it held
// NaN (gonum's native Sgemm reads A and B when alpha == 0).
func TestSgemmZeroAlphaOrK(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		k           int
		alpha, beta float32
		want        float32
	}{{0, 1, 2, 6}, {4, 0, 2, 6}, {0, 1, 0, 0}} {
		c := []float32{3, 3, 3, 3}
		if tc.beta == 0 {
			c = []float32{nan, nan, nan, nan}
		}
		a := []float32{nan, nan, nan, nan, nan, nan, nan, nan}
		for _, kern := range kernelsAvailable() {
			c := append([]float32(nil), c...)
			sgemm(&kern, false, false, 2, 2, tc.k, tc.alpha, a, max(tc.k, 1), a, 2, tc.beta, c, 2, 2)
			for i, v := range c {
				if v != tc.want {
					t.Fatalf("%s: k=%d alpha=%g beta=%g: C[%d] = %g, want %g", kern.name, tc.k, tc.alpha, tc.beta, i, v, tc.want)
				}
			}
		}
	}
}

// TestSgemmBadArgs: bad strides and short slices panic with gonum's messages.
func TestSgemmBadArgs(t *testing.T) {
	s := make([]float32, 6)
	for _, tc := range []struct {
		name string
		f    func()
		want string
	}{
		{"lda", func() { Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, 2, 3, 3, 1, s, 2, s, 3, 0, s, 3) }, "blas: bad leading dimension of A"},
		{"ldc", func() { Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, 2, 3, 2, 1, s, 2, s, 3, 0, s, 2) }, "blas: bad leading dimension of C"},
		{"len b", func() { Implementation{}.Sgemm(blas.NoTrans, blas.Trans, 2, 3, 3, 1, s, 3, s, 3, 0, s, 3) }, "blas: insufficient length of b"},
		{"trans", func() { Implementation{}.Sgemm('x', blas.NoTrans, 1, 1, 1, 1, s, 1, s, 1, 0, s, 1) }, "blas: illegal transpose"},
	} {
		func() {
			defer func() {
				if r := recover(); r != tc.want {
					t.Errorf("%s: panic %v, want %q", tc.name, r, tc.want)
				}
			}()
			tc.f()
		}()
	}
}

// TestUse: every listed kernel can be selected and reports its name; an
// unknown name is refused with the list.
func TestUse(t *testing.T) {
	defer func() {
		if err := Use(""); err != nil {
			t.Fatal(err)
		}
	}()
	for _, name := range Names() {
		if err := Use(name); err != nil {
			t.Fatal(err)
		}
		if Name() != name {
			t.Fatalf("Use(%q): Name() = %q", name, Name())
		}
	}
	if err := Use("sse9"); err == nil {
		t.Fatal("Use(sse9) succeeded")
	}
}

// TestPack: each kernel's packing functions agree with the portable ones
// for every width up to the micro-panel's and leave the lanes past the
// width untouched.
func TestPack(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, kern := range kernelsAvailable() {
		for _, ds := range []int{kern.mr, kern.nr} {
			for w := 1; w <= ds; w++ {
				for _, k := range []int{1, 2, 7, 33} {
					ld := max(w, k) + rng.IntN(5)
					src := make([]float32, max(w, k)*ld)
					for i := range src {
						src[i] = rng.Float32()
					}
					for _, tr := range []bool{false, true} {
						want := make([]float32, k*ds)
						got := make([]float32, k*ds)
						for i := range want {
							want[i], got[i] = -1, -1
						}
						if tr {
							packTGo(want, src, ld, k, w, ds)
							kern.packT(got, src, ld, k, w, ds)
						} else {
							packNGo(want, src, ld, k, w, ds)
							kern.packN(got, src, ld, k, w, ds)
						}
						for i := range want {
							if got[i] != want[i] {
								t.Fatalf("%s transposed=%v w=%d k=%d ds=%d ld=%d: dst[%d] = %g, want %g", kern.name, tr, w, k, ds, ld, i, got[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}
