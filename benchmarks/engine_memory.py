"""Peak memory of the Vietoris-Rips engines against the model of ``sktopo.topology.engines._memory``.

For each engine (ripser.py, redzed-tda, giotto-ph), homology dimension q = maxdim
and family of clouds, clouds of growing size n are run, each in a fresh
subprocess, exactly as sktopo calls the engine (``t = min(threshold, enclosing
radius)`` for q >= 1):

* ripser.py: ``pyRipser.doRipsFiltrationDM(condensed_float32, q, thresh=t, coeff=2, do_cocycles=0)``
* redzed-tda: ``redzed_tda.rips(condensed_float64, maxdim=q, threshold=t)``
* giotto-ph: ``_compute_ph_vr_dense(condensed_float32, zeros(n), q, t, 2, 1)``

The measured peak is the high-water mark of the process (VmHWM, reset through
``/proc/self/clear_refs`` just before the call) minus its RSS just before the call;
the input (the condensed matrix) is built before that baseline, so the figure is
what the engine allocates. The estimate (:func:`estimate_peak_bytes`, from the
points, before any matrix) is printed next to it, with the ratio estimate /
measured.

Families: Gaussian in R^3, R^5, R^64, R^384, a noisy circle and a noisy torus in
R^3, uniform on the sphere S^2, an integer grid (tied distances). Sizes go up as
long as the estimate stays under ``--max-gib`` (default 6) and the previous size's
time, scaled by the growth of the simplices, stays under ``--max-seconds``
(default 60); a child past 7 GiB of RSS or 1.5 x ``--max-seconds`` is killed (and
the series stops there).

giotto-ph (AGPL) is not a dependency: it runs in another Python that imports
``gph`` (``$SKTOPO_GIOTTO_PYTHON``, else ``/tmp/gvenv/bin/python``, else this
one), e.g. ``python -m venv /tmp/gvenv && /tmp/gvenv/bin/pip install giotto-ph numpy scipy``;
the child processes import nothing from sktopo.

Usage::

    python benchmarks/engine_memory.py                       # everything (about an hour)
    python benchmarks/engine_memory.py --quick               # smaller sizes, a few minutes
    python benchmarks/engine_memory.py --engines ripser --dims 2 --families gauss3,sphere
    python benchmarks/engine_memory.py --out results.jsonl   # also one JSON line per case
    python benchmarks/engine_memory.py --replay results.jsonl  # those measurements, current model
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

FAMILIES = ("gauss3", "gauss5", "gauss64", "gauss384", "circle", "torus", "sphere", "grid")
SIZES = {
    0: (1000, 2500, 5000),
    1: (100, 300, 1000, 2500, 4000, 5000),
    2: (100, 200, 350, 500, 700, 1000),
    3: (60, 100, 150, 200, 260, 350),
}
QUICK_SIZES = {0: (1000, 2500), 1: (300, 1000), 2: (100, 200), 3: (60, 100)}


def make_cloud(family: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` points of one test family (float64, seeded)."""
    rng = np.random.default_rng(seed)
    if family.startswith("gauss"):
        return rng.normal(size=(n, int(family[5:])))
    if family == "circle":  # noisy unit circle in R^3
        angle = rng.uniform(0, 2 * np.pi, n)
        X = np.column_stack([np.cos(angle), np.sin(angle), np.zeros(n)])
        return X + 0.05 * rng.normal(size=(n, 3))
    if family == "torus":  # radii 2 and 0.7 in R^3, a little noise
        u, v = rng.uniform(0, 2 * np.pi, (2, n))
        X = np.column_stack([(2 + 0.7 * np.cos(v)) * np.cos(u), (2 + 0.7 * np.cos(v)) * np.sin(u),
                             0.7 * np.sin(v)])
        return X + 0.02 * rng.normal(size=(n, 3))
    if family == "sphere":  # uniform on S^2
        X = rng.normal(size=(n, 3))
        return X / np.linalg.norm(X, axis=1, keepdims=True)
    if family == "grid":  # the first n points of an integer cube grid: many tied distances
        m = int(math.ceil(n ** (1 / 3)))
        g = np.stack(np.meshgrid(*(np.arange(m),) * 3, indexing="ij"), -1).reshape(-1, 3)
        return g[:n].astype(np.float64)
    raise ValueError(f"unknown family {family!r}")


# ------------------------------------------------------------------ the worker
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _enclosing_radius(X: np.ndarray) -> float:
    """``min_i max_j |x_i - x_j|`` in blocks of rows (no n x n temporary)."""
    X = X - X.mean(axis=0)
    sq = np.einsum("ij,ij->i", X, X)
    best = np.inf
    for start in range(0, len(X), 256):
        block = X[start:start + 256]
        d2 = sq[start:start + 256, None] + sq[None, :] - 2.0 * (block @ X.T)
        best = min(best, float(np.sqrt(max(d2.max(axis=1).min(), 0.0))))
    return best


def _worker(engine: str, path: str, maxdim: int, threshold: float, n_threads: int) -> dict:
    """Run one engine once: the peak RSS of the call above the RSS just before it."""
    import gc

    from scipy.spatial.distance import pdist

    X = np.load(path)
    n = len(X)
    if maxdim >= 1:
        threshold = min(threshold, _enclosing_radius(X))
    condensed = pdist(X)  # float64, scipy order
    if engine == "ripser":
        from pyRipser import doRipsFiltrationDM

        condensed = condensed.astype(np.float32)
        doRipsFiltrationDM(np.zeros(3, np.float32), 1, thresh=1.0, coeff=2, do_cocycles=0)

        def call():
            out = doRipsFiltrationDM(condensed, maxdim, thresh=threshold, coeff=2, do_cocycles=0)
            return [len(b) // 2 for b in out["births_and_deaths_by_dim"]]
    elif engine in ("redzed", "redzed-square"):
        import redzed_tda

        if engine == "redzed-square":
            from scipy.spatial.distance import squareform

            condensed = squareform(condensed)
        redzed_tda.rips(np.ones(3), maxdim=1)

        def call():
            return [len(b) for b in redzed_tda.rips(condensed, maxdim=maxdim, threshold=threshold)]
    elif engine == "giotto":
        from gph.python.ripser_interface import _compute_ph_vr_dense

        condensed = condensed.astype(np.float32)
        diagonal = np.zeros(n, np.float32)
        _compute_ph_vr_dense(np.ones(3, np.float32), np.zeros(3, np.float32), 1, 2.0, 2, n_threads)

        def call():
            out = _compute_ph_vr_dense(condensed, diagonal, maxdim, threshold, 2, n_threads)
            return [len(b) // 2 for b in out.births_and_deaths_by_dim()]
    else:
        raise ValueError(engine)
    del X
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    bars = call()
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: ru_maxrss also holds the parent's RSS at fork (it survives exec)
    peak = _status_kib("VmHWM")
    return {"peak": (peak - before) * 1024, "before": before * 1024, "seconds": seconds,
            "threshold": threshold, "n_bars": bars}


def giotto_python() -> str | None:
    """A Python that imports gph: ``$SKTOPO_GIOTTO_PYTHON``, ``/tmp/gvenv``, or this one."""
    candidates = [os.environ.get("SKTOPO_GIOTTO_PYTHON"), "/tmp/gvenv/bin/python", sys.executable]
    for python in candidates:
        if python and os.path.exists(python):
            probe = subprocess.run([python, "-c", "import gph, scipy"], capture_output=True)
            if probe.returncode == 0:
                return python
    return None


def measure_peak(engine, points, maxdim, threshold=math.inf, *, n_threads=1,
                 limit_bytes=7 * 2**30, timeout=90.0, python=None) -> dict:
    """Peak bytes of one engine call, in a fresh subprocess watched from here.

    The child is killed when its RSS passes ``limit_bytes`` or it runs past
    ``timeout`` seconds; ``status`` then says so (``"ok"`` otherwise).
    """
    if python is None:
        python = giotto_python() if engine == "giotto" else sys.executable
        if python is None:
            return {"status": "skipped: no Python imports gph", "seconds": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "points.npy")
        np.save(path, np.asarray(points, dtype=np.float64))
        out_path = os.path.join(tmp, "out.json")
        code = ("import sys, json; sys.path.insert(0, %r); import engine_memory as m; "
                "r = m._worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), "
                "int(sys.argv[5])); open(sys.argv[6], 'w').write(json.dumps(r))" % HERE)
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        proc = subprocess.Popen([python, "-c", code, engine, path, str(maxdim), repr(float(threshold)),
                                 str(n_threads), out_path], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        start, status, high = time.monotonic(), "ok", 0
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            high = max(high, int(line.split()[1]) * 1024)
            except OSError:
                pass
            if high > limit_bytes:
                status = "over the memory limit"
            elif time.monotonic() - start > timeout:
                status = "timeout"
            if status != "ok":
                proc.kill()
                break
            time.sleep(0.01)
        _, err = proc.communicate()
        if status == "ok" and proc.returncode != 0:
            last = err.strip().splitlines()[-1] if err.strip() else f"exit status {proc.returncode}"
            status = "failed: " + last
        if status != "ok":
            return {"status": status, "rss_seen": high, "seconds": time.monotonic() - start}
        with open(out_path) as f:
            result = json.load(f)
        result["status"] = "ok"
        return result


# -------------------------------------------------------------------- the run
def _simplices(counts, q):
    """What the run time follows: the cofacets enumerated (cliques of q + 2 vertices)."""
    return max(float(counts.get(min(q + 2, 6)) or counts.get(2) or 1.0), 1.0)


def run(engines, dims, families, sizes, *, max_bytes, max_seconds, out=None):
    sys.path.insert(0, ROOT)
    from sktopo.topology.engines._memory import clique_counts, engine_peak_bytes

    rows = []
    header = (f"{'engine':7s} {'q':>1s} {'family':8s} {'n':>5s} {'estimate':>10s} {'measured':>10s} "
              f"{'ratio':>6s} {'engine s':>8s} {'est. ms':>7s}")
    print(header, flush=True)
    for engine in engines:
        if engine == "giotto" and giotto_python() is None:
            print("giotto  (skipped: no Python imports gph; see the module docstring)", flush=True)
            continue
        for q in dims:
            for family in families:
                previous = None
                for n in sizes[q]:
                    X = make_cloud(family, n)
                    start = time.perf_counter()
                    counts = clique_counts(X, max_size=q + 2, enclosing=q >= 1)
                    estimate = engine_peak_bytes(engine, n, q, counts)
                    est_ms = (time.perf_counter() - start) * 1e3
                    line = f"{engine:7s} {q:1d} {family:8s} {n:5d} {estimate / 2**20:8.1f}Mi"
                    if estimate > max_bytes:
                        print(f"{line}  skipped: estimate over {max_bytes / 2**30:.0f} GiB", flush=True)
                        break
                    if previous is not None:
                        seconds, simplices = previous
                        predicted = seconds * _simplices(counts, q) / simplices
                        if predicted > max_seconds:
                            print(f"{line}  skipped: about {predicted:.0f} s expected", flush=True)
                            break
                    result = measure_peak(engine, X, q, timeout=1.5 * max_seconds)
                    record = {"engine": engine, "q": q, "family": family, "n": n,
                              "estimate": int(estimate), "estimate_ms": est_ms, **result}
                    rows.append(record)
                    if out is not None:
                        out.write(json.dumps(record) + "\n")
                        out.flush()
                    if result["status"] != "ok":
                        print(f"{line}  {result['status']} after {result['seconds']:.0f} s "
                              f"(RSS seen {result.get('rss_seen', 0) / 2**20:.0f} MiB)", flush=True)
                        break
                    measured = max(result["peak"], 1)
                    print(f"{line} {measured / 2**20:8.1f}Mi {estimate / measured:6.2f} "
                          f"{result['seconds']:8.2f} {est_ms:7.1f}", flush=True)
                    previous = (result["seconds"], _simplices(counts, q))
    _summary(rows)
    return rows


def replay(path):
    """The table of a previous ``--out`` file, with the estimates of the current model.

    The measurements are the recorded ones; only the estimates (cheap) are recomputed,
    e.g. after refitting the coefficients.
    """
    sys.path.insert(0, ROOT)
    from sktopo.topology.engines._memory import clique_counts, engine_peak_bytes

    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    print(f"{'engine':7s} {'q':>1s} {'family':8s} {'n':>5s} {'estimate':>10s} {'measured':>10s} "
          f"{'ratio':>6s} {'engine s':>8s}")
    rows = []
    for r in records:
        X = make_cloud(r["family"], r["n"])
        counts = clique_counts(X, max_size=r["q"] + 2, enclosing=r["q"] >= 1)
        r = dict(r, estimate=engine_peak_bytes(r["engine"], r["n"], r["q"], counts))
        line = f"{r['engine']:7s} {r['q']:1d} {r['family']:8s} {r['n']:5d} {r['estimate'] / 2**20:8.1f}Mi"
        if r["status"] != "ok":
            print(f"{line}  {r['status']} after {r['seconds']:.0f} s", flush=True)
            continue
        rows.append(r)
        measured = max(r["peak"], 1)
        print(f"{line} {measured / 2**20:8.1f}Mi {r['estimate'] / measured:6.2f} {r['seconds']:8.2f}",
              flush=True)
    _summary(rows)
    return rows


def _summary(rows):
    print()
    print("estimate / measured, per engine and q (runs of at least 2 MiB):")
    for engine in ENGINE_ORDER:
        for q in range(4):
            ratios = [r["estimate"] / r["peak"] for r in rows if r["engine"] == engine
                      and r["q"] == q and r["status"] == "ok" and r["peak"] >= 2**21]
            if ratios:
                print(f"  {engine:7s} q={q}: {min(ratios):.2f} - {max(ratios):.2f} over {len(ratios)} runs")


ENGINE_ORDER = ("ripser", "redzed", "giotto")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", default="ripser,redzed,giotto")
    p.add_argument("--dims", default="0,1,2,3")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--max-gib", type=float, default=6.0)
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--quick", action="store_true", help="two small sizes per series")
    p.add_argument("--out", help="also write one JSON line per case here")
    p.add_argument("--replay", metavar="FILE",
                   help="print the table of an --out file with the current model's estimates")
    args = p.parse_args(argv)
    if args.replay:
        replay(args.replay)
        return
    out = open(args.out, "a") if args.out else None
    try:
        run(args.engines.split(","), [int(q) for q in args.dims.split(",")],
            args.families.split(","), QUICK_SIZES if args.quick else SIZES,
            max_bytes=args.max_gib * 2**30, max_seconds=args.max_seconds, out=out)
    finally:
        if out is not None:
            out.close()


if __name__ == "__main__":
    main()
