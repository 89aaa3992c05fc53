"""Speed of a layer-by-layer linear CKA table against per-pair loops of the reference code.

Ten layers of a random ReLU network on ``n`` inputs (widths up to 1,024), and prints the
seconds of

* sktopo: ``sktopo.similarity_table(layers)``, the 10 x 10 table of linear CKA of a model's
  layers with themselves: each layer's centred features (its feature-space form, as every
  width is below ``n``) and ``||X^T X||_F`` computed once, each unordered pair once;
* sktopo, two models: ``similarity_table(layers, other)``, 10 x 10 layers of two models (no
  symmetry to use: all 100 pairs);
* reference, feature space: a loop over the 100 ordered pairs of Kornblith et al.'s
  ``feature_space_linear_cka(X, Y)`` (their published numpy code, vectorised: it centres both
  clouds and computes ``||Y^T X||``, ``||X^T X||`` and ``||Y^T Y||`` for every pair), after a
  warm-up call;
* reference, 45 pairs: the same function on the pairs ``i < j`` only (the diagonal is 1), the
  loop a careful user writes for one model's table;
* reference, Gram: Kornblith et al.'s ``cka(gram_linear(X), gram_linear(Y))`` (``n x n`` Gram
  matrices and their centring, per pair), timed on ``--gram-pairs`` pairs and scaled to 100;

with the ratios ``reference time / sktopo time`` (above 1: sktopo is faster) and the largest
difference between the tables (the same numbers to ~1e-12). Wall-clock seconds (BLAS uses
every core) and CPU seconds of this process, each the best of ``--repeat`` interleaved rounds;
the load average is printed, as the machine may be shared.

Usage::

    python benchmarks/similarity.py             # n = 5000, widths up to 1024
    python benchmarks/similarity.py --quick     # n = 2000, widths up to 512
    python benchmarks/similarity.py --threads 1 # one BLAS thread: CPU seconds = the work
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

import sktopo


# ---------------------------------------------- Kornblith et al. (2019), published numpy code
def gram_linear(x):
    return x.dot(x.T)


def center_gram(gram):
    gram = gram.copy()
    means = np.mean(gram, 0, dtype=np.float64)
    means -= np.mean(means) / 2
    gram -= means[:, None]
    gram -= means[None, :]
    return gram


def cka(gram_x, gram_y):
    gram_x = center_gram(gram_x)
    gram_y = center_gram(gram_y)
    scaled_hsic = gram_x.ravel().dot(gram_y.ravel())
    normalization_x = np.linalg.norm(gram_x)
    normalization_y = np.linalg.norm(gram_y)
    return scaled_hsic / (normalization_x * normalization_y)


def feature_space_linear_cka(features_x, features_y):
    features_x = features_x - np.mean(features_x, 0, keepdims=True)
    features_y = features_y - np.mean(features_y, 0, keepdims=True)
    dot_product_similarity = np.linalg.norm(features_x.T.dot(features_y)) ** 2
    normalization_x = np.linalg.norm(features_x.T.dot(features_x))
    normalization_y = np.linalg.norm(features_y.T.dot(features_y))
    return dot_product_similarity / (normalization_x * normalization_y)


# --------------------------------------------------------------------------------- data
def relu_layers(n, widths, seed):
    """Activations of a random ReLU network with these widths on n Gaussian inputs."""
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(n, 64))
    layers = {}
    for k, width in enumerate(widths):
        h = np.maximum(h @ rng.normal(size=(h.shape[1], width)) / np.sqrt(h.shape[1]), 0)
        h += 0.05 * rng.normal(size=h.shape)
        layers[f"layer{k}_{width}"] = h
    return pd.Series(layers)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def reference_table(fn, X, Y):
    return pd.DataFrame([[fn(X[a], Y[b]) for b in Y.index] for a in X.index],
                        index=X.index, columns=Y.index)


def symmetric_reference_table(fn, X):
    """The per-pair loop a careful user writes for one model: i < j only, 1 on the diagonal."""
    table = pd.DataFrame(1.0, index=X.index, columns=X.index)
    for i in range(len(X)):
        for j in range(i + 1, len(X)):
            table.iat[i, j] = table.iat[j, i] = fn(X.iloc[i], X.iloc[j])
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 2000, widths up to 512")
    parser.add_argument("--gram-pairs", type=int, default=3,
                        help="pairs on which the Gram reference is timed (0 skips it)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="interleaved rounds; each time is the best over them")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads (default: the library's, every core); 1 makes the "
                             "CPU seconds the work itself, with no waiting threads counted")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    if args.quick:
        n, widths = 2000, [32, 64, 128, 256, 512, 512, 256, 128, 64, 32]
    else:
        n, widths = 5000, [64, 128, 256, 512, 1024, 1024, 512, 256, 128, 64]
    layers = relu_layers(n, widths, seed=0)
    other = relu_layers(n, widths, seed=1)
    print(f"n = {n} inputs, 10 layers of widths {widths}; {os.cpu_count()} CPUs, BLAS threads "
          f"{args.threads or 'default'}, load average "
          f"before: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")

    # warm-up (BLAS threads, page faults), then the measured runs
    feature_space_linear_cka(layers.iloc[0], layers.iloc[1])
    sktopo.similarity_table(layers.iloc[:2])

    runs = {
        "sktopo similarity_table(X)": lambda: sktopo.similarity_table(layers),
        "sktopo similarity_table(X, Y)": lambda: sktopo.similarity_table(layers, other),
        "reference feature_space_linear_cka, 100 pairs":
            lambda: reference_table(feature_space_linear_cka, layers, layers),
        "reference feature_space_linear_cka, X vs Y":
            lambda: reference_table(feature_space_linear_cka, layers, other),
        "reference feature_space_linear_cka, 45 pairs i < j":
            lambda: symmetric_reference_table(feature_space_linear_cka, layers),
    }
    best, results = {}, {}
    for _ in range(args.repeat):  # interleaved rounds, the best of each: load comes and goes
        for name, run in runs.items():
            wall, cpu, results[name] = timed(run)
            old = best.get(name, (np.inf, np.inf))
            best[name] = (min(old[0], wall), min(old[1], cpu))
    rows = [(name, *best[name]) for name in runs]
    ours, ours_xy, ref, ref_xy, ref_half = (results[name] for name in runs)
    if args.gram_pairs:
        picks = [(i % 10, (3 * i + 1) % 10) for i in range(args.gram_pairs)]
        gram_values = []

        def gram_loop():
            for i, j in picks:
                gram_values.append(cka(gram_linear(layers.iloc[i]), gram_linear(layers.iloc[j])))

        wall, cpu, _ = timed(gram_loop)
        scale = 100 / len(picks)
        rows.append((f"reference cka(gram_linear) (x{scale:.0f} from {len(picks)} pairs)",
                     wall * scale, cpu * scale))
        gram_error = max(abs(v - ours.iat[i, j]) for v, (i, j) in zip(gram_values, picks))
    print(f"\n{'what':58s} {'wall s':>8s} {'CPU s':>8s}")
    for name, wall, cpu in rows:
        print(f"{name:58s} {wall:8.2f} {cpu:8.2f}")
    ours_wall, ours_xy_wall = rows[0][1], rows[1][1]
    print(f"\nratio reference / sktopo, X with itself (wall): {rows[2][1] / ours_wall:.1f}x "
          f"(CPU {rows[2][2] / rows[0][2]:.1f}x)")
    print(f"ratio reference / sktopo, X vs Y (wall):        {rows[3][1] / ours_xy_wall:.1f}x "
          f"(CPU {rows[3][2] / rows[1][2]:.1f}x)")
    print(f"ratio 45-pair reference / sktopo, X with itself (wall): "
          f"{rows[4][1] / ours_wall:.1f}x (CPU {rows[4][2] / rows[0][2]:.1f}x)")
    if args.gram_pairs:
        print(f"ratio Gram reference / sktopo, X with itself (wall): "
              f"{rows[5][1] / ours_wall:.1f}x (CPU {rows[5][2] / rows[0][2]:.1f}x)")
    error = max(float(np.max(np.abs(ours.to_numpy() - ref.to_numpy()))),
                float(np.max(np.abs(ours_xy.to_numpy() - ref_xy.to_numpy()))),
                float(np.max(np.abs(ours.to_numpy() - ref_half.to_numpy()))))
    print(f"largest difference from the feature-space reference: {error:.1e}")
    if args.gram_pairs:
        print(f"largest difference from the Gram reference: {gram_error:.1e}")
    print(f"target: the 10 x 10 table under 30 s -> {'met' if ours_wall < 30 else 'NOT met'} "
          f"({ours_wall:.1f} s); load average after: "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
