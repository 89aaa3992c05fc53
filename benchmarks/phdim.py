"""PHDimension against the published PH-dimension protocols: time and accuracy, same clouds.

Anchors, re-implemented faithfully from the authors' public code:

* Birdal et al. 2021 (``estimate_ph_dim``): one subsample per size in
  ``range(200, 1000, 50)``, ``ripser(subsample)`` with its default
  ``maxdim=1`` (the H1 work is wasted, as in their code), H0 total persistence,
  least-squares slope, ``1 / (1 - m)``.
* Tulchinskii et al. 2023 (``PHD``): sizes ``range(50, 512, 40)``, per subsample
  ``scipy.spatial.distance.cdist`` + their numpy ``prim_tree``, median of 7
  draws per size, slopes of 3 reruns averaged, one Python thread per rerun
  as in their code.

Ours: ``sktopo.ph_dimension`` with default settings, ``n_jobs=1``.

Clouds of known dimension 5, rotated into R^d: the round 5-sphere, and the flat
5-torus (a product of five unit circles, 10 coordinates). n = 2,000 and 5,000
points, d = 64 and 512. Every method sees the same clouds. The two families pull
the finite-size bias in opposite directions: on the flat torus every protocol
overestimates, most with small subsamples; on the 5-sphere that overestimate
cancels the usual underestimate at small sizes, which favours small subsamples.

Usage::

    python benchmarks/phdim.py                 # speed + accuracy table (CPU), a few minutes
    python benchmarks/phdim.py --seeds 1       # quicker
    python benchmarks/phdim.py --manifolds     # also truth vs ours vs the protocols on manifolds
    python benchmarks/phdim.py --device cuda   # + a 10,000-point cloud in 4,096 dims on the GPU
    python benchmarks/phdim.py --skip-speed --many-clouds   # many small clouds (issue 10.2)
    python benchmarks/phdim.py --skip-speed --many-clouds --many-scale 0.1   # a tenth of them

Many small clouds (``--many-clouds``): one cloud per input, as ``LayerEmbedder(unit="sample")``
makes them: 10,000 clouds of 64 x 384 (MiniLM-like token clouds), 1,400 of 30 x 384, 3,000 of
64 x 192 (ViT patches), each a noisy low-dimensional sphere in a random frame. Ours:
``PHDimension`` and ``TwoNN`` on the whole collection (batched), ``n_jobs`` 1 and 2. Anchors,
timed in the same run on the first ``--anchor-clouds`` clouds: the per-cloud path (the base
class's cloud-by-cloud loop over the same per-cloud functions, as before batching) and, for
TwoNN, a plain scikit-learn ``NearestNeighbors.kneighbors`` loop. The numbers of all paths
are compared on those clouds.
"""

from __future__ import annotations

import argparse
import threading
import time
import warnings

import numpy as np
from ripser import ripser
from scipy.spatial.distance import cdist

import sktopo

# Birdal's sizes put 200 points in up to 512 dimensions, which ripser.py warns about each time
warnings.filterwarnings("ignore", message="The input point cloud has more columns than rows")
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
    ms = np.zeros(n_reruns)

    def single_rerun(thread_id):
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
        ms[thread_id] = (N * (x * y).sum() - x.sum() * y.sum()) / (N * (x ** 2).sum() - x.sum() ** 2)

    # one Python thread per rerun, as in their code
    threads = [threading.Thread(target=single_rerun, args=(i,)) for i in range(n_reruns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 1 / (1 - np.mean(ms))


# ---------------------------------------------------------------------------------- harness
def ours(X, seed, **params):
    return float(sktopo.ph_dimension(X, random_state=seed, n_jobs=1, **params)["phdim"])


METHODS = {
    "ours": lambda X, seed: ours(X, seed),
    # the published protocols run by sktopo's engine (same sizes, draws, reruns, fit)
    "birdal_preset": lambda X, seed: ours(X, seed, protocol="birdal"),
    "tulchinskii_preset": lambda X, seed: ours(X, seed, protocol="tulchinskii"),
    "birdal": lambda X, seed: (np.random.seed(seed), birdal_ph_dim(X))[1],
    "tulchinskii": lambda X, seed: (np.random.seed(seed), tulchinskii_ph_dim(X))[1],
}


def make_flat_torus(n, k=5, ambient_dim=None, random_state=None):
    """Uniform sample of the flat k-torus (S^1)^k in R^(2k), rotated into ``ambient_dim``."""
    rng = np.random.default_rng(random_state)
    angles = rng.uniform(0, 2 * np.pi, size=(n, k))
    X = np.hstack([np.cos(angles), np.sin(angles)])
    if ambient_dim:
        frame, _ = np.linalg.qr(rng.normal(size=(ambient_dim, 2 * k)))
        X = X @ frame.T
    return X


FAMILIES = {
    "5-sphere": lambda n, d, seed: make_sphere(n, 5, ambient_dim=d, random_state=seed),
    "flat 5-torus": lambda n, d, seed: make_flat_torus(n, 5, ambient_dim=d, random_state=seed),
}


def timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def speed_table(sizes, dims, seeds, anchors, families):
    print("\n== speed and accuracy on clouds of dimension 5 rotated into R^d, seconds per cloud ==")
    print(f"{seeds} clouds per family and setting; time: median over all clouds; "
          f"estimate: mean +- sd per family")
    header = (f"{'n':>6} {'d':>5} | {'method':<12} {'time s':>8} | "
              + " | ".join(f"{f:>15}" for f in families) + f" | {'ours faster by':>14}")
    print(header)
    print("-" * len(header))
    ratios = []
    for n in sizes:
        for d in dims:
            clouds = {f: [FAMILIES[f](n, d, 100 + s) for s in range(seeds)] for f in families}
            results = {}
            for name in ["ours"] + anchors:
                times, estimates = [], {}
                for f in families:
                    values = []
                    for s, X in enumerate(clouds[f]):
                        value, seconds = timed(METHODS[name], X, s)
                        values.append(value)
                        times.append(seconds)
                    estimates[f] = (np.mean(values), np.std(values))
                results[name] = (np.median(times), estimates)
            t_ours = results["ours"][0]
            for name, (t, estimates) in results.items():
                ratio = "" if name == "ours" else f"{t / t_ours:13.1f}x"
                if name != "ours":
                    ratios.append((n, d, name, t / t_ours))
                cells = " | ".join(f"{m:7.3f} +-{sd:5.3f}" for m, sd in estimates.values())
                print(f"{n:>6} {d:>5} | {name:<12} {t:>8.3f} | {cells} | {ratio:>14}", flush=True)
    return ratios


def manifold_table(seeds, anchors, n=2500):
    print(f"\n== accuracy on manifolds of known dimension, {n} points, mean +- sd over {seeds} seeds ==")
    cases = [
        ("2-sphere in R^3", 2, lambda s: make_sphere(n, 2, random_state=s)),
        ("torus in R^3", 2, lambda s: make_torus(n, random_state=s)),
        ("closed curve in R^30", 1, lambda s: make_closed_curve(n, ambient_dim=30, random_state=s)),
        ("3-sphere in R^20", 3, lambda s: make_sphere(n, 3, ambient_dim=20, random_state=s)),
        ("5-sphere in R^64", 5, lambda s: make_sphere(n, 5, ambient_dim=64, random_state=s)),
        ("flat 5-torus in R^64", 5, lambda s: make_flat_torus(n, 5, ambient_dim=64, random_state=s)),
    ]
    names = ["ours"] + anchors
    print(f"{'cloud':<22} {'truth':>5} | " + " | ".join(f"{m:>18}" for m in names))
    for label, truth, make in cases:
        cells = []
        for name in names:
            values = [METHODS[name](make(200 + s), s) for s in range(seeds)]
            cells.append(f"{np.mean(values):7.3f} +-{np.std(values):5.3f}")
        print(f"{label:<22} {truth:>5} | " + " | ".join(f"{c:>18}" for c in cells))


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


# ------------------------------------------------------------------------ many small clouds
MANY_WORKLOADS = [  # (clouds, points, coordinates): the per-input studies of issue 10
    (10_000, 64, 384),
    (1_400, 30, 384),
    (3_000, 64, 192),
]


def token_clouds(count, n, d, seed=0):
    """Noisy 4-spheres in a random 5-dimensional frame of R^d, one per input."""
    rng = np.random.default_rng(seed)
    frame = rng.normal(size=(5, d)) / np.sqrt(5)
    return [(make_sphere(n, 4, random_state=seed + i) @ frame
             + 0.01 * rng.normal(size=(n, d))).astype(np.float32) for i in range(count)]


def sklearn_twonn_loop(clouds, discard_fraction=0.1):
    """The obvious TwoNN: scikit-learn's kneighbors per cloud, then Facco's fit."""
    from sklearn.neighbors import NearestNeighbors

    out = []
    for X in clouds:
        r = NearestNeighbors(n_neighbors=2).fit(X).kneighbors()[0]
        mu = np.sort(r[:, 1] / r[:, 0])
        n = len(mu)
        keep = min(int(np.floor(n * (1 - discard_fraction))), n - 1)
        x, y = np.log(mu[:keep]), -np.log(1 - np.arange(1, keep + 1) / n)
        out.append(x @ y / (x @ x))
    return np.array(out)


def per_cloud_path(estimator, clouds):
    """The estimator's cloud-by-cloud loop (the base class's _compute_cells), as before batching."""
    from sktopo._base import CloudTransformer
    from sktopo._collections import check_collection
    from sktopo._seeding import CloudSeeder

    checked = check_collection(clouds).flat()
    seeds = CloudSeeder(estimator.random_state, metric=estimator.metric)  # cloud_seeds' seeds
    labels = [f"row {i}" for i in range(len(checked))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = CloudTransformer._compute_cells(estimator, checked, seeds, labels)
    return np.array([values[estimator._features[0]] for values, _ in results])


def _timed_per_cloud(function, count):
    """``(result, wall seconds per cloud, CPU seconds per cloud of this process)``."""
    cpu, wall = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # slope >= 1 on a few clouds: NaN rows, one warning
        result = function()
    return (result, (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count)


def many_clouds_table(scale, anchor_clouds, jobs):
    from sktopo import PHDimension, TwoNN

    print("\n== many small clouds: ms per cloud; ratios = anchor / ours, measured in the same run ==")
    print("cpu: CPU time of this process (robust on a shared machine; n_jobs=1, all threads);")
    print("wall: elapsed time (n_jobs=2 spreads chunks over two threads)")
    header = (f"{'workload':<19} {'estimator':<11} {'cpu j=1':>8} {'wall j=1':>8} "
              + " ".join(f"{f'wall j={j}':>8}" for j in jobs if j != 1)
              + f" | {'per-cloud':>9} {'sklearn':>8} (cpu) | {'x per-cloud':>11} {'x sklearn':>9}"
              + f" {'max |diff|':>10}")
    print(header)
    print("-" * len(header))
    for count, n, d in MANY_WORKLOADS:
        count = max(anchor_clouds, int(round(count * scale)))
        clouds = token_clouds(count, n, d)
        label = f"{count} x {n} x {d}"
        for make in (lambda j: PHDimension(random_state=0, n_jobs=j), lambda j: TwoNN(n_jobs=j)):
            walls = {}
            for j in jobs:
                table, walls[j], cpu = _timed_per_cloud(
                    lambda: make(j).fit_transform(clouds)[:, 0], count)
                if j == 1:
                    ours, ours_cpu = table, cpu
            few = clouds[:anchor_clouds]
            anchor, _, anchor_cpu = _timed_per_cloud(lambda: per_cloud_path(make(1), few), len(few))
            diff = np.nanmax(np.abs(anchor - ours[:len(few)]))
            name = type(make(1)).__name__
            sk_cpu, ratio_sk = float("nan"), ""
            if name == "TwoNN":
                plain, _, sk_cpu = _timed_per_cloud(lambda: sklearn_twonn_loop(few), len(few))
                ratio_sk = f"{sk_cpu / ours_cpu:8.1f}x"
                diff = max(diff, np.nanmax(np.abs(plain - ours[:len(few)])))
            others = " ".join(f"{1e3 * walls[j]:8.3f}" for j in jobs if j != 1)
            print(f"{label:<19} {name:<11} {1e3 * ours_cpu:8.3f} {1e3 * walls.get(1, np.nan):8.3f} "
                  f"{others} | {1e3 * anchor_cpu:9.3f} {1e3 * sk_cpu:8.3f}       | "
                  f"{anchor_cpu / ours_cpu:10.1f}x {ratio_sk:>9} {diff:10.2e}", flush=True)
    print("target (issue 10.2): PHDimension and TwoNN under 0.5 ms per cloud on 2 cores")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--seeds", type=int, default=3, help="clouds per setting")
    parser.add_argument("--anchors", nargs="+", default=["birdal", "tulchinskii"])
    parser.add_argument("--families", nargs="+", default=["5-sphere"], choices=list(FAMILIES),
                        help="cloud families of the speed table (ripser's H1 on the flat torus "
                             "makes the Birdal anchor very slow)")
    parser.add_argument("--manifolds", action="store_true", help="also the small-manifold accuracy table")
    parser.add_argument("--manifold-seeds", type=int, default=5)
    parser.add_argument("--manifold-methods", nargs="+",
                        default=["birdal_preset", "tulchinskii_preset"],
                        help="published protocols in the manifold table (the anchors themselves: "
                             "birdal tulchinskii; the presets run them on sktopo's engine)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--many-clouds", action="store_true",
                        help="also the many-small-clouds table (PHDimension, TwoNN; issue 10.2)")
    parser.add_argument("--many-scale", type=float, default=1.0,
                        help="fraction of the many-clouds workloads' cloud counts")
    parser.add_argument("--anchor-clouds", type=int, default=300,
                        help="clouds the per-cloud anchors are timed on (per workload)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2],  # 1 must be among them
                        help="n_jobs values of the many-clouds table")
    parser.add_argument("--device", default=None, help="also time a 10k x 4096 cloud on this torch device")
    args = parser.parse_args()

    if not args.skip_speed:
        ratios = speed_table(args.sizes, args.dims, args.seeds, args.anchors, args.families)
        print("\n== ratios (anchor time / our time; targets: birdal >= 10x, tulchinskii >= 5x) ==")
        for n, d, name, ratio in ratios:
            print(f"n={n:<5} d={d:<4} {name:<12} {ratio:6.1f}x")
    if args.many_clouds:
        many_clouds_table(args.many_scale, args.anchor_clouds, args.jobs)
    if args.manifolds:
        manifold_table(args.manifold_seeds, args.manifold_methods)
    if args.device:
        cuda_table(args.device)


if __name__ == "__main__":
    main()
