package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// prepareTrainOut checks, before any data is read or any step is taken,
// that `dsae train` can write its model into dir: dir must be a directory
// (created if missing) that can be written, and empty unless overwrite
// (then the model files in it are replaced, other files left alone). It
// returns a function that removes what it created, for a run that fails
// before writing the model; directories that are no longer empty stay.
// Errors are invalid input (exit 2) and name --out.
func prepareTrainOut(dir string, overwrite bool) (undo func(), err error) {
	undo = func() {}
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return undo, invalid(fmt.Errorf("--out %s is a file, not a directory: choose another --out", dir))
	case err == nil:
		entries, err := os.ReadDir(dir)
		if err != nil {
			return undo, invalid(fmt.Errorf("--out %s: %w", dir, err))
		}
		if len(entries) > 0 && !overwrite {
			return undo, invalid(fmt.Errorf("--out %s is not empty (%s): choose another directory or use --overwrite to replace the model in it",
				dir, listEntries(entries, 3)))
		}
	case errors.Is(err, fs.ErrNotExist):
		created, err := mkdirAllCreated(dir)
		if err != nil {
			return undo, invalid(fmt.Errorf("--out %s cannot be created: %w", dir, err))
		}
		undo = func() {
			for _, d := range created { // deepest first
				os.Remove(d) // only if still empty
			}
		}
	default:
		return undo, invalid(fmt.Errorf("--out %s: %w", dir, err))
	}
	probe, err := os.CreateTemp(dir, ".dsae-write-check-*")
	if err != nil {
		undo()
		return func() {}, invalid(fmt.Errorf("--out %s is not writable: %w", dir, err))
	}
	probe.Close()
	os.Remove(probe.Name())
	return undo, nil
}

// mkdirAllCreated is os.MkdirAll returning the directories it created,
// deepest first.
func mkdirAllCreated(dir string) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return missing, nil
}

// listEntries names up to n of a directory's entries, for messages.
func listEntries(entries []fs.DirEntry, n int) string {
	var names []string
	for _, e := range entries[:min(n, len(entries))] {
		names = append(names, e.Name())
	}
	s := strings.Join(names, ", ")
	if len(entries) > n {
		s += fmt.Sprintf(", … %d entries", len(entries))
	}
	return s
}
