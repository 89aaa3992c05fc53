"""The intrinsic-dimension family on manifolds of known dimension, locally and at scale.

Three parts, all on synthetic clouds (no download, no torch):

* a table of the four estimators (PH dimension, TwoNN, TwoNN's maximum-likelihood form with
  decimation error bars, Levina-Bickel MLE) on manifolds whose dimension is known;
* local (per-point) Levina-Bickel estimates on a cloud that is a circle joined to a 3-sphere: the
  local estimates separate the two parts, which one global number cannot;
* many small clouds at once (one cloud of 64 points per "input", as a transformer's tokens):
  time per cloud of each estimator, computed as batches.

Prints the tables and saves ``intrinsic_dimension_family.png`` in ``--out``. Well under a
minute on a CPU.
"""

import argparse
import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.pipeline import make_union  # noqa: E402

from sktopo import (MLEDimension, PHDimension, TwoNN, TwoNNLikelihood,  # noqa: E402
                    local_dimension)
from sktopo.datasets import make_closed_curve, make_sphere, make_torus  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import save_figure  # noqa: E402


def estimators(seed):
    return make_union(
        PHDimension(random_state=seed),
        TwoNN(),
        TwoNNLikelihood(data_fraction=0.25, random_state=seed),
        MLEDimension(n_neighbors=20),
        verbose_feature_names_out=False,  # every column name is already unique
    ).set_output(transform="pandas")


def manifold_table(n_points, seed):
    cases = {
        "closed curve in R^30 (1)": make_closed_curve(n_points, ambient_dim=30, random_state=seed),
        "2-sphere in R^3 (2)": make_sphere(n_points, 2, random_state=seed),
        "torus in R^3 (2)": make_torus(n_points, random_state=seed),
        "3-sphere in R^20 (3)": make_sphere(n_points, 3, ambient_dim=20, random_state=seed),
        "5-sphere in R^20 (5)": make_sphere(n_points, 5, ambient_dim=20, random_state=seed),
    }
    table = estimators(seed).fit_transform(pd.Series(cases))
    columns = {"phdim": "PHdim", "phdim_std": "+-", "twonn": "TwoNN",
               "twonn_ml": "TwoNN ML", "twonn_ml_std": "+-", "mle": "MLE",
               "mle_local_q10": "local q10", "mle_local_q90": "local q90"}
    table = table[list(columns)].rename(columns=columns)
    return table


def two_part_cloud(n_points, seed):
    """A circle (dimension 1) and a 3-sphere (dimension 3), touching, in R^8."""
    rng = np.random.default_rng(seed)
    half = n_points // 2
    angle = rng.uniform(0, 2 * np.pi, half)
    circle = np.zeros((half, 8))
    circle[:, 0], circle[:, 1] = 1 + np.cos(angle), np.sin(angle)
    sphere = np.zeros((n_points - half, 8))
    sphere[:, 2:6] = make_sphere(n_points - half, 3, random_state=seed)
    sphere[:, 0] -= 1
    return np.vstack([circle, sphere]), np.r_[np.zeros(half), np.ones(n_points - half)]


def many_clouds(count, seed):
    rng = np.random.default_rng(seed)
    frame = rng.normal(size=(5, 384)) / np.sqrt(5)
    clouds = [make_sphere(64, 4, random_state=seed + i) @ frame + 0.01 * rng.normal(size=(64, 384))
              for i in range(count)]
    rows = []
    for estimator in (PHDimension(random_state=seed), TwoNN(), TwoNNLikelihood(),
                      MLEDimension()):
        start = time.perf_counter()
        values = estimator.fit_transform(clouds)[:, 0]
        seconds = time.perf_counter() - start
        rows.append({"estimator": type(estimator).__name__,
                     "ms per cloud": 1e3 * seconds / count,
                     "median estimate": float(np.nanmedian(values))})
    return pd.DataFrame(rows).set_index("estimator")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "output"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="fewer points and clouds")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    n_points = 800 if args.quick else 2000
    pd.set_option("display.width", 140)
    pd.set_option("display.precision", 2)

    print(f"== four estimators on manifolds of known dimension (truth in brackets), "
          f"{n_points} points ==")
    print(manifold_table(n_points, args.seed).to_string())

    X, part = two_part_cloud(n_points, args.seed)
    local = local_dimension(X, n_neighbors=20)
    print("\n== local Levina-Bickel estimates on a circle joined to a 3-sphere ==")
    for value, name in ((0, "circle (1)"), (1, "3-sphere (3)")):
        q = np.quantile(local[part == value], [0.1, 0.5, 0.9])
        print(f"{name:<14} median {q[1]:.2f}   10%-90%: {q[0]:.2f} - {q[2]:.2f}")
    print(f"one global MLE for the whole cloud: {1 / np.mean(1 / local):.2f}")

    count = 300 if args.quick else 2000
    print(f"\n== {count} clouds of 64 points in R^384 (a 4-sphere plus noise), batched ==")
    print(many_clouds(count, args.seed).to_string())

    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(0, 6, 49)
    ax.hist(local[part == 0], bins=bins, alpha=0.6, label="circle points (dimension 1)")
    ax.hist(local[part == 1], bins=bins, alpha=0.6, label="3-sphere points (dimension 3)")
    ax.set_xlabel("local intrinsic dimension (Levina-Bickel, k = 20)")
    ax.set_ylabel("points")
    ax.legend()
    save_figure(fig, args.out, "intrinsic_dimension_family.png", dpi=120)


if __name__ == "__main__":
    main()
