"""Study A, architectures: MLP, CNN and a small vision Transformer on digits, by relative depth.

Study A compares how CNNs and Transformers reshape the data manifold by plotting their layer
profiles against relative depth. This script trains three digits classifiers of similar
accuracy and measures the same quantities at every hidden layer and the logits:

* an MLP with five hidden ReLU layers (128-128-128-128-64);
* the VGG-like network of ``study_a_depth_profile.py`` (six conv blocks, ReLU);
* a small vision Transformer: the 8x8 digit cut into 16 patches of 2x2 pixels, a linear patch
  embedding of width 32 with learnt positions and a [CLS] token, four pre-norm encoder blocks
  (4 heads), the classifier on [CLS]; each block's output is read as one point per digit by
  averaging over its 17 tokens.

Measured on the 1347 training digits: PH dimension (H0, alpha = 1), TwoNN, and study A's local
H0 lifespans sum (``sktopo.split_by_label``). Prints the table and saves
``study_a_architectures.png``. A few minutes on a 2-core CPU; ``--quick`` for a smoke run.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import example_parser, parse_args, save_figure, wide_tables  # noqa: E402
from _study_a import (accuracy, block_names, local_lifespans, plot_by_depth,  # noqa: E402
                      training_digits, vgg_digits)

from sktopo import LayerEmbedder, PHDimension, TwoNN  # noqa: E402
from sktopo.nn.models import DigitsMLP, fit_digits  # noqa: E402


class DigitsViT(nn.Module):
    """A vision Transformer for 8x8 digits: 2x2 patches, [CLS] token, ``blocks.0`` ... ``blocks.3``."""

    def __init__(self, width=32, depth=4, heads=4, patch=2, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.patch = patch
        n_patches = (8 // patch) ** 2
        self.embed = nn.Linear(patch * patch, width)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(0.02 * torch.randn(1, n_patches + 1, width))
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                       batch_first=True, norm_first=True)
            for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        x = x.reshape(-1, 1, 8, 8)
        p = self.patch
        patches = x.unfold(2, p, p).unfold(3, p, p).reshape(x.shape[0], -1, p * p)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.embed(patches)], dim=1)
        tokens = tokens + self.position
        for block in self.blocks:
            tokens = block(tokens)
        return self.out(self.norm(tokens[:, 0]))


def profile(model, layers, X, y, seed, per_class):
    clouds = LayerEmbedder(model, layers=layers, device="cpu", layout="tokens"
                           if isinstance(model, DigitsViT) else "auto").fit_transform(X)
    phdim = PHDimension(random_state=seed).set_output(transform="pandas").fit_transform(clouds)
    twonn = TwoNN().set_output(transform="pandas").fit_transform(clouds)
    table = pd.concat([phdim[["phdim"]], twonn[["twonn"]],
                       local_lifespans(clouds, y, per_class=per_class)[["H0_lifespans"]]], axis=1)
    table.insert(0, "depth", (np.arange(len(table)) + 1) / len(table))
    return table


def main():
    parser = example_parser(__doc__, epochs=30)
    args = parse_args(parser)

    X_train, X_test, y_train, y_test, per_class = training_digits(args)

    mlp = DigitsMLP(hidden=(128, 128, 128, 128, 64), random_state=args.seed)
    cnn = vgg_digits("ReLU", seed=args.seed)
    vit = DigitsViT(seed=args.seed)
    models = {
        "MLP": (mlp, [f"relu{k}" for k in range(1, 6)] + ["out"]),
        "CNN": (cnn, block_names(cnn)),
        "ViT": (vit, [f"blocks.{k}" for k in range(4)] + ["out"]),
    }
    rows, accuracies = {}, {}
    for name, (model, layers) in models.items():
        fit_digits(model, X_train, y_train, epochs=args.epochs, random_state=args.seed)
        accuracies[name] = accuracy(model, X_test, y_test)
        rows[name] = profile(model, layers, X_train, y_train, args.seed, per_class)
    table = pd.concat(rows, names=["model"])

    print(f"{args.epochs} epochs, {len(X_train)} inputs; held-out accuracy "
          + ", ".join(f"{k} {v:.3f}" for k, v in accuracies.items()))
    with wide_tables("{:.2f}"):
        print(table)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    plot_by_depth(axes, table, ["phdim", "twonn", "H0_lifespans"],
                  ["PH dimension", "TwoNN", "H0 lifespans sum (local)"], level="model",
                  xlabel="relative depth (1 = logits)")
    axes[0].legend()
    save_figure(fig, args.out, "study_a_architectures.png")


if __name__ == "__main__":
    main()
