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

import argparse
import copy
import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _study_a import accuracy, layer_profile, vgg_digits  # noqa: E402

from sktopo.datasets import load_digits  # noqa: E402
from sktopo.nn.models import fit_digits  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "figures"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--activations", nargs="+", default=["ReLU", "Tanh"])
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke test")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()

    X, y = load_digits(images=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=args.seed,
                                                        stratify=y)
    per_class = 250
    if args.quick:
        X_train, y_train, args.epochs, per_class = X_train[:300], y_train[:300], 2, 20

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
    with pd.option_context("display.width", 160, "display.max_rows", 200, "display.max_columns", 20,
                           "display.float_format", "{:.2f}".format):
        print(table)
    for (activation, stage), part in table.groupby(level=[0, 1], sort=False):
        ph = part["phdim"].to_numpy()
        peak = int(ph.argmax())
        print(f"{activation:5s} {stage:9s}: PHdim {ph[0]:.1f} -> max {ph[peak]:.1f} at depth "
              f"{part['depth'].iloc[peak]:.2f} -> {ph[-1]:.1f} at the logits; H0 lifespans "
              f"{part['H0_lifespans'].iloc[0]:.1f} -> {part['H0_lifespans'].iloc[-1]:.1f}")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    styles = {"untrained": "--", "trained": "-"}
    for (activation, stage), part in table.groupby(level=[0, 1], sort=False):
        for ax, column in zip(axes, ["phdim", "H0_lifespans", "H1_lifespans"]):
            ax.plot(part["depth"], part[column], styles[stage], marker="o",
                    label=f"{activation}, {stage}")
    for ax, title in zip(axes, ["PH dimension", "H0 lifespans sum (local)", "H1 lifespans sum (local)"]):
        ax.set_title(title)
        ax.set_xlabel("relative depth")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "study_a_depth_profile.png")
    fig.savefig(path, dpi=100)
    print(f"saved {path} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
