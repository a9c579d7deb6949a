package worker

import (
	"fmt"

	pb "github.com/dsae/dsae/coordinator/controlpb"
	"github.com/dsae/dsae/worker/jobspec"
)

// jobSpec returns the spec of a job for a dataset of rows rows of
// dimension d: d is filled in when the coordinator did not know it, steps
// from epochs, and the whole is validated by sae's own rules (the ones the
// coordinator applied at submission).
func jobSpec(p *pb.JobSpec, d int, rows int64) (jobspec.Spec, error) {
	s := jobspec.FromProto(p)
	if s.Model.D == 0 {
		s.Model.D = d
	}
	if s.Model.D != d {
		return s, fmt.Errorf("%w: the spec says d = %d but dataset %s has d = %d", ErrInvalidConfig, s.Model.D, s.Data, d)
	}
	if int64(s.Batch) > rows {
		return s, fmt.Errorf("%w: batch = %d exceeds the %d rows of dataset %s", ErrInvalidConfig, s.Batch, rows, s.Data)
	}
	s.Steps = s.StepsFor(rows)
	if err := s.Validate(); err != nil {
		return s, err
	}
	return s, nil
}
