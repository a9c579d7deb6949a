#!/usr/bin/python3
"""PyTorch reference for dsae's optimizer benchmarks (sae/optim_bench_test.go).

Times one optimizer step on a single flat float32 parameter tensor of n
elements with a fixed gradient, the same work as BenchmarkSGD, BenchmarkMomentum,
BenchmarkAdam and BenchmarkAdamClip (clip_grad_norm_ with a max_norm that never
triggers, then Adam) at n=308308 and
n=3211264, and prints one line per case in `go test -bench` style with
params/s, the median of --repeats timed blocks.

Usage (Debian's python3 with python3-torch):

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_optim.py --threads 2
"""

import argparse
import statistics
import sys
import time

import torch


def make_step(kind, p):
    if kind == "SGD":
        opt = torch.optim.SGD([p], lr=1e-3)
    elif kind == "Momentum":
        opt = torch.optim.SGD([p], lr=1e-3, momentum=0.9)
    else:
        opt = torch.optim.Adam([p], lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    if kind == "AdamClip":
        def step():
            torch.nn.utils.clip_grad_norm_([p], 1e30)
            opt.step()
        return step
    return opt.step


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--iters", type=int, default=20, help="steps per timed block")
    ap.add_argument("--repeats", type=int, default=5, help="timed blocks; the median is reported")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(1)
    for kind in ("SGD", "Momentum", "Adam", "AdamClip"):
        for n in (2 * 784 * 196 + 784 + 196, 784 * 4096):
            p = torch.nn.Parameter(torch.rand(n, generator=gen) * 2 - 1)
            p.grad = (torch.rand(n, generator=gen) * 2 - 1) * 1e-3
            step = make_step(kind, p)
            for _ in range(3):
                step()
            rates = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for _ in range(args.iters):
                    step()
                dt = time.perf_counter() - t0
                rates.append(n * args.iters / dt)
            med = statistics.median(rates)
            print(f"Torch{kind}/n={n}-{args.threads}\t{args.iters}\t{n / med * 1e9:.0f} ns/op\t{med:.4g} params/s",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
