"""Speed of sktopo's R-Cross-Barcode against the reference construction, measured in the same run.

For each number of inputs n and dimension d (P Gaussian, Q = ReLU of a random linear map of P:
two representations of the same inputs), prints the seconds of

* sktopo: ``sktopo.cross_barcode(P, Q)`` (the paper's ``w_P+`` matrix: entries below the
  diagonal of the cross block left out, through the default engine, redzed-tda);
* reference: the reference code's construction (the full ``w_P`` cross block) run through
  ripser.py directly, as ``rtd.barcodes.calc_embed_dist`` does on the CPU;
* the same full matrix through giotto-ph (single thread);

with the ratios ``anchor time / sktopo time`` (above 1: sktopo is faster) and a check that the
H1 bars agree (same number, values within 1e-4 relative). CPU times (``time.process_time``),
which a shared machine disturbs less than wall-clock times; each is the best of ``--repeat``.

Usage::

    python benchmarks/rtd.py            # n = 100, 200, 400; d = 2, 32
    python benchmarks/rtd.py --quick    # n = 100, 200
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import _timing  # benchmarks/_timing.py (the script's folder is on sys.path)


def best_time(fn, repeat):
    return _timing.best_time(fn, repeat, clock=time.process_time)  # CPU time, see above


def reference_matrix(P, Q):
    def normalised(X):
        D = np.sqrt(np.maximum(((X[:, None] - X[None]) ** 2).sum(-1), 0))
        return D / np.quantile(D, 0.9)

    r1, r2 = normalised(P), normalised(Q)
    n = len(P)
    d = np.zeros((2 * n, 2 * n))
    d[n:, :n] = r1
    d[:n, n:] = r1.T
    d[n:, n:] = np.minimum(r1, r2)
    d[d < r1.mean() * 1e-6] = 0
    return d


def h1(dgm):
    dgm = np.asarray(dgm, dtype=float)
    dgm = dgm[dgm[:, 1] > dgm[:, 0]]
    return dgm[np.lexsort((dgm[:, 1], dgm[:, 0]))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    import sktopo
    from ripser import ripser

    try:
        from gph import ripser_parallel
    except ImportError:
        ripser_parallel = None

    sizes = [100, 200] if args.quick else [100, 200, 400]
    rng = np.random.default_rng(0)
    print(f"{'n':>5} {'d':>4} {'sktopo s':>9} {'ripser.py s':>12} {'ratio':>6} "
          f"{'giotto s':>9} {'ratio':>6}  H1 bars agree")
    for d in (2, 32):
        for n in sizes:
            P = rng.normal(size=(n, d))
            Q = np.maximum(P @ rng.normal(size=(d, d)), 0)
            t_ours, ours = best_time(lambda: sktopo.cross_barcode(P, Q)[1], args.repeat)
            M = reference_matrix(P, Q)
            t_ref, ref = best_time(
                lambda: ripser(M, distance_matrix=True, maxdim=1)["dgms"][1], args.repeat)
            ref = h1(ref)
            agree = ours.shape == ref.shape and np.allclose(ours, ref, rtol=1e-4, atol=1e-6)
            if ripser_parallel is not None:
                t_gph, _ = best_time(lambda: ripser_parallel(M, metric="precomputed", maxdim=1,
                                                             n_threads=1)["dgms"][1], args.repeat)
                giotto = f"{t_gph:9.3f} {t_gph / t_ours:6.2f}"
            else:
                giotto = f"{'-':>9} {'-':>6}"
            print(f"{n:5d} {d:4d} {t_ours:9.3f} {t_ref:12.3f} {t_ref / t_ours:6.2f} {giotto}  "
                  f"{agree} ({len(ours)} bars)")


if __name__ == "__main__":
    main()
