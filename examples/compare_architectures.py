"""Comparing architectures in one table: rows (model, layer), columns features.

Three networks trained on scikit-learn's digits (a wide MLP, a narrow MLP and a CNN) are
embedded layer by layer; PH dimension, TwoNN and persistence features of every layer go into a
single pandas table indexed by (model, layer), built by concatenating per-model Series of clouds.
Prints the table, writes it in tidy form to ``compare_architectures.csv`` and saves
``compare_architectures.png`` in ``--out``. Under a minute on a CPU.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from sktopo import (DiagramFeatures, LayerEmbedder, PersistenceDiagram,  # noqa: E402
                    PHDimension, TwoNN, tidy)
from sktopo.datasets import load_digits  # noqa: E402
from sktopo.nn.models import DigitsCNN, DigitsMLP, fit_digits  # noqa: E402
from sktopo.plotting import plot_layer_profile  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import example_parser, save_figure, wide_tables  # noqa: E402


def main():
    parser = example_parser(__doc__)
    args = parser.parse_args()

    X, y = load_digits()
    models = {
        "mlp_wide": DigitsMLP(hidden=(256, 128, 64), random_state=args.seed),
        "mlp_narrow": DigitsMLP(hidden=(32, 16, 8), random_state=args.seed),
        "cnn": DigitsCNN(random_state=args.seed),
    }
    clouds = {}
    for name, model in models.items():
        fit_digits(model, X, y, random_state=args.seed)
        # every ReLU plus the logits, so all three end in the same 10-D space
        layers = [torch.nn.ReLU, "out"]
        clouds[name] = LayerEmbedder(model, layers=layers, max_inputs=800,
                                     random_state=args.seed).fit_transform(X)
    clouds = pd.concat(clouds, names=["model"])  # one Series, MultiIndex (model, layer)

    topology = make_pipeline(PersistenceDiagram(homology_dimensions=(0, 1), random_state=args.seed),
                             DiagramFeatures()).set_output(transform="pandas")
    table = pd.concat([
        PHDimension(random_state=args.seed).set_output(transform="pandas").fit_transform(clouds),
        TwoNN(random_state=args.seed).set_output(transform="pandas").fit_transform(clouds)[["twonn"]],
        topology.fit_transform(clouds),
    ], axis=1)

    shown = ["phdim", "phdim_std", "twonn", "H0__total_persistence_p1", "H1__n_bars",
             "H1__max_lifetime"]
    with wide_tables("{:.2f}", width=140):
        print(table[shown])
    os.makedirs(args.out, exist_ok=True)
    tidy(table).to_csv(os.path.join(args.out, "compare_architectures.csv"), index=False)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, column, title in zip(axes, ["phdim", "twonn", "H0__total_persistence_p1"],
                                 ["PH dimension", "TwoNN dimension", "H0 total persistence"]):
        plot_layer_profile(table, y=column, ax=ax, title=title)
    save_figure(fig, args.out, "compare_architectures.png", dpi=110)


if __name__ == "__main__":
    main()
