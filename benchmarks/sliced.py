"""Sliced Wasserstein against exact Wasserstein (order 1) on many diagrams, in the same run.

The diagrams are real ones: ``PersistenceDiagram(dims)`` of ``--n-diagrams``
small noisy clouds (circles, two circles and blobs in R^3, ``--n-points``
points each). Timed, one job each:

* sliced: ``DiagramDistance("sliced_wasserstein", n_directions=...)
  .fit_transform`` -- the full pairwise table of all ``n (n - 1) / 2`` pairs
  (each diagram projected once, pairs compared in vectorised batches);
* exact: ``DiagramDistance("wasserstein")`` (Hungarian algorithm per pair) on a
  table of the first ``--exact-diagrams`` diagrams (default 150, about 11,000
  pairs), extrapolated to all pairs by the per-pair time. Pass
  ``--exact-diagrams`` equal to ``--n-diagrams`` to time the full exact table
  too (about 500,000 pairs for 1,000 diagrams: minutes).

Prints the seconds per pair of each, the (extrapolated) full-table times, the
ratio ``exact / sliced`` per pair (above 1: sliced is faster), and, as a
sanity check, the correlation of the two distances over the exact pairs and
the largest ``SW / W1`` (bounded by ``sqrt(2)``).

Usage::

    python benchmarks/sliced.py                      # 1,000 diagrams
    python benchmarks/sliced.py --n-diagrams 300     # quick
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def make_clouds(n, n_points, seed):
    from sktopo.datasets import make_circle

    rng = np.random.default_rng(seed)
    clouds = []
    for k in range(n):
        kind = k % 3
        if kind == 0:
            x = make_circle(n_points, noise=0.1, random_state=int(rng.integers(1 << 31)))
            x = np.c_[x, 0.05 * rng.normal(size=n_points)]
        elif kind == 1:
            half = n_points // 2
            a = make_circle(half, noise=0.1, random_state=int(rng.integers(1 << 31)))
            b = make_circle(n_points - half, noise=0.1, random_state=int(rng.integers(1 << 31)))
            x = np.c_[np.r_[a, b + 3.0], 0.05 * rng.normal(size=n_points)]
        else:
            x = rng.normal(size=(n_points, 3))
        clouds.append(x * rng.uniform(0.5, 2.0))
    return clouds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-diagrams", type=int, default=1000)
    parser.add_argument("--n-points", type=int, default=30)
    parser.add_argument("--dims", default="0,1", help="homology dimensions, e.g. 1 or 0,1")
    parser.add_argument("--n-directions", type=int, default=50)
    parser.add_argument("--exact-diagrams", type=int, default=150,
                        help="the exact table is timed on this many diagrams, then extrapolated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from sktopo import DiagramDistance, PersistenceDiagram

    dims = tuple(int(q) for q in args.dims.split(","))
    clouds = make_clouds(args.n_diagrams, args.n_points, args.seed)
    diagrams = PersistenceDiagram(dims).fit_transform(clouds)
    sizes = {q: np.mean([len(d.finite(q)) for d in diagrams]) for q in dims}
    print(f"{len(diagrams)} diagrams of clouds of {args.n_points} points; mean finite bars "
          + ", ".join(f"H{q}: {s:.1f}" for q, s in sizes.items()))

    n = len(diagrams)
    n_pairs = n * (n - 1) // 2
    start = time.perf_counter()
    sliced = DiagramDistance("sliced_wasserstein", n_directions=args.n_directions).fit_transform(diagrams)
    t_sliced = time.perf_counter() - start

    m = min(args.exact_diagrams, n)
    m_pairs = m * (m - 1) // 2
    start = time.perf_counter()
    exact = DiagramDistance("wasserstein", order=1).fit_transform(diagrams[:m])
    t_exact = time.perf_counter() - start
    t_exact_all = t_exact / m_pairs * n_pairs

    upper = np.triu_indices(m, 1)
    sw, w1 = sliced[:m, :m][upper], exact[upper]
    ratio = (t_exact / m_pairs) / (t_sliced / n_pairs)
    print(f"sliced Wasserstein ({args.n_directions} directions), all {n_pairs} pairs: "
          f"{t_sliced:.2f} s ({1e6 * t_sliced / n_pairs:.1f} us/pair)")
    extrapolated = "" if m == n else f", extrapolated from {m_pairs} pairs ({m} diagrams)"
    print(f"exact Wasserstein (order 1), all {n_pairs} pairs: {t_exact_all:.2f} s "
          f"({1e6 * t_exact / m_pairs:.1f} us/pair{extrapolated})")
    print(f"ratio exact / sliced per pair: {ratio:.1f}x")
    print(f"Pearson correlation of SW and W1 over {m_pairs} pairs: {np.corrcoef(sw, w1)[0, 1]:.3f}; "
          f"max SW / W1: {np.max(sw / np.where(w1 > 0, w1, np.inf)):.3f} (bound sqrt(2))")


if __name__ == "__main__":
    main()
