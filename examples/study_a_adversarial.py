"""Study A, adversarial inputs: lifespans sums per layer on clean and FGSM-attacked digits.

Study A reports that adversarial inputs (FGSM) lower the lifespans-sum curve at every layer of a
trained CIFAR-10 network. This script trains the VGG-like digits network of
``study_a_depth_profile.py`` (ReLU), attacks its 1347 training digits with the fast gradient
sign method at three step sizes (pixels in [0, 1]), with 10 steps of projected gradient descent
(PGD) at the middle size and, as a control, with a random sign pattern of the largest size, and
computes study A's local H0 and H1
lifespans sums (``sktopo.split_by_label``, grouped by the TRUE label) at every activation and
the logits, for the clean and each attacked set. Prints the table, the accuracy under attack and
the mean change per layer, and saves ``study_a_adversarial.png``. A few minutes on a 2-core
CPU; ``--quick`` for a smoke run.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import example_parser, parse_args, save_figure, wide_tables  # noqa: E402
from _study_a import (accuracy, fgsm, layer_profile, pgd, plot_by_depth,  # noqa: E402
                      training_digits, vgg_digits)

from sktopo.nn.models import fit_digits  # noqa: E402


def main():
    parser = example_parser(__doc__, epochs=30)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    args = parse_args(parser)

    X_train, X_test, y_train, y_test, per_class = training_digits(args)

    model = vgg_digits("ReLU", seed=args.seed)
    fit_digits(model, X_train, y_train, epochs=args.epochs, random_state=args.seed)
    inputs = {"clean": X_train}
    for eps in args.eps:
        inputs[f"FGSM eps={eps:g}"] = fgsm(model, X_train, y_train, eps)
    # the stronger, iterated attack at the middle size
    middle = sorted(args.eps)[len(args.eps) // 2]
    inputs[f"PGD eps={middle:g}"] = pgd(model, X_train, y_train, middle)
    # control: a random sign pattern of the largest size, not aimed at the loss
    rng = np.random.default_rng(args.seed)
    eps = max(args.eps)
    inputs[f"random sign eps={eps:g}"] = np.clip(
        X_train + eps * rng.choice([-1.0, 1.0], size=X_train.shape), 0, 1).astype(X_train.dtype)
    rows, accuracies = {}, {}
    for name, data in inputs.items():
        accuracies[name] = accuracy(model, data, y_train)
        rows[name] = layer_profile(model, data, y_train, seed=args.seed, per_class=per_class,
                                   phdim=False)
    table = pd.concat(rows, names=["inputs"])

    print(f"VGG-like digits network (ReLU), {args.epochs} epochs, held-out accuracy "
          f"{accuracy(model, X_test, y_test):.3f}; {len(X_train)} training inputs attacked")
    print("accuracy on them: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracies.items()))
    with wide_tables("{:.3f}"):
        print(table)
        clean = table.xs("clean", level="inputs")
        change = {name: (table.xs(name, level="inputs")[["H0_lifespans", "H1_lifespans"]]
                         - clean[["H0_lifespans", "H1_lifespans"]])
                  for name in inputs if name != "clean"}
        print("\nattacked minus clean, per layer")
        print(pd.concat(change, axis=1))
        for name, diff in change.items():
            lower = (diff < 0).sum()
            print(f"{name}: H0 lower at {lower['H0_lifespans']} of {len(diff)} layers, "
                  f"H1 lower at {lower['H1_lifespans']} of {len(diff)}")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plot_by_depth(axes, table, ["H0_lifespans", "H1_lifespans"],
                  ["H0 lifespans sum (local)", "H1 lifespans sum (local)"], level="inputs")
    axes[0].legend(fontsize=8)
    save_figure(fig, args.out, "study_a_adversarial.png")


if __name__ == "__main__":
    main()
