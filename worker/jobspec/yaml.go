package jobspec

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxSpecBytes bounds a YAML spec file.
const maxSpecBytes = 1 << 20

// ParseYAML sets in s the settings of a YAML spec: one flat mapping whose
// keys are flag names, written with '_' or '-' (hidden, weight_decay,
// warmup-steps, …), and whose scalar values are parsed by the flags' own
// parsers. Settings the file leaves out keep their value in s, so start
// from Default. Unknown keys, repeated keys, non-scalar values and values
// a flag refuses are errors wrapping ErrInvalidSpec that name the key and
// its line. ParseYAML only decodes; call Validate for ranges.
func ParseYAML(r io.Reader, s *Spec) error {
	data, err := io.ReadAll(io.LimitReader(r, maxSpecBytes+1))
	if err != nil {
		return err
	}
	if len(data) > maxSpecBytes {
		return specErr("spec larger than %d bytes", maxSpecBytes)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return specErr("spec is empty")
		}
		return specErr("%v", err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return specErr("line %d: want a mapping of setting names to values", root.Line)
	}
	fs := flagSet(s)
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := FlagName(k.Value)
		if k.Kind != yaml.ScalarNode || fs.Lookup(name) == nil {
			return specErr("line %d: unknown key %q (keys are the flags of dsae job submit, e.g. hidden, rho, lr, batch)", k.Line, k.Value)
		}
		if prev, ok := seen[name]; ok {
			return specErr("line %d: key %q repeats line %d", k.Line, k.Value, prev)
		}
		seen[name] = k.Line
		if v.Kind != yaml.ScalarNode {
			return specErr("line %d: %s: want a single value", v.Line, k.Value)
		}
		if err := fs.Set(name, v.Value); err != nil {
			return specErr("line %d: %s: invalid value %q: %s", v.Line, k.Value, v.Value, strings.TrimSpace(err.Error()))
		}
	}
	return nil
}
