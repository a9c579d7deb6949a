package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage/datafile"
)

// writeCSV writes rows×d uniform values in [0,1) to dir/name.
func writeCSV(t *testing.T, dir, name string, rows, d int, seed uint64) ([][]float64, string) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 3))
	var b strings.Builder
	x := make([][]float64, rows)
	for i := range x {
		x[i] = make([]float64, d)
		for j := range x[i] {
			// values exactly representable in float32, so the test and the
			// binary see the same numbers
			x[i][j] = float64(float32(r.Float64()))
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%.9g", x[i][j])
		}
		b.WriteByte('\n')
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return x, p
}

// refParams are the tensors of a model in SAELens layout, in float64.
type refParams struct {
	wEnc, wDec, bEnc, bDec []float64 // [d][h], [h][d], [h], [d]
}

func loadRef(t *testing.T, dir string) (sae.Config, refParams) {
	t.Helper()
	m, err := sae.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	we, wd, be, bd := m.SAELens()
	f := func(v []float32) []float64 {
		o := make([]float64, len(v))
		for i, x := range v {
			o[i] = float64(x)
		}
		return o
	}
	return m.Cfg, refParams{f(we), f(wd), f(be), f(bd)}
}

// refLoss is the loss of DESIGN §2 computed from scratch in float64:
// J = (1/m)Σ½‖x̂−x‖² + (λ/2)(‖W1‖²+‖W2‖²) + sparsity. decayBiases adds the
// same decay on biases, to show the test can tell the two apart.
func refLoss(c sae.Config, p refParams, x [][]float64, decayBiases bool) float64 {
	d, h, m := c.D, c.H, float64(len(x))
	act := func(z float64) float64 {
		if c.Activation == sae.ActSigmoid {
			return 1 / (1 + math.Exp(-z))
		}
		return math.Max(0, z)
	}
	var recon, l1 float64
	rhoHat := make([]float64, h)
	a := make([]float64, h)
	for _, row := range x {
		for j := 0; j < h; j++ {
			z := p.bEnc[j]
			for i := 0; i < d; i++ {
				z += row[i] * p.wEnc[i*h+j]
			}
			a[j] = act(z)
			rhoHat[j] += a[j] / m
			l1 += math.Abs(a[j])
		}
		for i := 0; i < d; i++ {
			z := p.bDec[i]
			for j := 0; j < h; j++ {
				w := p.wDec[j*d+i]
				if c.Tied {
					w = p.wEnc[i*h+j]
				}
				z += a[j] * w
			}
			xh := z
			if c.Output == sae.OutSigmoid {
				xh = 1 / (1 + math.Exp(-z))
			}
			recon += 0.5 * (xh - row[i]) * (xh - row[i])
		}
	}
	J := recon / m
	sq := func(v []float64) (s float64) {
		for _, x := range v {
			s += x * x
		}
		return
	}
	decay := sq(p.wEnc)
	if !c.Tied {
		decay += sq(p.wDec)
	}
	if decayBiases {
		decay += sq(p.bEnc) + sq(p.bDec)
	}
	J += c.WeightDecay / 2 * decay
	switch c.Sparsity {
	case sae.SparsityKL:
		for _, r := range rhoHat {
			J += c.Beta * (c.Rho*math.Log(c.Rho/r) + (1-c.Rho)*math.Log((1-c.Rho)/(1-r)))
		}
	case sae.SparsityL1:
		J += c.L1 / m * l1
	}
	return J
}

// numGrad is the central-difference gradient of refLoss, in the layout of p.
func numGrad(c sae.Config, p refParams, x [][]float64, decayBiases bool) refParams {
	const eps = 1e-6
	g := refParams{make([]float64, len(p.wEnc)), make([]float64, len(p.wDec)), make([]float64, len(p.bEnc)), make([]float64, len(p.bDec))}
	pairs := [][2][]float64{{p.wEnc, g.wEnc}, {p.bEnc, g.bEnc}, {p.bDec, g.bDec}}
	if !c.Tied {
		pairs = append(pairs, [2][]float64{p.wDec, g.wDec})
	}
	for _, pr := range pairs {
		v, gv := pr[0], pr[1]
		for i := range v {
			old := v[i]
			v[i] = old + eps
			jp := refLoss(c, p, x, decayBiases)
			v[i] = old - eps
			jm := refLoss(c, p, x, decayBiases)
			v[i] = old
			gv[i] = (jp - jm) / (2 * eps)
		}
	}
	return g
}

// relErr is ‖a−b‖/‖b‖ over all tensors.
func relErr(a, b refParams, tied bool) float64 {
	var num, den float64
	pairs := [][2][]float64{{a.wEnc, b.wEnc}, {a.bEnc, b.bEnc}, {a.bDec, b.bDec}}
	if !tied {
		pairs = append(pairs, [2][]float64{a.wDec, b.wDec})
	}
	for _, pr := range pairs {
		for i := range pr[0] {
			num += (pr[0][i] - pr[1][i]) * (pr[0][i] - pr[1][i])
			den += pr[1][i] * pr[1][i]
		}
	}
	return math.Sqrt(num / den)
}

// One full-batch SGD step through the CLI changes the parameters by exactly
// lr·∇J, where ∇J is computed here from scratch by central differences;
// weight decay acts on W_enc and W_dec but not on the biases.
func TestOneFullBatchSGDStep(t *testing.T) {
	cases := []struct {
		name  string
		flags []string
	}{
		{"kl-sigmoid-sigmoid", []string{"--activation", "sigmoid", "--output", "sigmoid", "--sparsity", "kl", "--rho", "0.2", "--beta", "0.5"}},
		{"l1-relu-linear", []string{"--activation", "relu", "--output", "linear", "--sparsity", "l1", "--l1", "0.05"}},
		{"kl-tied", []string{"--activation", "sigmoid", "--output", "linear", "--sparsity", "kl", "--rho", "0.3", "--beta", "1", "--tied"}},
		{"none-relu-sigmoid", []string{"--activation", "relu", "--output", "sigmoid", "--sparsity", "none"}},
	}
	const rows, d, h, lr = 13, 7, 5, 0.5
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			x, data := writeCSV(t, dir, "x.csv", rows, d, 11)
			// A warm start with non-zero biases, so that decaying them would show.
			base := append([]string{"train", "--data", data, "--hidden", fmt.Sprint(h), "--steps", "20", "--batch", "4",
				"--lr", "0.05", "--out", "init", "--progress", "0"}, tc.flags...)
			mustRun(t, dir, base...)
			mustRun(t, dir, "train", "--data", data, "--init", "init", "--optimizer", "sgd", "--lr", fmt.Sprint(lr),
				"--steps", "1", "--batch", fmt.Sprint(rows), "--weight-decay", "0.2", "--out", "after", "--progress", "0")
			cfg, before := loadRef(t, filepath.Join(dir, "init"))
			cfg.WeightDecay = 0.2
			_, after := loadRef(t, filepath.Join(dir, "after"))
			step := refParams{}
			sub := func(a, b []float64) []float64 {
				o := make([]float64, len(a))
				for i := range a {
					o[i] = (a[i] - b[i]) / lr
				}
				return o
			}
			step.wEnc, step.wDec, step.bEnc, step.bDec = sub(before.wEnc, after.wEnc), sub(before.wDec, after.wDec), sub(before.bEnc, after.bEnc), sub(before.bDec, after.bDec)
			want := numGrad(cfg, before, x, false)
			if e := relErr(step, want, cfg.Tied); e > 1e-4 {
				t.Errorf("(W_init − W_after)/lr differs from ∇J by %.3g (relative), want < 1e-4", e)
			}
			withBiasDecay := numGrad(cfg, before, x, true)
			if e := relErr(step, withBiasDecay, cfg.Tied); e < 1e-3 {
				t.Errorf("the step also matches a gradient that decays biases (rel. err %.3g): test cannot tell them apart", e)
			}
		})
	}
}

// writeNPY writes rows×cols float32 values as a .npy file.
func writeNPY(t *testing.T, path string, rows, cols int, vals []float32) {
	t.Helper()
	var b bytes.Buffer
	if err := datafile.WriteNPY(&b, rows, cols, vals); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Invalid configurations and inputs end with one line on stderr that names
// the problem, exit code 2, and no stack trace.
func TestInvalidInputsExit2(t *testing.T) {
	dir := t.TempDir()
	_, good := writeCSV(t, dir, "good.csv", 8, 4, 1)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ragged := write("ragged.csv", "1,2,3\n4,5,6\n7,8\n")
	nan := write("nan.csv", "1,2,3\n4,nan,6\n")
	word := write("word.csv", "1,2,3\n4,x7,6\n")
	var r3 bytes.Buffer
	if err := datafile.WriteNPYHeader(&r3, "<f4", false, 2, 2, 2); err != nil {
		t.Fatal(err)
	}
	rank3 := write("rank3.npy", r3.String()+string(make([]byte, 4*8)))
	mustRun(t, dir, "train", "--data", good, "--hidden", "3", "--steps", "2", "--batch", "4", "--out", "m4", "--progress", "0")
	_, d5 := writeCSV(t, dir, "d5.csv", 8, 5, 2)

	cases := []struct {
		name string
		args []string
		want []string // substrings of the one-line error
	}{
		{"rho out of range", []string{"--rho", "1.5"}, []string{"--rho = 1.5", "(0, 1)"}},
		{"negative beta", []string{"--beta", "-1"}, []string{"--beta = -1"}},
		{"negative l1", []string{"--sparsity", "l1", "--activation", "relu", "--l1", "-0.1"}, []string{"--l1 = -0.1"}},
		{"negative weight decay", []string{"--weight-decay", "-1"}, []string{"--weight-decay = -1"}},
		{"kl with relu", []string{"--activation", "relu", "--sparsity", "kl"}, []string{"--sparsity kl", "--activation sigmoid"}},
		{"k above hidden", []string{"--activation", "topk", "--sparsity", "topk", "--output", "linear", "--k", "9", "--hidden", "3"}, []string{"--k = 9", "[1, --hidden=3]"}},
		{"k zero", []string{"--activation", "topk", "--sparsity", "topk", "--output", "linear", "--k", "0", "--hidden", "3"}, []string{"--k = 0"}},
		{"hidden zero", []string{"--hidden", "0"}, []string{"--hidden = 0 out of range [1, +inf)"}},
		{"unknown activation", []string{"--activation", "tanh"}, []string{`--activation "tanh"`}},
		{"ragged csv", []string{"--data", ragged}, []string{"ragged.csv", "line 3"}},
		{"non-numeric csv", []string{"--data", word}, []string{"word.csv", "line 2", "column 2"}},
		{"nan in data", []string{"--data", nan}, []string{"nan.csv", "line 2", "column 2"}},
		{"npy rank 3", []string{"--data", rank3}, []string{"rank3.npy", "2, 2, 2"}},
		{"missing file", []string{"--data", filepath.Join(dir, "nope.npy")}, []string{"nope.npy"}},
		{"init with wrong d", []string{"--data", d5, "--init", "m4"}, []string{"d = 4", "d = 5"}},
		{"batch too large", []string{"--batch", "100"}, []string{"--batch = 100"}},
		{"unknown flag", []string{"--nonsense"}, []string{"nonsense"}},
		{"bad optimizer", []string{"--optimizer", "rmsprop"}, []string{`--optimizer = "rmsprop"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"train", "--data", good, "--hidden", "3", "--steps", "1", "--batch", "4", "--out", "x", "--progress", "0"}, tc.args...)
			r := run(t, dir, args...)
			if r.code != 2 {
				t.Fatalf("exit code %d, want 2; stderr:\n%s", r.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			last := lines[len(lines)-1]
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
				t.Fatalf("stack trace in stderr:\n%s", r.stderr)
			}
			if len(lines) != 1 {
				t.Errorf("want one line of error output, got %d:\n%s", len(lines), r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(last, w) {
					t.Errorf("error %q does not mention %q", last, w)
				}
			}
		})
	}
}

// metricsFile is the subset of metrics.json that the tests read.
type metricsFile struct {
	Train, Test *struct {
		MSE            *float64 `json:"mse"`
		FVU            *float64 `json:"fvu"`
		L0             *float64 `json:"l0"`
		MeanActivation *float64 `json:"mean_activation"`
		DeadFraction   *float64 `json:"dead_fraction"`
		Loss           *float64 `json:"loss"`
	}
	Steps         *int64   `json:"steps"`
	SamplesPerSec *float64 `json:"samples_per_sec"`
}

func readMetrics(t *testing.T, path string) metricsFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m metricsFile
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
