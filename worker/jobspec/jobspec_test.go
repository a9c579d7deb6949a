package jobspec

import (
	"errors"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/sae"
)

func TestDefaultIsTrainDefaults(t *testing.T) {
	s := Default()
	m, o := s.Model, s.Optimizer
	if m.D != 0 || m.H != 196 || m.Activation != "sigmoid" || m.Output != "sigmoid" || m.Sparsity != "kl" ||
		m.Rho != 0.1 || m.Beta != 3 || m.WeightDecay != 3e-3 || m.DeadWindow != 1000 || m.Seed != 1 {
		t.Errorf("model defaults %+v", m)
	}
	if o.Kind != "adam" || o.LR != 3e-3 || o.Beta1 != 0.9 || o.Beta2 != 0.999 || o.Eps != 1e-8 || o.Schedule != "constant" || o.TotalSteps != 0 {
		t.Errorf("optimizer defaults %+v", o)
	}
	if s.Batch != 256 || s.Epochs != 20 || s.Steps != 0 || s.Data != "" || s.Name != "" {
		t.Errorf("run defaults %+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

// saeNames lists the JSON names of a struct's fields.
func saeNames(v any) []string {
	t := reflect.TypeOf(v)
	var out []string
	for i := range t.NumField() {
		out = append(out, jsonName(t.Field(i)))
	}
	return out
}

// TestEverySaeFieldHasOneFlag fails when sae grows a setting that the
// commands cannot set, or when a flag has no help text.
func TestEverySaeFieldHasOneFlag(t *testing.T) {
	var s Spec
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	AddFlags(fs, &s)
	want := map[string]bool{"batch": true, "steps": true, "epochs": true}
	for _, n := range append(saeNames(sae.Config{}), saeNames(sae.OptimizerConfig{})...) {
		if n == "d" || n == "total_steps" {
			if fs.Lookup(FlagName(n)) != nil {
				t.Errorf("derived field %s has a flag", n)
			}
			continue
		}
		if want[FlagName(n)] {
			t.Errorf("two sae fields are named %s", n)
		}
		want[FlagName(n)] = true
	}
	got := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) {
		got[f.Name] = true
		if f.Usage == "" {
			t.Errorf("--%s has no usage", f.Name)
		}
	})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AddFlags registered %v, want %v", keys(got), keys(want))
	}
	// The usage table names exactly the flags that exist, less data/test.
	all := flagSet(&s)
	all.VisitAll(func(f *pflag.Flag) {
		if _, ok := usage[f.Name]; !ok && f.Name != "data" && f.Name != "test" {
			t.Errorf("--%s missing from the usage table", f.Name)
		}
	})
	for n := range usage {
		if all.Lookup(n) == nil {
			t.Errorf("usage table names --%s, which is not a flag", n)
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestFlagsSetSaeFields(t *testing.T) {
	s := Default()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	AddFlags(fs, &s)
	AddDataFlags(fs, &s, "data", "test")
	AddJobFlags(fs, &s)
	err := fs.Parse([]string{"--hidden", "64", "--weight-decay", "0", "--aux-k", "3", "--optimizer", "sgd", "--momentum", "0.9",
		"--nesterov", "--warmup-steps", "7", "--min-lr", "1e-5", "--clip-norm", "2", "--batch", "32", "--epochs", "1.5",
		"--data", "acts", "--max-workers", "4", "--checkpoint-every", "100", "--seed", "18446744073709551615"})
	if err != nil {
		t.Fatal(err)
	}
	m, o := s.Model, s.Optimizer
	if m.H != 64 || m.WeightDecay != 0 || m.AuxK != 3 || m.Seed != math.MaxUint64 || o.Kind != "sgd" || o.Momentum != 0.9 || !o.Nesterov ||
		o.WarmupSteps != 7 || o.MinLR != 1e-5 || o.ClipNorm != 2 || s.Batch != 32 || s.Epochs != 1.5 || s.Data != "acts" ||
		s.MaxWorkers != 4 || s.CheckpointEvery != 100 {
		t.Errorf("flags gave %+v", s)
	}
	if fs.Lookup("d") != nil || fs.Lookup("total-steps") != nil || fs.Lookup("h") != nil {
		t.Error("d, total-steps or h is a flag")
	}
}

// fillDistinct sets every field of v (recursively) to a value that differs
// from its zero value and from every other field's.
func fillDistinct(v reflect.Value, n *int) {
	for i := range v.NumField() {
		f := v.Field(i)
		*n++
		switch f.Kind() {
		case reflect.Struct:
			fillDistinct(f, n)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(*n))
		case reflect.Uint64:
			f.SetUint(uint64(*n) << 40)
		case reflect.Float64:
			f.SetFloat(float64(*n) + 0.25)
		case reflect.String:
			f.SetString("s" + strings.Repeat("x", *n))
		case reflect.Bool:
			f.SetBool(true)
		default:
			panic("fillDistinct: " + f.Kind().String())
		}
	}
}

// TestProtoRoundTrip fails when sae (or Spec) grows a field that the proto
// lacks, or the proto a field that Spec lacks.
func TestProtoRoundTrip(t *testing.T) {
	var s Spec
	n := 0
	fillDistinct(reflect.ValueOf(&s).Elem(), &n)
	s.Optimizer.TotalSteps = 0 // not in the proto: it follows from steps
	p := s.Proto()
	if got := FromProto(p); !reflect.DeepEqual(got, s) {
		t.Errorf("round trip\n got %+v\nwant %+v", got, s)
	}
	if p.Model.Hidden != int64(s.Model.H) || p.Optimizer.Optimizer != s.Optimizer.Kind || p.Data != s.Data || p.Epochs != s.Epochs {
		t.Errorf("fields not matched by name: %v", p)
	}
	check := func(m protoreflect.Message, goNames []string) {
		names := map[string]bool{}
		for _, n := range goNames {
			names[n] = true
		}
		fds := m.Descriptor().Fields()
		for i := range fds.Len() {
			if !names[string(fds.Get(i).Name())] {
				t.Errorf("proto field %s has no Go field", fds.Get(i).FullName())
			}
		}
	}
	check(p.ProtoReflect(), saeNames(Spec{}))
	check(p.Model.ProtoReflect(), saeNames(sae.Config{}))
	check(p.Optimizer.ProtoReflect(), saeNames(sae.OptimizerConfig{}))
}

func TestProtoSaturatesInt32(t *testing.T) {
	s := Default()
	s.MaxWorkers, s.MinWorkers = math.MaxInt32+5, math.MinInt32-5
	p := s.Proto()
	if p.MaxWorkers != math.MaxInt32 || p.MinWorkers != math.MinInt32 {
		t.Errorf("workers %d..%d, want saturated", p.MinWorkers, p.MaxWorkers)
	}
	if got := FromProto(nil); !reflect.DeepEqual(got, Spec{}) {
		t.Errorf("FromProto(nil) = %+v", got)
	}
	if got := FromProto(&pb.JobSpec{Batch: 3}); got.Batch != 3 || got.Model.H != 0 {
		t.Errorf("FromProto without model = %+v", got)
	}
}

func TestStepsFor(t *testing.T) {
	cases := []struct {
		steps  int64
		epochs float64
		batch  int
		rows   int64
		want   int64
	}{
		{0, 20, 256, 60000, 4700}, // 235 steps per epoch
		{0, 1, 256, 60001, 235},   // ceil: a last short batch counts
		{0, 0.5, 10, 95, 5},       // round(0.5·10)
		{0, 0.01, 10, 95, 1},      // at least one step
		{0, 1.25, 4, 8, 3},        // round(2.5) = 3
		{7, 20, 256, 60000, 7},    // steps win
		{7, 20, 256, 0, 7},
		{0, 20, 256, 0, 0}, // rows unknown
		{0, 20, 0, 10, 0},  // batch invalid
	}
	for _, c := range cases {
		s := Spec{Steps: c.steps, Epochs: c.epochs, Batch: c.batch}
		if got := s.StepsFor(c.rows); got != c.want {
			t.Errorf("%+v StepsFor(%d) = %d, want %d", c, c.rows, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Spec)
		is   error  // nil: valid
		msg  string // exact message when invalid
	}{
		{"defaults, d from the data", func(*Spec) {}, nil, ""},
		{"d known", func(s *Spec) { s.Model.D = 784 }, nil, ""},
		{"cosine before the step count is known", func(s *Spec) { s.Optimizer.Schedule = "cosine"; s.Optimizer.WarmupSteps = 1000 }, nil, ""},
		{"cosine with warmup past the end", func(s *Spec) {
			s.Optimizer.Schedule, s.Optimizer.WarmupSteps, s.Steps = "cosine", 10, 10
		}, sae.ErrInvalidOptimizer, ""},
		{"rho", func(s *Spec) { s.Model.Rho = 1.5 }, sae.ErrInvalidConfig, "sae: rho = 1.5 out of range (0, 1)"},
		{"beta", func(s *Spec) { s.Model.Beta = -1 }, sae.ErrInvalidConfig, "sae: beta = -1 out of range [0, +inf)"},
		{"hidden", func(s *Spec) { s.Model.H = 0 }, sae.ErrInvalidConfig, "sae: hidden = 0 out of range [1, +inf)"},
		{"d negative", func(s *Spec) { s.Model.D = -1 }, sae.ErrInvalidConfig, "sae: d = -1 out of range [1, +inf)"},
		{"k", func(s *Spec) { s.Model.Activation, s.Model.Sparsity, s.Model.K = "topk", "topk", 0 }, sae.ErrInvalidConfig,
			"sae: k = 0 out of range [1, hidden=196]"},
		{"lr", func(s *Spec) { s.Optimizer.LR = 0 }, sae.ErrInvalidOptimizer, "sae: invalid optimizer config: lr = 0, must be finite and > 0"},
		{"optimizer", func(s *Spec) { s.Optimizer.Kind = "momentum" }, sae.ErrInvalidOptimizer,
			`sae: invalid optimizer config: optimizer = "momentum", must be "sgd" or "adam"`},
		{"batch", func(s *Spec) { s.Batch = 0 }, ErrInvalidSpec, "jobspec: invalid spec: batch = 0 out of range [1, +inf)"},
		{"steps", func(s *Spec) { s.Steps = -1 }, ErrInvalidSpec, "jobspec: invalid spec: steps = -1 out of range [0, +inf) (0: from epochs)"},
		{"epochs", func(s *Spec) { s.Epochs = math.Inf(1) }, ErrInvalidSpec, "jobspec: invalid spec: epochs = +Inf out of range [0, +inf)"},
		{"neither", func(s *Spec) { s.Epochs = 0 }, ErrInvalidSpec, "jobspec: invalid spec: epochs = 0 out of range (0, +inf) (or set steps)"},
		{"steps without epochs", func(s *Spec) { s.Epochs, s.Steps = 0, 5 }, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Default()
			c.edit(&s)
			err := s.Validate()
			if c.is == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, c.is) {
				t.Fatalf("Validate = %v, want %v", err, c.is)
			}
			if c.msg != "" && err.Error() != c.msg {
				t.Errorf("message %q, want %q", err, c.msg)
			}
			// The proto path refuses it too, in proto field names.
			if perr, want := ValidateProto(s.Proto()), Explain(err, Fields); perr == nil || perr.Error() != want.Error() || !errors.Is(perr, c.is) {
				t.Errorf("ValidateProto = %v, want %v", perr, want)
			}
		})
	}
}

func TestRules(t *testing.T) {
	s := Default()
	s.Batch = 100
	var r Rules
	if got := r.Steps(s.Proto(), 1000); got != 200 {
		t.Errorf("Steps = %d, want 200 (20 epochs of 10)", got)
	}
	s.Model.Rho = 2
	if err := r.Validate(s.Proto()); !errors.Is(err, sae.ErrInvalidConfig) {
		t.Errorf("Validate = %v", err)
	}
}

func TestOptimizerConfigTotalSteps(t *testing.T) {
	s := Default()
	s.Steps = 123
	if o := s.OptimizerConfig(); o.TotalSteps != 123 || s.Optimizer.TotalSteps != 0 {
		t.Errorf("TotalSteps %d (spec's %d), want 123 (0)", o.TotalSteps, s.Optimizer.TotalSteps)
	}
}

// TestCheckStatsRange: a sigmoid output is refused on statistics that
// prove values outside [0, 1] (a mean outside it, or a standard deviation
// above 1/2, the largest values in [0, 1] can have), and nothing else is.
func TestCheckStatsRange(t *testing.T) {
	for _, tc := range []struct {
		output    string
		mean, std []float64
		refused   bool
	}{
		{"sigmoid", []float64{0.1, 0.9}, []float64{0.3, 0.5}, false},
		{"sigmoid", []float64{0.1, -0.01}, []float64{0.3, 0.1}, true},
		{"sigmoid", []float64{0.1, 1.5}, []float64{0.3, 0.1}, true},
		{"sigmoid", []float64{0.5, 0.5}, []float64{0.3, 0.51}, true},
		{"linear", []float64{100}, []float64{30}, false},
		{"sigmoid", nil, nil, false}, // no statistics: nothing to go by
	} {
		err := CheckStatsRange(tc.output, tc.mean, tc.std)
		if (err != nil) != tc.refused {
			t.Errorf("%s, mean %v, std %v: %v, want refused = %v", tc.output, tc.mean, tc.std, err, tc.refused)
		}
	}
}
