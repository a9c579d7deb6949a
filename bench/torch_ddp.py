#!/usr/bin/python3
"""PyTorch DistributedDataParallel reference for dsae's cluster demo job.

Trains, with N processes on this machine (torch.distributed, backend gloo,
CPU, over loopback), the model that `dsae demo --workers N` trains, and prints
one JSON line with the steady-state training throughput:

    {"procs": N, "samples_per_sec": ..., "step_ms": ..., "threads": T, ...}

Model and loss (DESIGN.md section 2, the same as bench/torch_mnist.py), for a
global batch of m rows x in [0,1]^784:

    a    = sigmoid(W1 x + b1)                      W1: [196, 784]
    xhat = sigmoid(W2 a + b2)                      W2: [784, 196]
    J    = (1/m) sum_i 1/2 ||xhat_i - x_i||^2
         + (lambda/2) (||W1||^2 + ||W2||^2)         lambda = 3e-3, no decay on biases
         + beta sum_j KL(rho || rhohat_j)           rho = 0.1, beta = 3

Adam, lr 3e-3, bias-corrected, constant. The global batch (256 rows) is split
over the N ranks as dsae splits it (order.BatchSlice in storage/order): rank r takes rows
[b*r/N, b*(r+1)/N) of the b rows of the step, so with N = 3 the shares are
85, 85 and 86 rows.

rhohat is the mean activation over the GLOBAL batch, not over a rank's share:
before the loss, each rank does one extra dist.all_reduce (sum) of its
activation sums and its row count packed in one tensor, as dsae all-reduces
its phase-1 statistics before the gradient phase. The rank's own activation
sum stays in the autograd graph and the other ranks' part enters as a
constant, so d rhohat_j / d a_ij = 1/m for the rank's rows. DDP then averages
the gradients over the N ranks, so each rank's loss is scaled to make that
average the gradient of J:

    L_r = (N/m) sum_{i in r} 1/2 ||xhat_i - x_i||^2 + decay + N * beta * sum_j KL(rho || rhohat_j)

(the 1/N of DDP's average undoes the N of the first and last terms; the decay
is the same on every rank). With the same seed, N = 1, 2 and 3 follow the
same trajectory up to float32 rounding. The loss reported as final_loss is J
of the last step's global batch, before its update.

Data: the 60,000 MNIST training images, pixel/255, read from
train-images-idx3-ubyte.gz in MNIST_DIR (default: the copy in this repository,
storage/mnistdata, the GoMNIST files dsae embeds) by the parent process and
shared with the ranks. Each epoch visits the rows in a seeded random order
(torch.randperm; dsae's chunked order differs, which does not change the cost
of a step); a step whose global batch would run past the end of the epoch
takes what is left (96 rows at step 234 of each 235-step epoch), as dsae does.

Timing: --steps S steps in all; the first --warmup W are not timed, then all
ranks pass a barrier and rank 0 times steps W..S-1 (each ends with Adam's
update). samples_per_sec = global rows of the timed steps / their wall time;
step_ms = their mean wall time.

Threads: each rank runs torch with T intra-op threads (--threads-per-proc,
also OMP_NUM_THREADS). The default keeps the total at 2, the cores of the
benchmark machine: T = 2 for one process, T = 1 for two or more (so 3
processes oversubscribe by one thread, as 3 dsae workers on 2 cores do).
Set OMP_WAIT_POLICY=PASSIVE: spinning OpenMP threads steal the cores the
other ranks need.

Usage (Debian's python3 with python3-torch; not a virtualenv's python3):

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_ddp.py --procs 2 --steps 300
    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_ddp.py --procs 3 --steps 300 \
        --threads-per-proc 1 storage/mnistdata

The ranks meet on 127.0.0.1 (a free port chosen by the parent; gloo is bound
to the loopback interface lo unless GLOO_SOCKET_IFNAME is set).
"""

import argparse
import json
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

# The model, its KL term and the MNIST reader are torch_mnist.py's (same folder).
from torch_mnist import SparseAE, kl_sum, read_idx_images

D, HIDDEN = 784, 196
RHO, BETA, LAMBDA, LR = 0.1, 3.0, 3e-3, 3e-3
BATCH = 256


def batch_slice(epoch_len, batch, step, rank, ranks):
    """Positions [lo, hi) of the epoch order that rank reads at step (dsae's order.BatchSlice)."""
    base = step * batch
    if base >= epoch_len:
        return epoch_len, epoch_len
    b = min(batch, epoch_len - base)
    return base + b * rank // ranks, base + b * (rank + 1) // ranks


def pin_rank(rank, procs, per):
    """Binds every thread of this rank to CPUs of its own, as `dsae demo`
    binds its workers: rank r gets the r-th set of `per` CPUs of the mask the
    benchmark started with, when procs·per CPUs are there. Returns the set or
    None."""
    avail = sorted(os.sched_getaffinity(0))
    if procs * per > len(avail):
        return None
    cpus = set(avail[rank * per:(rank + 1) * per])
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:
            pass
    return cpus


def rank_main(rank, args, xtrain, port, results):
    if args.pin:
        pin_rank(rank, args.procs, args.threads_per_proc)
    torch.set_num_threads(args.threads_per_proc)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=args.procs)
    ranks = args.procs
    n = xtrain.shape[0]
    steps_per_epoch = (n + BATCH - 1) // BATCH

    gen = torch.Generator().manual_seed(args.seed)
    module = SparseAE(D, HIDDEN, gen)
    model = torch.nn.parallel.DistributedDataParallel(module)  # broadcasts rank 0's parameters
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=0)

    order_gen = torch.Generator().manual_seed(args.seed + 1)
    perm, perm_epoch = None, -1
    stats = torch.zeros(HIDDEN + 1)  # activation sums, then the row count
    last = None
    t0 = None
    timed_rows = 0
    for step in range(args.steps):
        if step == args.warmup:
            dist.barrier()
            t0 = time.perf_counter()
        epoch, k = divmod(step, steps_per_epoch)
        if epoch != perm_epoch:
            perm, perm_epoch = torch.randperm(n, generator=order_gen), epoch
        lo, hi = batch_slice(n, BATCH, k, rank, ranks)
        x = xtrain[perm[lo:hi]]

        a, xhat = model(x)
        local_sum = a.sum(dim=0)
        stats[:HIDDEN] = local_sum.detach()
        stats[HIDDEN] = x.shape[0]
        dist.all_reduce(stats)  # the one extra all-reduce: global activation sums and rows
        m = stats[HIDDEN].item()
        rhohat = (local_sum + (stats[:HIDDEN] - local_sum.detach())) / m
        rec = 0.5 * torch.sum((xhat - x) ** 2)
        decay = 0.5 * LAMBDA * (torch.sum(module.W1 ** 2) + torch.sum(module.W2 ** 2))
        kl = kl_sum(RHO, rhohat)
        loss = (ranks / m) * rec + decay + ranks * BETA * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP averages the gradients over the ranks
        opt.step()
        if t0 is not None:
            timed_rows += int(m)
        if step == args.steps - 1:
            last = (rec.detach(), decay.detach(), kl.detach(), m)
    elapsed = time.perf_counter() - t0

    rec, decay, kl, m = last
    rec_sum = rec.clone()
    dist.all_reduce(rec_sum)
    final_loss = (rec_sum / m + decay + BETA * kl).item()
    dist.barrier()
    if rank == 0:
        timed = args.steps - args.warmup
        results.put({
            "procs": ranks,
            "samples_per_sec": timed_rows / elapsed,
            "step_ms": 1000 * elapsed / timed,
            "threads": args.threads_per_proc,
            "total_threads": args.threads_per_proc * ranks,
            "steps": args.steps,
            "timed_steps": timed,
            "batch": BATCH,
            "final_loss": final_loss,
            "backend": "gloo",
            "torch_version": torch.__version__,
        })
    dist.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(
        description="PyTorch DDP (gloo, CPU) reference for dsae's demo job: "
                    "784-196-784 sigmoid SAE, KL over the global batch, Adam, batch 256.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("mnist_dir", nargs="?", default=os.path.join(here, "..", "storage", "mnistdata"),
                   help="directory with train-images-idx3-ubyte.gz")
    p.add_argument("--procs", type=int, default=1, help="number of DDP processes N (1 to 64)")
    p.add_argument("--steps", type=int, default=300, help="training steps in all, warm-up included")
    p.add_argument("--warmup", type=int, default=20, help="first steps not timed (0 <= W < --steps)")
    p.add_argument("--threads-per-proc", type=int, default=0,
                   help="torch threads per process; 0 = 2 for one process, 1 for more (2 cores in all)")
    p.add_argument("--seed", type=int, default=1, help="seed for init and data order")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                   help="bind each process to CPUs of its own when procs × threads fit on the CPUs "
                        "(what `dsae demo` does with its workers)")
    args = p.parse_args(argv)
    if not 1 <= args.procs <= 64:
        p.error(f"--procs must be in [1, 64], got {args.procs}")
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    if not 0 <= args.warmup < args.steps:
        p.error(f"--warmup must be in [0, --steps), got {args.warmup} with --steps {args.steps}")
    if args.threads_per_proc < 0:
        p.error(f"--threads-per-proc must be >= 0, got {args.threads_per_proc}")
    if args.threads_per_proc == 0:
        args.threads_per_proc = 2 if args.procs == 1 else 1

    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print("warning: OMP_WAIT_POLICY=PASSIVE is not set; timings on a shared machine suffer",
              file=sys.stderr)
    os.environ["OMP_NUM_THREADS"] = str(args.threads_per_proc)  # inherited by the ranks
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")

    path = os.path.join(args.mnist_dir, "train-images-idx3-ubyte.gz")
    try:
        xtrain = torch.from_numpy(read_idx_images(path))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    xtrain.share_memory_()

    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.spawn(rank_main, args=(args, xtrain, free_port(), results), nprocs=args.procs, join=True)
    print(json.dumps(results.get()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
