"""Study B, regression vs classification: quantised targets compress the last hidden layer.

"A rank decomposition for the topological classification of neural representations" (arXiv
2404.19710) trains an MLP 20-160-80-40-1 on the sphere function ``f(x) = |x|^2`` in 20-D, with
the target either continuous or quantised to 2..6 levels, and counts the active units of the
last hidden layer (40 units): about 19.5 before training, about 9.5 after training on 2 levels
and 6.5 on 3 levels, but about 27.5 on the continuous target. Networks compress the topology of
the data for discontinuous tasks and keep it for continuous ones.

Here: inputs uniform in [-1, 1]^20 (``--n-train`` training inputs, 500 test inputs), targets
``|x|^2`` standardised (continuous) or the index 0..L-1 of its quantile bin (L levels, bins from
the training targets), the same MSE loss for every target, Adam (lr 1e-3, batch 128) for
``--epochs`` epochs, ``--n-seeds`` networks per target type. On the test inputs, with
:class:`sktopo.ReLURankRegions`: the mean number of active units and the mean cumulative rank
(input to last hidden layer; at most min(active, 20)) per target type, and the test error.

Prints the table and saves ``study_b_regression_vs_classification.png`` in ``--out``. A few
minutes on a 2-core CPU; ``--quick`` is seconds.
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

from sktopo import ReLURankRegions  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import elapsed, example_parser, parse_args, save_figure  # noqa: E402

PAPER_ACTIVE = {"untrained": 19.5, "continuous": 27.5, "2 levels": 9.5, "3 levels": 6.5}


def make_mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 160), nn.ReLU(), nn.Linear(160, 80), nn.ReLU(),
                         nn.Linear(80, 40), nn.ReLU(), nn.Linear(40, 1))


def targets(X, levels, reference):
    """|x|^2 standardised (levels=None) or its quantile-bin index 0..levels-1."""
    y, ref = (X ** 2).sum(1), (reference ** 2).sum(1)
    if levels is None:
        return (y - ref.mean()) / ref.std()
    edges = np.quantile(ref, np.linspace(0, 1, levels + 1)[1:-1])
    return np.digitize(y, edges).astype(np.float64)


def train(model, X, y, epochs, seed, batch_size=128):
    x = torch.as_tensor(X, dtype=torch.float32)
    t = torch.as_tensor(y, dtype=torch.float32)[:, None]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            batch = order[start:start + batch_size]
            loss = ((model(x[batch]) - t[batch]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def last_layer(model, X):
    """Mean active units and mean cumulative rank of the last hidden layer on X."""
    summary = ReLURankRegions(model, device="cpu").fit(X).summary_.iloc[-1]
    return float(summary["mean_active"]), float(summary["mean_rank"])


def main():
    parser = example_parser(__doc__, seed=False)
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--n-seeds", type=int, default=2, help="networks per target type")
    args = parse_args(parser, quick="seconds: smoke test")

    if args.quick:
        n_train, epochs, n_seeds, kinds = 500, 2, 1, [None, 2]
    else:
        n_train, epochs, n_seeds, kinds = args.n_train, args.epochs, args.n_seeds, [
            None, 2, 3, 4, 5, 6]
    rng = np.random.default_rng(0)
    X_train = rng.uniform(-1, 1, size=(n_train, 20))
    X_test = rng.uniform(-1, 1, size=(500, 20))

    rows = []
    for seed in range(n_seeds):
        active, rank = last_layer(make_mlp(seed), X_test)
        rows.append({"target": "untrained", "seed": seed, "active": active, "rank": rank,
                     "test_mse": np.nan})
        for levels in kinds:
            name = "continuous" if levels is None else f"{levels} levels"
            model = train(make_mlp(seed), X_train, targets(X_train, levels, X_train), epochs,
                          seed)
            with torch.no_grad():
                pred = model(torch.as_tensor(X_test, dtype=torch.float32)).numpy()[:, 0]
            mse = float(((pred - targets(X_test, levels, X_train)) ** 2).mean())
            active, rank = last_layer(model, X_test)
            rows.append({"target": name, "seed": seed, "active": active, "rank": rank,
                         "test_mse": mse})
    table = pd.DataFrame(rows)
    order = list(dict.fromkeys(table["target"]))
    summary = table.groupby("target", sort=False)[["active", "rank", "test_mse"]].agg(
        ["mean", "std"]).loc[order]
    summary[("paper", "active")] = [PAPER_ACTIVE.get(name, np.nan) for name in order]
    pd.set_option("display.width", 140)
    print(f"MLP 20-160-80-40-1 on |x|^2 in 20-D: last hidden layer (40 units) on 500 test "
          f"inputs; {n_seeds} network(s) per target, {n_train} training inputs, {epochs} "
          f"epochs\n")
    print(summary.round(2).to_string())
    print(f"\ntotal time {elapsed():.1f} s")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    positions = np.arange(len(order))
    for ax, column in zip(axes, ["active", "rank"]):
        ax.errorbar(positions, summary[(column, "mean")], yerr=summary[(column, "std")],
                    fmt="o", capsize=3, label="sktopo (mean, sd over networks)")
        if column == "active":
            ax.plot(positions, summary[("paper", "active")], "k*", ms=10, label="paper (about)")
        ax.set_xticks(positions, order, rotation=30)
        ax.set(ylabel=f"mean {column} (last hidden layer)",
               title=f"{column} units" if column == "active" else "cumulative rank (max 20)")
        ax.legend(fontsize=8)
    save_figure(fig, args.out, "study_b_regression_vs_classification.png", dpi=110)


if __name__ == "__main__":
    main()
