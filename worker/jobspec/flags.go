package jobspec

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/spf13/pflag"
)

// derived are the sae fields that are not settings of a spec: d comes from
// the data and total_steps from the step count.
var derived = map[string]bool{"d": true, "total_steps": true}

// Flag groups: which AddXFlags function registers a name.
const (
	groupTrain = iota // model, optimizer, batch, steps, epochs
	groupData         // data, test
	groupJob          // name, min_workers, max_workers, checkpoint_every
)

var groups = map[string]int{
	"data": groupData, "test": groupData,
	"name": groupJob, "min_workers": groupJob, "max_workers": groupJob, "checkpoint_every": groupJob,
}

// usage is the help text of every flag, by flag name. A test checks that
// it has exactly the flags of the vocabulary. data and test have none:
// their meaning differs between commands (AddDataFlags).
var usage = map[string]string{
	"hidden":          "hidden size (number of latents)",
	"activation":      "hidden activation: sigmoid | relu | topk",
	"k":               "topk: active latents per row, in [1, hidden]",
	"output":          "output activation: sigmoid (data in [0,1]) | linear",
	"sparsity":        "sparsity penalty: kl | l1 | topk | none",
	"rho":             "kl: target mean activation ρ in (0,1)",
	"beta":            "kl: weight β >= 0 of the KL term",
	"l1":              "l1: penalty λ₁ >= 0 on activations",
	"l1-decoder-norm": "l1: weight each |a_j| by the norm of decoder column j",
	"weight-decay":    "λ >= 0 of (λ/2)(‖W_enc‖²+‖W_dec‖²); biases are not decayed",
	"tied":            "tie the decoder to the encoder (W_dec = W_encᵀ)",
	"aux-k":           "topk: dead latents used by the auxiliary loss, in [0, hidden] (0 = off)",
	"aux-coef":        "topk: weight >= 0 of the auxiliary loss",
	"dead-window":     "steps without activation after which a latent counts as dead",
	"seed":            "seed of the initialisation and of the data order",

	"optimizer":    "optimizer: adam | sgd",
	"lr":           "peak learning rate, > 0",
	"momentum":     "sgd: momentum in [0,1)",
	"nesterov":     "sgd: Nesterov momentum (needs --momentum > 0)",
	"beta1":        "adam: first-moment decay in [0,1)",
	"beta2":        "adam: second-moment decay in [0,1)",
	"eps":          "adam: denominator term, > 0",
	"schedule":     "learning-rate schedule: constant | cosine (cosine decays to --min-lr at the last step)",
	"warmup-steps": "steps of linear learning-rate warmup (both schedules)",
	"min-lr":       "cosine: final learning rate, in [0, lr]",
	"clip-norm":    "clip the gradient's global L2 norm to this value (0 = off)",

	"batch":  "global batch size (rows per step)",
	"steps":  "number of steps (overrides --epochs)",
	"epochs": "passes over the training data (when --steps is 0)",

	"name":             "job name",
	"min-workers":      "the job waits in the queue until this many workers are free (0: one)",
	"max-workers":      "the job runs on at most this many workers (0: every free worker)",
	"checkpoint-every": "steps between checkpoints (0: none)",
}

// field is one setting of a Spec: its vocabulary name (JSON name, '_')
// and the addressable struct field holding it.
type field struct {
	name  string
	group int
	v     reflect.Value
}

// FlagName returns the flag (and YAML key) form of a vocabulary name:
// '_' becomes '-'.
func FlagName(name string) string { return strings.ReplaceAll(name, "_", "-") }

// jsonName returns the JSON name of a struct field.
func jsonName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return n
}

// fields lists the settings of s in declaration order, Model and Optimizer
// flattened, derived sae fields left out.
func fields(s *Spec) []field {
	var out []field
	var walk func(v reflect.Value, nested bool)
	walk = func(v reflect.Value, nested bool) {
		t := v.Type()
		for i := range t.NumField() {
			name := jsonName(t.Field(i))
			fv := v.Field(i)
			switch {
			case !nested && fv.Kind() == reflect.Struct:
				walk(fv, true)
			case derived[name]:
			default:
				out = append(out, field{name: name, group: groups[name], v: fv})
			}
		}
	}
	walk(reflect.ValueOf(s).Elem(), false)
	return out
}

func addGroup(fs *pflag.FlagSet, s *Spec, group int, usageOf func(name string) string) {
	for _, f := range fields(s) {
		if f.group != group {
			continue
		}
		name := FlagName(f.name)
		u := usageOf(name)
		switch p := f.v.Addr().Interface().(type) {
		case *int:
			fs.IntVar(p, name, *p, u)
		case *int64:
			fs.Int64Var(p, name, *p, u)
		case *uint64:
			fs.Uint64Var(p, name, *p, u)
		case *float64:
			fs.Float64Var(p, name, *p, u)
		case *string:
			fs.StringVar(p, name, *p, u)
		case *bool:
			fs.BoolVar(p, name, *p, u)
		default:
			panic(fmt.Sprintf("jobspec: field %s has type %T, which has no flag", f.name, p))
		}
	}
}

// AddFlags registers on fs one flag per model and optimizer setting and
// --batch, --steps and --epochs, bound to s; each flag's default is s's
// current value. Both `dsae train` and `dsae job submit` call it.
func AddFlags(fs *pflag.FlagSet, s *Spec) {
	addGroup(fs, s, groupTrain, func(name string) string { return usage[name] })
}

// AddDataFlags registers --data and --test bound to s, with the command's
// own help texts (a local file or a store dataset).
func AddDataFlags(fs *pflag.FlagSet, s *Spec, dataUsage, testUsage string) {
	addGroup(fs, s, groupData, func(name string) string {
		if name == "data" {
			return dataUsage
		}
		return testUsage
	})
}

// AddJobFlags registers the settings only a job has: --name,
// --min-workers, --max-workers and --checkpoint-every.
func AddJobFlags(fs *pflag.FlagSet, s *Spec) {
	addGroup(fs, s, groupJob, func(name string) string { return usage[name] })
}

// AddCheckpointFlag registers --checkpoint-every alone, bound to s, for a
// run in one process (`dsae train`), which keeps checkpoints as a job does.
func AddCheckpointFlag(fs *pflag.FlagSet, s *Spec) {
	name := FlagName("checkpoint_every")
	fs.Int64Var(&s.CheckpointEvery, name, s.CheckpointEvery, usage[name])
}

// flagSet returns every setting of s as a flag bound to s: the parser of
// YAML files and of overrides.
func flagSet(s *Spec) *pflag.FlagSet {
	fs := pflag.NewFlagSet("spec", pflag.ContinueOnError)
	AddFlags(fs, s)
	AddDataFlags(fs, s, "training set", "test set")
	AddJobFlags(fs, s)
	return fs
}

// Override sets in dst every vocabulary flag that was set on fs (other
// flags of fs are ignored), parsing the flag's value again as dst's own
// flag: flags override a spec file.
func Override(dst *Spec, fs *pflag.FlagSet) error {
	own := flagSet(dst)
	var err error
	fs.Visit(func(f *pflag.Flag) {
		if err == nil && own.Lookup(f.Name) != nil {
			if e := own.Set(f.Name, f.Value.String()); e != nil {
				err = fmt.Errorf("--%s: %w", f.Name, e)
			}
		}
	})
	return err
}
