"""Plumbing shared by the example scripts (not an example itself: the docs skip ``_*.py``).

Every example takes ``--out`` (the folder of its figure, ``examples/figures`` by default) and
``--quick`` (a smoke run of seconds, what ``tests/test_examples.py`` runs), runs torch on one
thread (small networks on a shared CPU: more threads only oversubscribe it), prints its tables
wide, and ends by saving one figure and printing its path and the run time.

- ``example_parser``: the parser with ``--out`` (and ``--seed``, ``--epochs`` when asked);
- ``parse_args``: adds ``--quick``, parses, makes ``--out``, sets one torch thread, starts the
  clock that ``elapsed`` and ``save_figure`` read;
- ``digits_split``: scikit-learn's digits, split 75/25 stratified by label;
- ``wide_tables``: the pandas display options for printing a table;
- ``save_figure``: tight layout, write ``<out>/<name>``, print the path and the time;
- ``rank_tables`` and ``plot_ranks``: the study B rank examples' per-layer rank summaries of
  digits and noise images, and their lines per layer.
"""

import argparse
import os
import time

import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from sktopo import ReLURankRegions
from sktopo.datasets import load_digits

FIGURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")

_start = time.perf_counter()


def example_parser(doc, *, seed=True, epochs=None, out=FIGURES):
    """An ArgumentParser described by ``doc``'s first line, with ``--out`` (and ``--seed``,
    ``--epochs`` when ``seed`` is true and ``epochs`` is a default)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", default=out)
    if seed:
        parser.add_argument("--seed", type=int, default=0)
    if epochs is not None:
        parser.add_argument("--epochs", type=int, default=epochs)
    return parser


def parse_args(parser, *, quick="a few seconds: smoke test"):
    """Add ``--quick`` (help text ``quick``), parse, make ``--out``; one torch thread; start
    the clock."""
    global _start
    parser.add_argument("--quick", action="store_true", help=quick)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    _start = time.perf_counter()
    return args


def elapsed():
    """Seconds since ``parse_args``."""
    return time.perf_counter() - _start


def digits_split(seed, *, images=False):
    """``X_train, X_test, y_train, y_test``: the digits, 25% held out, stratified by label."""
    X, y = load_digits(images=images)
    return train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)


def wide_tables(float_format="{:.2f}", *, width=160):
    """Context: pandas prints up to ``width`` characters, 200 rows, 20 columns, ``float_format``."""
    return pd.option_context("display.width", width, "display.max_rows", 200,
                             "display.max_columns", 20, "display.float_format", float_format.format)


def save_figure(fig, out, name, *, dpi=100):
    """Tight layout, save ``fig`` as ``<out>/<name>``, print the path and the run time."""
    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path, dpi=dpi)
    print(f"saved {path} in {elapsed():.0f} s")
    return path


def rank_tables(model, digits, noise, stage, columns):
    """``ReLURankRegions.summary_[columns]`` of ``digits`` and of ``noise``, labelled
    ``"{stage}, digits"`` and ``"{stage}, noise"`` in an ``inputs`` column."""
    return [ReLURankRegions(model, device="cpu").fit(X).summary_[columns]
            .assign(inputs=f"{stage}, {name}") for name, X in [("digits", digits), ("noise", noise)]]


def plot_ranks(ax, table, stat):
    """``table[stat]`` per layer, one line per ``inputs`` group (dashed for noise); returns
    the layer labels."""
    for label, group in table.groupby(level="inputs", sort=False):
        layers = group.index.get_level_values("layer")
        ax.plot(layers, group[stat], marker="o", label=label, ls="-" if "digits" in label else "--")
    return layers
