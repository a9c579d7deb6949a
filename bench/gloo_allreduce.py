#!/usr/bin/python3
"""Gloo reference for `dsae bench allreduce`.

Times torch.distributed's Gloo all_reduce (sum of a float32 tensor) between
--ranks processes on loopback, measured the way `dsae bench allreduce`
measures the dsae ring:

  * before each timed call the ranks pass a barrier (dist.barrier);
  * a call's time is the slowest rank's (all_reduce MAX of the per-rank times);
  * the median over --iters timed calls is reported, after --warmup calls;
  * nccl-tests bandwidths, GB = 1e9 bytes:
        algbw = bytes / time        busbw = algbw * 2(N-1)/N

Each rank process uses one torch thread; OMP_WAIT_POLICY=PASSIVE is set so
idle OpenMP threads do not spin on the shared cores.

Usage (Debian's python3 with python3-torch):

    /usr/bin/python3 bench/gloo_allreduce.py --ranks 4 --bytes 64KiB,16MiB --iters 20 [--json]
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1))


def parse_size(s):
    s = s.strip()
    num, mult = s, 1
    for suffix, m in UNITS:
        if s.endswith(suffix):
            num, mult = s[: -len(suffix)], m
            break
    if not num.isdigit():
        raise argparse.ArgumentTypeError(
            f"size {s!r}: want a non-negative integer with an optional suffix B, KiB, MiB or GiB")
    n = int(num) * mult
    if n % 4:
        raise argparse.ArgumentTypeError(f"size {s!r} must be a multiple of 4 bytes (float32)")
    return n


def format_size(n):
    for suffix, m in UNITS:
        if n >= m and n % m == 0:
            return f"{n // m}{suffix}"
    return f"{n}B"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank, args, port, queue):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=args.ranks)
    results = []
    for size in args.bytes:
        t = torch.full((size // 4,), float(rank + 1) * 1e-3, dtype=torch.float32)
        times = []
        for k in range(args.warmup + args.iters):
            dist.barrier()
            start = time.perf_counter_ns()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            elapsed = time.perf_counter_ns() - start
            if k >= args.warmup:
                times.append(elapsed)
        slowest = torch.tensor(times, dtype=torch.float64)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        med = statistics.median(slowest.tolist())
        algbw = size / med  # bytes per ns = GB/s
        results.append({
            "impl": "gloo", "ranks": args.ranks, "bytes": size, "iters": args.iters,
            "median_us": med / 1e3, "algbw_gbps": algbw,
            "busbw_gbps": algbw * 2 * (args.ranks - 1) / args.ranks,
        })
    dist.destroy_process_group()
    if rank == 0:
        queue.put(results)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--bytes", type=lambda v: [parse_size(s) for s in v.split(",")],
                   default="64KiB,1MiB,16MiB,64MiB")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args()
    if not 1 <= args.ranks <= 64:
        p.error(f"--ranks {args.ranks} out of range [1, 64]")
    if args.iters < 1 or args.warmup < 0:
        p.error("--iters must be >= 1 and --warmup >= 0")

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = free_port()
    procs = [ctx.Process(target=rank_main, args=(r, args, port, queue)) for r in range(args.ranks)]
    for pr in procs:
        pr.start()
    for pr in procs:
        pr.join()
    if any(pr.exitcode != 0 for pr in procs):
        sys.exit("gloo_allreduce: a rank failed: exit codes " + str([pr.exitcode for pr in procs]))
    results = queue.get()
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    print(f"{'ranks':>5}  {'bytes':>6}  {'time/call (µs)':>14}  {'algbw (GB/s)':>12}  {'busbw (GB/s)':>12}")
    for r in results:
        print(f"{r['ranks']:>5}  {format_size(r['bytes']):>6}  {r['median_us']:>14.1f}  "
              f"{r['algbw_gbps']:>12.3f}  {r['busbw_gbps']:>12.3f}")


if __name__ == "__main__":
    main()
