package e2e

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsae/dsae/storage/datafile"
)

// No silent garbage: data a sigmoid output cannot reconstruct (a uint8 .npy
// of 0…255, activations drawn from N(0, 3)) stop `dsae train` before it
// trains, with one line naming the data, the range found and what to use;
// --normalize minmax or --output linear with --normalize standardize train
// on them, and the model directory records the scaling. A dataset in the
// store is checked through its manifest's mean and std.
func TestTrainDataRange(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	const rows, d = 600, 16
	u8 := make([]byte, rows*d)
	for i := range u8 {
		u8[i] = byte(rng.IntN(256))
	}
	f, err := os.Create(filepath.Join(dir, "u8.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if err := datafile.WriteNPYHeader(f, "|u1", false, rows, d); err != nil {
		t.Fatal(err)
	}
	f.Write(u8)
	f.Close()
	g := make([]float32, rows*d)
	for i := range g {
		g[i] = float32(3 * rng.NormFloat64())
	}
	writeNPY(t, filepath.Join(dir, "g3.npy"), rows, d, g)

	for _, tc := range []struct{ data, want string }{
		{"u8.npy", "holds values in [0, 255]"},
		{"g3.npy", "holds values in [-"},
	} {
		r := run(t, dir, "train", "--data", tc.data, "--hidden", "8", "--steps", "50", "--out", "m-"+tc.data)
		if r.code != 2 || !strings.Contains(r.stderr, "--data "+tc.data) || !strings.Contains(r.stderr, tc.want) ||
			!strings.Contains(r.stderr, "--output sigmoid") || !strings.Contains(r.stderr, "--output linear") || !strings.Contains(r.stderr, "--normalize minmax") {
			t.Errorf("%s with --output sigmoid: exit %d, %q; want exit 2 naming the data, its range and the way out", tc.data, r.code, r.stderr)
		}
		if strings.Contains(r.stderr, "step ") {
			t.Errorf("%s: training started before the range check:\n%s", tc.data, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "m-"+tc.data, "sae.safetensors")); err == nil {
			t.Errorf("%s: a model was written", tc.data)
		}
	}

	mustRun(t, dir, "train", "--data", "u8.npy", "--hidden", "8", "--steps", "100", "--normalize", "minmax", "--out", "u8-minmax", "--progress", "0")
	var n struct {
		Kind         string
		Shift, Scale []float64
	}
	b, err := os.ReadFile(filepath.Join(dir, "u8-minmax", "normalization.json"))
	if err != nil || json.Unmarshal(b, &n) != nil || n.Kind != "minmax" || len(n.Shift) != d || len(n.Scale) != d {
		t.Fatalf("u8-minmax/normalization.json: %v %s", err, b)
	}
	for j := range d {
		// Each feature's minimum and span over the 600 rows (0…255 drawn uniformly).
		if n.Shift[j] < 0 || n.Shift[j] > 5 || n.Scale[j] < 1.0/255-1e-9 || n.Scale[j] > 1.0/245 {
			t.Errorf("feature %d: shift %g, scale %g; want the feature's minimum and 1/span", j, n.Shift[j], n.Scale[j])
		}
	}
	mustRun(t, dir, "train", "--data", "g3.npy", "--hidden", "8", "--steps", "100", "--normalize", "standardize", "--output", "linear", "--out", "g3-std", "--progress", "0")
	if r := run(t, dir, "train", "--data", "g3.npy", "--normalize", "standardize", "--out", "x"); r.code != 2 || !strings.Contains(r.stderr, "--output linear") {
		t.Errorf("standardize with a sigmoid output: exit %d, %q", r.code, r.stderr)
	}

	// Through a dataset's manifest.
	endpoint := startS3Process(t, dir)
	t.Setenv("AWS_ACCESS_KEY_ID", "e2e-access")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "e2e-secret-key")
	s3 := []string{"--s3-endpoint", endpoint, "--s3-retry-timeout", "5s"}
	mustRun(t, dir, append([]string{"dataset", "put", "g3", "g3.npy"}, s3...)...)
	r := run(t, dir, append([]string{"train", "--data", "s3://g3", "--hidden", "8", "--steps", "20", "--out", "s3-sig"}, s3...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "--data s3://g3") || !strings.Contains(r.stderr, "manifest") || !strings.Contains(r.stderr, "--output linear") {
		t.Errorf("s3://g3 with --output sigmoid: exit %d, %q", r.code, r.stderr)
	}
	mustRun(t, dir, append([]string{"train", "--data", "s3://g3", "--hidden", "8", "--steps", "20", "--output", "linear", "--normalize", "standardize", "--out", "s3-std", "--progress", "0"}, s3...)...)
	if _, err := os.Stat(filepath.Join(dir, "s3-std", "normalization.json")); err != nil {
		t.Error(err)
	}
}

// `dsae job submit` refuses a sigmoid-output job on a dataset whose
// manifest shows values outside [0, 1] (the coordinator checks, with the
// rule dsae train applies), naming the data field and the way out, and
// accepts it with --output linear.
func TestSubmitChecksDataRange(t *testing.T) {
	skipSlow(t, "a coordinator and an S3 server as processes, for job submit's data check")
	c := startCluster(t, clusterOpts{coordinators: 1})
	g := make([]float32, 300*8)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range g {
		g[i] = float32(3 * rng.NormFloat64())
	}
	writeNPY(t, filepath.Join(c.dir, "g3.npy"), 300, 8, g)
	c.mustDsae("dataset", "put", "g3", "g3.npy")
	submit := []string{"job", "submit", "--coordinator", strings.Join(c.coordAddrs(), ","), "--secret-file", c.secret, "--data", "g3", "--hidden", "4", "--steps", "5", "--batch", "32"}
	r := c.dsae(submit...)
	if r.code != 2 || !strings.Contains(r.stderr, `data: "g3"`) || !strings.Contains(r.stderr, "[0, 1]") || !strings.Contains(r.stderr, "output linear") {
		t.Errorf("job submit of a sigmoid job on N(0, 3) data: exit %d, %q; want exit 2 naming the data field, the range and output linear", r.code, r.stderr)
	}
	c.mustDsae(append(submit, "--output", "linear")...)
}
