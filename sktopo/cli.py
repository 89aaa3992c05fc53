"""The ``sktopo`` command.

``sktopo profile`` turns a network and its data into a per-layer table of
topology and geometry (persistence features, PH dimension, TwoNN and, for ReLU
MLPs, the rank profile), written as a tidy CSV or Parquet file with PNG plots.
``sktopo manifolds`` computes the persistence features of built-in synthetic
manifolds: a quick check that everything is installed and works.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["main"]


def _log(args, message):
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- loading


def _load_factory(spec: str):
    """``package.module:factory`` -> the callable it names."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(
            f"sktopo: --model {spec!r} is neither 'mlp', 'cnn' nor an import path "
            f"'package.module:factory'."
        )
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SystemExit(f"sktopo: cannot import {module_name!r} for --model: {error}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise SystemExit(f"sktopo: module {module_name!r} has no attribute {attr!r}") from None


def _load_data(args, images: bool):
    from sktopo.datasets import load_digits

    if args.data == "digits":
        X, y = load_digits(images=images)
        return X, y
    path = Path(args.data)
    if path.suffix != ".npy" or not path.exists():
        raise SystemExit(f"sktopo: --data must be 'digits' or an existing .npy file; got {args.data!r}")
    X = np.load(path, allow_pickle=False)
    y = np.load(args.labels, allow_pickle=False) if args.labels else None
    if y is not None and len(y) != len(X):
        raise SystemExit(f"sktopo: --labels has {len(y)} rows but --data has {len(X)}")
    return X, y


def _build_model(args):
    """Return (model, X, y, trainable) for the chosen model."""
    import torch

    from sktopo.nn import models

    if args.model in ("mlp", "cnn"):
        model = models.DigitsMLP() if args.model == "mlp" else models.DigitsCNN()
        X, y = _load_data(args, images=args.model == "cnn")
        trainable = args.checkpoint is None
    else:
        model = _load_factory(args.model)()
        if not isinstance(model, torch.nn.Module):
            raise SystemExit(f"sktopo: {args.model} returned {type(model).__name__}, not a torch.nn.Module")
        X, y = _load_data(args, images=False)
        trainable = False
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model.load_state_dict(state)
    return model, X, y, trainable


# ---------------------------------------------------------------- profile


def _profile_stage(model, X, args, stage):
    """Per-layer features of one model state, indexed by layer."""
    import torch

    from sktopo import LayerEmbedder, PersistenceDiagram, DiagramFeatures, PHDimension, TwoNN

    layers = args.layers or [torch.nn.ReLU]
    verbose = 0 if args.quiet else 1
    embedder = LayerEmbedder(
        model, layers=layers, unit="dataset", device=args.device,
        random_state=args.seed, verbose=verbose,
    )
    _log(args, f"[{stage}] embedding {len(X)} inputs ...")
    clouds = embedder.fit_transform(X)

    _log(args, f"[{stage}] persistence of {len(clouds)} layers ...")
    topo_clouds = clouds
    if args.scale == "minmax":
        from sklearn.preprocessing import minmax_scale

        # study A: every coordinate scaled to [0, 1], so lifespans do not just track weight norms
        topo_clouds = clouds.map(minmax_scale)
    diagrams = PersistenceDiagram(
        homology_dimensions=tuple(args.homology_dimensions), n_landmarks=args.n_landmarks or None,
        random_state=args.seed, n_jobs=args.n_jobs, verbose=verbose,
    ).fit_transform(topo_clouds)
    persistence = DiagramFeatures().set_output(transform="pandas").fit_transform(diagrams)

    _log(args, f"[{stage}] PH dimension and TwoNN ...")
    phdim = PHDimension(random_state=args.seed, n_jobs=args.n_jobs, verbose=verbose,
                        device=args.device).set_output(transform="pandas").fit_transform(clouds)
    twonn = TwoNN(random_state=args.seed).set_output(transform="pandas").fit_transform(clouds)
    # both estimators report e.g. "r2": give every column its estimator's name
    table = pd.concat([_own_columns(phdim, "phdim"), _own_columns(twonn, "twonn"), persistence],
                      axis=1)
    table.insert(0, "n_features", [cloud.shape[1] for cloud in clouds])
    return table


def _own_columns(table, name):
    """Prefix the columns of one estimator's table with its name: r2 -> phdim_r2."""
    return table.rename(columns=lambda c: c if c.startswith(name) else f"{name}_{c}")


def _rank_profile(model, X, args):
    """Min and mean cumulative rank per ReLU layer, or None for non-ReLU-MLP models."""
    from sktopo import ReLURankRegions

    try:
        return ReLURankRegions(model, device=args.device).fit(X).summary_
    except (ValueError, TypeError) as error:
        _log(args, f"rank profile skipped: {error}")
        return None


def _cmd_profile(args):
    import torch

    from sktopo import tidy
    from sktopo.nn import models

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    model, X, y, trainable = _build_model(args)
    stages = {}
    if trainable and args.stage in ("both", "untrained"):
        stages["untrained"] = copy.deepcopy(model)
    if trainable and args.stage in ("both", "trained"):
        if y is None:
            raise SystemExit("sktopo: training a built-in model needs labels (--labels)")
        _log(args, f"training the built-in {args.model} on {len(X)} inputs ...")
        models.fit_digits(model, X, y, epochs=args.epochs, random_state=args.seed,
                          verbose=0 if args.quiet else 1)
        stages["trained"] = model
    if not trainable:
        stages["given"] = model

    # one seeded subsample of inputs, shared by every stage and every measurement
    if args.max_inputs and args.max_inputs < len(X):
        keep = np.sort(np.random.default_rng(args.seed).choice(len(X), args.max_inputs, replace=False))
        X = X[keep]
    tables, ranks = {}, {}
    for stage, stage_model in stages.items():
        tables[stage] = _profile_stage(stage_model, X, args, stage)
        if args.model != "cnn":  # ReLURankRegions refuses DigitsCNN's max pooling
            _log(args, f"[{stage}] ReLU rank profile ...")
            rank = _rank_profile(stage_model, X, args)
            if rank is not None:
                ranks[stage] = rank
    table = pd.concat(tables, names=["stage"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    long = tidy(table)
    path = out / f"profile.{args.format}"
    if args.format == "parquet":
        long.to_parquet(path)
    else:
        long.to_csv(path, index=False)
    written = [path]
    if ranks:
        rank_table = pd.concat(ranks, names=["stage"])
        rank_path = out / f"ranks.{args.format}"
        (rank_table.to_parquet if args.format == "parquet" else rank_table.to_csv)(rank_path)
        written.append(rank_path)
    if not args.no_plots:
        written += _plot_profile(table, ranks, out)

    with pd.option_context("display.width", 160, "display.max_columns", 12,
                           "display.float_format", "{:.3f}".format):
        shown = [c for c in ("n_features", "phdim", "phdim_std", "twonn", "H0__total_persistence_p1",
                             "H1__n_bars", "H1__total_persistence_p1") if c in table.columns]
        print(table[shown])
        if ranks:
            print(pd.concat(ranks, names=["stage"]))
    _log(args, f"wrote {', '.join(map(str, written))} in {time.perf_counter() - start:.1f} s")
    return 0


def _plot_profile(table, ranks, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sktopo.plotting import plot_layer_profile

    panels = [("phdim", "phdim_std", "PH dimension"), ("twonn", None, "TwoNN dimension"),
              ("H0__total_persistence_p1", None, "H0 lifespans sum"),
              ("H1__total_persistence_p1", None, "H1 lifespans sum")]
    panels = [p for p in panels if p[0] in table.columns]
    n_panels = len(panels) + bool(ranks)
    fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels, 3.6), squeeze=False)
    for ax, (column, err, title) in zip(axes[0], panels):
        for stage, part in table.groupby(level="stage", sort=False):
            part = part.droplevel("stage")
            plot_layer_profile(part, y=column, yerr=err if err in part.columns else None, ax=ax, label=stage)
        ax.set_title(title)
        ax.legend()
    if ranks:
        ax = axes[0, -1]
        for stage, summary in ranks.items():
            color = f"C{list(table.index.unique('stage')).index(stage)}"  # as in the other panels
            plot_layer_profile(summary, y="mean_rank", yerr=None, ax=ax, label=f"{stage}: mean",
                               color=color)
            plot_layer_profile(summary, y="min_rank", yerr=None, ax=ax, label=f"{stage}: min",
                               color=color, linestyle="--")
        ax.set_title("cumulative rank of the ReLU map")
        ax.set_ylabel("rank")
        ax.legend()
    fig.tight_layout()
    paths = [out / "profile.png"]
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)
    return paths


# ---------------------------------------------------------------- manifolds


def _cmd_manifolds(args):
    from sktopo import DiagramFeatures, PersistenceDiagram, PHDimension
    from sktopo.datasets import make_manifolds

    clouds = make_manifolds(args.n_samples, random_state=args.seed)
    _log(args, f"persistence of {len(clouds)} built-in manifolds ({args.n_samples} points each) ...")
    diagrams = PersistenceDiagram(homology_dimensions=(0, 1, 2), random_state=args.seed,
                                  n_jobs=args.n_jobs, verbose=0 if args.quiet else 1).fit_transform(clouds)
    features = DiagramFeatures().set_output(transform="pandas").fit_transform(diagrams)
    phdim = PHDimension(random_state=args.seed).set_output(transform="pandas").fit_transform(clouds)
    table = pd.concat([phdim[["phdim"]], features], axis=1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"manifolds.{args.format}"
    if args.format == "parquet":
        table.to_parquet(path)
    else:
        table.to_csv(path)
    shown = [c for c in ("phdim", "H0__n_bars", "H1__n_bars", "H1__max_lifetime", "H2__n_bars",
                         "H2__max_lifetime") if c in table.columns]
    with pd.option_context("display.width", 200, "display.max_columns", None,
                           "display.float_format", "{:.3f}".format):
        print(table[shown])
    _log(args, f"wrote {path}")
    return 0


# ---------------------------------------------------------------- parser


def _parser():
    parser = argparse.ArgumentParser(
        prog="sktopo",
        description="Topology and geometry of neural-network representations.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="sktopo-output", help="output folder (default: %(default)s)")
    common.add_argument("--format", choices=("csv", "parquet"), default="csv", help="table format")
    common.add_argument("--seed", type=int, default=0, help="random_state for every random step")
    common.add_argument("--n-jobs", type=int, default=None, help="parallel jobs (joblib)")
    common.add_argument("--quiet", action="store_true", help="no progress output")

    profile = sub.add_parser(
        "profile", parents=[common],
        help="per-layer persistence, PH dimension, TwoNN and ReLU ranks of a network",
        description="Train (or load) a network, embed its layers and profile them layer by layer. "
                    "Writes a tidy table (unit, source, homology_dimension, feature, value) and plots.",
    )
    profile.add_argument("--model", default="mlp",
                         help="'mlp' or 'cnn' (built-in digits models) or 'package.module:factory' "
                              "returning a torch.nn.Module (default: %(default)s)")
    profile.add_argument("--data", default="digits", help="'digits' or a .npy file of inputs")
    profile.add_argument("--labels", default=None, help=".npy file of labels (training built-ins)")
    profile.add_argument("--checkpoint", default=None,
                         help="state_dict to load with torch.load(weights_only=True)")
    profile.add_argument("--stage", choices=("both", "trained", "untrained"), default="both",
                         help="built-in models: profile before and/or after training")
    profile.add_argument("--epochs", type=int, default=30, help="training epochs for built-ins")
    profile.add_argument("--layers", nargs="+", default=None,
                         help="layer names or glob patterns (default: every ReLU)")
    profile.add_argument("--max-inputs", type=int, default=1000,
                         help="random subsample of inputs (default: %(default)s)")
    profile.add_argument("--homology-dimensions", type=int, nargs="+", default=[0, 1])
    profile.add_argument("--n-landmarks", type=int, default=400,
                         help="greedy max-min landmarks for persistence; 0 uses every point "
                              "(default: %(default)s)")
    profile.add_argument("--scale", choices=("minmax", "none"), default="minmax",
                         help="scaling of each layer's coordinates before persistence; 'minmax' "
                              "is study A's choice (default: %(default)s)")
    profile.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    profile.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    profile.set_defaults(func=_cmd_profile)

    manifolds = sub.add_parser(
        "manifolds", parents=[common],
        help="persistence features of built-in synthetic manifolds (an install check)",
        description="Persistence features and PH dimension of a circle, two circles, a sphere, "
                    "a torus and a blob.",
    )
    manifolds.add_argument("--n-samples", type=int, default=400, help="points per manifold")
    manifolds.set_defaults(func=_cmd_manifolds)
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise SystemExit("sktopo: --format parquet needs pyarrow: pip install pyarrow") from None
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
