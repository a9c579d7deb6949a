package dataset

import "errors"

// Sentinel errors of package dataset. Test with errors.Is. Bad user input
// (a dataset name, an ingest option, a local file) is datafile.ErrBadInput;
// the client's errors (storage.ErrNotFound, storage.ErrUnreachable, ...)
// pass through, wrapped.
var (
	// ErrDatasetExists is returned by Ingest when the dataset name is taken
	// and overwriting was not asked for. It is not datafile.ErrBadInput (the
	// data is fine; the name is taken); the command line maps it to exit
	// code 2.
	ErrDatasetExists = errors.New("dataset already exists")

	// ErrDatasetNotFound is returned when no manifest exists for a name.
	ErrDatasetNotFound = errors.New("dataset not found")

	// ErrCorrupt marks stored dataset data that fails its checksum or a
	// manifest that fails validation. artifact.ErrCorrupt is its
	// counterpart for checkpoints and models, a value of its own so that
	// errors.Is tells which kind of object failed its check.
	ErrCorrupt = errors.New("dataset data corrupt")
)
