#!/usr/bin/env bash
# Compares `dsae bench allreduce` with torch.distributed Gloo all_reduce
# (bench/gloo_allreduce.py) on this machine: same ranks, sizes, iterations
# and timing method, runs interleaved so that both see the same load. Prints
# the per-configuration median over --runs runs (each run reports the
# median over --iters calls) and the busbw ratio dsae/Gloo.
#
# Usage: bench/allreduce_compare.sh [--runs 3] [--iters 20] [--ranks "2 4"]
#                                   [--bytes 64KiB,1MiB,16MiB,64MiB] [--markdown]
set -euo pipefail

runs=3 iters=20 ranks="2 4" sizes="64KiB,1MiB,16MiB,64MiB" markdown=0
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs="$2"; shift 2 ;;
	--iters) iters="$2"; shift 2 ;;
	--ranks) ranks="$2"; shift 2 ;;
	--bytes) sizes="$2"; shift 2 ;;
	--markdown) markdown=1; shift ;;
	*) echo "allreduce_compare: unknown argument $1" >&2; exit 2 ;;
	esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/dsae" ./cmd/dsae)
py=/usr/bin/python3

echo "load before: $(uptime)" >&2
for run in $(seq 1 "$runs"); do
	for n in $ranks; do
		echo "run $run/$runs, $n ranks" >&2
		"$tmp/dsae" bench allreduce --ranks "$n" --bytes "$sizes" --iters "$iters" --json >"$tmp/dsae-$n-$run.json"
		OMP_WAIT_POLICY=PASSIVE "$py" "$root/bench/gloo_allreduce.py" --ranks "$n" --bytes "$sizes" \
			--iters "$iters" --json >"$tmp/gloo-$n-$run.json"
	done
done
echo "load after: $(uptime)" >&2

"$py" - "$tmp" "$markdown" <<'PY'
import glob, json, os, statistics, sys

tmp, markdown = sys.argv[1], sys.argv[2] == "1"
times = {}  # (impl, ranks, bytes) -> [median_us per run]
for path in glob.glob(os.path.join(tmp, "*.json")):
    for r in json.load(open(path)):
        times.setdefault((r["impl"], r["ranks"], r["bytes"]), []).append(r["median_us"])

def fmt_size(n):
    for suffix, m in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= m and n % m == 0:
            return f"{n // m}{suffix}"
    return f"{n}B"

def busbw(n, size, us):
    return size / (us * 1e3) * 2 * (n - 1) / n

head = ["ranks", "bytes", "dsae µs/call", "Gloo µs/call", "dsae busbw GB/s", "Gloo busbw GB/s", "ratio dsae/Gloo"]
rows = []
for (impl, n, size) in sorted(k for k in times if k[0] == "dsae"):
    d = statistics.median(times[("dsae", n, size)])
    g = statistics.median(times[("gloo", n, size)])
    rows.append([str(n), fmt_size(size), f"{d:.0f}", f"{g:.0f}",
                 f"{busbw(n, size, d):.3f}", f"{busbw(n, size, g):.3f}", f"{g / d:.2f}x"])
if markdown:
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
else:
    w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w[i]) for i, h in enumerate(head)))
    for r in rows:
        print("  ".join(c.rjust(w[i]) for i, c in enumerate(r)))
PY
