"""PHDimension against the published PH-dimension protocols: time and accuracy, same clouds.

Anchors, re-implemented faithfully from the authors' public code:

* Birdal et al. 2021 (``estimate_ph_dim``): one subsample per size in
  ``range(200, 1000, 50)``, ``ripser(subsample)`` with its default
  ``maxdim=1`` (the H1 work is wasted, as in their code), H0 total persistence,
  least-squares slope, ``1 / (1 - m)``.
* Tulchinskii et al. 2023 (``PHD``): sizes ``range(50, 512, 40)``, per subsample
  ``scipy.spatial.distance.cdist`` + their numpy ``prim_tree``, median of 7
  draws per size, slopes of 3 reruns averaged. Their code runs the reruns in
  Python threads; the Prim loop holds the GIL, so they are run one after the
  other here.

Ours: ``sktopo.ph_dimension`` with default settings, ``n_jobs=1``.

Clouds of known dimension: a 5-sphere rotated into R^d (intrinsic dimension 5),
n = 2,000 and 5,000 points, d = 64 and 512. Every method sees the same clouds.

Usage::

    python benchmarks/phdim.py                 # speed + accuracy table (CPU), a few minutes
    python benchmarks/phdim.py --seeds 1       # quicker
    python benchmarks/phdim.py --manifolds     # also truth vs ours vs anchors on small manifolds
    python benchmarks/phdim.py --device cuda   # + a 10,000-point cloud in 4,096 dims on the GPU
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ripser import ripser
from scipy.spatial.distance import cdist

import sktopo
from sktopo.datasets import make_closed_curve, make_sphere, make_torus


# ------------------------------------------------------------------ Birdal et al. 2021 (anchor)
def _birdal_sample_W(W, n_samples):
    random_indices = np.random.choice(W.shape[0], size=n_samples, replace=False)
    return W[random_indices]


def birdal_ph_dim(W, min_points=200, max_points=1000, point_jump=50, h_dim=0):
    test_n = range(min_points, max_points, point_jump)
    lengths = []
    for n in test_n:
        diagrams = ripser(_birdal_sample_W(W, n))["dgms"]  # default maxdim=1, as in their code
        d = diagrams[h_dim]
        d = d[d[:, 1] < np.inf]
        lengths.append((d[:, 1] - d[:, 0]).sum())
    lengths = np.array(lengths)
    x = np.log(np.array(list(test_n)))
    y = np.log(lengths)
    N = len(x)
    m = (N * (x * y).sum() - x.sum() * y.sum()) / (N * (x ** 2).sum() - x.sum() ** 2)
    return 1 / (1 - m)


# ------------------------------------------------------------- Tulchinskii et al. 2023 (anchor)
def _tulchinskii_prim_tree(adj_matrix, alpha=1.0):
    infty = np.max(adj_matrix) + 10
    dst = np.ones(adj_matrix.shape[0]) * infty
    visited = np.zeros(adj_matrix.shape[0], dtype=bool)
    ancestor = -np.ones(adj_matrix.shape[0], dtype=int)
    v, s = 0, 0.0
    for _ in range(adj_matrix.shape[0] - 1):
        visited[v] = 1
        ancestor[dst > adj_matrix[v]] = v
        dst = np.minimum(dst, adj_matrix[v])
        dst[visited] = infty
        v = np.argmin(dst)
        s += adj_matrix[v][ancestor[v]] ** alpha
    return s.item()


def tulchinskii_ph_dim(X, min_points=50, max_points=512, point_jump=40, n_draws=7, n_reruns=3,
                       alpha=1.0):
    test_n = range(min_points, max_points, point_jump)
    slopes = []
    for _ in range(n_reruns):
        lengths = []
        for n in test_n:
            draws = []
            for _ in range(n_draws):
                sub = X[np.random.choice(X.shape[0], size=n, replace=False)]
                draws.append(_tulchinskii_prim_tree(cdist(sub, sub), alpha))
            lengths.append(np.median(draws))
        x = np.log(np.array(list(test_n)))
        y = np.log(np.array(lengths))
        N = len(x)
        slopes.append((N * (x * y).sum() - x.sum() * y.sum()) / (N * (x ** 2).sum() - x.sum() ** 2))
    return 1 / (1 - np.mean(slopes))


# ---------------------------------------------------------------------------------- harness
def ours(X, seed, **params):
    return float(sktopo.ph_dimension(X, random_state=seed, n_jobs=1, **params)["phdim"])


METHODS = {
    "ours": lambda X, seed: ours(X, seed),
    "birdal": lambda X, seed: (np.random.seed(seed), birdal_ph_dim(X))[1],
    "tulchinskii": lambda X, seed: (np.random.seed(seed), tulchinskii_ph_dim(X))[1],
}


def timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def speed_table(sizes, dims, seeds, anchors):
    print("\n== speed and accuracy: 5-sphere rotated into R^d (truth 5), seconds per cloud ==")
    print(f"seeds per setting: {seeds}; times are medians over seeds, estimates mean +- sd")
    header = f"{'n':>6} {'d':>5} | {'method':<12} {'time s':>8} {'estimate':>15} | {'ours faster by':>14}"
    print(header)
    print("-" * len(header))
    ratios = []
    for n in sizes:
        for d in dims:
            clouds = [make_sphere(n, 5, ambient_dim=d, random_state=100 + s) for s in range(seeds)]
            results = {}
            for name in ["ours"] + anchors:
                values, times = [], []
                for s, X in enumerate(clouds):
                    value, seconds = timed(METHODS[name], X, s)
                    values.append(value)
                    times.append(seconds)
                results[name] = (np.median(times), np.mean(values), np.std(values))
            t_ours = results["ours"][0]
            for name, (t, mean, sd) in results.items():
                ratio = "" if name == "ours" else f"{t / t_ours:13.1f}x"
                if name != "ours":
                    ratios.append((n, d, name, t / t_ours))
                print(f"{n:>6} {d:>5} | {name:<12} {t:>8.3f} {mean:>8.3f} +-{sd:5.3f} | {ratio:>14}")
    return ratios


def manifold_table(seeds, anchors, n=2500):
    print(f"\n== accuracy on manifolds of known dimension, {n} points, mean +- sd over {seeds} seeds ==")
    cases = [
        ("2-sphere in R^3", 2, lambda s: make_sphere(n, 2, random_state=s)),
        ("torus in R^3", 2, lambda s: make_torus(n, random_state=s)),
        ("closed curve in R^30", 1, lambda s: make_closed_curve(n, ambient_dim=30, random_state=s)),
        ("3-sphere in R^20", 3, lambda s: make_sphere(n, 3, ambient_dim=20, random_state=s)),
        ("5-sphere in R^64", 5, lambda s: make_sphere(n, 5, ambient_dim=64, random_state=s)),
    ]
    names = ["ours"] + anchors
    print(f"{'cloud':<22} {'truth':>5} | " + " | ".join(f"{m:>15}" for m in names))
    for label, truth, make in cases:
        cells = []
        for name in names:
            values = [METHODS[name](make(200 + s), s) for s in range(seeds)]
            cells.append(f"{np.mean(values):7.3f} +-{np.std(values):5.3f}")
        print(f"{label:<22} {truth:>5} | " + " | ".join(f"{c:>15}" for c in cells))


def cuda_table(device):
    import torch

    print(f"\n== {device}: a 10,000-point cloud in 4,096 dimensions (5-sphere) ==")
    X = make_sphere(10_000, 5, ambient_dim=4096, random_state=0).astype(np.float32)
    for label, params in [("default (pool of 2,000 points)", {}),
                          ("all 10,000 points (max_points=10000)", {"max_points": 10_000})]:
        ours(X[:500], 0, device=device, **params)  # warm-up: CUDA context, kernels
        torch.cuda.synchronize()
        start = time.perf_counter()
        value = ours(X, 0, device=device, **params)
        torch.cuda.synchronize()
        print(f"{label:<40} {time.perf_counter() - start:7.3f} s   phdim {value:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--seeds", type=int, default=3, help="clouds per setting")
    parser.add_argument("--anchors", nargs="+", default=["birdal", "tulchinskii"])
    parser.add_argument("--manifolds", action="store_true", help="also the small-manifold accuracy table")
    parser.add_argument("--device", default=None, help="also time a 10k x 4096 cloud on this torch device")
    args = parser.parse_args()

    ratios = speed_table(args.sizes, args.dims, args.seeds, args.anchors)
    print("\n== ratios (anchor time / our time; targets: birdal >= 10x, tulchinskii >= 5x) ==")
    for n, d, name, ratio in ratios:
        print(f"n={n:<5} d={d:<4} {name:<12} {ratio:6.1f}x")
    if args.manifolds:
        manifold_table(args.seeds, args.anchors)
    if args.device:
        cuda_table(args.device)


if __name__ == "__main__":
    main()
