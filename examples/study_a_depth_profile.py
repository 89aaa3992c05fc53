"""Study A, depth profile: PH dimension and lifespans sums through a VGG-like digits network.

Study A saw, in a VGG-like network trained on CIFAR-10, the PH dimension rise from about 12 to
about 20 in the first 40% of the depth and fall to about 5 at the output, and the H0 lifespans
sum fall from about 400 to about 25. This script repeats the measurement at laptop scale: a
VGG-like network with six 3x3 conv blocks (16-16-32-32-64-64 channels, max pooling after every
second block, then a 64-unit dense layer), on scikit-learn's 8x8 digits upsampled to 16x16 in
the model, with ReLU and with Tanh, before and after training. At every activation and the
logits:

* the PH dimension (H0, alpha = 1) of the raw embeddings (conv maps global-average-pooled, as in
  study A), with its spread over 5 reruns;
* study A's H0 and H1 lifespans sums in its "local" mode, computed exactly as its code does
  (``sktopo.split_by_label``: MinMax over the layer, the first 250 inputs of each class 0-8,
  half the total finite bar length, mean over the classes).

Measured on the 1347 training digits. Prints the table and saves ``study_a_depth_profile.png``.
A few minutes on a 2-core CPU; ``--quick`` for a smoke run.
"""

import copy
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import example_parser, parse_args, save_figure, wide_tables  # noqa: E402
from _study_a import (accuracy, layer_profile, plot_by_depth, training_digits,  # noqa: E402
                      vgg_digits)

from sktopo.nn.models import fit_digits  # noqa: E402


def main():
    parser = example_parser(__doc__, epochs=30)
    parser.add_argument("--activations", nargs="+", default=["ReLU", "Tanh"])
    args = parse_args(parser)

    X_train, X_test, y_train, y_test, per_class = training_digits(args)

    rows, accuracies = {}, {}
    for activation in args.activations:
        model = vgg_digits(activation, seed=args.seed)
        untrained = copy.deepcopy(model).eval()
        rows[(activation, "untrained")] = layer_profile(untrained, X_train, y_train, seed=args.seed,
                                                        per_class=per_class)
        fit_digits(model, X_train, y_train, epochs=args.epochs, random_state=args.seed)
        accuracies[activation] = accuracy(model, X_test, y_test)
        rows[(activation, "trained")] = layer_profile(model, X_train, y_train, seed=args.seed,
                                                      per_class=per_class)
    table = pd.concat(rows, names=["activation", "stage"])

    print(f"VGG-like digits network, 6 conv blocks, {args.epochs} epochs, {len(X_train)} inputs; "
          "held-out accuracy " + ", ".join(f"{a} {v:.3f}" for a, v in accuracies.items()))
    with wide_tables("{:.2f}"):
        print(table)
    for (activation, stage), part in table.groupby(level=[0, 1], sort=False):
        ph = part["phdim"].to_numpy()
        peak = int(ph.argmax())
        print(f"{activation:5s} {stage:9s}: PHdim {ph[0]:.1f} -> max {ph[peak]:.1f} at depth "
              f"{part['depth'].iloc[peak]:.2f} -> {ph[-1]:.1f} at the logits; H0 lifespans "
              f"{part['H0_lifespans'].iloc[0]:.1f} -> {part['H0_lifespans'].iloc[-1]:.1f}")

    save_figure(figure(table), args.out, "study_a_depth_profile.png")


def figure(table):
    """PH dimension (error bars: +- 1 s.d. over PHDimension's 5 reruns) and study A's H0/H1
    lifespans sums against relative depth, one line per (activation, stage)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    styles = {"untrained": "--", "trained": "-"}
    plot_by_depth(axes, table, ["phdim", "H0_lifespans", "H1_lifespans"],
                  ["PH dimension (bars: ± 1 s.d. over 5 reruns)",
                   "H0 lifespans sum (study A, local)", "H1 lifespans sum (study A, local)"],
                  level=[0, 1], style=lambda key: styles[key[1]], errors={"phdim": "phdim_std"})
    axes[0].legend(fontsize=8)
    return fig


if __name__ == "__main__":
    main()
