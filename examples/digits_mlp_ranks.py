"""Per-layer ranks of a digits MLP before and after training, on digits and on noise.

Study B observed on MNIST that training lowers the cumulative rank of a ReLU MLP on test
images (the network compresses near the data) while on noise images the ranks stay high. This
reproduces the comparison with scikit-learn's 8x8 digits and ``DigitsMLP(hidden=(128, 64, 32))``
(64 inputs), on 450 held-out digits and on as many uniform-noise images in [0, 1]^64.

Prints the per-layer tables and saves ``digits_mlp_ranks.png`` in ``--out``. About ten seconds
on a CPU; ``--quick`` trains for one epoch (smoke test).
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from sktopo.nn.models import DigitsMLP, fit_digits  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (digits_split, example_parser, parse_args,  # noqa: E402
                     plot_ranks, rank_tables, save_figure)


COLUMNS = ["units", "min_rank", "mean_rank", "max_rank", "mean_active", "n_regions",
           "frac_inputs_low_rank"]


def main():
    parser = example_parser(__doc__, seed=False, epochs=40)
    args = parse_args(parser, quick="one epoch: smoke test")
    if args.quick:
        args.epochs = 1

    X_train, X_test, y_train, y_test = digits_split(0)
    noise = np.random.default_rng(0).uniform(0, 1, size=X_test.shape).astype(np.float32)
    model = DigitsMLP(hidden=(128, 64, 32), random_state=0).eval()

    tables = rank_tables(model, X_test, noise, "untrained", COLUMNS)
    fit_digits(model, X_train, y_train, epochs=args.epochs, random_state=0)
    with torch.no_grad():
        accuracy = (model(torch.as_tensor(X_test)).argmax(1).numpy() == y_test).mean()
    tables += rank_tables(model, X_test, noise, "trained", COLUMNS)
    table = pd.concat(tables).reset_index().set_index(["inputs", "layer"])
    pd.set_option("display.width", 140)
    print(f"DigitsMLP(128, 64, 32), input dimension 64, test accuracy {accuracy:.3f} "
          f"({len(X_test)} test digits, {len(noise)} noise images)\n")
    print(table.round(2).to_string())
    # Pixels that are 0 in every training image get no gradient; weight decay then drives
    # their first-layer weights to zero, so the trained first layer cannot exceed 64 - k.
    dead = int((X_train.max(axis=0) == 0).sum())
    print(f"\n{dead} pixels are 0 in every training image: after training the first layer's "
          f"rank is at most {64 - dead} (their weights decay to "
          f"{float(model.fc1.weight.detach()[:, X_train.max(axis=0) == 0].abs().max()):.1e}).")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, stat in zip(axes, ["mean_rank", "min_rank"]):
        plot_ranks(ax, table, stat)
        ax.axhline(64, color="gray", ls=":", lw=1)
        ax.set(xlabel="ReLU layer", ylabel=stat.replace("_", " "),
               title=f"{stat.replace('_', ' ')} per layer (dotted: input dimension)")
    axes[0].legend()
    save_figure(fig, args.out, "digits_mlp_ranks.png", dpi=110)


if __name__ == "__main__":
    main()
