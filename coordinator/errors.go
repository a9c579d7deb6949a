package coordinator

import (
	"errors"
	"fmt"

	"github.com/dsae/dsae/coordinator/client"
)

// Sentinel errors of the coordinator. State-machine and API errors wrap one
// of these with %w so that callers can test them with errors.Is, and the
// gRPC layer maps each to a status code (see grpcCode).
var (
	// ErrInvalidSpec marks a job spec or request field outside its allowed
	// values; the message names the field. Maps to codes.InvalidArgument.
	ErrInvalidSpec = errors.New("invalid argument")
	// ErrNotFound marks an unknown job, worker or coordinator id.
	ErrNotFound = errors.New("not found")
	// ErrStaleGeneration marks a report that names a generation other than
	// the job's current one; such reports are refused, never applied.
	ErrStaleGeneration = errors.New("stale generation")
	// ErrNotMember marks a report from a worker that is not a member of the
	// generation it names.
	ErrNotMember = errors.New("worker is not a member of the generation")
	// ErrTerminal marks a change requested of a job that already completed,
	// failed or was canceled.
	ErrTerminal = errors.New("job has finished")
	// ErrStepBackwards marks a checkpoint older than the job's latest one.
	ErrStepBackwards = errors.New("step goes backwards")
	// ErrBusy marks a worker that is assigned to another job.
	ErrBusy = errors.New("worker is assigned to another job")
	// ErrUnknownCommand marks a raft log entry that this node cannot decode.
	ErrUnknownCommand = errors.New("unknown command")
	// ErrNoLeader marks a write that found no raft leader to serve it.
	ErrNoLeader = errors.New("no raft leader")
	// ErrInvalidConfig marks a Config (or a client setting: Dial, JoinPool)
	// outside its allowed values; the message names the field. It is the
	// same value as client.ErrInvalidConfig, so that one errors.Is test
	// covers the errors of Start and of the client calls it makes.
	ErrInvalidConfig = client.ErrInvalidConfig
)

// FieldError is the type of the errors that refuse one JobSpec field
// (ValidateSpec's, and SubmitJob's dataset checks): Field is the proto
// field's name (batch, max_workers, d), Msg what is wrong with it, so that
// a client can name the field in its own words (cmd/dsae: the flag). It
// unwraps to ErrInvalidSpec; its message is "invalid argument: FIELD: MSG".
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return ErrInvalidSpec.Error() + ": " + e.Field + ": " + e.Msg }

// Unwrap returns ErrInvalidSpec.
func (e *FieldError) Unwrap() error { return ErrInvalidSpec }

// fieldErr builds a *FieldError naming field.
func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}
