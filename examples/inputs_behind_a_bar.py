"""The inputs behind a bar: the digits around the longest H1 loop of a trained MLP layer.

Trains a small ``DigitsMLP`` on scikit-learn's digits (one torch thread), embeds the held-out
digits at one hidden layer with ``LayerEmbedder`` (one point per input), and computes
``PersistenceDiagram((0, 1), representatives=True, n_landmarks=...)``: every H0 and H1 bar
keeps the input indices of a representative (rows of the cloud, also with landmarks). Prints
the longest H1 bar, the input indices of its loop and their labels, and draws the loop in a
2-D projection of the layer with the digit images around it (``sktopo.plotting.plot_cycle``).
Saves ``inputs_behind_a_bar.png`` in ``--out``. About ten seconds; ``--quick`` for a smoke run.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sktopo import LayerEmbedder, PersistenceDiagram  # noqa: E402
from sktopo.nn.models import DigitsMLP, fit_digits  # noqa: E402
from sktopo.plotting import plot_cycle  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import digits_split, elapsed, example_parser, parse_args  # noqa: E402


def main():
    parser = example_parser(__doc__, epochs=40)
    parser.add_argument("--layer", default="relu2", help="DigitsMLP layer whose cloud is used")
    parser.add_argument("--n-landmarks", type=int, default=300)
    args = parse_args(parser)
    epochs, n_landmarks = (5, 120) if args.quick else (args.epochs, args.n_landmarks)

    X_train, X_test, y_train, y_test = digits_split(args.seed)
    model = fit_digits(DigitsMLP(random_state=args.seed), X_train, y_train, epochs=epochs,
                       device="cpu", n_threads=1, random_state=args.seed)
    with torch.no_grad():
        predicted = model(torch.as_tensor(X_test, dtype=torch.float32)).argmax(1).numpy()
    accuracy = float((predicted == y_test).mean())
    print(f"DigitsMLP after {epochs} epochs: test accuracy {accuracy:.3f}")

    cloud = LayerEmbedder(model, layers=args.layer, device="cpu").fit_transform(X_test)[args.layer]
    print(f"layer {args.layer}: {cloud.shape[0]} held-out digits in R^{cloud.shape[1]}")
    diagram = PersistenceDiagram((0, 1), representatives=True, n_landmarks=n_landmarks,
                                 random_state=args.seed).fit_transform([cloud])[0]
    bars = diagram[1]
    if not len(bars):
        raise SystemExit(f"no H1 bar at layer {args.layer}; try another --layer")
    life = np.where(np.isfinite(bars[:, 1]), bars[:, 1] - bars[:, 0], -np.inf)
    k = int(np.argmax(life))
    members = np.asarray(diagram.representatives[1][k], dtype=int)
    print(f"{len(bars)} H1 bars on {n_landmarks} landmarks; longest H1 bar #{k}: "
          f"birth {bars[k, 0]:.3f}, death {bars[k, 1]:.3f}, persistence {life[k]:.3f}")
    print(f"its loop: {len(members)} inputs, indices into the held-out digits: {members.tolist()}")
    print(f"their labels, in loop order: {y_test[members].tolist()}")

    fig, ax = plt.subplots(figsize=(7, 7))
    plot_cycle(cloud, diagram, q=1, bar=k, ax=ax, images=X_test, image_shape=(8, 8), n_images=12)
    ax.set_title(f"DigitsMLP {args.layer}: longest H1 bar ({bars[k, 0]:.2f}, {bars[k, 1]:.2f}), "
                 f"{len(members)} inputs")
    # plot_cycle's image strip is an inset below the axes, which tight_layout leaves out:
    # save with a tight bounding box instead, so the strip is in the file
    path = os.path.join(args.out, "inputs_behind_a_bar.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    print(f"saved {path} in {elapsed():.0f} s")


if __name__ == "__main__":
    main()
