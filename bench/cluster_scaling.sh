#!/usr/bin/env bash
# Scaling on one machine: `dsae demo --workers 2` (each worker's kernels on
# one core, --threads 1) against `dsae demo --workers 1` (both cores), same
# job and global batch, interleaved over --runs rounds. Prints each round's
# samples/s and step-time breakdown (ms per step, from the demo's
# summary.json), then the median ratio.
#
#   bench/cluster_scaling.sh                          # --runs 5 --steps 400
#   bench/cluster_scaling.sh --runs 3 --steps 600 --dsae ./dsae
#
# Needs: go (unless --dsae BIN), python3.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}
RUNS=5
STEPS=400
DSAE=""
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
	--steps) STEPS=${2:?--steps needs a value}; shift 2 ;;
	--dsae) DSAE=${2:?--dsae needs a value}; shift 2 ;;
	-h | --help) usage ;;
	*) echo "cluster_scaling.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
for v in RUNS STEPS; do
	if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
		echo "cluster_scaling.sh: --${v,,} must be a positive integer, got '${!v}'" >&2
		exit 2
	fi
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if [ -z "$DSAE" ]; then
	DSAE="$out/dsae"
	go build -o "$DSAE" ./cmd/dsae
fi

run() { # round workers
	local dir="$out/r$1-w$2"
	if ! "$DSAE" demo --workers "$2" --steps "$STEPS" --out "$dir" >"$dir.log" 2>&1; then
		echo "cluster_scaling.sh: dsae demo --workers $2 failed; its output:" >&2
		tail -n 30 "$dir.log" >&2
		exit 1
	fi
	cut -d' ' -f1 /proc/loadavg >"$dir.load"
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, $RUNS rounds, $STEPS steps, load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for r in $(seq "$RUNS"); do
	if [ $((r % 2)) -eq 1 ]; then run "$r" 2; run "$r" 1; else run "$r" 1; run "$r" 2; fi
done

python3 - "$out" "$RUNS" <<'PY'
import json, os, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])

print("| round | workers | samples/s | data | compute | stats reduce | grad reduce | update | step (ms) | load |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
rate = {1: [], 2: []}
for r in range(1, runs + 1):
    for w in (1, 2):
        d = os.path.join(out, f"r{r}-w{w}")
        s = json.load(open(os.path.join(d, "summary.json")))
        t = s["time_breakdown"]
        rate[w].append(s["samples_per_sec"])
        ms = lambda k: f"{1000 * t[k]:.2f}"
        print(f"| {r} | {w} | {s['samples_per_sec']:.0f} | {ms('data')} | {ms('compute')} | {ms('stats_reduce')} | "
              f"{ms('grad_reduce')} | {ms('update')} | {ms('step')} | {open(d + '.load').read().strip()} |")
per = [a / b for a, b in zip(rate[2], rate[1])]
print()
print("per-round ratio 2 workers / 1 worker:", " ".join(f"{x:.2f}" for x in per))
m1, m2 = statistics.median(rate[1]), statistics.median(rate[2])
print(f"median samples/s: 1 worker {m1:.0f}, 2 workers {m2:.0f}, ratio {m2 / m1:.2f} (median of per-round ratios {statistics.median(per):.2f})")
PY
