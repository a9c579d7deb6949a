package artifact

import "errors"

// Sentinel errors of package artifact. Test with errors.Is. A missing
// checkpoint or model is storage.ErrNotFound; the client's other errors
// (storage.ErrUnreachable, ...) pass through, wrapped.
var (
	// ErrCorrupt: a checkpoint or model read back does not match what was
	// recorded when it was written (its size or SHA-256), or its commit
	// marker, header or manifest is malformed. It is the counterpart of
	// dataset.ErrCorrupt for a job's artifacts, and a value of its own so
	// that errors.Is tells which kind of object failed its check (its
	// message is "checksum mismatch", the dataset's "dataset data
	// corrupt").
	ErrCorrupt = errors.New("checksum mismatch")
	// ErrInvalidJobID: a job ID is empty, too long, or holds characters
	// other than letters, digits, '.', '_' and '-'.
	ErrInvalidJobID = errors.New("invalid job ID")
	// ErrModelExists: the destination of a model pull already exists and
	// overwriting was not asked for.
	ErrModelExists = errors.New("destination already exists")
)
