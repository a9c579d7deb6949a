package sae

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Applies reports whether the setting name (a JSON name of Config) takes
// part in the model c describes: k only with the topk activation; rho and
// beta only with kl sparsity; l1 and l1_decoder_norm only with l1; aux_k
// only with topk sparsity, and aux_coef only when aux_k > 0. Every other
// setting always applies. Validate leaves the settings that do not apply
// unchecked (but l1_decoder_norm and aux_k must then be off).
func (c Config) Applies(name string) bool {
	switch name {
	case "k":
		return c.Activation == ActTopK
	case "rho", "beta":
		return c.Sparsity == SparsityKL
	case "l1", "l1_decoder_norm":
		return c.Sparsity == SparsityL1
	case "aux_k":
		return c.Sparsity == SparsityTopK
	case "aux_coef":
		return c.Sparsity == SparsityTopK && c.AuxK > 0
	}
	return true
}

func configFieldName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return n
}

// appliedJSON is c as a JSON object of the settings that apply (Applies),
// in field order: the "dsae" section of cfg.json.
func (c Config) appliedJSON() (json.RawMessage, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	v, t := reflect.ValueOf(c), reflect.TypeFor[Config]()
	for i := range t.NumField() {
		name := configFieldName(t.Field(i))
		if !c.Applies(name) {
			continue
		}
		val, err := json.Marshal(v.Field(i).Interface())
		if err != nil {
			return nil, err
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", name, val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// configFromApplied reads the "dsae" section of cfg.json: every setting
// that applies must be there; one that does not apply may be left out and
// then takes its DefaultConfig value, so that a config written by
// appliedJSON loads back as the config it was written from, up to the
// values of settings that do not apply.
func configFromApplied(raw json.RawMessage) (Config, error) {
	var c Config
	if len(raw) == 0 {
		return c, fmt.Errorf("no \"dsae\" section")
	}
	var present map[string]json.RawMessage
	if err := json.Unmarshal(raw, &present); err != nil {
		return c, err
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, err
	}
	def := reflect.ValueOf(DefaultConfig())
	v, t := reflect.ValueOf(&c).Elem(), reflect.TypeFor[Config]()
	for i := range t.NumField() {
		name := configFieldName(t.Field(i))
		if _, ok := present[name]; ok {
			continue
		}
		if c.Applies(name) {
			return c, fmt.Errorf("the \"dsae\" section lacks %q, which applies to this model", name)
		}
		v.Field(i).Set(def.Field(i))
	}
	return c, nil
}
