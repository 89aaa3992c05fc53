"""Study A at laptop scale: how depth and training reshape the data manifold.

Layer by layer, a small CNN and an MLP on scikit-learn's 8x8 digits, before and after training:

* the PH dimension (H0, alpha = 1) of the raw embeddings, with its spread over reruns;
* the H0 and H1 total persistence (sum of the finite bar lengths) of the whole cloud of
  embeddings after per-coordinate MinMax scaling, on 400 landmarks. This is a *global* variant:
  study A's "lifespans sum" is half of this quantity, computed per class (the first 250 inputs
  of each class 0-8) and averaged over the classes, which ``study_a_depth_profile.py``
  reproduces exactly with ``sktopo.split_by_label``. The two differ by an order of magnitude
  (about 184 here against 20 for the local one at the last trained layer).

Conv maps are reduced by global average pooling (study A's choice). Prints the table and saves
``study_a_layer_topology.png`` in ``--out``. Under a minute on a CPU.
"""

import copy
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.preprocessing import minmax_scale  # noqa: E402

from sktopo import DiagramFeatures, LayerEmbedder, PersistenceDiagram, PHDimension  # noqa: E402
from sktopo.datasets import load_digits  # noqa: E402
from sktopo.nn.models import DigitsCNN, DigitsMLP, fit_digits  # noqa: E402
from sktopo.plotting import plot_layer_profile  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import example_parser, parse_args, save_figure, wide_tables  # noqa: E402


def profile(model, X, seed):
    """One row per ReLU layer: PH dimension and H0/H1 total persistence (global)."""
    embed = LayerEmbedder(model, layers=torch.nn.ReLU, random_state=seed)
    clouds = embed.fit_transform(X)
    phdim = PHDimension(random_state=seed).set_output(transform="pandas").fit_transform(clouds)
    # study A scales every coordinate to [0, 1] before the Rips filtration (here on the whole
    # cloud; study A's lifespans sum is half of it per class, see study_a_depth_profile.py)
    scaled = clouds.map(minmax_scale)
    diagrams = PersistenceDiagram(homology_dimensions=(0, 1), n_landmarks=400,
                                  random_state=seed).fit_transform(scaled)
    total = DiagramFeatures(features=["total_persistence"], p=(1,)) \
        .set_output(transform="pandas").fit_transform(diagrams)
    return pd.concat([phdim[["phdim", "phdim_std"]], total], axis=1)


def main():
    parser = example_parser(__doc__)
    args = parse_args(parser)

    X_vec, y = load_digits()
    X_img, _ = load_digits(images=True)
    epochs = 40
    if args.quick:
        X_vec, X_img, y, epochs = X_vec[:300], X_img[:300], y[:300], 3
    rows = {}
    for name, model, X in [("MLP", DigitsMLP(random_state=args.seed), X_vec),
                           ("CNN", DigitsCNN(random_state=args.seed), X_img)]:
        rows[(name, "untrained")] = profile(copy.deepcopy(model), X, args.seed)
        fit_digits(model, X, y, epochs=epochs, random_state=args.seed)
        rows[(name, "trained")] = profile(model, X, args.seed)
    table = pd.concat(rows, names=["model", "stage"])

    with wide_tables("{:.2f}", width=140):
        print(table)

    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for r, name in enumerate(["MLP", "CNN"]):
        part = table.xs(name, level="model")
        for c, (column, title) in enumerate([("phdim", "PH dimension"),
                                             ("H0__total_persistence_p1", "H0 total persistence"),
                                             ("H1__total_persistence_p1", "H1 total persistence")]):
            plot_layer_profile(part, y=column, ax=axes[r, c], hue="stage", title=f"{name}: {title}")
    save_figure(fig, args.out, "study_a_layer_topology.png", dpi=110)


if __name__ == "__main__":
    main()
