package main

import (
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	good := map[string]int64{"0": 0, "4": 4, "12B": 12, "64KiB": 64 << 10, "16MiB": 16 << 20, "1GiB": 1 << 30}
	for in, want := range good {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "KiB", "-4", "1.5MiB", "4KB", "16 MiB", "99999999999GiB"} {
		if _, err := parseByteSize(in); err == nil || !strings.Contains(err.Error(), "KiB, MiB or GiB") {
			t.Errorf("parseByteSize(%q): got %v, want a size error", in, err)
		}
	}
	for n, want := range map[int64]string{12: "12B", 64 << 10: "64KiB", 16 << 20: "16MiB", 1 << 30: "1GiB", 3000: "3000B"} {
		if got := formatByteSize(n); got != want {
			t.Errorf("formatByteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestBenchFlagsRejectBadInput(t *testing.T) {
	cases := map[string]benchAllReduceFlags{
		"--ranks 0 out of range":       {ranks: 0, sizes: "4", iters: 1, pieceBytes: "1KiB", lanes: 1, dataPath: "bulk", timeout: 1},
		"multiple of 4":                {ranks: 2, sizes: "6", iters: 1, pieceBytes: "1KiB", lanes: 1, dataPath: "bulk", timeout: 1},
		"--iters 0 out of range":       {ranks: 2, sizes: "4", iters: 0, pieceBytes: "1KiB", lanes: 1, dataPath: "bulk", timeout: 1},
		"--piece-bytes 8 out of range": {ranks: 2, sizes: "4", iters: 1, pieceBytes: "8", lanes: 1, dataPath: "bulk", timeout: 1},
		`--data-path "tcp"`:            {ranks: 2, sizes: "4", iters: 1, pieceBytes: "0", lanes: 1, dataPath: "tcp", timeout: 1},
		"--lanes 17 out of range":      {ranks: 2, sizes: "4", iters: 1, pieceBytes: "1KiB", lanes: 17, dataPath: "bulk", timeout: 1},
	}
	for want, f := range cases {
		if _, _, err := f.parsed(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("flags %+v: got %v, want an error containing %q", f, err, want)
		}
	}
}

// TestSummarise: a call takes as long as its slowest rank; the median of
// those is reported with the nccl-tests bandwidths.
func TestSummarise(t *testing.T) {
	reports := []rankReport{
		{Rank: 0, Times: [][]int64{{1000, 4000, 2000}}},
		{Rank: 1, Times: [][]int64{{3000, 1000, 1000}}},
		{Rank: 2, Times: [][]int64{{1000, 1000, 9000}}},
		{Rank: 3, Times: [][]int64{{1000, 1000, 1000}}},
	}
	res := summarise(reports, []int64{8000}, 3)
	if len(res) != 1 {
		t.Fatalf("got %d results", len(res))
	}
	r := res[0]
	// Slowest per call: 3000, 4000, 9000 ns; median 4000 ns = 4 µs.
	if r.MedianUS != 4 || r.Ranks != 4 || r.Bytes != 8000 {
		t.Fatalf("got %+v, want median 4 µs for 4 ranks and 8000 bytes", r)
	}
	if r.AlgBWGBps != 2 || r.BusBWGBps != 3 { // 8000 B / 4000 ns; 2 * 2*3/4
		t.Fatalf("algbw %g busbw %g, want 2 and 3 GB/s", r.AlgBWGBps, r.BusBWGBps)
	}
}
