"""Benchmark: ReLURankRegions against a per-input Jacobian + matrix_rank loop (and the old engine).

Every case is timed in the same run against its anchors, and the ranks are compared:

- ``loop``: for each input, one float64 ``torch.autograd.functional.jacobian`` of all ReLU
  outputs, then ``numpy.linalg.matrix_rank`` per layer. Timed on a subset of the inputs
  (``--loop-inputs``) and extrapolated linearly to all of them (the table says so);
- ``vloop``: the same loop with ``jacobian(..., vectorize=True)`` (one batched backward pass
  over all output units per input: what a careful user writes), on the same subset;
- ``old engine`` (the conv cases and the 784-wide nets): the engine before the carried factor
  (``vmap(jvp)`` of all d input basis vectors through the whole network per region, then a
  Gram-eigenvalue screen and ``svdvals`` of every ``units x d`` Jacobian), run as it was (its
  chunks are views of the regions' tensor: forward-mode AD then builds tangents over the
  view's whole base, so its cost per region grows with the number of regions), on a subset of
  the regions and extrapolated; and ``fixed``, the same with a copy instead of the view.

ReLURankRegions's ranks must equal the loop's on the loop's subset (and the old engine's on
its subset). Cases (``--cases`` picks some):

- ``mlp10``: 10 -> [100, 100, 100] -> 10, inputs N(0, 2^2);
- ``deep_narrow``: 128 -> [64, 32, 16, 8, 4] -> 10, inputs uniform in [-25, 25]^128;
- ``mlp784``: 784 -> [256, 256, 256] -> 10, inputs uniform in [0, 1]^784 (noise images);
- ``mnist_mlp``: study B's 784-2000-1000-500-100-10, PyTorch default init, noise images;
- ``mnist_mlp_trained``: the same net trained (Adam, a few epochs) on scikit-learn's digits
  upsampled to 28 x 28; inputs: the 1,797 upsampled digits;
- ``conv28``: a 28 x 28 CNN, conv(1->8, 3x3) ReLU avgpool conv(8->16) ReLU avgpool
  linear(784->64) ReLU linear(64->10), noise images;
- ``digits_cnn``: the 1,797 8 x 8 digits through a small CNN (DigitsCNN's layers with an
  average pool instead of the max pool).

``--rss`` also runs the 784 -> [256, 256, 256] net on 10,000 inputs in a fresh process and prints
its peak resident memory. ``--quick`` shrinks every case (a smoke run of a few minutes).

Usage::

    python benchmarks/relu.py --threads 2             # all cases, CPU
    python benchmarks/relu.py --quick                 # smoke run
    python benchmarks/relu.py --cases mnist_mlp --n-inputs 10000 --rss
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

from sktopo.nn._relu_reference import jacobian_ranks
from sktopo.nn.random_networks import random_relu_mlp
from sktopo.nn.relu_rank import ReLURankRegions


# ---------------------------------------------------------------------------- anchors
def old_engine_ranks(est, model, X, k, view=True):
    """The engine before the carried factor, as it was (a copy), on the first k of the inputs
    X (one region each): vmap(jvp) of the d input basis vectors per chunk, Gram screen,
    svdvals. Its chunks are views of the tensor of all inputs, as they were of all regions."""
    from torch.func import jvp, vmap

    from sktopo.nn._relu_network import ReLUTracer

    tracer = ReLUTracer(model, est._relu_module_names, n_calls=len(est.layer_names_))
    _, patterns, _ = tracer.patterns(X[:k])
    d = est.n_features_in_
    ranks = np.zeros((k, len(patterns)), dtype=np.int64)
    chunk = max(1, est.batch_size // d)
    eye = torch.eye(d, dtype=X.dtype).reshape(d, *est.input_shape_)
    for start in range(0, k, chunk):
        stop = min(start + chunk, k)
        x = X[start:stop] if view else X[start:stop].clone()  # a view, as it was
        masks = [p[start:stop].to(X.dtype) for p in patterns]

        def layer_outputs(z, masks=masks):
            outputs = []
            tracer.frozen(z, masks, lambda call, y: outputs.append(y))
            return tuple(outputs)

        tangents = vmap(lambda e, x=x, f=layer_outputs: jvp(f, (x,), (e.expand_as(x),))[1])(eye)
        for call, tangent in enumerate(tangents):
            jac = tangent.reshape(d, stop - start, -1).transpose(0, 1)
            ranks[start:stop, call] = _old_matrix_rank(jac).numpy()
    return ranks


def _old_matrix_rank(matrices):
    k, rows, cols = matrices.shape
    eps = torch.finfo(matrices.dtype).eps
    ranks = torch.zeros(k, dtype=torch.int64)
    gram = (matrices @ matrices.transpose(1, 2) if rows <= cols
            else matrices.transpose(1, 2) @ matrices)
    eig = torch.linalg.eigvalsh(gram)
    bound = 10 * rows * cols * eps * eig[:, -1]
    tol = eig[:, -1].clamp_min(0).sqrt() * (max(rows, cols) * eps)
    full = (eig[:, 0] > bound) & (eig[:, 0] > (2 * tol) ** 2) & (eig[:, -1] > 0)
    ranks[full] = min(rows, cols)
    unsure = torch.nonzero(~full).reshape(-1)
    if unsure.numel():
        s = torch.linalg.svdvals(matrices[unsure])
        ranks[unsure] = (s > s[:, :1] * (max(rows, cols) * eps)).sum(dim=1)
    return ranks


# ---------------------------------------------------------------------------- cases
def upsampled_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images / 16.0, dtype=torch.float32)[:, None]
    big = torch.nn.functional.interpolate(images, size=(28, 28), mode="bilinear",
                                          align_corners=False)
    return big.reshape(len(big), -1).numpy().astype(np.float64), digits.target


def conv28():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(16 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10)).eval()


def digits_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AvgPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(64, 10)).eval()


def make_case(name, n, rng):
    """(description, model, X, n_loop, n_old) for one case; n None -> the case's default."""
    if name == "mlp10":
        model = random_relu_mlp(10, [100, 100, 100], 10, random_state=0)
        X = rng.normal(scale=2.0, size=(n or 10_000, 10))
        return "10 -> [100]*3, N(0, 4)", model, X, 200, 0
    if name == "deep_narrow":
        model = random_relu_mlp(128, [64, 32, 16, 8, 4], 10, random_state=0)
        X = rng.uniform(-25, 25, size=(n or 2_000, 128))
        return "128 -> [64, 32, 16, 8, 4], U[-25, 25]", model, X, 100, 0
    if name == "mlp784":
        model = random_relu_mlp(784, [256, 256, 256], 10, random_state=0)
        X = rng.uniform(0, 1, size=(n or 10_000, 784))
        return "784 -> [256]*3, noise images", model, X, 10, 10
    if name == "mnist_mlp":
        model = random_relu_mlp(784, [2000, 1000, 500, 100], 10, random_state=0)
        X = rng.uniform(0, 1, size=(n or 1_000, 784))
        return "784-2000-1000-500-100-10, init, noise", model, X, 2, 5
    if name == "mnist_mlp_trained":
        from sktopo.nn.models import fit_digits

        model = random_relu_mlp(784, [2000, 1000, 500, 100], 10, random_state=0)
        X, y = upsampled_digits()
        fit_digits(model, X.astype(np.float32), y, epochs=3, lr=1e-3, batch_size=128)
        if n:
            X = X[:n]
        return "784-2000-...-10 trained, digits 28x28", model, X, 2, 5
    if name == "conv28":
        X = rng.uniform(0, 1, size=(n or 100, 1, 28, 28))
        return "28x28 CNN (8, 16 maps), noise", conv28(), X, 2, 2
    if name == "digits_cnn":
        from sklearn.datasets import load_digits

        X = (load_digits().images / 16.0)[:, None]
        if n:
            X = X[:n]
        return "1,797 digits, small CNN (avg pool)", digits_cnn(), X, 10, 20
    raise ValueError(f"unknown case {name!r}")


QUICK = {"mlp10": 2000, "deep_narrow": 500, "mlp784": 300, "mnist_mlp": 40,
         "mnist_mlp_trained": 40, "conv28": 40, "digits_cnn": 300}


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_case(name, n, args, rng):
    desc, model, X, n_loop, n_old = make_case(name, n, rng)
    model = model.double().eval()
    Xt = torch.as_tensor(X, dtype=torch.float64)
    n = len(X)
    est = ReLURankRegions(model, batch_size=args.batch_size)
    est.fit(X[:2])  # warm-up: torch's first forward-mode pass imports and compiles helpers
    t_ours, feats = timed(lambda: est.fit_transform(X))
    ours = np.asarray(feats)[:, 0::4]
    m = min(n_loop if not args.loop_inputs else args.loop_inputs, n)
    t_loop, loop = timed(lambda: jacobian_ranks(model, Xt[:m]))
    jacobian_ranks(model, Xt[:2], vectorize=True)  # warm-up of the batched backward
    t_vloop, vloop = timed(lambda: jacobian_ranks(model, Xt[:m], vectorize=True))
    row = {"case": name, "desc": desc, "inputs": n, "regions": len(est.regions_),
           "ours_s": t_ours, "loop_s": t_loop * n / m, "vloop_s": t_vloop * n / m, "loop_on": m,
           "equal_loop": bool(np.array_equal(ours[:m], loop))
           and bool(np.array_equal(ours[:m], vloop)),
           "min_rank": est.summary_["min_rank"].tolist(),
           "mean_rank": [round(v, 1) for v in est.summary_["mean_rank"]]}
    if n_old and not args.no_old:
        k = min(n_old, n)
        t_old, old = timed(lambda: old_engine_ranks(est, model, Xt, k))
        t_fix, fixed = timed(lambda: old_engine_ranks(est, model, Xt, k, view=False))
        row.update(old_s=t_old * n / k, fix_s=t_fix * n / k, old_on=k,
                   equal_old=bool(np.array_equal(ours[:k], old))
                   and bool(np.array_equal(ours[:k], fixed)))
    return row


def rss_child(n):
    """Fit the 784 -> [256]*3 net on n noise images; print seconds and peak RSS (JSON)."""
    model = random_relu_mlp(784, [256, 256, 256], 10, random_state=0)
    X = np.random.default_rng(0).uniform(0, 1, size=(n, 784))
    seconds, est = timed(lambda: ReLURankRegions(model).fit(X))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB -> GiB
    print(json.dumps({"inputs": n, "seconds": seconds, "peak_rss_gib": peak,
                      "regions": len(est.regions_)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(QUICK))
    parser.add_argument("--n-inputs", type=int, default=None,
                        help="inputs per case (default: each case's own)")
    parser.add_argument("--loop-inputs", type=int, default=None,
                        help="inputs the per-input loop runs on (then extrapolated)")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 avoids oversubscription on a busy machine)")
    parser.add_argument("--quick", action="store_true", help="small inputs: a smoke run")
    parser.add_argument("--no-old", action="store_true", help="skip the old-engine anchor")
    parser.add_argument("--rss", action="store_true",
                        help="peak RSS of 784 -> [256]*3 on 10,000 inputs (a child process)")
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args.rss_child)
        return

    rng = np.random.default_rng(0)
    rows = []
    for name in args.cases:
        n = args.n_inputs or (QUICK[name] if args.quick else None)
        rows.append(run_case(name, n, args, rng))
        r = rows[-1]
        print(f"{name}: {r['inputs']:,} inputs, {r['regions']:,} regions, min rank "
              f"{r['min_rank']}, mean rank {r['mean_rank']}; ranks equal to the loop on "
              f"{r['loop_on']} inputs (both loops): {r['equal_loop']}"
              + (f", to the old engine on {r['old_on']}: {r['equal_old']}" if "old_s" in r
                 else ""), flush=True)

    print(f"\nReLU ranks, float64, {torch.get_num_threads()} torch threads "
          "(loop and old engine extrapolated from the subsets above)\n")
    print(f"{'case':18s} {'inputs':>7s} {'ours s':>9s} {'loop s':>10s} {'loop/ours':>10s} "
          f"{'vloop s':>10s} {'vloop/ours':>10s} {'old s':>10s} {'old/ours':>9s} {'fixed/ours':>11s}  equal")
    for r in rows:
        old = (f"{r['old_s']:>10.1f} {r['old_s'] / r['ours_s']:>9.1f} "
               f"{r['fix_s'] / r['ours_s']:>11.1f}" if "old_s" in r
               else f"{'-':>10s} {'-':>9s} {'-':>11s}")
        equal = r["equal_loop"] and r.get("equal_old", True)
        print(f"{r['case']:18s} {r['inputs']:>7,d} {r['ours_s']:>9.2f} {r['loop_s']:>10.1f} "
              f"{r['loop_s'] / r['ours_s']:>10.1f} {r['vloop_s']:>10.1f} "
              f"{r['vloop_s'] / r['ours_s']:>10.1f} {old}  {equal}")

    if args.rss:
        n = 1_000 if args.quick else 10_000
        cmd = [sys.executable, __file__, "--rss-child", str(n)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        info = json.loads(out.strip().splitlines()[-1])
        print(f"\n784 -> [256]*3 on {info['inputs']:,} inputs in a fresh process: "
              f"{info['seconds']:.1f} s, peak RSS {info['peak_rss_gib']:.2f} GiB, "
              f"{info['regions']:,} regions")


if __name__ == "__main__":
    main()
