"""Study A, generalisation: lifespans sums at the penultimate layer against test error, 24 networks.

Study A trained about 45 ResNets on CIFAR-10 and found that a lower H0 (and H1) lifespans sum at
the penultimate layer goes with a lower test error, roughly linearly. This script trains 24
small MLPs on scikit-learn's digits, varying the width of the earlier hidden layers (16-128),
the depth (1-4 hidden layers, the last always 64 units wide), the epochs (3-60), the weight decay (0 or 1e-2) and the fraction of training labels replaced by
random ones (0, 0.2 or 0.5), and computes study A's local H0 and H1 lifespans sums
(``sktopo.split_by_label``: MinMax over the layer, up to 250 training inputs of each class 0-8,
grouped by their true labels, half the total finite bar length, mean over classes) at the last
hidden layer. Prints the table with the Pearson and Spearman correlations against the held-out
error, and saves the scatter plot ``study_a_generalisation.png``. A few minutes on a 2-core CPU;
``--quick`` for a smoke run.
"""

import itertools
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import digits_split, example_parser, parse_args, save_figure  # noqa: E402
from _study_a import accuracy, local_lifespans  # noqa: E402

from sktopo import LayerEmbedder  # noqa: E402
from sktopo.nn.models import DigitsMLP, fit_digits  # noqa: E402


PENULTIMATE = 64


def configurations(n, seed):
    """``n`` distinct settings drawn (seeded) from the grid of widths, depths, epochs, ..."""
    grid = list(itertools.product([16, 32, 64, 128], [1, 2, 3, 4], [3, 15, 60], [0.0, 1e-2],
                                  [0.0, 0.2, 0.5]))
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(grid), size=n, replace=False)
    return [dict(zip(["width", "depth", "epochs", "weight_decay", "label_noise"], grid[i]))
            for i in picked]


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--networks", type=int, default=24)
    args = parse_args(parser)

    X_train, X_test, y_train, y_test = digits_split(args.seed)
    per_class = 250
    configs = configurations(args.networks, args.seed)
    if args.quick:
        configs, per_class = [dict(c, epochs=min(c["epochs"], 3)) for c in configs[:4]], 20

    rows = []
    for k, config in enumerate(configs):
        rng = np.random.default_rng([args.seed, k])
        noisy = y_train.copy()
        flip = rng.random(len(noisy)) < config["label_noise"]
        noisy[flip] = rng.integers(0, 10, flip.sum())
        # the penultimate layer always has 64 units, as in study A's family of ResNets: the
        # lifespans sum of MinMax-scaled points grows with the number of coordinates, so
        # letting its width vary would measure the width, not the network
        hidden = (config["width"],) * (config["depth"] - 1) + (PENULTIMATE,)
        model = DigitsMLP(hidden=hidden, random_state=args.seed + k)
        fit_digits(model, X_train, noisy, epochs=config["epochs"],
                   weight_decay=config["weight_decay"], random_state=args.seed + k)
        penultimate = f"relu{config['depth']}"
        clouds = LayerEmbedder(model, layers=[penultimate], device="cpu").fit_transform(X_train)
        lifespans = local_lifespans(clouds, y_train, per_class=per_class).iloc[0]
        rows.append({**config, "test_error": 1 - accuracy(model, X_test, y_test),
                     "H0_lifespans": lifespans["H0_lifespans"],
                     "H1_lifespans": lifespans["H1_lifespans"]})
    table = pd.DataFrame(rows).sort_values("test_error", ignore_index=True)

    with pd.option_context("display.width", 160, "display.max_columns", 20,
                           "display.float_format", "{:.3f}".format):
        print(table)
    correlations = {}
    # a network that did not learn (every input mapped to one point: lifespans 0) would
    # decide Pearson's r on its own; study A's networks were all trained
    learnt = table[table["test_error"] < 0.5]
    for column in ["H0_lifespans", "H1_lifespans"]:
        for name, part in [("all", table), ("learnt", learnt)]:
            if len(part) < 3:
                continue
            pearson = stats.pearsonr(part[column], part["test_error"])
            spearman = stats.spearmanr(part[column], part["test_error"])
            if name == "all":
                correlations[column] = (pearson.statistic, spearman.statistic)
            print(f"{column} vs test error, {name} ({len(part)} networks): Pearson r = "
                  f"{pearson.statistic:.2f} (p = {pearson.pvalue:.2g}), Spearman rho = "
                  f"{spearman.statistic:.2f} (p = {spearman.pvalue:.2g})")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, column in zip(axes, ["H0_lifespans", "H1_lifespans"]):
        points = ax.scatter(table[column], table["test_error"], c=table["label_noise"], cmap="viridis")
        r, rho = correlations[column]
        ax.set_title(f"{column.replace('_', ' ')} at the penultimate layer\n"
                     f"Pearson r = {r:.2f}, Spearman rho = {rho:.2f}", fontsize=10)
        ax.set_xlabel(f"{column.split('_')[0]} lifespans sum (local)")
        ax.set_ylabel("held-out error")
    plt.colorbar(points, ax=axes[1], label="label noise")
    save_figure(fig, args.out, "study_a_generalisation.png")


if __name__ == "__main__":
    main()
