package jobspec

import (
	"fmt"
	"math"
	"reflect"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/sae"
)

// Proto returns s as the protobuf JobSpec. Fields are matched by name: a
// Go field's JSON name is the proto field's name, Model and Optimizer are
// the nested messages model and optimizer; Optimizer.TotalSteps is left out
// (it follows from steps). Go ints go to int64 fields as they are and to
// int32 fields saturated, so an out-of-range count stays out of range.
// Proto panics if the proto lacks a field of s: a programming error that
// the package's round-trip test catches.
func (s *Spec) Proto() *pb.JobSpec {
	p := &pb.JobSpec{}
	toMessage(reflect.ValueOf(s).Elem(), p.ProtoReflect())
	return p
}

// FromProto returns the Spec that p describes, the inverse of Proto.
// Missing nested messages read as zero values; Optimizer.TotalSteps is 0
// (see Spec.OptimizerConfig). A nil p gives the zero Spec.
func FromProto(p *pb.JobSpec) Spec {
	var s Spec
	if p != nil {
		fromMessage(reflect.ValueOf(&s).Elem(), p.ProtoReflect())
	}
	return s
}

// notInProto are the Go fields the proto leaves out: total_steps follows
// from steps. (d is in the proto: the coordinator fills it from the data.)
var notInProto = map[string]bool{"total_steps": true}

// protoField returns the field of m named by Go field i of t, or nil for a
// field the proto leaves out.
func protoField(t reflect.Type, i int, m protoreflect.Message) protoreflect.FieldDescriptor {
	name := jsonName(t.Field(i))
	if notInProto[name] {
		return nil
	}
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		panic(fmt.Sprintf("jobspec: %s has no field %q for %s.%s", m.Descriptor().FullName(), name, t, t.Field(i).Name))
	}
	return fd
}

func toMessage(v reflect.Value, m protoreflect.Message) {
	t := v.Type()
	for i := range t.NumField() {
		fd := protoField(t, i, m)
		if fd == nil {
			continue
		}
		fv := v.Field(i)
		if fd.Kind() == protoreflect.MessageKind {
			toMessage(fv, m.Mutable(fd).Message())
			continue
		}
		var pv protoreflect.Value
		switch fd.Kind() {
		case protoreflect.Int64Kind:
			pv = protoreflect.ValueOfInt64(fv.Int())
		case protoreflect.Int32Kind:
			pv = protoreflect.ValueOfInt32(int32(min(max(fv.Int(), math.MinInt32), math.MaxInt32)))
		case protoreflect.Uint64Kind:
			pv = protoreflect.ValueOfUint64(fv.Uint())
		case protoreflect.DoubleKind:
			pv = protoreflect.ValueOfFloat64(fv.Float())
		case protoreflect.StringKind:
			pv = protoreflect.ValueOfString(fv.String())
		case protoreflect.BoolKind:
			pv = protoreflect.ValueOfBool(fv.Bool())
		default:
			panic(fmt.Sprintf("jobspec: proto field %s has kind %s, which has no conversion", fd.FullName(), fd.Kind()))
		}
		m.Set(fd, pv)
	}
}

func fromMessage(v reflect.Value, m protoreflect.Message) {
	t := v.Type()
	for i := range t.NumField() {
		fd := protoField(t, i, m)
		if fd == nil {
			continue
		}
		fv, pv := v.Field(i), m.Get(fd)
		switch fd.Kind() {
		case protoreflect.MessageKind:
			fromMessage(fv, pv.Message())
		case protoreflect.Int64Kind, protoreflect.Int32Kind:
			fv.SetInt(pv.Int())
		case protoreflect.Uint64Kind:
			fv.SetUint(pv.Uint())
		case protoreflect.DoubleKind:
			fv.SetFloat(pv.Float())
		case protoreflect.StringKind:
			fv.SetString(pv.String())
		case protoreflect.BoolKind:
			fv.SetBool(pv.Bool())
		default:
			panic(fmt.Sprintf("jobspec: proto field %s has kind %s, which has no conversion", fd.FullName(), fd.Kind()))
		}
	}
}

// ValidateProto validates the spec p describes: FromProto, then Validate,
// with the error told in proto field names (Explain with Fields:
// "model.rho = 1.5 out of range (0, 1)"). The rule is the one `dsae train`
// applies to the same settings.
func ValidateProto(p *pb.JobSpec) error {
	s := FromProto(p)
	return Explain(s.Validate(), Fields)
}

// Rules gives the coordinator the model's view of a proto spec without the
// coordinator importing sae: cmd/dsae sets coordinator.Config.JobSpecs to
// Rules{}. It has no state and is safe for concurrent use.
type Rules struct{}

// Steps returns the steps the spec p trains for on a dataset of rows rows
// (Spec.StepsFor).
func (Rules) Steps(p *pb.JobSpec, rows int64) int64 {
	s := FromProto(p)
	return s.StepsFor(rows)
}

// Validate is ValidateProto.
func (Rules) Validate(p *pb.JobSpec) error { return ValidateProto(p) }

// CheckData refuses a sigmoid-output model on data its manifest shows to
// leave [0, 1] (see CheckStatsRange).
func (Rules) CheckData(p *pb.JobSpec, mean, std []float64) error {
	return CheckStatsRange(FromProto(p).Model.Output, mean, std)
}

// CheckStatsRange reports data that a model with output g cannot
// reconstruct, from per-feature means and population standard deviations:
// values in [0, 1] have a mean in [0, 1] and a standard deviation of at
// most 1/2, so a feature outside either bound proves a sigmoid output
// wrong for the data. `dsae train` and SubmitJob share it.
func CheckStatsRange(output string, mean, std []float64) error {
	if output != sae.OutSigmoid || len(mean) != len(std) {
		return nil
	}
	for j := range mean {
		if mean[j] < 0 || mean[j] > 1 || std[j] > 0.5 {
			return fmt.Errorf("feature %d has mean %g and standard deviation %g, so the data leave [0, 1], "+
				"which a sigmoid output cannot reconstruct: use output linear", j, mean[j], std[j])
		}
	}
	return nil
}
