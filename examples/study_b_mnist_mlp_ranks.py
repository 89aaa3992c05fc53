"""Study B, the MNIST-shaped MLP: per-layer ranks before and after training, on digits and noise.

"A rank decomposition for the topological classification of neural representations" (arXiv
2404.19710) trains an MLP 784-2000-1000-500-100-10 on MNIST (Adam 1e-3, 50 epochs, test accuracy
0.984) and reports the cumulative rank of each ReLU layer: before training about half the width
(capped at 784): about 784, 510, 255, 55; after training, on test images, about 100-200,
50-150, 10-50 and 5-13, while on noise images the ranks stay much higher: low rank sits near
the data.

MNIST does not ship offline; the stand-in is scikit-learn's 8x8 digits upsampled (bilinear) to
28x28 = 784 pixels: 1347 training and 450 test images (stratified split, seed 0). The same
architecture (PyTorch default initialisation, seed 0), Adam (lr 1e-3, batch 64) for
``--epochs`` epochs. :class:`sktopo.ReLURankRegions` (float64, numpy's default tolerance) gives
the exact cumulative ranks of ``--n-inputs`` test digits and as many uniform-noise images in
[0, 1]^784, before and after training.

Prints the per-layer table and saves ``study_b_mnist_mlp_ranks.png`` in ``--out``. Several
minutes on a 2-core CPU (the ranks of 2000 x 784 maps dominate); ``--quick`` analyses 4 inputs
after one epoch (smoke test).
"""

import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from torch import nn  # noqa: E402

from sktopo.datasets import load_digits  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (elapsed, example_parser, parse_args,  # noqa: E402
                     plot_ranks, rank_tables, save_figure)

WIDTHS = (2000, 1000, 500, 100)
PAPER = {"untrained": "784, 510, 255, 55", "trained, digits": "100-200, 50-150, 10-50, 5-13",
         "trained, noise": "much higher than on digits"}


def upsampled_digits():
    """Digits as (n, 784) float32 in [0, 1]: 8x8 images upsampled bilinearly to 28x28."""
    X, y = load_digits(images=True)
    big = F.interpolate(torch.as_tensor(X), size=(28, 28), mode="bilinear", align_corners=False)
    return big.clamp(0, 1).reshape(len(X), -1).numpy(), y


def make_mlp(seed=0):
    torch.manual_seed(seed)
    sizes = (784, *WIDTHS)
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 10))


def train(model, X, y, epochs, seed=0, batch_size=64):
    x, t = torch.as_tensor(X), torch.as_tensor(y, dtype=torch.long)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            batch = order[start:start + batch_size]
            loss = F.cross_entropy(model(x[batch]), t[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


COLUMNS = ["units", "min_rank", "mean_rank", "max_rank", "mean_active"]


def main():
    parser = example_parser(__doc__, seed=False, epochs=50)
    parser.add_argument("--n-inputs", type=int, default=100,
                        help="test digits (and noise images) whose ranks are computed")
    args = parse_args(parser, quick="4 inputs, one epoch: smoke test")
    if args.quick:
        args.epochs, args.n_inputs = 1, 4

    X, y = upsampled_digits()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    probe = X_test[:args.n_inputs]
    noise = np.random.default_rng(0).uniform(0, 1, size=probe.shape).astype(np.float32)
    model = make_mlp()
    tables = rank_tables(model, probe, noise, "untrained", COLUMNS)
    t0 = time.perf_counter()
    train(model, X_train, y_train, args.epochs)
    train_time = time.perf_counter() - t0
    with torch.no_grad():
        accuracy = float((model(torch.as_tensor(X_test)).argmax(1).numpy() == y_test).mean())
    tables += rank_tables(model, probe, noise, "trained", COLUMNS)
    table = pd.concat(tables).reset_index().set_index(["inputs", "layer"])

    pd.set_option("display.width", 140)
    print(f"MLP 784-{'-'.join(map(str, WIDTHS))}-10 on digits upsampled to 28x28: "
          f"{args.epochs} epochs ({train_time:.0f} s), test accuracy {accuracy:.3f}; ranks of "
          f"{len(probe)} test digits and {len(noise)} noise images\n")
    print(table.round(2).to_string())
    print("\npaper (MNIST, about): " + "; ".join(f"{k}: {v}" for k, v in PAPER.items()))
    print(f"\ntotal time {elapsed():.1f} s")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, stat in zip(axes, ["mean_rank", "min_rank"]):
        layers = plot_ranks(ax, table, stat)
        ax.plot(layers, [784, 510, 255, 55], "k*", ms=9, label="paper, untrained (about)")
        ax.fill_between(layers, [100, 50, 10, 5], [200, 150, 50, 13], color="gray", alpha=0.2,
                        label="paper, trained on test images (about)")
        ax.set(xlabel="ReLU layer", ylabel=stat.replace("_", " "), yscale="log",
               title=f"{stat.replace('_', ' ')} per layer, input dimension 784")
    axes[0].legend(fontsize=7)
    save_figure(fig, args.out, "study_b_mnist_mlp_ranks.png", dpi=110)


if __name__ == "__main__":
    main()
