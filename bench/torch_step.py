#!/usr/bin/python3
"""Time one sparse-autoencoder training step in PyTorch (CPU), the reference
for sae.BenchmarkStep.

The step is the same model, loss and backward as the Go benchmark: forward,
loss, and backward with torch autograd; the optimizer update is excluded on
both sides. Gradients are dropped (set to None) between steps.

  kl:   a = sigmoid(x W1^T + b1), x_hat = sigmoid(a W2^T + b2),
        J = (1/m) sum 1/2 |x_hat - x|^2 + (lam/2)(|W1|^2 + |W2|^2)
            + beta sum_j KL(rho || rho_hat_j),  rho=0.1, beta=3, lam=3e-3
  topk: z = x W1^T + b1; keep the k=32 largest per row (torch.topk), ReLU,
        scatter into a dense rows x h matrix; x_hat = a W2^T + b2 (linear,
        dense decoder as in the usual PyTorch TopK SAE); J = recon term.

Inputs are uniform [0,1) float32, weights U(+-sqrt(6/(d+h+1))), zero biases.
Prints one tab-separated line per case: torch, case name (as the Go
benchmark names it), median samples/s over the repeats, and all repeats.

Run with 2 threads and a passive OpenMP wait policy, as the comparison
script does:  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_step.py
"""
import argparse
import math
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

SIZES = [(784, 196, 256), (512, 4096, 1024)]


def make(d, h, gen):
    r = math.sqrt(6.0 / (d + h + 1))
    w1 = ((torch.rand(h, d, generator=gen) * 2 - 1) * r).requires_grad_()
    w2 = ((torch.rand(d, h, generator=gen) * 2 - 1) * r).requires_grad_()
    b1 = torch.zeros(h, requires_grad=True)
    b2 = torch.zeros(d, requires_grad=True)
    return [w1, b1, w2, b2]


def step_kl(params, x, rho=0.1, beta=3.0, lam=3e-3):
    w1, b1, w2, b2 = params
    m = x.shape[0]
    a = torch.sigmoid(torch.addmm(b1, x, w1.t()))
    xh = torch.sigmoid(torch.addmm(b2, a, w2.t()))
    recon = 0.5 * (xh - x).pow(2).sum() / m
    rh = a.mean(0)
    kl = (rho * torch.log(rho / rh) + (1 - rho) * torch.log((1 - rho) / (1 - rh))).sum()
    wd = 0.5 * lam * (w1.pow(2).sum() + w2.pow(2).sum())
    loss = recon + beta * kl + wd
    loss.backward()
    return loss


def step_topk(params, x, k=32):
    w1, b1, w2, b2 = params
    m = x.shape[0]
    z = torch.addmm(b1, x, w1.t())
    vals, idx = torch.topk(z, k, dim=1)
    a = torch.zeros_like(z).scatter(1, idx, torch.relu(vals))
    xh = torch.addmm(b2, a, w2.t())
    loss = 0.5 * (xh - x).pow(2).sum() / m
    loss.backward()
    return loss


def bench(kind, d, h, b, steps, repeats):
    gen = torch.Generator().manual_seed(7)
    params = make(d, h, gen)
    x = torch.rand(b, d, generator=gen)
    fn = step_kl if kind == "kl" else step_topk
    for _ in range(3):  # warm up
        fn(params, x)
        for p in params:
            p.grad = None
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn(params, x)
            for p in params:
                p.grad = None
        rates.append(b * steps / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="target time per repeat")
    ap.add_argument("--case", default="", help="run only this case (Go benchmark name, e.g. kl/d=784,h=196,B=256)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for kind in ("kl", "topk"):
        for d, h, b in SIZES:
            name = f"{kind}/d={d},h={h},B={b}" if kind == "kl" else f"{kind}/k=32/d={d},h={h},B={b}"
            if args.case and args.case != name:
                continue
            # calibrate the number of steps per repeat from one timed step
            t0 = time.perf_counter()
            bench(kind, d, h, b, 1, 1)
            per = (time.perf_counter() - t0) / 4
            steps = max(1, int(args.seconds / max(per, 1e-6)))
            med, rates = bench(kind, d, h, b, steps, args.repeats)
            print(f"torch\t{name}\t{med:.1f}\t" + ",".join(f"{r:.1f}" for r in rates), flush=True)


if __name__ == "__main__":
    main()
