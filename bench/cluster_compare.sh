#!/usr/bin/env bash
# Compares dsae's cluster demo with PyTorch DistributedDataParallel on this
# machine: for each N in --procs, `dsae demo --workers N --steps S` against
# bench/torch_ddp.py --procs N --steps S (the same model, loss, optimizer,
# global batch and step count; see that script's docstring), interleaved over
# --runs rounds so that both sides of a ratio see the same machine load, and
# prints a markdown table of median samples/s with the ratio dsae / DDP.
#
#   bench/cluster_compare.sh                               # --runs 3 --steps 300 --procs "1 2 3"
#   bench/cluster_compare.sh --runs 5 --steps 500 --dsae ./dsae
#
# The dsae side is read from DIR/summary.json, which `dsae demo --out DIR`
# writes with at least {"workers": N, "samples_per_sec": ...}. The DDP side
# runs with OMP_WAIT_POLICY=PASSIVE and torch_ddp.py's default threads (2 for
# one process, 1 per process for more; --ddp-threads T overrides). The load
# average is printed with every run: the machine is shared.
#
# Needs: go (unless --dsae BIN), /usr/bin/python3 with torch (Debian
# python3-torch).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}
RUNS=3
STEPS=300
PROCS="1 2 3"
DSAE=""
DDP_THREADS=0
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
	--steps) STEPS=${2:?--steps needs a value}; shift 2 ;;
	--procs) PROCS=${2:?--procs needs a value}; shift 2 ;;
	--dsae) DSAE=${2:?--dsae needs a value}; shift 2 ;;
	--ddp-threads) DDP_THREADS=${2:?--ddp-threads needs a value}; shift 2 ;;
	-h | --help) usage ;;
	*) echo "cluster_compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
for v in RUNS STEPS; do
	if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
		echo "cluster_compare.sh: --${v,,} must be a positive integer, got '${!v}'" >&2
		exit 2
	fi
done
for n in $PROCS; do
	if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
		echo "cluster_compare.sh: --procs must list positive integers, got '$n'" >&2
		exit 2
	fi
done
if ! [[ $DDP_THREADS =~ ^[0-9]+$ ]]; then
	echo "cluster_compare.sh: --ddp-threads must be an integer >= 0, got '$DDP_THREADS'" >&2
	exit 2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if [ -z "$DSAE" ]; then
	DSAE="$out/dsae"
	go build -o "$DSAE" ./cmd/dsae
fi
load() { cut -d' ' -f1-3 /proc/loadavg; }

run_dsae() { # round N
	local dir="$out/dsae-$1-$2"
	echo "# round $1/$RUNS N=$2 dsae demo, load: $(load)" >&2
	if ! "$DSAE" demo --workers "$2" --steps "$STEPS" --out "$dir" >"$dir.log" 2>&1; then
		echo "cluster_compare.sh: dsae demo --workers $2 --steps $STEPS failed; its output:" >&2
		tail -n 30 "$dir.log" >&2
		exit 1
	fi
	if [ ! -f "$dir/summary.json" ]; then
		echo "cluster_compare.sh: dsae demo wrote no $dir/summary.json" >&2
		exit 1
	fi
	cp "$dir/summary.json" "$out/dsae-$1-$2.json"
}
run_ddp() { # round N
	echo "# round $1/$RUNS N=$2 torch DDP, load: $(load)" >&2
	OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_ddp.py --procs "$2" --steps "$STEPS" \
		--threads-per-proc "$DDP_THREADS" storage/mnistdata >"$out/ddp-$1-$2.json"
}

echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores, $RUNS rounds of N in {$PROCS}, $STEPS steps, load: $(load)" >&2
for r in $(seq "$RUNS"); do
	for n in $PROCS; do
		# Alternate which side goes first, so neither always runs on the
		# heels of the other.
		if [ $((r % 2)) -eq 1 ]; then
			run_dsae "$r" "$n"
			run_ddp "$r" "$n"
		else
			run_ddp "$r" "$n"
			run_dsae "$r" "$n"
		fi
	done
done
echo "# load after: $(load)" >&2

/usr/bin/python3 - "$out" "$RUNS" "$STEPS" $PROCS <<'EOF'
import json, os, statistics, sys

out, runs, steps, procs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(n) for n in sys.argv[4:]]
med = statistics.median

def rate(path, key, n):
    with open(path) as f:
        d = json.load(f)
    if d.get(key) != n or not isinstance(d.get("samples_per_sec"), (int, float)):
        sys.exit(f"cluster_compare.sh: {path}: want {key} = {n} and a numeric samples_per_sec, got {d}")
    return float(d["samples_per_sec"])

print(f"| N | dsae demo samples/s | torch DDP samples/s | dsae / DDP | per-round dsae / DDP |")
print("|---:|---:|---:|---:|---|")
for n in procs:
    ds = [rate(os.path.join(out, f"dsae-{r}-{n}.json"), "workers", n) for r in range(1, runs + 1)]
    dd = [rate(os.path.join(out, f"ddp-{r}-{n}.json"), "procs", n) for r in range(1, runs + 1)]
    per = " ".join(f"{a / b:.2f}" for a, b in zip(ds, dd))
    print(f"| {n} | {med(ds):.0f} | {med(dd):.0f} | {med(ds) / med(dd):.2f}x | {per} |")
print()
print(f"Medians of {runs} interleaved rounds, {steps} steps each, global batch 256.")
EOF
