"""Training dynamics: the geometry and topology of a digits CNN's layers at every epoch.

Trains ``DigitsCNN`` on scikit-learn's digits for 30 epochs (Adam, the 1347 training digits),
saving a checkpoint before training and after each epoch, then sweeps the 31 checkpoints with
``sktopo.CheckpointEmbedder`` and measures, per layer (``relu1``, ``relu2``, ``relu3`` conv
maps global-average-pooled, and the logits ``out``) and per epoch:

* the PH dimension (H0, alpha = 1) and the TwoNN dimension of the 1347 training digits;
* study A's H0 and H1 lifespans sums (its "local" mode: MinMax over the layer, up to 250
  inputs of each class 0-8, half the total finite bar length, mean over the classes);
* the ReLU rank summary of the layer's linear regions (``ReLURankRegions``) at
  ``--rank-inputs`` held-out digits: mean rank deficit and fraction of active units;
* linear CKA and RTD (``batch_size=200``, 4 subsets) between the layer and the same layer of
  the final model;

and the held-out accuracy. Each stage's clouds (``CheckpointEmbedder(memory=...)``) and its
measurements (``joblib.Memory``, keyed by the clouds' and weights' content) are cached under
``--cache``: a run that is killed resumes with the stages it had not finished. Prints the
table and the epoch at which each layer settles, and saves ``training_dynamics.png``.

About two minutes on a 2-core CPU; ``--quick`` for a smoke run.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import joblib  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (digits_split, example_parser, parse_args, save_figure,  # noqa: E402
                     wide_tables)
from _study_a import local_lifespans  # noqa: E402

from sktopo import (CheckpointEmbedder, LayerEmbedder, PHDimension, ReLURankRegions,  # noqa: E402
                    TwoNN, cka, rtd)
from sktopo.nn.models import DigitsCNN, fit_digits  # noqa: E402

LAYERS = ["relu1", "relu2", "relu3", "out"]
SETTLED_CKA = 0.95


def train_with_checkpoints(folder, X, y, *, epochs, seed):
    """Train ``DigitsCNN`` for ``epochs`` epochs, saving ``epoch_00.pt`` (the initial weights)
    to ``epoch_<epochs>.pt`` in ``folder``; a folder that already holds them all is reused
    (training is deterministic: the same seed gives the same files)."""
    paths = [os.path.join(folder, f"epoch_{e:02d}.pt") for e in range(epochs + 1)]
    if all(os.path.exists(path) for path in paths):
        return False
    os.makedirs(folder, exist_ok=True)
    model = DigitsCNN(random_state=seed)

    def save(epoch, net):
        # write then rename, so that a kill never leaves a truncated checkpoint behind
        torch.save(net.state_dict(), paths[epoch] + ".part")
        os.replace(paths[epoch] + ".part", paths[epoch])

    save(0, model)
    fit_digits(model, X, y, epochs=epochs, random_state=seed, callback=save)
    return True


def measure_stage(clouds, final, weights, X_rank, X_test, y_test, y_train, *, per_class,
                  rtd_batch, rtd_trials, seed):
    """One row per layer of one stage: every measurement that needs only this stage's clouds
    and weights (and the final stage's clouds, for CKA and RTD)."""
    model = DigitsCNN()
    model.load_state_dict({name: torch.as_tensor(value) for name, value in weights.items()})
    model.eval()
    table = pd.concat([
        PHDimension(random_state=seed).set_output(transform="pandas")
        .fit_transform(clouds)[["phdim", "phdim_std"]],
        TwoNN().set_output(transform="pandas").fit_transform(clouds)[["twonn"]],
        local_lifespans(clouds, y_train, per_class=per_class),
    ], axis=1)
    table["cka_to_final"] = [cka(clouds[layer], final[layer]) for layer in clouds.index]
    table["rtd_to_final"] = [rtd(clouds[layer], final[layer], batch_size=rtd_batch,
                                 n_trials=rtd_trials, random_state=seed)
                             for layer in clouds.index]
    ranks = ReLURankRegions(model, device="cpu").fit(X_rank).summary_
    table["mean_rank_deficit"] = ranks["mean_rank_deficit"]
    table["active_fraction"] = ranks["mean_active"] / ranks["units"]
    with torch.no_grad():
        predicted = model(torch.as_tensor(X_test)).argmax(1).numpy()
    table["test_accuracy"] = float((predicted == y_test).mean())
    return table


def settling_epochs(table, *, last=5, tolerance=0.1):
    """Per layer, the first epoch from which CKA to the final model stays at or above
    SETTLED_CKA, and the first from which the PH dimension stays within ``tolerance`` (relative)
    of its mean over the ``last`` epochs (late in training the value still moves by about its
    spread, 0.1-0.4, from one epoch to the next: the mean is a steadier target than the final
    value)."""
    rows = {}
    for layer, part in table.groupby(level="layer", sort=False):
        part = part.droplevel("layer")
        target = part["phdim"].iloc[-last:].mean()
        near = (part["phdim"] - target).abs() <= tolerance * target
        rows[layer] = {f"cka >= {SETTLED_CKA}": _first_of_last_run(part["cka_to_final"]
                                                                     >= SETTLED_CKA),
                       f"phdim within {tolerance:.0%}": _first_of_last_run(near),
                       f"phdim, last {last} epochs": target}
    table = pd.DataFrame(rows).T.rename_axis("layer")
    return table.astype({column: "Int64" for column in table.columns[:2]})


def _first_of_last_run(flags):
    """The index of the first entry of the final run of True values (None if the last is
    False)."""
    values = flags.to_numpy()
    if not values[-1]:
        return None
    start = len(values) - np.argmin(values[::-1]) if not values.all() else 0
    return int(flags.index[start])


def at_least(low):
    """An argparse type: an integer >= ``low``."""
    def parse(text):
        value = int(text)
        if value < low:
            raise ValueError(text)
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--epochs", type=at_least(1), default=None,
                        help="training epochs, one checkpoint each (30; --quick: 4)")
    parser.add_argument("--rank-inputs", type=at_least(1), default=100,
                        help="held-out digits of the ReLU rank summary (at most 450)")
    parser.add_argument("--cache", default=None,
                        help="checkpoints and per-stage cache (default: <out>/training_dynamics_cache)")
    parser.add_argument("--n-jobs", type=at_least(1), default=1,
                        help="stages measured in parallel (processes; each uses one thread)")
    args = parse_args(parser)
    quick = args.quick
    epochs = args.epochs if args.epochs is not None else (4 if quick else 30)
    per_class, rtd_batch, rtd_trials = (20, 60, 1) if quick else (250, 200, 4)
    rank_inputs = 20 if quick else args.rank_inputs
    cache = args.cache or os.path.join(args.out, "training_dynamics_cache")

    X_train, X_test, y_train, y_test = digits_split(args.seed, images=True)
    if rank_inputs > len(X_test):
        parser.error(f"--rank-inputs: at most {len(X_test)} (the held-out digits); "
                     f"got {rank_inputs}")
    run = f"seed{args.seed}_epochs{epochs}" + ("_quick" if quick else "")
    trained = train_with_checkpoints(os.path.join(cache, run), X_train, y_train,
                                     epochs=epochs, seed=args.seed)

    # the clouds of every stage: (stage, layer) -> (n_inputs, width), cached per stage
    sweep = CheckpointEmbedder(LayerEmbedder(DigitsCNN(), layers=LAYERS, device="cpu"),
                               os.path.join(cache, run, "epoch_*.pt"), memory=cache)
    clouds = sweep.fit_transform(X_train)
    stages = sweep.stages_
    final = clouds.xs(stages[-1], level="stage")

    memory = joblib.Memory(cache, verbose=0)
    measure = memory.cache(measure_stage)
    settings = dict(per_class=per_class, rtd_batch=rtd_batch, rtd_trials=rtd_trials,
                    seed=args.seed)
    X_rank = X_test[:rank_inputs]
    calls = []
    for stage in stages:
        state = torch.load(os.path.join(cache, run, f"{stage}.pt"), weights_only=True)
        weights = {name: value.numpy() for name, value in state.items()}
        calls.append((clouds.xs(stage, level="stage"), final, weights, X_rank, X_test, y_test,
                      y_train))
    done = sum(measure.check_call_in_cache(*call, **settings) for call in calls)
    rows = joblib.Parallel(n_jobs=args.n_jobs)(
        joblib.delayed(measure)(*call, **settings) for call in calls)
    epochs_index = [int(stage.removeprefix("epoch_")) for stage in stages]
    table = pd.concat(rows, keys=epochs_index, names=["epoch"])

    print(f"DigitsCNN, {epochs} epochs, {len(stages)} checkpoints"
          f"{' (trained now)' if trained else ' (reused)'}; {len(X_train)} training digits; "
          f"held-out accuracy {table['test_accuracy'].iloc[0]:.3f} -> "
          f"{table['test_accuracy'].iloc[-1]:.3f}")
    print(f"stages: {len(stages) - len(sweep.computed_stages_)} embeddings and {done} "
          f"measurements from the cache, {len(calls) - done} measured now")
    shown = sorted({0, 1, 2, 5, 10, 20, epochs} & set(epochs_index))
    with wide_tables("{:.3f}"):
        print("\nper layer and epoch (a selection of epochs)")
        print(table.drop(columns="test_accuracy").loc[shown])
        print("\nPH dimension by layer (columns) and epoch: where its peak sits")
        print(table["phdim"].unstack("layer")[LAYERS].loc[shown])
        print(f"\nthe epoch from which each layer stays settled (CKA to the final model >= "
              f"{SETTLED_CKA}; PH dimension within 10% of its mean over the last 5 epochs)")
        print(settling_epochs(table))

    save_figure(figure(table), args.out, "training_dynamics.png")


def figure(table):
    """Each measurement against epoch, one line per layer; the PH dimension against depth at a
    few epochs."""
    panels = [("phdim", "PH dimension (band: ± 1 s.d. over 5 reruns)"),
              ("twonn", "TwoNN dimension"), (None, "PH dimension by layer"),
              ("H0_lifespans", "H0 lifespans sum (study A, local)"),
              ("H1_lifespans", "H1 lifespans sum (study A, local)"),
              ("test_accuracy", "held-out accuracy"),
              ("cka_to_final", "linear CKA to the final model"),
              ("rtd_to_final", "RTD to the final model (200 inputs)"),
              ("active_fraction", "active ReLU units (fraction)")]
    fig, axes = plt.subplots(3, 3, figsize=(14, 11))
    colours = dict(zip(LAYERS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, (column, title) in zip(axes.ravel(), panels):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        if column is None:
            continue
        for layer, part in table.groupby(level="layer", sort=False):
            if not part[column].notna().any() or (column == "test_accuracy" and layer != "out"):
                continue
            epochs = part.index.get_level_values("epoch")
            ax.plot(epochs, part[column], marker=".", color=colours[layer],
                    label=layer if column != "test_accuracy" else None)
            if column == "phdim":
                ax.fill_between(epochs, part["phdim"] - part["phdim_std"],
                                part["phdim"] + part["phdim_std"], color=colours[layer],
                                alpha=0.2)
    by_layer = table["phdim"].unstack("layer")[LAYERS]
    epochs = by_layer.index
    shown = sorted({epochs[0], epochs[1], epochs[min(2, len(epochs) - 1)],
                    epochs[len(epochs) // 6], epochs[-1]})
    ax = axes[0, 2]
    for epoch, shade in zip(shown, np.linspace(0.85, 0.0, len(shown))):
        ax.plot(LAYERS, by_layer.loc[epoch], marker="o", color=str(shade), label=f"epoch {epoch}")
    ax.set_xlabel("layer")
    ax.legend(fontsize=8)
    deficit = table["mean_rank_deficit"].max()
    axes[2, 2].text(0.02, 0.02, f"mean rank deficit: at most {deficit:.2f} at any layer",
                    transform=axes[2, 2].transAxes, fontsize=8)
    axes[0, 0].legend(fontsize=8)
    return fig


if __name__ == "__main__":
    main()
