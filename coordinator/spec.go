package coordinator

import (
	"context"
	"math"
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dsae/dsae/coordinator/controlpb"
)

// Limits of a job spec. They bound what one coordinator accepts, not what
// the model math could do.
const (
	MaxBatchSize = 1 << 24
	MaxWorkers   = 4096
	MaxNameLen   = 128
)

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)
	// datasetPattern is the store's rule for dataset names.
	datasetPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,99}$`)
)

// ValidateSpec checks the job-level fields of s: name, data, test, batch,
// steps, epochs, min_workers, max_workers and checkpoint_every. The error
// wraps ErrInvalidSpec and names the first offending field, e.g.
// "batch: 0 out of range [1, 16777216]". It is deterministic, so the state
// machine calls it too. The model and optimizer are not the coordinator's
// to check: SubmitJob leaves them to Config.JobSpecs.
func ValidateSpec(s *controlpb.JobSpec) error {
	if s == nil {
		return fieldErr("spec", "missing")
	}
	if len(s.Name) > MaxNameLen || (s.Name != "" && !namePattern.MatchString(s.Name)) {
		return fieldErr("name", "%q: want at most %d of A-Z a-z 0-9 . _ : - starting with a letter or digit", s.Name, MaxNameLen)
	}
	if s.Data == "" {
		return fieldErr("data", "empty: name a dataset in the store")
	}
	for _, d := range []struct{ field, name string }{{"data", s.Data}, {"test", s.Test}} {
		if d.name != "" && (!datasetPattern.MatchString(d.name) || strings.Contains(d.name, "..")) {
			return fieldErr(d.field, "%q: want 1-100 of a-z 0-9 . _ - starting with a letter or digit, no '..'", d.name)
		}
	}
	if s.Batch < 1 || s.Batch > MaxBatchSize {
		return fieldErr("batch", "%d out of range [1, %d]", s.Batch, MaxBatchSize)
	}
	if s.Steps < 0 {
		return fieldErr("steps", "%d is negative", s.Steps)
	}
	if math.IsNaN(s.Epochs) || math.IsInf(s.Epochs, 0) || s.Epochs < 0 {
		return fieldErr("epochs", "%v out of range [0, +inf)", s.Epochs)
	}
	if s.Steps == 0 && s.Epochs == 0 {
		return fieldErr("steps", "steps and epochs are both 0; set one of them")
	}
	if s.MinWorkers < 0 || s.MinWorkers > MaxWorkers {
		return fieldErr("min_workers", "%d out of range [0, %d]", s.MinWorkers, MaxWorkers)
	}
	if s.MaxWorkers < 0 || s.MaxWorkers > MaxWorkers {
		return fieldErr("max_workers", "%d out of range [0, %d]", s.MaxWorkers, MaxWorkers)
	}
	if s.MaxWorkers > 0 && s.MinWorkers > s.MaxWorkers {
		return fieldErr("min_workers", "%d exceeds max_workers %d", s.MinWorkers, s.MaxWorkers)
	}
	if int64(s.MaxWorkers) > s.Batch {
		return fieldErr("max_workers", "%d exceeds batch %d: every worker needs at least one row", s.MaxWorkers, s.Batch)
	}
	if s.CheckpointEvery < 0 {
		return fieldErr("checkpoint_every", "%d is negative", s.CheckpointEvery)
	}
	return nil
}

// completeSpec is SubmitJob's work between the job-level checks and the
// raft write: with cfg.Datasets it checks that data and test exist, sets
// model.d from data's manifest (refusing a d that disagrees, and a batch
// larger than the data) and, with
// cfg.JobSpecs, steps from epochs and the dataset's rows; then it has
// cfg.JobSpecs validate the model and optimizer. Without a dataset checker
// d and steps stay as submitted (0: the worker fills them from the data).
// Errors are gRPC statuses: InvalidArgument naming the field, Unavailable
// when the store cannot answer.
func completeSpec(ctx context.Context, cfg *Config, spec *controlpb.JobSpec) error {
	if spec.Model == nil {
		spec.Model = &controlpb.ModelConfig{}
	}
	if ds := cfg.Datasets; ds != nil {
		var d int64
		for _, ref := range []struct{ field, name string }{{"data", spec.Data}, {"test", spec.Test}} {
			if ref.name == "" {
				continue
			}
			info, found, err := ds.LookupDataset(ctx, ref.name)
			if err != nil {
				return status.Errorf(codes.Unavailable, "checking dataset %q: %v", ref.name, err)
			}
			if !found {
				return toStatus(fieldErr(ref.field, "%q not found in the store%s", ref.name, suggestion(ctx, ds, ref.name)))
			}
			if ref.field == "data" {
				d = int64(info.D)
				if spec.Model.D != 0 && spec.Model.D != d {
					return toStatus(fieldErr("d", "%d disagrees with data %q (d = %d)", spec.Model.D, ref.name, d))
				}
				spec.Model.D = d
				if spec.Batch > info.Rows {
					return toStatus(fieldErr("batch", "%d exceeds the %d rows of data %q", spec.Batch, info.Rows, ref.name))
				}
				if spec.Steps == 0 && cfg.JobSpecs != nil {
					spec.Steps = cfg.JobSpecs.Steps(spec, info.Rows)
				}
				if dr, ok := cfg.JobSpecs.(DataRules); ok && info.Mean != nil {
					if err := dr.CheckData(spec, info.Mean, info.Std); err != nil {
						return toStatus(fieldErr("data", "%q: %v", ref.name, err))
					}
				}
			} else if int64(info.D) != d {
				return toStatus(fieldErr("test", "%q has d = %d but data %q has d = %d", ref.name, info.D, spec.Data, d))
			}
		}
	}
	if cfg.JobSpecs != nil {
		if err := cfg.JobSpecs.Validate(spec); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
	}
	return nil
}

// suggestion is "; did you mean A, B?" with the datasets close to the
// missing name, when ds can suggest them (DatasetSuggester), else "".
func suggestion(ctx context.Context, ds DatasetChecker, name string) string {
	sg, ok := ds.(DatasetSuggester)
	if !ok {
		return ""
	}
	names := sg.SuggestDatasets(ctx, name)
	if len(names) == 0 {
		return ""
	}
	return "; did you mean " + strings.Join(names, ", ") + "?"
}
