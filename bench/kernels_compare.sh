#!/usr/bin/env bash
# Compares the matrix kernels of the default build (sae/internal/kernels)
# with the OpenBLAS build and PyTorch CPU (2 threads), and prints, from one
# invocation: GEMM GFLOP/s for the step's products and samples/s of the
# training step, kernels vs OpenBLAS (sae.BenchmarkVsOpenBLAS: both in one
# process, alternating call by call, the ratio robust to the machine's
# load), the micro-kernels' single-core GFLOP/s, and samples/s of the step
# of the default build vs PyTorch (and gonum's pure Go), medians of rounds.
# Each round runs every case on every side back to back, so that both sides
# of a ratio see about the same machine load.
#
#   bench/kernels_compare.sh              # COUNT=3 rounds
#   COUNT=5 BENCHTIME=2s bench/kernels_compare.sh
#
# OpenBLAS picks its kernel from OPENBLAS_CORETYPE when set (the script only
# reports it). Needs: go, libopenblas-dev, /usr/bin/python3 with torch.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-3}
BENCHTIME=${BENCHTIME:-1s}
THREADS=${THREADS:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores, GOMAXPROCS=${GOMAXPROCS:-unset}, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
go test -c -o "$out/kernels.test" ./sae/
go test -c -tags openblas -o "$out/openblas.test" ./sae/
go test -c -tags gonumblas -o "$out/gonum.test" ./sae/
go test -c -o "$out/micro.test" ./sae/internal/kernels/
CASES="kl/d=784,h=196,B=256 kl/d=512,h=4096,B=1024 topk/k=32/d=784,h=196,B=256 topk/k=32/d=512,h=4096,B=1024"
for r in $(seq "$COUNT"); do
	echo "# round $r/$COUNT, load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	(cd sae && "$out/openblas.test" -test.run '^$' -test.bench '^BenchmarkVsOpenBLAS$' \
		-test.benchtime 20x) >>"$out/vs.txt"
	"$out/micro.test" -test.run '^$' -test.bench '^BenchmarkMicro$' -test.cpu 1 \
		-test.benchtime 0.3s >>"$out/micro.txt"
	for c in $CASES; do
		pat="^BenchmarkStep\$/^${c//\//\$/^}\$"
		for side in kernels openblas gonum; do
			(cd sae && "$out/$side.test" -test.run '^$' -test.bench "$pat" \
				-test.benchtime "$BENCHTIME") >>"$out/step-$side.txt"
		done
		OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="$THREADS" /usr/bin/python3 bench/torch_step.py \
			--threads "$THREADS" --repeats 1 --case "$c" >>"$out/torch.txt"
	done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

/usr/bin/python3 - "$out" <<'PY'
import re, statistics, sys, os
out = sys.argv[1]
med = statistics.median

def rates(name, unit):
    r = {}
    for line in open(os.path.join(out, name)):
        m = re.match(r"Benchmark(\S+?)(-\d+)?\s+\d+\s+.*?([\d.]+) " + re.escape(unit), line)
        if m:
            r.setdefault(m.group(1), []).append(float(m.group(3)))
    return r

def fmt(v):
    return " ".join(f"{x:.0f}" for x in v)

vs = {}
for line in open(os.path.join(out, "vs.txt")):
    m = re.match(r"BenchmarkVsOpenBLAS/(\S+?)(-\d+)?\s+\d+\s+\S+ ns/op(.*)", line)
    if m:
        f = dict((u, float(v)) for v, u in re.findall(r"([\d.]+) (\S+)", m.group(3)))
        vs.setdefault(m.group(1), []).append(f)
for kind, unit in (("gemm/", "GFLOP/s"), ("step/", "samples/s")):
    print(f"| {kind[:-1]}, in one process ({unit}, median of rounds) | kernels | OpenBLAS | kernels / OpenBLAS: median of rounds (each a median of 20 pairs) |")
    print("|---|---:|---:|---:|")
    for k, fs in vs.items():
        if not k.startswith(kind):
            continue
        kr = [f["kernels-" + unit] for f in fs]
        orr = [f["openblas-" + unit] for f in fs]
        ra = [f["kernels/openblas"] for f in fs]
        print(f"| {k.removeprefix(kind)} | {med(kr):.0f} | {med(orr):.0f} | **{med(ra):.2f}x** ({' '.join(f'{x:.2f}' for x in ra)}) |")
    print()
mk = rates("micro.txt", "GFLOP/s")
print("| micro-kernel, 1 core, panels in L1 (GFLOP/s, median; all) |")
print("|---|")
for k, v in mk.items():
    print(f"| {k.removeprefix('Micro/')}: {med(v):.0f} ({fmt(v)}) |")
print()
sk, so, sg = (rates(f"step-{s}.txt", "samples/s") for s in ("kernels", "openblas", "gonum"))
torch = {}
for line in open(os.path.join(out, "torch.txt")):
    _, name, rate, _ = line.rstrip("\n").split("\t")
    torch.setdefault(name, []).append(float(rate))
print("| step, separate processes (samples/s, median of rounds) | kernels | OpenBLAS | PyTorch | gonum | kernels / OpenBLAS (per round) | kernels / torch (per round) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, t in torch.items():
    k, o, g = sk["Step/" + name], so["Step/" + name], sg["Step/" + name]
    po = [a / b for a, b in zip(k, o)]
    pt = [a / b for a, b in zip(k, t)]
    print(f"| {name} | {med(k):.0f} | {med(o):.0f} | {med(t):.0f} | {med(g):.0f} "
          f"| {med(po):.2f}x ({' '.join(f'{x:.2f}' for x in po)}) | {med(pt):.2f}x ({' '.join(f'{x:.2f}' for x in pt)}) |")
PY
