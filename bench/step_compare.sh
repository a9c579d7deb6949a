#!/usr/bin/env bash
# Compares one sparse-autoencoder training step (two phases + finalize, no
# optimizer update) in Go, with the pure-Go BLAS and with OpenBLAS, against
# the same step in PyTorch CPU (2 threads), and prints a table of median
# samples/s with ratios. Everything runs in this one invocation.
#
#   bench/step_compare.sh            # COUNT=5 rounds, 1s per Go case
#   COUNT=3 BENCHTIME=2s bench/step_compare.sh
#
# Needs: go, libopenblas-dev, /usr/bin/python3 with torch (Debian python3-torch).
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-1s}
THREADS=${THREADS:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
go test -c -tags gonumblas -o "$out/gonum.test" ./sae/
go test -c -tags openblas -o "$out/openblas.test" ./sae/
CASES="kl/d=784,h=196,B=256 kl/d=512,h=4096,B=1024 topk/k=32/d=784,h=196,B=256 topk/k=32/d=512,h=4096,B=1024"
# Each round runs every case in Go (OpenBLAS) and PyTorch back to back, so
# that the two sides of a ratio see the same machine load; the slow pure-Go
# build runs once per round.
for r in $(seq "$COUNT"); do
	echo "# round $r/$COUNT, load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	(cd sae && "$out/gonum.test" -test.run '^$' -test.bench 'BenchmarkStep|BenchmarkTopKDecoder' \
		-test.benchtime "$BENCHTIME") >>"$out/gonum.txt"
	(cd sae && "$out/openblas.test" -test.run '^$' -test.bench 'BenchmarkTopKDecoder' \
		-test.benchtime "$BENCHTIME") >>"$out/openblas.txt"
	for c in $CASES; do
		pat="^BenchmarkStep\$/^${c//\//\$/^}\$"
		(cd sae && "$out/openblas.test" -test.run '^$' -test.bench "$pat" \
			-test.benchtime "$BENCHTIME") >>"$out/openblas.txt"
		OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="$THREADS" /usr/bin/python3 bench/torch_step.py \
			--threads "$THREADS" --repeats 1 --case "$c" >>"$out/torch.txt"
	done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

/usr/bin/python3 - "$out" <<'EOF'
import re, statistics, sys, os
out = sys.argv[1]

def go_rates(path):
    rates = {}
    for line in open(path):
        m = re.match(r"Benchmark(\S+?)(-\d+)?\s+\d+\s+.*?([\d.]+) samples/s", line)
        if m:
            rates.setdefault(m.group(1), []).append(float(m.group(3)))
    return rates

med = statistics.median
gonum = go_rates(os.path.join(out, "gonum.txt"))
oblas = go_rates(os.path.join(out, "openblas.txt"))
torch = {}
for line in open(os.path.join(out, "torch.txt")):
    _, name, rate, _ = line.rstrip("\n").split("\t")
    torch.setdefault(name, []).append(float(rate))

print("| step (samples/s, median of rounds) | Go gonum | Go OpenBLAS | PyTorch | OpenBLAS / torch | per-round OpenBLAS / torch (median; all) | gonum / torch |")
print("|---|---:|---:|---:|---:|---|---:|")
for name, t in torch.items():
    g, o = gonum["Step/" + name], oblas["Step/" + name]
    per = [a / b for a, b in zip(o, t)]
    print(f"| {name} | {med(g):.0f} | {med(o):.0f} | {med(t):.0f} | {med(o) / med(t):.2f}x "
          f"| {med(per):.2f}x; {' '.join(f'{r:.2f}' for r in per)} | {med(g) / med(t):.2f}x |")
print()
print("| TopK decoder, full step (samples/s, median of rounds) | Go gonum | Go OpenBLAS |")
print("|---|---:|---:|")
sk = [k for k in oblas if k.startswith("TopKDecoder/sparse")][0]
dk = sk.replace("sparse", "dense")
for key in (sk, dk):
    print(f"| {key.split('/', 1)[1]} | {med(gonum[key]):.0f} | {med(oblas[key]):.0f} |")
print(f"| sparse / dense | {med(gonum[sk]) / med(gonum[dk]):.2f}x | {med(oblas[sk]) / med(oblas[dk]):.2f}x |")
EOF
