package sae

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, tied := range []bool{false, true} {
		c := DefaultConfig()
		c.D, c.H, c.Tied, c.Seed = 6, 4, tied, 9
		m, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		for i := range m.Params { // make biases non-zero too
			m.Params[i] += float32(i) * 1e-3
		}
		dir := t.TempDir()
		if err := m.Save(dir); err != nil {
			t.Fatal(err)
		}
		got, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got.Cfg != m.Cfg {
			t.Errorf("tied=%v: config %+v, want %+v", tied, got.Cfg, m.Cfg)
		}
		for i := range m.Params {
			if math.Float32bits(got.Params[i]) != math.Float32bits(m.Params[i]) {
				t.Fatalf("tied=%v: param %d = %v, want %v", tied, i, got.Params[i], m.Params[i])
			}
		}
		raw, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
		var cfg map[string]any
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]any{"architecture": "standard", "d_in": 6.0, "d_sae": 4.0, "dtype": "float32"} {
			if cfg[k] != want {
				t.Errorf("cfg.json %s = %v, want %v", k, cfg[k], want)
			}
		}
		f, _ := os.Open(filepath.Join(dir, WeightsFile))
		ts, _, err := ReadSafetensors(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		shapes := map[string][]int{"W_enc": {6, 4}, "W_dec": {4, 6}, "b_enc": {4}, "b_dec": {6}}
		for name, sh := range shapes {
			if len(ts[name].Shape) != len(sh) || ts[name].Shape[0] != sh[0] {
				t.Errorf("%s shape %v, want %v", name, ts[name].Shape, sh)
			}
		}
		// W_enc[p][j] is the weight from input p to latent j.
		we := ts["W_enc"].Data
		if we[1*4+2] != m.Enc()[encIndex(m, 2, 1)] {
			t.Errorf("W_enc[1][2] = %v is not the weight from input 1 to latent 2", we[1*4+2])
		}
	}
}

// encIndex finds the flat index of the encoder weight (latent j, input p)
// by perturbation, so the test does not depend on the internal layout.
func encIndex(m *Model, j, p int) int {
	we0, _, _, _ := m.SAELens()
	enc := m.Enc()
	for i := range enc {
		old := enc[i]
		enc[i] = old + 1000
		we1, _, _, _ := m.SAELens()
		enc[i] = old
		if we1[p*m.Cfg.H+j] != we0[p*m.Cfg.H+j] {
			return i
		}
	}
	return -1
}

func TestLoadRejectsBadDirectories(t *testing.T) {
	c := DefaultConfig()
	c.D, c.H = 6, 4
	m, _ := New(c)
	good := t.TempDir()
	if err := m.Save(good); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrModelDir) {
		t.Errorf("empty dir: err = %v", err)
	}
	// cfg.json that disagrees with the tensors
	c2 := c
	c2.H = 5
	m2, _ := New(c2)
	other := t.TempDir()
	if err := m2.Save(other); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(good, WeightsFile))
	if err := os.WriteFile(filepath.Join(other, WeightsFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(other); !errors.Is(err, ErrModelDir) {
		t.Errorf("mismatched shapes: err = %v", err)
	}
	// an invalid config inside cfg.json
	bad := t.TempDir()
	if err := m.Save(bad); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(filepath.Join(bad, ConfigFile))
	var cfg map[string]any
	_ = json.Unmarshal(raw, &cfg)
	cfg["dsae"].(map[string]any)["rho"] = 2.0
	raw, _ = json.Marshal(cfg)
	_ = os.WriteFile(filepath.Join(bad, ConfigFile), raw, 0o644)
	if _, err := Load(bad); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("rho = 2 in cfg.json: err = %v", err)
	}
}

func TestFeatureGrid(t *testing.T) {
	c := DefaultConfig()
	c.D, c.H = 4, 3 // 2×2 tiles, grid of 2×2 cells
	m, _ := New(c)
	// latent 1: weights (+1, -1, 0, +0.5) from inputs 0..3
	for p, w := range []float32{1, -1, 0, 0.5} {
		m.Enc()[encIndex(m, 1, p)] = w
	}
	img, err := m.FeatureGrid(2, 2, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 2*3+1 || b.Dy() != 2*3+1 {
		t.Fatalf("image %v, want 7×7", b)
	}
	// latent 1 is the second cell of the first row: origin (4, 1)
	want := map[[2]int]uint8{{4, 1}: 255, {5, 1}: 0, {4, 2}: 127, {5, 2}: 191}
	for xy, v := range want {
		if got := img.GrayAt(xy[0], xy[1]).Y; got != v {
			t.Errorf("pixel %v = %d, want %d", xy, got, v)
		}
	}
	if _, err := m.FeatureGrid(3, 2, 1, 0); !errors.Is(err, ErrShape) {
		t.Errorf("3×2 tile for d = 4: err = %v", err)
	}
}

// TestCfgJSONOnlyAppliedSettings: cfg.json's "dsae" section leaves out the
// settings that do not apply to the model (k on a KL model, rho and beta
// on a TopK one, ...), and loads back as the same model: the same tensors,
// the same value of every setting that applies, the defaults for the
// others, and a cfg.json that saves again byte for byte.
func TestCfgJSONOnlyAppliedSettings(t *testing.T) {
	kl := DefaultConfig()
	kl.D, kl.H, kl.K, kl.L1 = 4, 3, 2, 0.5 // k and l1 do not apply to kl
	l1 := kl
	l1.Activation, l1.Sparsity, l1.L1, l1.L1DecoderNorm, l1.Rho = ActReLU, SparsityL1, 1e-3, true, 0.3
	topk := kl
	topk.Activation, topk.Sparsity, topk.Output, topk.K, topk.AuxK, topk.AuxCoef, topk.Beta = ActTopK, SparsityTopK, OutLinear, 2, 1, 0.5, 7
	none := kl
	none.Activation, none.Sparsity, none.AuxCoef = ActReLU, SparsityNone, 0.25
	for _, c := range []struct {
		name   string
		cfg    Config
		absent []string
	}{
		{"kl", kl, []string{"k", "l1", "l1_decoder_norm", "aux_k", "aux_coef"}},
		{"l1", l1, []string{"k", "rho", "beta", "aux_k", "aux_coef"}},
		{"topk", topk, []string{"rho", "beta", "l1", "l1_decoder_norm"}},
		{"none", none, []string{"k", "rho", "beta", "l1", "l1_decoder_norm", "aux_k", "aux_coef"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := New(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := m.Save(dir); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
			var file struct{ DSAE map[string]any }
			if err := json.Unmarshal(raw, &file); err != nil {
				t.Fatal(err)
			}
			for _, k := range c.absent {
				if _, ok := file.DSAE[k]; ok {
					t.Errorf("cfg.json writes %s, which does not apply to a %s model", k, c.name)
				}
			}
			for _, k := range []string{"d", "hidden", "activation", "output", "sparsity", "weight_decay", "tied", "dead_window", "seed"} {
				if _, ok := file.DSAE[k]; !ok {
					t.Errorf("cfg.json lacks %s", k)
				}
			}
			got, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			want, def := c.cfg, DefaultConfig()
			for _, k := range c.absent {
				f := reflect.ValueOf(&want).Elem().FieldByIndex(fieldIndex(k))
				f.Set(reflect.ValueOf(def).FieldByIndex(fieldIndex(k)))
			}
			if got.Cfg != want {
				t.Errorf("loaded config %+v, want %+v", got.Cfg, want)
			}
			for i := range m.Params {
				if math.Float32bits(got.Params[i]) != math.Float32bits(m.Params[i]) {
					t.Fatalf("param %d = %v, want %v", i, got.Params[i], m.Params[i])
				}
			}
			again := t.TempDir()
			if err := got.Save(again); err != nil {
				t.Fatal(err)
			}
			if raw2, _ := os.ReadFile(filepath.Join(again, ConfigFile)); string(raw2) != string(raw) {
				t.Errorf("cfg.json saved again differs:\n%s\nvs\n%s", raw2, raw)
			}
		})
	}
	// A setting that applies must be there.
	dir := t.TempDir()
	m, _ := New(kl)
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	var cfg map[string]any
	_ = json.Unmarshal(raw, &cfg)
	delete(cfg["dsae"].(map[string]any), "rho")
	raw, _ = json.Marshal(cfg)
	_ = os.WriteFile(filepath.Join(dir, ConfigFile), raw, 0o644)
	if _, err := Load(dir); !errors.Is(err, ErrModelDir) || !strings.Contains(err.Error(), `"rho"`) {
		t.Errorf("cfg.json without rho on a kl model: err = %v", err)
	}
}

// fieldIndex is the index of Config's field with JSON name name.
func fieldIndex(name string) []int {
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if configFieldName(t.Field(i)) == name {
			return []int{i}
		}
	}
	panic("no Config field " + name)
}
