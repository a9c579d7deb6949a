package main

import (
	"slices"
	"testing"
)

func TestCloseNames(t *testing.T) {
	have := []string{"acts", "cifar-10", "mnist-test", "mnist-train", "my-mnist", "mnist"}
	for _, c := range []struct {
		want string
		got  []string
	}{
		{"mnist", []string{"mnist-test", "mnist-train", "my-mnist"}}, // extensions, then containing names; itself left out
		{"minst", []string{"mnist"}},                                 // a transposition is one edit
		{"mnist-tset", []string{"mnist-test", "mnist"}},              // a typo before a prefix
		{"act", []string{"acts"}},
		{"acts-2", []string{"acts"}},
		{"imagenet", nil},
	} {
		got := closeNames(c.want, have)
		if !slices.Equal(got, c.got) && !(len(got) == 0 && len(c.got) == 0) {
			t.Errorf("closeNames(%q) = %q, want %q", c.want, got, c.got)
		}
	}
	many := []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7"}
	if got := closeNames("a", many); len(got) != maxSuggestions {
		t.Errorf("closeNames lists %d names, want at most %d", len(got), maxSuggestions)
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"minst", "mnist", 1}, {"ca", "abc", 3}, {"mnist", "mnist", 0}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}
