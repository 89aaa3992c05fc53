"""Comparing architectures in one table: rows (model, layer), columns features.

Three networks trained on scikit-learn's digits (a wide MLP, a narrow MLP and a CNN) are
embedded layer by layer; PH dimension, TwoNN and persistence features of every layer go into a
single pandas table indexed by (model, layer), built by concatenating per-model Series of clouds.
Prints the table, writes it in tidy form to ``compare_architectures.csv`` and saves
``compare_architectures.png`` in ``--out``. Under a minute on a CPU.
"""

import argparse
import os
import time

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "figures"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()

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
    with pd.option_context("display.width", 140, "display.float_format", "{:.2f}".format):
        print(table[shown])
    os.makedirs(args.out, exist_ok=True)
    tidy(table).to_csv(os.path.join(args.out, "compare_architectures.csv"), index=False)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, column, title in zip(axes, ["phdim", "twonn", "H0__total_persistence_p1"],
                                 ["PH dimension", "TwoNN dimension", "H0 lifespans sum"]):
        plot_layer_profile(table, y=column, ax=ax, title=title)
    fig.tight_layout()
    path = os.path.join(args.out, "compare_architectures.png")
    fig.savefig(path, dpi=110)
    print(f"saved {path} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
