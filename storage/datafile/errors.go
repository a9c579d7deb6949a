package datafile

import (
	"errors"
	"fmt"
)

// Sentinel errors of package datafile. Test with errors.Is.
var (
	// ErrBadInput marks a problem with data supplied by the user: a missing
	// or malformed file, an unsupported dtype or shape, a ragged or
	// non-numeric CSV, NaN or Inf values, empty input, inconsistent widths.
	// It is the one sentinel for bad user data in dsae: package dataset
	// marks its own (a bad dataset name or ingest option) with it too,
	// through BadInput. The command line maps it to exit
	// code 2.
	ErrBadInput = errors.New("bad input data")
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

// BadInput returns an error whose message is format and args formatted, as
// for fmt.Sprintf, and that wraps ErrBadInput without adding its text: the
// message names the file, the position or the setting at fault. Other
// packages (dataset) use it for their own user errors, so that every one
// has the same form.
func BadInput(format string, args ...any) error { return badInput(format, args...) }
