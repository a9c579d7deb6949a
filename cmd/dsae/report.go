package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dsae/dsae/sae"
)

// runDefinitions are what the run-level fields of metrics.json mean
// (worker.Report); the metrics of its train and test objects are
// sae.MetricDocs'.
var runDefinitions = []sae.MetricDoc{
	{Name: "train", Doc: "final metrics of the trained model on every row of the training data (no update)"},
	{Name: "test", Doc: "final metrics on the test data (--test; for --data mnist the MNIST test set), when there is one"},
	{Name: "steps", Doc: "training steps taken"},
	{Name: "epochs", Doc: "passes over the training data: rows trained on / rows"},
	{Name: "samples_per_sec", Doc: "rows trained on per second of the training loop"},
	{Name: "train_seconds", Doc: "wall time of the training loop (the final evaluation excluded)"},
}

// metricDefinitions is the "definitions" object of metrics.json: every
// field of the file and of its train and test objects, as it applies to a
// model with config c.
func metricDefinitions(c sae.Config) map[string]string {
	defs := map[string]string{}
	for _, d := range append(sae.MetricDocs(&c), runDefinitions...) {
		defs[d.Name] = d.Doc
	}
	return defs
}

// addMetricDefinitions adds the "definitions" object (metricDefinitions)
// to the metrics.json of model directory dir, so that the file says what
// it measures. `dsae train` and the workers' model directories both get it.
func addMetricDefinitions(dir string, c sae.Config) error {
	path := filepath.Join(dir, sae.MetricsFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defs, err := json.Marshal(metricDefinitions(c))
	if err != nil {
		return err
	}
	doc["definitions"] = defs
	return sae.WriteJSON(dir, sae.MetricsFile, doc)
}

// metricsHelp is the "Metrics" section of `dsae train --help`: each field
// of metrics.json (and of the progress lines) and what it measures.
func metricsHelp() string {
	var b strings.Builder
	docs := append(sae.MetricDocs(nil), runDefinitions...)
	sort.SliceStable(docs, func(i, j int) bool { return helpOrder(docs[i].Name) < helpOrder(docs[j].Name) })
	for _, d := range docs {
		b.WriteString(wrapHelp(d.Name, d.Doc))
	}
	return strings.TrimRight(b.String(), "\n")
}

// helpOrder puts the metrics people read first.
func helpOrder(name string) int {
	for i, n := range []string{"mse", "fvu", "l0", "mean_activation", "dead_fraction", "loss"} {
		if n == name {
			return i
		}
	}
	return 100
}

// wrapHelp writes "  name  doc" with doc wrapped at 80 columns under
// itself.
func wrapHelp(name, doc string) string {
	const indent, width = 20, 80
	var b strings.Builder
	line := fmt.Sprintf("  %-*s", indent-2, name)
	if len(line) > indent {
		line += " "
	}
	for _, w := range strings.Fields(doc) {
		if len([]rune(line))+len([]rune(w)) > width && strings.TrimSpace(line) != "" && len([]rune(line)) > indent {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = strings.Repeat(" ", indent)
		}
		line += w + " "
	}
	b.WriteString(strings.TrimRight(line, " ") + "\n")
	return b.String()
}
