package client

import "errors"

// Sentinel errors of package client; errors wrap them with %w. Package
// coordinator declares the same values under the same names, so one
// errors.Is test covers a setting refused by either side of the control
// plane.
var (
	// ErrInvalidConfig marks a setting outside its allowed values: a
	// coordinator or gossip address, node metadata, gossip timings. The
	// message names the setting and, for numbers, the allowed range.
	ErrInvalidConfig = errors.New("invalid coordinator configuration")
)
