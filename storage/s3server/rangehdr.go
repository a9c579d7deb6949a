package s3server

import (
	"strconv"
	"strings"
)

// parseRange interprets an HTTP Range header for an object of size bytes.
// S3 serves one range only. It returns ok=false when the header is absent
// or not a single well-formed byte range, in which case the whole object is
// served (as RFC 9110 asks of an unparsable Range); errInvalidRange when the
// range is well formed but no byte of it lies in the object.
func parseRange(h string, size int64) (start, length int64, ok bool, err *apiError) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, nil
	}
	if first == "" { // suffix: the last N bytes
		n, perr := parseNonNeg(last)
		if perr {
			return 0, 0, false, nil
		}
		if n == 0 || size == 0 {
			return 0, 0, false, errInvalidRange
		}
		if n > size {
			n = size
		}
		return size - n, n, true, nil
	}
	a, perr := parseNonNeg(first)
	if perr {
		return 0, 0, false, nil
	}
	end := size - 1
	if last != "" {
		b, perr := parseNonNeg(last)
		if perr || b < a {
			return 0, 0, false, nil
		}
		if b < end {
			end = b
		}
	}
	if a >= size {
		return 0, 0, false, errInvalidRange
	}
	return a, end - a + 1, true, nil
}

// parseNonNeg parses a decimal of digits only; bad reports a failure.
func parseNonNeg(s string) (n int64, bad bool) {
	if s == "" || len(s) > 19 {
		return 0, true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, true
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err != nil
}
