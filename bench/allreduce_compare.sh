#!/usr/bin/env bash
# Compares `dsae bench allreduce` with torch.distributed Gloo all_reduce
# (bench/gloo_allreduce.py) on this machine: same ranks, sizes, iterations
# and timing method, runs interleaved so that all see the same load. Prints
# the per-configuration median over --runs runs (each run reports the
# median over --iters calls) and the busbw ratio dsae/Gloo of each dsae
# variant:
#
#   unix  the default: bulk byte streams, over Unix sockets between ranks
#         on one host
#   tcp   bulk byte streams over TCP on loopback (--unix=false), the same
#         kind of socket Gloo uses
#   grpc  pieces as gRPC messages (--data-path grpc)
#
# Usage: bench/allreduce_compare.sh [--runs 3] [--iters 20] [--ranks "2 4"]
#                                   [--bytes 64KiB,1MiB,16MiB,64MiB]
#                                   [--variants "unix tcp grpc"] [--markdown]
set -euo pipefail

runs=3 iters=20 ranks="2 4" sizes="64KiB,1MiB,16MiB,64MiB" variants="unix tcp grpc" markdown=0
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs="$2"; shift 2 ;;
	--iters) iters="$2"; shift 2 ;;
	--ranks) ranks="$2"; shift 2 ;;
	--bytes) sizes="$2"; shift 2 ;;
	--variants) variants="$2"; shift 2 ;;
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
		for v in $variants; do
			case "$v" in
			unix) flags=(--unix=true) ;;
			tcp) flags=(--unix=false) ;;
			grpc) flags=(--data-path grpc) ;;
			*) echo "allreduce_compare: unknown variant $v (want unix, tcp or grpc)" >&2; exit 2 ;;
			esac
			"$tmp/dsae" bench allreduce --ranks "$n" --bytes "$sizes" --iters "$iters" "${flags[@]}" --json >"$tmp/dsae_$v-$n-$run.json"
		done
		OMP_WAIT_POLICY=PASSIVE "$py" "$root/bench/gloo_allreduce.py" --ranks "$n" --bytes "$sizes" \
			--iters "$iters" --json >"$tmp/gloo-$n-$run.json"
	done
done
echo "load after: $(uptime)" >&2

"$py" - "$tmp" "$markdown" "$variants" <<'PY'
import glob, json, os, statistics, sys

tmp, markdown, variants = sys.argv[1], sys.argv[2] == "1", sys.argv[3].split()
times = {}  # (impl, ranks, bytes) -> [median_us per run]; impl is "gloo" or a variant
for path in glob.glob(os.path.join(tmp, "*.json")):
    impl = os.path.basename(path).split("-")[0]
    impl = impl.split("_", 1)[1] if impl.startswith("dsae_") else impl
    for r in json.load(open(path)):
        times.setdefault((impl, r["ranks"], r["bytes"]), []).append(r["median_us"])

def fmt_size(n):
    for suffix, m in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= m and n % m == 0:
            return f"{n // m}{suffix}"
    return f"{n}B"

def busbw(n, size, us):
    return size / (us * 1e3) * 2 * (n - 1) / n

head = ["ranks", "bytes", "Gloo µs/call", "Gloo busbw GB/s"]
for v in variants:
    head += [f"dsae {v} µs/call", f"dsae {v} busbw GB/s", f"{v} ÷ Gloo"]
rows = []
for (impl, n, size) in sorted(k for k in times if k[0] == "gloo"):
    g = statistics.median(times[("gloo", n, size)])
    row = [str(n), fmt_size(size), f"{g:.0f}", f"{busbw(n, size, g):.3f}"]
    for v in variants:
        d = statistics.median(times[(v, n, size)])
        row += [f"{d:.0f}", f"{busbw(n, size, d):.3f}", f"{g / d:.2f}x"]
    rows.append(row)
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
