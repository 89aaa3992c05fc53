"""Shared pieces of the study A examples (not an example itself: the docs skip ``_*.py``).

- ``vgg_digits``: a VGG-like network for scikit-learn's 8x8 digits, upsampled inside the model
  to 16x16 so that six 3x3 conv blocks and three poolings fit;
- ``layer_profile``: per layer, the PH dimension of the raw embeddings and study A's H0/H1
  lifespans sums in its "local" mode (MinMax over the layer, up to 250 inputs of each class
  0-8, half the total finite bar length, mean over classes: ``sktopo.split_by_label``);
- ``fgsm``: the fast gradient sign attack (Goodfellow et al. 2015) on [0, 1] pixels, and
  ``pgd``, its iterated, projected version (Madry et al. 2018);
- ``training_digits``: the digit images the study A scripts train on, cut down by ``--quick``;
- ``plot_by_depth``: one line per group of a profile table against relative depth.
"""

from collections import OrderedDict

import numpy as np
import pandas as pd
import torch
from sklearn.preprocessing import minmax_scale
from _common import digits_split
from torch import nn

from sktopo import (DiagramFeatures, LayerEmbedder, PersistenceDiagram, PHDimension,
                    mean_over_labels, split_by_label)

ACTIVATIONS = {"ReLU": nn.ReLU, "Tanh": nn.Tanh, "GELU": nn.GELU, "ELU": nn.ELU}


def vgg_digits(activation="ReLU", channels=(16, 16, 32, 32, 64, 64), hidden=64, seed=0):
    """VGG-like digits classifier: 6 conv blocks (``act1``..``act6``), ``fc``/``act7``, ``out``."""
    act = ACTIVATIONS[activation]
    torch.manual_seed(seed)
    modules = [("up", nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))]
    width = 1
    for k, c in enumerate(channels, start=1):
        modules += [(f"conv{k}", nn.Conv2d(width, c, 3, padding=1)), (f"act{k}", act())]
        if k % 2 == 0:
            modules.append((f"pool{k // 2}", nn.MaxPool2d(2)))
        width = c
    modules += [("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                ("fc", nn.Linear(width, hidden)), (f"act{len(channels) + 1}", act()),
                ("out", nn.Linear(hidden, 10))]
    model = nn.Sequential(OrderedDict(modules))
    # He (ReLU-like) or Glorot (Tanh) initialisation, zero biases: torch's default init shrinks
    # the signal by about 6x in variance per ReLU layer, and the untrained ReLU network is
    # constant (every input the same point) from its third block on
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if activation == "Tanh":
                nn.init.xavier_normal_(module.weight, gain=nn.init.calculate_gain("tanh"))
            else:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return model


def training_digits(args):
    """``X_train, X_test, y_train, y_test, per_class``: digit images split 75/25; ``--quick``
    keeps 300 training digits, 20 per class and 2 epochs (it sets ``args.epochs``)."""
    X_train, X_test, y_train, y_test = digits_split(args.seed, images=True)
    per_class = 250
    if args.quick:
        X_train, y_train, args.epochs, per_class = X_train[:300], y_train[:300], 2, 20
    return X_train, X_test, y_train, y_test, per_class


def plot_by_depth(axes, table, columns, titles, *, level, xlabel="relative depth", style=None,
                  errors=None):
    """On ``axes[i]``, ``table[columns[i]]`` against ``table["depth"]``, one line per group of
    index ``level`` (``style(key)``: its line style); columns that are all NaN are skipped.
    ``errors`` maps a column to the column of its spread, drawn as error bars (+- that value),
    e.g. ``{"phdim": "phdim_std"}``."""
    errors = errors or {}
    for key, part in table.groupby(level=level, sort=False):
        label = key if isinstance(key, str) else ", ".join(key)
        for ax, column in zip(axes, columns):
            if not part[column].notna().any():
                continue
            fmt = style(key) if style else "-"
            if column in errors:
                ax.errorbar(part["depth"], part[column], yerr=part[errors[column]], fmt=fmt,
                            marker="o", capsize=3, label=label)
            else:
                ax.plot(part["depth"], part[column], fmt, marker="o", label=label)
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel(xlabel)


def block_names(model):
    """The activation modules, in depth order, then the logits."""
    return [name for name, _ in model.named_children() if name.startswith("act")] + ["out"]


def accuracy(model, X, y):
    with torch.no_grad():
        return float((model(torch.as_tensor(X)).argmax(1).numpy() == np.asarray(y)).mean())


def layer_profile(model, X, y, *, seed=0, per_class=250, classes=range(9), layers=None,
                  phdim=True):
    """One row per layer: PH dimension (with spread) and the local H0/H1 lifespans sums."""
    layers = layers or block_names(model)
    clouds = LayerEmbedder(model, layers=layers, device="cpu").fit_transform(X)
    parts = []
    if phdim:
        table = PHDimension(random_state=seed).set_output(transform="pandas").fit_transform(clouds)
        parts.append(table[["phdim", "phdim_std"]])
    parts.append(local_lifespans(clouds, y, per_class=per_class, classes=classes))
    out = pd.concat(parts, axis=1)
    out.insert(0, "depth", (np.arange(len(out)) + 1) / len(out))
    return out


def local_lifespans(clouds, y, *, per_class=250, classes=range(9)):
    """Study A's lifespans sums: exactly its code's numbers (see ``sktopo.local``)."""
    scaled = clouds.map(minmax_scale)
    local = split_by_label(scaled, y, classes=classes, max_points=per_class, sample="first")
    diagrams = PersistenceDiagram(homology_dimensions=(0, 1)).fit_transform(local)
    table = DiagramFeatures(features=["total_persistence"], p=(1,)) \
        .set_output(transform="pandas").fit_transform(diagrams)
    table = 0.5 * mean_over_labels(table)
    return table.rename(columns={"H0__total_persistence_p1": "H0_lifespans",
                                 "H1__total_persistence_p1": "H1_lifespans"})


def fgsm(model, X, y, eps):
    """Inputs moved by ``eps`` along the sign of the loss gradient, clipped to [0, 1]."""
    x = torch.as_tensor(X).clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), torch.as_tensor(y))
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp(0, 1).detach().numpy()


def pgd(model, X, y, eps, steps=10):
    """Projected gradient descent (Madry et al. 2018): ``steps`` FGSM steps of ``eps / 4``,
    each projected back into the ``eps`` box around the input and into [0, 1]."""
    x0 = torch.as_tensor(X)
    x = x0.clone()
    for _ in range(steps):
        x = torch.as_tensor(fgsm(model, x.numpy(), y, eps / 4))
        x = torch.min(torch.max(x, x0 - eps), x0 + eps).clamp(0, 1)
    return x.numpy()
