package sae

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Files of a model directory. The tensor file and the "architecture",
// "d_in", "d_sae" and "dtype" fields of cfg.json follow the layout SAELens
// loads; dsae's own full configuration sits under the "dsae" key.
const (
	WeightsFile = "sae.safetensors"
	ConfigFile  = "cfg.json"
	MetricsFile = "metrics.json"
)

// ErrModelDir is wrapped by errors about a model directory that cannot be
// loaded: missing files, malformed content, or shapes that disagree.
var ErrModelDir = errors.New("model directory")

// dirConfig is the content of cfg.json.
type dirConfig struct {
	Architecture        string         `json:"architecture"`
	DIn                 int            `json:"d_in"`
	DSAE                int            `json:"d_sae"`
	DType               string         `json:"dtype"`
	Device              string         `json:"device"`
	ActivationFn        string         `json:"activation_fn"`
	ActivationFnStr     string         `json:"activation_fn_str"`
	ActivationFnKwargs  map[string]int `json:"activation_fn_kwargs"`
	K                   int            `json:"k,omitempty"`
	ApplyBDecToInput    bool           `json:"apply_b_dec_to_input"`
	NormalizeActivation string         `json:"normalize_activations"`
	// DSAEConfig is dsae's Config, the settings that apply to the model
	// only (Config.Applies): no k on a KL model, no rho on a TopK one.
	DSAEConfig json.RawMessage `json:"dsae"`
}

// Save writes the model's tensors (SAELens layout) and cfg.json into dir
// (dsae's config there holds the settings that apply to the model),
// creating it if needed. Each file is written to a temporary name and
// renamed, so a crash never leaves a half-written file under its real name.
func (m *Model) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c := m.Cfg
	wEnc, wDec, bEnc, bDec := m.SAELens()
	var buf bytes.Buffer
	err := WriteSafetensors(&buf, []Tensor{
		{Name: "W_enc", Shape: []int{c.D, c.H}, Data: wEnc},
		{Name: "W_dec", Shape: []int{c.H, c.D}, Data: wDec},
		{Name: "b_enc", Shape: []int{c.H}, Data: bEnc},
		{Name: "b_dec", Shape: []int{c.D}, Data: bDec},
	}, map[string]string{"format": "pt", "producer": "dsae"})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, WeightsFile), buf.Bytes()); err != nil {
		return err
	}
	arch, act := "standard", c.Activation
	kw := map[string]int{}
	if c.Activation == ActTopK {
		arch = "topk"
		kw["k"] = c.K
	}
	dsae, err := c.appliedJSON()
	if err != nil {
		return err
	}
	return WriteJSON(dir, ConfigFile, dirConfig{
		Architecture: arch, DIn: c.D, DSAE: c.H, DType: "float32", Device: "cpu",
		ActivationFn: act, ActivationFnStr: act, ActivationFnKwargs: kw, K: kw["k"],
		NormalizeActivation: "none", DSAEConfig: dsae,
	})
}

// Load reads a model directory written by Save (or by any tool that writes
// the same SAELens tensors and a cfg.json with a "dsae" section). Settings
// that do not apply to the model may be missing from that section; they
// take their DefaultConfig values.
func Load(dir string) (*Model, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModelDir, err)
	}
	var dc dirConfig
	if err := json.Unmarshal(raw, &dc); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrModelDir, filepath.Join(dir, ConfigFile), err)
	}
	cfg, err := configFromApplied(dc.DSAEConfig)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrModelDir, filepath.Join(dir, ConfigFile), err)
	}
	if cfg.D != dc.DIn || cfg.H != dc.DSAE {
		return nil, fmt.Errorf("%w: %s: d_in/d_sae = %d/%d disagree with the dsae section's d/hidden = %d/%d",
			ErrModelDir, filepath.Join(dir, ConfigFile), dc.DIn, dc.DSAE, cfg.D, cfg.H)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrModelDir, filepath.Join(dir, ConfigFile), err)
	}
	f, err := os.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModelDir, err)
	}
	defer f.Close()
	ts, _, err := ReadSafetensors(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrModelDir, f.Name(), err)
	}
	get := func(name string, shape ...int) ([]float32, error) {
		t, ok := ts[name]
		if !ok {
			return nil, fmt.Errorf("%w: %s has no tensor %q", ErrModelDir, f.Name(), name)
		}
		if fmt.Sprint(t.Shape) != fmt.Sprint(shape) {
			return nil, fmt.Errorf("%w: %s: tensor %q has shape %v, cfg.json implies %v", ErrModelDir, f.Name(), name, t.Shape, shape)
		}
		return t.Data, nil
	}
	var ws [4][]float32
	for i, spec := range []struct {
		name  string
		shape []int
	}{{"W_enc", []int{cfg.D, cfg.H}}, {"W_dec", []int{cfg.H, cfg.D}}, {"b_enc", []int{cfg.H}}, {"b_dec", []int{cfg.D}}} {
		if ws[i], err = get(spec.name, spec.shape...); err != nil {
			return nil, err
		}
	}
	return FromSAELens(cfg, ws[0], ws[1], ws[2], ws[3])
}

// WriteJSON writes v as indented JSON to dir/name atomically.
func WriteJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, name), append(b, '\n'))
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
