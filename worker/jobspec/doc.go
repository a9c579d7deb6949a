// Package jobspec is the one vocabulary of a training run: the settings of
// `dsae train`, of `dsae job submit`, of a YAML job spec and of the
// protobuf JobSpec the coordinators store.
//
// The names are sae's own JSON names (sae.Config, sae.OptimizerConfig):
// flags write them with '-', YAML keys and proto fields with '_'. A setting
// is defined once, as a field of sae's structs; AddFlags derives the flags
// from their struct tags, ParseYAML sets the same flag values from a file
// (so both paths share parsing), and Proto and FromProto convert by name.
// Validate returns sae's own errors, so `dsae train` and `dsae job submit`
// refuse a bad setting for the same reason; Explain tells such an error in
// the words of the source of the settings: the flag (--weight-decay), the
// YAML key (weight_decay) or the proto field (model.weight_decay).
//
// Two sae fields are not part of the vocabulary: d, the input size, comes
// from the data (0 in a spec until the data is known), and total_steps, the
// end of the cosine schedule, is the run's step count (see
// Spec.OptimizerConfig).
//
// The package imports sae and coordinator/controlpb only; the coordinator
// does not import it but receives Rules, which validates proto specs, from
// cmd/dsae.
//
//	s := jobspec.Default()
//	fs := pflag.NewFlagSet("train", pflag.ContinueOnError)
//	jobspec.AddFlags(fs, &s)
//	_ = fs.Parse([]string{"--hidden", "64", "--rho", "0.05"})
//	err := s.Validate() // nil, or sae's message naming the field
//	err = jobspec.Explain(err, jobspec.Flags) // "--rho = 1.5 out of range (0, 1)"
package jobspec
