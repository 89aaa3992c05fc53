"""Vietoris-Rips persistence engines behind one small interface.

:func:`compute_bars` takes one cloud (or one distance matrix) and returns
``{q: (k, 2) float64 array of (birth, death)}`` for the requested homology
dimensions. Three engines sit behind it:

``"mst"``
    H0 only, exact. The H0 bars of a Vietoris-Rips filtration are ``[0, w)``
    for every edge ``w`` of a minimum spanning tree, plus one ``[0, inf)`` for
    the whole cloud (Kruskal's algorithm *is* the H0 persistence algorithm).
    Dense Prim in numpy on the CPU (:func:`sktopo._mst.mst_edge_lengths`), or
    torch distances and Boruvka on a torch device (``device="cuda"``), in
    float32 there.
``"ripser"``
    ripser.py (MIT), single-threaded, any dimension.
``"giotto"``
    giotto-ph's ``ripser_parallel`` (AGPL-3.0, optional: ``pip install
    sktopo[fast]``), multi-threaded, any dimension.

Conventions shared by all engines
---------------------------------
* An edge enters the filtration at its length; with a finite ``threshold``
  (``max_edge_length``) only edges of length ``<= threshold`` enter, and a
  class still alive at the end has death ``inf``. For H0 that means one
  infinite bar per connected component of the thresholded graph.
* Bars of zero length (``death == birth``) are dropped everywhere: ripser.py
  and giotto-ph never report them, and the MST engine drops the zero-length
  edges that duplicate points produce. Duplicate points therefore change
  nothing, as they should.
* ripser.py and giotto-ph compute in float32, so their bars agree with the
  float64 MST engine to a relative ``~1e-7``, not bit for bit.

Memory
------
Before building a dense distance matrix the engines estimate the memory of the
whole computation, ``n^2 * bytes_per_entry`` (:func:`dense_bytes_per_entry`):
8 bytes for the float64 matrix, plus the float32 copies ripser.py / giotto-ph
make (2-6 bytes), plus, when H1 or higher is asked for, a rough 8 bytes for
the reduction (the coboundary columns and pivots scale with the number of
edges; the true figure depends on the data and can be smaller or, on
unlucky clouds, larger). Over ``memory_limit`` the dense path is not taken:
with a finite threshold (or infinite entries in a precomputed matrix) the
engines switch to a sparse edge list built in chunks, whose size is checked as
it grows; otherwise a :class:`MemoryError` states the estimate and what to do.
"""

from __future__ import annotations

import math

import numpy as np

from .._distance import _REFINE_RELATIVE, check_memory, pairwise_distances

__all__ = [
    "ENGINES",
    "compute_bars",
    "dense_bytes_per_entry",
    "giotto_available",
    "resolve_engine",
]

ENGINES = ("mst", "ripser", "giotto")

# Bytes per undirected edge of the sparse path: our (row, col, value) arrays
# plus the engine's own copy.
_SPARSE_BYTES_PER_EDGE = 40
_GIOTTO_MISSING = (
    "the giotto-ph engine needs the optional package giotto-ph, which is not installed. "
    "Install it with `pip install sktopo[fast]` (or `pip install giotto-ph`; note that "
    "giotto-ph is licensed AGPL-3.0), or use backend='ripser' or backend='auto'."
)


def giotto_available() -> bool:
    """Whether giotto-ph can be imported."""
    try:
        import gph  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_engine(backend: str, homology_dimensions, estimator: str = "PersistenceDiagram") -> str:
    """The engine ``backend`` stands for, given the dimensions asked for.

    ``"auto"``: the MST engine for H0 only (exact and 10-30x faster than
    ripser.py), giotto-ph for H1 and above when it is installed (about 2x
    faster than ripser.py with 2 threads, 1.5x with one), else ripser.py.
    """
    maxdim = max(homology_dimensions)
    if backend == "auto":
        if maxdim == 0:
            return "mst"
        return "giotto" if giotto_available() else "ripser"
    if backend == "mst" and maxdim > 0:
        raise ValueError(
            f"{estimator}: backend='mst' computes H0 only (minimum spanning trees), but homology_dimensions "
            f"asks for {tuple(homology_dimensions)}. Use backend='auto', 'ripser' or 'giotto' "
            f"for H1 and above."
        )
    if backend == "giotto" and not giotto_available():
        raise ImportError(f"{estimator}: {_GIOTTO_MISSING}")
    return backend


def dense_bytes_per_entry(engine: str, maxdim: int, *, precomputed: bool, device=None) -> int:
    """Bytes per entry of an ``n x n`` matrix that a dense computation takes at its peak.

    Counts what the engine allocates, not a matrix the caller already holds
    (``precomputed=True``). See the module docstring for what is included.
    """
    if engine == "mst":
        if device is not None:
            return 12  # float32 matrix, its transposed minimum and Boruvka's masks
        return 0 if precomputed else 8
    matrix = 0 if precomputed else 8
    if engine == "ripser":
        copies = 4  # our float32 condensed matrix (2) and ripser's C++ copy (2)
    else:
        copies = 6  # giotto-ph's float64 squareform (4) and its float32 copy (2)
    reduction = 8 if maxdim > 0 else 0
    return matrix + copies + reduction


def compute_bars(
    data: np.ndarray,
    *,
    engine: str,
    homology_dimensions,
    metric="euclidean",
    metric_params=None,
    threshold: float = np.inf,
    coeff: int = 2,
    n_threads: int = 1,
    device=None,
    memory_limit=None,
    where: str = "the cloud",
) -> dict:
    """Vietoris-Rips persistence of one cloud.

    Parameters
    ----------
    data : ndarray of shape (n_points, n_features) or (n_points, n_points)
        The cloud, or its distance matrix when ``metric="precomputed"``
        (infinite entries mean "no edge").
    engine : {"mst", "ripser", "giotto"}
        Engine to use (see :func:`resolve_engine` for ``"auto"``).
    homology_dimensions : sequence of int
        Dimensions to return.
    metric : str or callable, default="euclidean"
        Metric of :func:`sklearn.metrics.pairwise_distances`, or "precomputed".
    metric_params : dict, optional
        Extra arguments of the metric.
    threshold : float, default=inf
        Largest edge length of the filtration.
    coeff : int, default=2
        Prime field of coefficients (irrelevant for H0).
    n_threads : int, default=1
        Threads of giotto-ph.
    device : str or torch.device, optional
        Run the MST engine in torch on this device; ``None`` uses numpy.
    memory_limit : int, optional
        Bytes; ``None`` disables the check.
    where : str
        Names the cloud in error messages, e.g. ``"PersistenceDiagram: the
        cloud at row 'conv1'"``; text before a ``": "`` starts the message.

    Returns
    -------
    bars : dict of int to ndarray of shape (k, 2)
    """
    dims = tuple(sorted(int(q) for q in homology_dimensions))
    maxdim = dims[-1]
    precomputed = metric == "precomputed"
    metric_params = dict(metric_params or {})
    n = data.shape[0]
    has_inf = precomputed and not np.isfinite(data).all()

    dense_bytes = n * n * dense_bytes_per_entry(engine, maxdim, precomputed=precomputed, device=device)
    fits = memory_limit is None or dense_bytes <= memory_limit
    use_sparse = (np.isfinite(threshold) and not fits) or (has_inf and engine != "mst")
    if not use_sparse:
        _check_dense_memory(dense_bytes, memory_limit, n, where, engine, maxdim, precomputed, device)

    if engine == "mst":
        if use_sparse:
            lengths, n_components = _sparse_mst(data, metric, metric_params, threshold,
                                                memory_limit, where)
        else:
            lengths = _dense_mst(data, metric, metric_params, device)
            n_components = 1
        return {0: _h0_bars(lengths, threshold, n_components)}

    if engine == "giotto":
        try:
            from gph import ripser_parallel
        except ImportError:
            raise ImportError(_GIOTTO_MISSING) from None
    if use_sparse:
        edges = _sparse_edges(data, metric, metric_params, threshold, memory_limit, where)
        dgms = _run_sparse(engine, edges, n, maxdim, threshold, coeff, n_threads)
    elif engine == "ripser":
        dgms = _ripser_dense(data, metric, metric_params, maxdim, threshold, coeff)
    else:
        # our distances, not giotto-ph's: they are exact for duplicate points
        # (sklearn's leave ~1e-8 there, i.e. spurious tiny bars)
        D = data if precomputed else pairwise_distances(data, metric, **metric_params)
        dgms = ripser_parallel(D, metric="precomputed", maxdim=maxdim, thresh=threshold,
                               coeff=coeff, n_threads=n_threads)["dgms"]
    return {q: _clean(dgms[q]) if q < len(dgms) else np.empty((0, 2)) for q in dims}


# --------------------------------------------------------------------- memory
def _check_dense_memory(estimate, limit, n, where, engine, maxdim, precomputed, device):
    if limit is None or estimate <= limit:
        return
    per_entry = dense_bytes_per_entry(engine, maxdim, precomputed=precomputed, device=device)
    fitting = int(math.isqrt(int(limit // max(per_entry, 1))))
    check_memory(
        estimate, limit,
        f"{_lead(where)}Vietoris-Rips persistence of {_tail(where)} ({n} points, engine {engine!r}, "
        f"about n^2 x {per_entry} bytes)",
        f"Subsample with n_landmarks (greedy max-min landmarks; about {fitting} fit in the "
        f"limit, and the diagram records the covering radius that bounds the error), or set a "
        f"finite max_edge_length (edges longer than it are left out and a sparse edge list "
        f"replaces the dense matrix), or raise memory_limit (None disables this check).",
    )


def _lead(where):
    return where.rsplit(": ", 1)[0] + ": " if ": " in where else ""


def _tail(where):
    return where.rsplit(": ", 1)[-1]


# ------------------------------------------------------------------------ H0
def _h0_bars(lengths, threshold, n_components):
    """H0 bars from the edge lengths of a minimum spanning tree (or forest)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    kept = np.isfinite(lengths) & (lengths <= threshold)
    finite = lengths[kept & (lengths > 0)]  # zero-length bars are dropped
    n_infinite = n_components + int((~kept).sum())
    bars = np.zeros((len(finite) + n_infinite, 2))
    bars[:len(finite), 1] = finite
    bars[len(finite):, 1] = np.inf
    return bars


def _dense_mst(data, metric, metric_params, device):
    precomputed = metric == "precomputed"
    if device is None:
        from .._distance import squared_euclidean_distances
        from .._mst import mst_edge_lengths

        if metric == "euclidean" and not metric_params:
            # the tree only compares lengths: build it on squared distances and
            # take n - 1 roots instead of n^2
            lengths = mst_edge_lengths(squared_euclidean_distances(data))
            return np.sqrt(np.maximum(lengths, 0.0))
        D = data if precomputed else pairwise_distances(data, metric, **metric_params)
        return mst_edge_lengths(D)
    import torch

    from .._distance import torch_pairwise_distances
    from .._mst import torch_mst_edge_lengths

    if precomputed:
        D = torch.as_tensor(data, dtype=torch.float32, device=device)
    elif metric == "euclidean" and not metric_params:
        D = torch_pairwise_distances(torch.as_tensor(data, dtype=torch.float32, device=device))
    else:
        D = torch.as_tensor(pairwise_distances(data, metric, **metric_params),
                            dtype=torch.float32, device=device)
    return torch_mst_edge_lengths(D).cpu().numpy().astype(np.float64)


def _sparse_mst(data, metric, metric_params, threshold, memory_limit, where):
    """Minimum spanning forest of the thresholded graph: lengths and component count."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

    n = data.shape[0]
    rows, cols, values = _sparse_edges(data, metric, metric_params, threshold, memory_limit, where)
    graph = sp.csr_matrix((values, (rows, cols)), shape=(n, n))
    # explicit zeros (duplicate points) count as edges for the components;
    # they are zero-length bars, dropped anyway, so losing them in the tree is harmless
    n_components = connected_components(graph, directed=False)[0]
    tree = minimum_spanning_tree(graph)
    return tree.data, n_components


# ---------------------------------------------------------------- sparse path
def _sparse_edges(data, metric, metric_params, threshold, memory_limit, where, chunk=1024):
    """Edges ``i < j`` of length ``<= threshold`` (finite), built in chunks of rows.

    Zero-length edges (duplicate points) are kept explicitly: they connect.
    """
    n = data.shape[0]
    if memory_limit is not None:
        # a chunk of rows can hold at most chunk * n edges: keep that well inside the limit
        chunk = int(max(1, min(chunk, memory_limit // (4 * _SPARSE_BYTES_PER_EDGE * n))))
    rows, cols, values = [], [], []
    n_edges = 0
    precomputed = metric == "precomputed"
    if not precomputed:
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(radius=threshold, metric=metric, metric_params=metric_params or None)
        nn.fit(data)
        # sklearn's brute-force search (many features) uses |x|^2 + |y|^2 - 2 x.y,
        # which leaves ~1e-6 between identical points: spurious tiny bars
        sq_norms = (np.einsum("ij,ij->i", data, data)
                    if metric == "euclidean" and not metric_params else None)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        if precomputed:
            block = data[start:stop]
            mask = np.isfinite(block) & (block <= threshold)
            mask &= np.arange(n)[None, :] > np.arange(start, stop)[:, None]
            i, j = np.nonzero(mask)
            d = block[i, j]
            i = i + start
        else:
            dist, ind = nn.radius_neighbors(data[start:stop], return_distance=True)
            counts = np.fromiter((len(a) for a in ind), dtype=np.intp, count=stop - start)
            i = np.repeat(np.arange(start, stop), counts)
            j = np.concatenate(ind) if len(ind) else np.empty(0, dtype=np.intp)
            d = np.concatenate(dist) if len(dist) else np.empty(0)
            upper = j > i
            i, j, d = i[upper], j[upper], d[upper]
            if sq_norms is not None:
                d = _refine_close_pairs(data, sq_norms, i, j, d)
        rows.append(i.astype(np.int64))
        cols.append(j.astype(np.int64))
        values.append(d.astype(np.float64))
        n_edges += len(d)
        check_memory(
            n_edges * _SPARSE_BYTES_PER_EDGE, memory_limit,
            f"{_lead(where)}the edge list of {_tail(where)} ({n} points, max_edge_length={threshold:.4g}; "
            f"{n_edges} edges after {stop} of {n} rows)",
            "Lower max_edge_length, subsample with n_landmarks, or raise memory_limit "
            "(None disables this check).",
        )
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(values)


def _refine_close_pairs(X, sq_norms, i, j, d):
    """Recompute from the differences the Euclidean distances too small for the product formula.

    The same rule as :func:`sktopo._distance.squared_euclidean_distances`:
    duplicate points come out at exactly 0.
    """
    close = d * d < _REFINE_RELATIVE * (sq_norms[i] + sq_norms[j])
    if close.any():
        diff = X[i[close]] - X[j[close]]
        d[close] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return d


def _run_sparse(engine, edges, n, maxdim, threshold, coeff, n_threads):
    import scipy.sparse as sp

    rows, cols, values = edges
    matrix = sp.coo_matrix((values, (rows, cols)), shape=(n, n))
    thresh = threshold if np.isfinite(threshold) else np.inf
    if engine == "ripser":
        from ripser import ripser

        return ripser(matrix, distance_matrix=True, maxdim=maxdim, thresh=thresh, coeff=coeff)["dgms"]
    from gph import ripser_parallel

    return ripser_parallel(matrix, metric="precomputed", maxdim=maxdim, thresh=thresh,
                           coeff=coeff, n_threads=n_threads)["dgms"]


# ----------------------------------------------------------------- ripser.py
def _condensed_float32(D):
    """Upper triangle of ``D`` row by row, in float32: ripser's compressed layout.

    Filled in place row by row so that no float64 copy of the triangle (and no
    index grids, as ripser.py itself builds) is ever allocated.
    """
    n = D.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=np.float32)
    pos = 0
    for i in range(n - 1):
        k = n - 1 - i
        out[pos:pos + k] = D[i, i + 1:]
        pos += k
    return out


def _ripser_dense(data, metric, metric_params, maxdim, threshold, coeff):
    precomputed = metric == "precomputed"
    D = data if precomputed else pairwise_distances(data, metric, **metric_params)
    try:
        from pyRipser import doRipsFiltrationDM
    except ImportError:  # pragma: no cover - ripser.py's layout changed: use its public API
        from ripser import ripser

        return ripser(D, distance_matrix=True, maxdim=maxdim, thresh=threshold, coeff=coeff)["dgms"]
    condensed = _condensed_float32(D)
    del D  # ours (not the caller's) is freed before ripser copies the triangle
    result = doRipsFiltrationDM(condensed, maxdim, thresh=threshold, coeff=coeff, do_cocycles=0)
    return [np.reshape(np.asarray(flat, dtype=np.float64), (-1, 2))
            for flat in result["births_and_deaths_by_dim"]]


def _clean(pairs) -> np.ndarray:
    """float64 (k, 2) bars without zero-length ones."""
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    return pairs[pairs[:, 1] > pairs[:, 0]]
