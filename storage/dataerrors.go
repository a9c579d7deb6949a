package storage

import (
	"errors"
	"fmt"
)

// Sentinel errors of the data side of the package (data files, datasets,
// ingest and the training reader). Test with errors.Is.
var (
	// ErrBadInput marks a problem with data supplied by the user: a missing
	// or malformed file, an unsupported dtype or shape, a ragged or
	// non-numeric CSV, NaN or Inf values, empty input, inconsistent widths.
	// The command line maps it to exit code 2.
	ErrBadInput = errors.New("bad input data")

	// ErrDatasetExists is returned by Ingest when the dataset name is taken
	// and overwriting was not asked for. It is not ErrBadInput (the data is
	// fine; the name is taken); the command line maps it to exit code 2.
	ErrDatasetExists = errors.New("dataset already exists")

	// ErrDatasetNotFound is returned when no manifest exists for a name.
	ErrDatasetNotFound = errors.New("dataset not found")

	// ErrCorrupt marks stored dataset data that fails its checksum or a
	// manifest that fails validation.
	ErrCorrupt = errors.New("dataset data corrupt")
)

// inputError is a user-data error: its message names the file and position;
// errors.Is(err, ErrBadInput) holds, as does errors.Is(err, cause).
type inputError struct {
	msg   string
	cause error
}

func (e *inputError) Error() string { return e.msg }

func (e *inputError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrBadInput, e.cause}
	}
	return []error{ErrBadInput}
}

// badInput formats a one-line message and marks it as ErrBadInput.
func badInput(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

// badInputCause is badInput keeping cause reachable by errors.Is/As.
func badInputCause(cause error, format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...), cause: cause}
}
