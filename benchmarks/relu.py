"""Benchmark: ReLURankRegions against a per-input Jacobian + matrix_rank loop.

Network 10 -> [100, 100, 100] -> 10 (random_relu_mlp, PyTorch default init), inputs N(0, 2^2)
in 10-D. Anchors measured in the same run:

- ``loop``: for each input, one float64 ``torch.autograd.functional.jacobian`` of the three
  ReLU outputs (stacked), then ``numpy.linalg.matrix_rank`` per layer; also with
  ``vectorize=True, strategy="forward-mode"``. Timed on a subset (``--loop-inputs``) and
  extrapolated linearly to all inputs (said so in the table);
- ``vmap``: ``torch.func.vmap(jacfwd)`` over all inputs and a batched ``matrix_rank``, no
  region deduplication (a strong batched baseline).

Ranks of all methods are compared on the loop's subset.

Usage::

    python benchmarks/relu.py                       # CPU, 10,000 inputs
    python benchmarks/relu.py --device cuda         # CUDA, 1,000,000 inputs
"""

import argparse
import time

import numpy as np
import torch

from sktopo.nn.random_networks import random_relu_mlp
from sktopo.nn.relu_rank import ReLURankRegions

WIDTHS = [100, 100, 100]


def relu_outputs(model):
    """A function x -> stacked ReLU outputs (for the anchors)."""
    relus = [i for i, m in enumerate(model) if isinstance(m, torch.nn.ReLU)]

    def f(x):
        outs, h = [], x
        for i, module in enumerate(model):
            h = module(h)
            if i in relus:
                outs.append(h)
        return torch.cat(outs, dim=-1)

    return f


def loop_ranks(model, X, **jacobian_kwargs):
    from torch.autograd.functional import jacobian

    f = relu_outputs(model)
    ranks = np.zeros((len(X), len(WIDTHS)), dtype=int)
    for i, x in enumerate(X):
        J = jacobian(f, x, **jacobian_kwargs).detach().cpu().numpy()
        for layer, rows in enumerate(np.split(J, np.cumsum(WIDTHS)[:-1])):
            ranks[i, layer] = np.linalg.matrix_rank(rows)
    return ranks


def vmap_ranks(model, X, chunk=20000):
    from torch.func import jacfwd, vmap

    f = relu_outputs(model)
    out = []
    for start in range(0, len(X), chunk):
        J = vmap(jacfwd(f))(X[start:start + chunk])
        out.append(torch.stack([torch.linalg.matrix_rank(rows) for rows in
                                torch.split(J, WIDTHS, dim=1)], dim=1))
    return torch.cat(out).cpu().numpy()


def timed(fn, repeat):
    best, result = np.inf, None
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--n-inputs", type=int, default=None,
                        help="default 10,000 on the CPU, 1,000,000 on CUDA")
    parser.add_argument("--loop-inputs", type=int, default=500,
                        help="inputs the per-input loop runs on (then extrapolated)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 avoids oversubscription on a busy machine)")
    args = parser.parse_args()
    n = args.n_inputs or (10_000 if args.device == "cpu" else 1_000_000)
    batch_size = args.batch_size or (4096 if args.device == "cpu" else 262_144)
    if args.threads:
        torch.set_num_threads(args.threads)

    model = random_relu_mlp(10, WIDTHS, 10, dtype="float64", random_state=0).to(args.device)
    X = np.random.default_rng(0).normal(scale=2.0, size=(n, 10))
    Xt = torch.as_tensor(X, device=args.device)

    rows = []
    est = ReLURankRegions(model, device=args.device, batch_size=batch_size)
    t_ours, feats = timed(lambda: est.fit_transform(X), args.repeat)
    ours = feats[:, 0::4]
    rows.append(("ReLURankRegions (float64)", n, t_ours, "measured"))
    est32 = ReLURankRegions(model, device=args.device, batch_size=batch_size, dtype="float32")
    t_32, feats32 = timed(lambda: est32.fit_transform(X), args.repeat)
    rows.append(("ReLURankRegions (float32)", n, t_32, "measured"))

    m = min(args.loop_inputs, n)
    t_loop_sub, loop = timed(lambda: loop_ranks(model, Xt[:m]), 1)
    note = "measured" if m == n else f"extrapolated from {m:,} inputs"
    rows.append(("per-input loop (float64)", n, t_loop_sub * n / m, note))
    t_fwd_sub, loop_fwd = timed(lambda: loop_ranks(model, Xt[:m], vectorize=True,
                                                   strategy="forward-mode"), 1)
    rows.append(("per-input loop, forward-mode jacobian", n, t_fwd_sub * n / m, note))
    vm = min(n, 100_000 if args.device == "cuda" else n)
    t_vmap, vmapped = timed(lambda: vmap_ranks(model, Xt[:vm]), 1)
    rows.append(("vmap(jacfwd) + matrix_rank, no dedup", n, t_vmap * n / vm,
                 "measured" if vm == n else f"extrapolated from {vm:,} inputs"))

    print(f"\nReLU ranks: 10 -> {WIDTHS} -> 10, {n:,} inputs, device {args.device}, "
          f"{torch.get_num_threads()} torch threads")
    print(f"distinct regions: {len(est.regions_):,} ; min rank per layer "
          f"{est.summary_['min_rank'].tolist()} ; mean rank per layer "
          f"{[round(v, 2) for v in est.summary_['mean_rank']]}")
    print(f"ranks equal to the loop on its {m:,} inputs: "
          f"{bool(np.array_equal(ours[:m], loop))} (float64), "
          f"{bool(np.array_equal(feats32[:m, 0::4], loop))} (float32), "
          f"{bool(np.array_equal(loop_fwd, loop))} (forward-mode loop); "
          f"equal to vmap: {bool(np.array_equal(ours[:vm], vmapped))}\n")
    print(f"{'method':40s} {'inputs':>10s} {'seconds':>10s} {'loop/method':>12s} "
          f"{'fwd-loop/method':>16s}  note")
    loop_time, fwd_time = rows[2][2], rows[3][2]
    for name, count, seconds, note in rows:
        print(f"{name:40s} {count:>10,d} {seconds:>10.3f} {loop_time / seconds:>12.1f} "
              f"{fwd_time / seconds:>16.1f}  {note}")


if __name__ == "__main__":
    main()
