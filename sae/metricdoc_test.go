package sae

import (
	"reflect"
	"strings"
	"testing"
)

// TestMetricDocsCoverMetrics: every field of Metrics is documented, once,
// in field order, for a nil config and for each activation.
func TestMetricDocsCoverMetrics(t *testing.T) {
	var names []string
	mt := reflect.TypeFor[Metrics]()
	for i := range mt.NumField() {
		n, _, _ := strings.Cut(mt.Field(i).Tag.Get("json"), ",")
		names = append(names, n)
	}
	sig := DefaultConfig()
	relu := sig
	relu.Activation, relu.Sparsity, relu.L1 = ActReLU, SparsityL1, 1e-3
	topk := sig
	topk.Activation, topk.Sparsity = ActTopK, SparsityTopK
	for _, c := range []*Config{nil, &sig, &relu, &topk} {
		docs := MetricDocs(c)
		var got []string
		for _, d := range docs {
			got = append(got, d.Name)
			if strings.TrimSpace(d.Doc) == "" {
				t.Errorf("%s has no doc", d.Name)
			}
		}
		if !reflect.DeepEqual(got, names) {
			t.Errorf("MetricDocs names %v, Metrics has %v", got, names)
		}
	}
	l0 := func(c *Config) string { return MetricDocs(c)[8].Doc }
	for c, want := range map[*Config]string{nil: "above 0.5 for sigmoid encoders and above 0 otherwise", &sig: "above 0.5 (sigmoid",
		&relu: "above 0 (relu", &topk: "k = 32"} {
		if !strings.Contains(l0(c), want) {
			t.Errorf("l0 doc %q lacks %q", l0(c), want)
		}
	}
	if d := MetricDocs(&sig)[10].Doc; !strings.Contains(d, "dead_window = 1000 steps") {
		t.Errorf("dead_fraction doc %q does not give the window", d)
	}
}
