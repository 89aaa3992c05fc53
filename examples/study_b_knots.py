"""Study B, knots: what random 2-[n, n, n]-2 ReLU networks can destroy of a 2-D knot curve.

"A rank decomposition for the topological classification of neural representations" (arXiv
2404.19710) passes 2-D knot curves X through networks 2-[n, n, n]-2 and compares H1 of X with H1
of X relative to the low-rank set A (the inputs whose linear region has low rank), i.e. the
quotient X/A: the Wasserstein distance between the two H1 diagrams falls with the width (median
about 1.2 at n = 2 to about 0.05 at n = 100): wide networks are injective near the data.

Here, with :class:`sktopo.QuotientPersistence`, for widths n in 2..100 and 20 (knot, network)
pairs per width: knots ``(cos(a t) cos(b t), cos(a t) sin(b t))`` (the paper's parametric family
with integer frequencies a, b in 1..3, so that the curves close; 200 values of t, duplicates
removed), networks with PyTorch's default initialisation (``random_relu_mlp``). Three
definitions of A and of the comparison:

- ``sktopo defaults``: low rank = rank below the input dimension (2) at the last ReLU layer,
  each low-rank region collapsed separately, raw diagrams;
- ``paper's choices, level 1``: study B's notebook choices: the output Linear layer counted as
  a ReLU layer (``output_relu=True``), all of A collapsed to one point (``collapse="all"``),
  diagrams divided by their largest finite value (``normalize=True``), low-rank level the data
  manifold's dimension (a curve: ``low_rank=1``);
- ``paper's choices, level 2``: the same with the low-rank level at the input dimension.

The paper's own numbers are not plotted: every curve is computed here.

Prints the median (and quartiles) of the H1 Wasserstein distance between X and X/A per width and
saves ``study_b_knots.png`` in ``--out``. A few minutes on a 2-core CPU; ``--quick`` is seconds.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sktopo import QuotientPersistence  # noqa: E402
from sktopo.nn.random_networks import random_relu_mlp  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import elapsed, example_parser, parse_args, save_figure  # noqa: E402

# the names of the gallery's table (docs/gallery/study_b.md): every curve is computed here
VARIANTS = {
    "sktopo defaults": {},
    "paper's choices, level 1": {"output_relu": True, "collapse": "all", "normalize": True,
                                 "low_rank": 1},
    "paper's choices, level 2": {"output_relu": True, "collapse": "all", "normalize": True},
}


def knot(n_points, a, b, radius=1.0):
    """The paper's parametric knot (a = c, b = d) on n_points values of t, duplicates removed."""
    t = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    X = radius * np.c_[np.cos(a * t) * np.cos(b * t), np.cos(a * t) * np.sin(b * t)]
    # a curve traversed twice (e.g. a = b = 1) would give every point twice
    return np.unique(np.round(X, 12), axis=0)


def run(widths, n_pairs, n_points):
    rows = []
    for width in widths:
        for pair in range(n_pairs):
            rng = np.random.default_rng(pair)
            a, b = rng.integers(1, 4, size=2)
            X = knot(n_points, a, b)
            model = random_relu_mlp(2, [width] * 3, 2, random_state=1000 * width + pair)
            for name, params in VARIANTS.items():
                qp = QuotientPersistence(model, homology_dimensions=(1,), device="cpu",
                                         **params).fit(X)
                rows.append({"width": width, "pair": pair, "variant": name,
                             "frac_low_rank": float(qp.in_low_rank_.mean()),
                             "H1_bars_X": int(qp.table_.loc["M", "H1__n_bars"]),
                             "W1_X_vs_X/A": float(qp.table_.loc["M/A", "H1__wasserstein_to_M"])})
    return pd.DataFrame(rows)


def main():
    parser = example_parser(__doc__, seed=False)
    parser.add_argument("--n-pairs", type=int, default=20, help="(knot, network) pairs per width")
    args = parse_args(parser, quick="seconds: smoke test")

    if args.quick:
        widths, n_pairs, n_points = [2, 10], 2, 80
    else:
        widths, n_pairs, n_points = [2, 3, 5, 10, 25, 50, 100], args.n_pairs, 200
    table = run(widths, n_pairs, n_points)

    stats = table.groupby(["variant", "width"], sort=False)["W1_X_vs_X/A"].describe()
    summary = pd.DataFrame({
        "median": stats["50%"], "q25": stats["25%"], "q75": stats["75%"],
        "frac_low_rank": table.groupby(["variant", "width"], sort=False)["frac_low_rank"].mean(),
    })
    pd.set_option("display.width", 140)
    print(f"H1 Wasserstein distance between X and X/A ({n_pairs} knot/network pairs per width, "
          f"up to {n_points} points per knot)\n")
    print(summary.round(3).to_string())
    print(f"\ntotal time {elapsed():.1f} s")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in VARIANTS:
        part = summary.loc[name]
        line, = axes[0].plot(part.index, part["median"], "o-", label=name)
        axes[0].fill_between(part.index, part["q25"], part["q75"], color=line.get_color(),
                             alpha=0.15)
        axes[1].plot(part.index, part["frac_low_rank"], "o-", label=name)
    axes[0].set(xscale="log", xlabel="width n of 2-[n, n, n]-2", ylabel="W1(H1 of X, H1 of X/A)",
                title="median over knots and networks (band: quartiles)")
    axes[1].set(xscale="log", xlabel="width n", ylabel="fraction of inputs in A",
                title="size of the low-rank set A")
    axes[0].legend(fontsize=8)
    save_figure(fig, args.out, "study_b_knots.png", dpi=110)


if __name__ == "__main__":
    main()
