"""Study B at laptop scale: where random ReLU networks lose rank.

Reproduces three trends of "A rank decomposition for the topological classification of neural
representations" (arXiv 2404.19710) with one-hidden-layer random networks and 100 inputs drawn
uniformly from [-5, 5]^d:

1. the mean (over random networks) of the minimum rank over the sampled regions rises with the
   width and reaches the input dimension d once the width is well above d (a grid over d and
   width with ``ParameterGrid``, run with joblib);
2. with weights N(mu, 0.1) (d = 10, width 50) the minimum rank falls as the mean weight mu grows;
3. all-positive weights with k rows sign-flipped: the minimum rank follows min(k, width - k, d).

Prints the tables and saves ``study_b_rank_vs_width.png`` in ``--out``. Under a minute on a CPU;
``--quick`` is a few seconds (smoke test).
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402
from sklearn.model_selection import ParameterGrid  # noqa: E402

from sktopo.nn.random_networks import random_relu_mlp, sign_flipped_mlp  # noqa: E402
from sktopo.nn.relu_rank import ReLURankRegions  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import elapsed, example_parser, parse_args, save_figure  # noqa: E402


def min_rank(model, X):
    """Minimum cumulative rank over the regions the inputs fall into (first ReLU layer)."""
    return int(ReLURankRegions(model, batch_size=8192, device="cpu").fit(X)
               .summary_["min_rank"].iloc[-1])


def inputs(d, seed, n=100):
    return np.random.default_rng(seed).uniform(-5, 5, size=(n, d))


def run_width(d, width, n_nets):
    ranks = [min_rank(random_relu_mlp(d, [width], random_state=seed), inputs(d, seed))
             for seed in range(n_nets)]
    return {"d": d, "width": width, "mean_min_rank": np.mean(ranks), "sd": np.std(ranks)}


def run_mean(mu, n_nets, d=10, width=50):
    ranks = [min_rank(random_relu_mlp(d, [width], weight_mean=mu, weight_std=0.1,
                                      random_state=seed), inputs(d, seed))
             for seed in range(n_nets)]
    return {"mu": mu, "mean_min_rank": np.mean(ranks), "sd": np.std(ranks)}


def run_flip(k, n_nets, d=10, width=50):
    ranks = [min_rank(sign_flipped_mlp(d, [width], k, random_state=seed), inputs(d, seed))
             for seed in range(n_nets)]
    return {"k": k, "mean_min_rank": np.mean(ranks), "min(k, width-k, d)": min(k, width - k, d)}


def main():
    parser = example_parser(__doc__, seed=False)
    parser.add_argument("--n-nets", type=int, default=20, help="random networks per setting")
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parse_args(parser)
    if args.quick:
        args.n_nets, args.n_jobs = 2, 1
    parallel = Parallel(n_jobs=args.n_jobs)

    grid = ParameterGrid({"d": [2, 5] if args.quick else [2, 5, 10, 25],
                          "width": [2, 10] if args.quick else [2, 5, 10, 25, 50, 100]})
    width = pd.DataFrame(parallel(delayed(run_width)(n_nets=args.n_nets, **p) for p in grid))
    table = width.pivot(index="width", columns="d", values="mean_min_rank")
    print(f"1. mean minimum rank ({args.n_nets} random nets per cell), one hidden layer:")
    print(table.round(2).to_string(), "\n")

    mus = np.round(np.linspace(0, 0.2, 3 if args.quick else 9), 3)
    mean = pd.DataFrame(parallel(delayed(run_mean)(mu, args.n_nets) for mu in mus))
    print("2. mean minimum rank vs mean weight mu (weights N(mu, 0.1), d=10, width 50):")
    print(mean.round(2).to_string(index=False), "\n")

    ks = [0, 5, 48] if args.quick else [0, 1, 2, 5, 10, 20, 25, 30, 40, 45, 48, 50]
    flip = pd.DataFrame(parallel(delayed(run_flip)(k, max(5, args.n_nets // 4)) for k in ks))
    print("3. all-positive weights, k rows flipped (d=10, width 50):")
    print(flip.round(2).to_string(index=False))
    print(f"\ntotal time {elapsed():.1f} s")

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for d, column in table.items():
        line, = axes[0].plot(table.index, column, "o-", label=f"d = {d}")
        axes[0].axhline(d, color=line.get_color(), ls=":", lw=1)
    axes[0].set(xscale="log", xlabel="width", ylabel="mean minimum rank",
                title="rank vs width (dotted: d)")
    axes[0].legend()
    axes[1].errorbar(mean["mu"], mean["mean_min_rank"], yerr=mean["sd"], fmt="o-")
    axes[1].set(xlabel="mean weight mu", ylabel="mean minimum rank",
                title="rank vs mean weight (d=10, width 50)")
    axes[2].plot(flip["k"], flip["mean_min_rank"], "o-", label="measured")
    axes[2].plot(flip["k"], flip["min(k, width-k, d)"], "k:", label="min(k, width-k, d)")
    axes[2].set(xlabel="rows flipped k", ylabel="mean minimum rank",
                title="sign-flipped positive weights")
    axes[2].legend()
    save_figure(fig, args.out, "study_b_rank_vs_width.png", dpi=110)


if __name__ == "__main__":
    main()
