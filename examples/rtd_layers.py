"""Representation Topology Divergence between the layers of a digits CNN, before and after training.

RTD (Barannikov et al., ICML 2022) compares two representations of the same inputs by the
cluster structure they give them: 0 for identical (or isometric, rescaled) representations,
larger when the inputs group differently. This script embeds the same held-out digits at every
ReLU layer and the logits of ``DigitsCNN``, once untrained and once trained, and prints

* the RTD between every pair of layers of the trained network (``sktopo.rtd_table``);
* the RTD between each untrained layer and each trained layer, whose diagonal is how much
  training changed that layer;
* linear CKA for the same pairs, the usual similarity index, for comparison (1 = same up to
  rotation and scale).

Means over ``--trials`` random subsets of ``--batch`` inputs, with their spread. Saves
``rtd_layers.png`` in ``--out``. About a minute on a 2-core CPU; ``--quick`` for a smoke run.
"""

import copy
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from sktopo import LayerEmbedder, rtd_table  # noqa: E402
from sktopo.nn.models import DigitsCNN, fit_digits  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import digits_split, example_parser, parse_args, save_figure  # noqa: E402

LAYERS = ["relu1", "relu2", "relu3", "out"]


def linear_cka(X, Y):
    """Linear CKA (Kornblith et al. 2019) of two representations of the same inputs."""
    X = X - X.mean(axis=0)
    Y = Y - Y.mean(axis=0)
    cross = np.linalg.norm(Y.T @ X) ** 2
    return float(cross / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))


def cka_table(A, B):
    return pd.DataFrame([[linear_cka(a, b) for b in B] for a in A], index=A.index, columns=B.index)


def heatmap(ax, table, title, fmt="{:.2f}", cmap="viridis"):
    image = ax.imshow(table.values, cmap=cmap)
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=45)
    ax.set_yticks(range(table.shape[0]), table.index)
    for (i, j), value in np.ndenumerate(table.values):
        ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=8, color="w")
    ax.set_title(title, fontsize=10)
    plt.colorbar(image, ax=ax, fraction=0.046)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--inputs", type=int, default=450, help="held-out digits embedded")
    parser.add_argument("--batch", type=int, default=100, help="inputs per RTD subset")
    parser.add_argument("--trials", type=int, default=4, help="RTD subsets per pair")
    parser.add_argument("--epochs", type=int, default=40)
    args = parse_args(parser)
    if args.quick:
        args.inputs, args.batch, args.trials, args.epochs = 120, 60, 2, 3

    X_train, X_test, y_train, y_test = digits_split(args.seed, images=True)
    X_test = X_test[:args.inputs]
    model = DigitsCNN(random_state=args.seed)
    untrained = copy.deepcopy(model)
    fit_digits(model, X_train, y_train, epochs=args.epochs, random_state=args.seed)
    with torch.no_grad():
        accuracy = (model(torch.as_tensor(X_test)).argmax(1).numpy() == y_test[:args.inputs]).mean()

    def embed(net):
        return LayerEmbedder(net, layers=LAYERS, device="cpu").fit_transform(X_test)

    before, after = embed(untrained), embed(model)
    params = dict(batch_size=args.batch, n_trials=args.trials, random_state=args.seed)
    within, within_std = rtd_table(after, return_std=True, **params)
    cross, cross_std = rtd_table(before, after, return_std=True, **params)
    cka = cka_table(before, after)
    within_cka = cka_table(after, after)

    def show(title, table, spread=None):
        print(f"\n{title}")
        if spread is None:
            print(table.round(3).to_string())
        else:
            print(table.round(2).astype(str).add(" +- ").add(spread.round(2).astype(str)).to_string())

    print(f"DigitsCNN, {args.epochs} epochs, held-out accuracy {accuracy:.3f}; "
          f"{len(X_test)} inputs, RTD over {args.trials} subsets of {args.batch}")
    show("RTD between the layers of the trained network (mean +- sd over subsets)", within, within_std)
    show("RTD untrained (rows) vs trained (columns)", cross, cross_std)
    show("linear CKA, trained network", within_cka)
    show("linear CKA untrained (rows) vs trained (columns)", cka)
    per_layer = pd.DataFrame({"rtd_before_vs_after": np.diag(cross.values),
                              "rtd_std": np.diag(cross_std.values),
                              "cka_before_vs_after": np.diag(cka.values)}, index=after.index)
    show("per layer: how much training changed it", per_layer)

    fig, axes = plt.subplots(1, 4, figsize=(17, 3.9))
    heatmap(axes[0], within, "RTD, trained layers")
    heatmap(axes[1], within_cka, "linear CKA, trained layers", cmap="magma")
    heatmap(axes[2], cross, "RTD, untrained (rows) vs trained")
    heatmap(axes[3], cka, "linear CKA, untrained (rows) vs trained", cmap="magma")
    save_figure(fig, args.out, "rtd_layers.png")


if __name__ == "__main__":
    main()
