package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/dataset"
)

// maxSuggestions bounds the names a "did you mean" lists.
const maxSuggestions = 5

// closeNames returns the names of have that are close to want, closest
// first: those within an edit distance of about a third of its length
// (minst → mnist, a transposition counting one edit), then those that begin
// with it (mnist → mnist-test, mnist-train), then those that contain it or
// that it begins with; by distance and name within each group. At most
// maxSuggestions; want itself is never listed.
func closeNames(want string, have []string) []string {
	type cand struct {
		name        string
		group, dist int
	}
	var cs []cand
	limit := max(1, len(want)/3)
	for _, n := range have {
		d := editDistance(want, n)
		switch {
		case n == want:
		case d <= limit:
			cs = append(cs, cand{n, 0, d})
		case strings.HasPrefix(n, want):
			cs = append(cs, cand{n, 1, d})
		case strings.Contains(n, want) || strings.HasPrefix(want, n):
			cs = append(cs, cand{n, 2, d})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.dist, b.dist), strings.Compare(a.name, b.name))
	})
	out := make([]string, 0, min(len(cs), maxSuggestions))
	for _, c := range cs[:min(len(cs), maxSuggestions)] {
		out = append(out, c.name)
	}
	return out
}

// editDistance is the optimal-string-alignment distance between a and b
// in bytes (dataset names are ASCII): insertions, deletions, substitutions
// and transpositions of adjacent bytes count one each.
func editDistance(a, b string) int {
	rows := make([][]int, len(a)+1)
	for i := range rows {
		rows[i] = make([]int, len(b)+1)
		rows[i][0] = i
	}
	for j := range rows[0] {
		rows[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(rows[i-1][j-1]+cost, rows[i-1][j]+1, rows[i][j-1]+1)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, rows[i-2][j-2]+1)
			}
			rows[i][j] = d
		}
	}
	return rows[len(a)][len(b)]
}

// suggestDatasets returns the published datasets close to name, or nil
// when there are none or the store cannot list them.
func suggestDatasets(ctx context.Context, store storage.ObjectStore, name string) []string {
	names, err := dataset.ListDatasets(ctx, store)
	if err != nil {
		return nil
	}
	return closeNames(name, names)
}

// withSuggestions adds to an error of opening dataset name (ref as the
// user wrote it, e.g. --data s3://mnist) what the store does have: the
// close names, or that it has none at all. Other errors are returned as
// they are.
func withSuggestions(ctx context.Context, store storage.ObjectStore, ref, name string, err error) error {
	if !errors.Is(err, dataset.ErrDatasetNotFound) {
		return err
	}
	names, lerr := dataset.ListDatasets(ctx, store)
	switch close := closeNames(name, names); {
	case lerr != nil:
		return fmt.Errorf("%s: %w", ref, err)
	case len(close) > 0:
		return fmt.Errorf("%s: %w; did you mean %s?", ref, err, strings.Join(close, ", "))
	case len(names) == 0:
		return fmt.Errorf("%s: %w; the bucket has no datasets yet (dsae dataset put)", ref, err)
	default:
		return fmt.Errorf("%s: %w; the bucket has %d datasets, none close to %q (dsae dataset ls)", ref, err, len(names), name)
	}
}
