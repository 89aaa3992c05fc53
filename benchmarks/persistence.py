"""Speed of sktopo.PersistenceDiagram against ripser.py and giotto-ph, measured in the same run.

For each cloud size n and dimension d (Gaussian clouds), prints the seconds of

* H0 only: sktopo (``backend="auto"`` = exact MST engine: numpy distances and
  scipy's compiled single linkage, or a batched Prim for clouds of up to 512
  points), ripser.py (``maxdim=0``) and giotto-ph (``maxdim=0``);
* H0 + H1: sktopo (``backend="auto"`` = redzed-tda, fed with sktopo's distance
  matrix), ripser.py and giotto-ph (``maxdim=1``, ``--threads`` threads),

with the ratios ``anchor time / sktopo time`` (above 1: sktopo is faster) and
two checks of the diagrams: ``same`` (same number of bars, values within 1e-4
relative, against both anchors) and ``identical`` (every H1 bar equal to
ripser.py's, bit for bit: redzed-tda and ripser.py both compare distances in
float32). giotto-ph and sktopo get the same number of threads (``--threads``,
default: all cores).

``--large`` measures H1 of 10,000 points in R^64 (issue 21: under 30 s and
2 GB) in a fresh process: wall time and peak resident memory (``VmHWM``).

``--device cuda`` instead measures the torch MST path for H0 on the GPU at
n = 10,000, d = 4,096: distances (one matrix product, float32) plus Boruvka,
with ``torch.cuda.synchronize()`` around the timed region, and the end-to-end
``PersistenceDiagram(homology_dimensions=(0,), device="cuda")`` on a host array
(which adds the host-to-device copy).

Usage::

    python benchmarks/persistence.py            # n = 1000, 2000, 5000; d = 64, 512 (several minutes)
    python benchmarks/persistence.py --quick    # n = 1000, 2000 only
    python benchmarks/persistence.py --device cuda
    python benchmarks/persistence.py --large    # H1 of 10,000 points in R^64: time and memory

Wall-clock times on a shared machine are noisy: each time is the best of up
to ``--repeat`` runs (runs longer than 2 s are not repeated).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def best_time(fn, repeat):
    result, best = None, np.inf
    for k in range(repeat):
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        if elapsed > 2.0:
            break
    return best, result


def same_bars(ours, theirs, dims):
    """Whether two diagrams (dicts of (k, 2) arrays) agree up to float32 rounding."""
    for q in dims:
        a = np.asarray(ours[q], dtype=float).reshape(-1, 2)
        b = np.asarray(theirs[q], dtype=float).reshape(-1, 2)
        if a.shape != b.shape:
            return False
        a = a[np.lexsort((a[:, 1], a[:, 0]))]
        b = b[np.lexsort((b[:, 1], b[:, 0]))]
        if not (np.array_equal(np.isinf(a), np.isinf(b))
                and np.allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=1e-4, atol=1e-6)):
            return False
    return True


def identical_h1(ours, theirs):
    """Whether the H1 bars are equal bit for bit (both sorted)."""
    a = np.asarray(ours[1], dtype=float).reshape(-1, 2)
    b = np.asarray(theirs[1], dtype=float).reshape(-1, 2)
    b = b[b[:, 1] > b[:, 0]]
    return a.shape == b.shape and np.array_equal(a[np.lexsort((a[:, 1], a[:, 0]))],
                                                 b[np.lexsort((b[:, 1], b[:, 0]))])


_LARGE = r"""
import sys, time, json
import numpy as np
import sktopo
n, d = int(sys.argv[1]), int(sys.argv[2])
X = np.random.default_rng(0).normal(size=(n, d))
sktopo.persistence(X[:200], (0, 1))  # imports
def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
start = time.perf_counter()
est = sktopo.PersistenceDiagram((0, 1), memory_limit=None)
d = est.fit_transform([X])[0]
print(json.dumps(dict(seconds=time.perf_counter() - start, peak=status("VmHWM") - before,
                      cloud=X.nbytes, engine=est.engine_, h1=len(d[1]))))
"""


def run_large(n, d):
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _LARGE, str(n), str(d)], capture_output=True,
                         text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"H0+H1 of {n} Gaussian points in R^{d} (engine {r['engine']}): {r['seconds']:.1f} s, "
          f"peak {r['peak'] / 2**30:.2f} GiB above the {r['cloud'] / 2**20:.0f} MiB cloud; "
          f"{r['h1']} H1 bars")


def run_cpu(sizes, dims, repeat, threads, skip_h1_above):
    import ripser

    import sktopo
    from sktopo.topology.engines import giotto_available

    has_giotto = giotto_available()
    if has_giotto:
        from gph import ripser_parallel
    rows = []
    for n in sizes:
        for d in dims:
            X = np.random.default_rng(0).normal(size=(n, d))
            for maxdim in (0, 1):
                if maxdim == 1 and n > skip_h1_above:
                    continue
                hd = tuple(range(maxdim + 1))
                est = sktopo.PersistenceDiagram(hd, n_jobs=threads, memory_limit=None)
                t_ours, ours = best_time(lambda: est.fit_transform([X])[0], repeat)
                t_rip, rip = best_time(lambda: ripser.ripser(X, maxdim=maxdim)["dgms"], repeat)
                row = dict(n=n, d=d, dims="H0" if maxdim == 0 else "H0+H1", engine=est.engine_,
                           sktopo=t_ours, ripser=t_rip, giotto=np.nan,
                           same=same_bars(ours, dict(enumerate(rip)), hd),
                           identical=identical_h1(ours, rip) if maxdim else None)
                if has_giotto:
                    t_gph, gph_dgms = best_time(
                        lambda: ripser_parallel(X, maxdim=maxdim, n_threads=threads)["dgms"], repeat)
                    row["giotto"] = t_gph
                    row["same"] &= same_bars(ours, dict(enumerate(gph_dgms)), hd)
                rows.append(row)
                print_row(row, header=len(rows) == 1)
    return rows


def print_row(row, header=False):
    if header:
        print(f"{'n':>6} {'d':>5} {'dims':>6} {'engine':>7} {'sktopo s':>9} {'ripser s':>9} "
              f"{'giotto s':>9} {'x ripser':>9} {'x giotto':>9} {'same':>5} {'identical':>9}")
    print(f"{row['n']:>6} {row['d']:>5} {row['dims']:>6} {row['engine']:>7} {row['sktopo']:>9.3f} "
          f"{row['ripser']:>9.3f} {row['giotto']:>9.3f} {row['ripser'] / row['sktopo']:>9.1f} "
          f"{row['giotto'] / row['sktopo']:>9.2f} {str(row['same']):>5} "
          f"{'' if row['identical'] is None else str(row['identical']):>9}", flush=True)


def run_cuda(n, d, repeat):
    import torch

    import sktopo
    from sktopo._distance import torch_pairwise_distances
    from sktopo._mst import torch_mst_edge_lengths

    if not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU")
    print(f"GPU: {torch.cuda.get_device_name()}; n={n}, d={d}, float32")
    X_host = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    X = torch.as_tensor(X_host, device="cuda")

    def distances():
        D = torch_pairwise_distances(X)
        torch.cuda.synchronize()
        return D

    def distances_and_mst():
        lengths = torch_mst_edge_lengths(torch_pairwise_distances(X))
        torch.cuda.synchronize()
        return lengths

    distances_and_mst()  # warm-up: kernels, cuBLAS handles, allocator
    t_dist, D = best_time(distances, repeat)
    t_mst, _ = best_time(lambda: (torch_mst_edge_lengths(D), torch.cuda.synchronize()), repeat)
    t_total, lengths = best_time(distances_and_mst, repeat)
    est = sktopo.PersistenceDiagram((0,), device="cuda", memory_limit=None)
    est.fit_transform([X_host[:100]])
    t_end, diagram = best_time(lambda: est.fit_transform([X_host])[0], repeat)
    print(f"distances (matrix product)     {t_dist * 1e3:9.1f} ms")
    print(f"Boruvka MST on the matrix      {t_mst * 1e3:9.1f} ms")
    print(f"distances + MST (on device)    {t_total * 1e3:9.1f} ms")
    print(f"PersistenceDiagram end to end  {t_end * 1e3:9.1f} ms (host array in, includes the copy)")
    # correctness anchor on a subsample, against the float64 CPU engine
    sub = X_host[:2000].astype(np.float64)
    cpu = sktopo.persistence(sub, homology_dimensions=(0,))
    gpu = sktopo.persistence(sub, homology_dimensions=(0,), device="cuda")
    diff = np.abs(np.sort(cpu[0][:, 1])[:-1] - np.sort(gpu[0][:, 1])[:-1]).max()  # last: inf
    print(f"H0 of 2000 points, GPU (float32) vs CPU (float64): max |diff| = {diff:.2e}")
    del lengths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 1000 and 2000 only")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads of giotto-ph, for sktopo and the anchor alike")
    parser.add_argument("--skip-h1-above", type=int, default=10**9,
                        help="skip H0+H1 for clouds larger than this")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--large", action="store_true",
                        help="H1 of 10,000 points in R^64: time and peak memory")
    parser.add_argument("--cuda-n", type=int, default=10_000)
    parser.add_argument("--cuda-d", type=int, default=4_096)
    args = parser.parse_args(argv)
    if args.device == "cuda":
        run_cuda(args.cuda_n, args.cuda_d, args.repeat)
        return
    if args.large:
        run_large(10_000, 64)
        return
    sizes = args.sizes or ([1000, 2000] if args.quick else [1000, 2000, 5000])
    print(f"{os.cpu_count()} CPU cores; giotto-ph and sktopo use {args.threads} thread(s); "
          f"ratios are anchor time / sktopo time")
    run_cpu(sizes, args.dims, args.repeat, args.threads, args.skip_h1_above)


if __name__ == "__main__":
    main()
