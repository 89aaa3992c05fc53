"""Study B, Dale's principle: minimum rank against the number of inhibitory inputs.

"A rank decomposition for the topological classification of neural representations" (arXiv
2404.19710) builds networks that obey Dale's principle: the inputs are non-negative and every
presynaptic unit is either excitatory (non-negative outgoing weights) or inhibitory (non-positive
ones, scaled by an inhibition factor). The paper uses a fixed factor of -4 and finds that such
wide but highly non-random networks still lose rank unless excitation and inhibition balance.

Here: one hidden layer of width 50 on d = 10 inputs drawn uniformly from [0, 1]^10 (100 inputs
per network), ``sktopo.nn.random_networks.dale_mlp`` with k = 0..10 inhibitory input columns and
inhibition factors 0.5, 1, 2, 4 (the paper's) and "balanced" (sktopo's default: (d - k) / k, so
that a row's expected sum is 0). For each setting, the mean over random networks of the minimum
rank over the sampled regions, and the same numbers against the inhibition/excitation ratio
``k * factor / (d - k)`` (the ratio of the expected inhibitory to excitatory input of a unit).

Prints the tables and saves ``study_b_dale.png`` in ``--out``. About a minute on a 2-core CPU;
``--quick`` is a few seconds.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sktopo import ReLURankRegions  # noqa: E402
from sktopo.nn.random_networks import dale_mlp  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import elapsed, example_parser, parse_args, save_figure  # noqa: E402

PAPER_FACTOR = 4.0


def min_rank(model, X):
    """Minimum cumulative rank over the regions the inputs fall into (last ReLU layer)."""
    return int(ReLURankRegions(model, device="cpu").fit(X).summary_["min_rank"].iloc[-1])


def run(d, width, ks, factors, n_nets, n_inputs):
    rows = []
    for factor in factors:
        for k in ks:
            ranks = []
            for seed in range(n_nets):
                X = np.random.default_rng(seed).uniform(0, 1, size=(n_inputs, d))
                model = dale_mlp(d, [width], k, inhibition=factor, random_state=seed)
                ranks.append(min_rank(model, X))
            used = factor if factor is not None else ((d - k) / k if k else 1.0)
            rows.append({
                "inhibition": "balanced" if factor is None else f"{factor:g}",
                "k": k,
                "I/E ratio": k * used / (d - k) if k < d else np.inf,
                "mean_min_rank": float(np.mean(ranks)),
                "sd": float(np.std(ranks)),
            })
    return pd.DataFrame(rows)


def main():
    parser = example_parser(__doc__, seed=False)
    parser.add_argument("--n-nets", type=int, default=20, help="random networks per setting")
    args = parse_args(parser)

    d, width = 10, 50
    if args.quick:
        ks, factors, n_nets, n_inputs = [0, 3, 10], [PAPER_FACTOR, None], 2, 50
    else:
        ks, factors = list(range(d + 1)), [0.5, 1.0, 2.0, PAPER_FACTOR, None]
        n_nets, n_inputs = args.n_nets, 100
    table = run(d, width, ks, factors, n_nets, n_inputs)

    pd.set_option("display.width", 140)
    wide = table.pivot(index="k", columns="inhibition", values="mean_min_rank")
    print(f"mean minimum rank ({n_nets} random Dale networks per cell, d = {d}, width {width}, "
          f"{n_inputs} inputs in [0, 1]^{d}); columns: inhibition factor\n")
    print(wide.round(2).to_string(), "\n")
    ratio = table[np.isfinite(table["I/E ratio"])]
    bins = pd.cut(ratio["I/E ratio"], [0, 0.5, 0.9, 1.1, 1.5, 3, np.inf], include_lowest=True)
    print("mean minimum rank by inhibition/excitation ratio k * factor / (d - k):")
    print(ratio.groupby(bins, observed=True)["mean_min_rank"].agg(["mean", "count"]).round(2)
          .to_string())
    print(f"\ntotal time {elapsed():.1f} s")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, group in table.groupby("inhibition", sort=False):
        style = "s-" if label == f"{PAPER_FACTOR:g}" else "o-"
        name = f"factor {label}" + (" (paper)" if label == f"{PAPER_FACTOR:g}" else "")
        axes[0].errorbar(group["k"], group["mean_min_rank"], yerr=group["sd"], fmt=style,
                         capsize=2, label=name if label != "balanced" else "balanced (sktopo)")
        finite = group[np.isfinite(group["I/E ratio"]) & (group["k"] > 0)]
        axes[1].plot(finite["I/E ratio"], finite["mean_min_rank"], style, label=label)
    axes[0].axhline(d, color="gray", ls=":", lw=1)
    axes[0].set(xlabel="inhibitory input columns k", ylabel="mean minimum rank",
                title=f"Dale networks, d = {d}, width {width} (error bars: sd over nets)")
    axes[0].legend(fontsize=8)
    axes[1].axvline(1, color="gray", ls=":", lw=1)
    axes[1].set(xscale="log", xlabel="inhibition / excitation ratio k * factor / (d - k)",
                ylabel="mean minimum rank", title="rank against E/I balance (dotted: balance)")
    save_figure(fig, args.out, "study_b_dale.png", dpi=110)


if __name__ == "__main__":
    main()
