"""The one-cloud pipeline: scale, memory, dense or sparse, engine, clean bars.

:func:`compute_bars` takes one cloud (or one distance matrix) and returns
``{q: (k, 2) float64 array of (birth, death)}`` for the requested homology
dimensions, through the engine the settings name (the registry,
:mod:`sktopo.topology.engines`).

Conventions shared by all engines
---------------------------------
* An edge enters the filtration at its length; with a finite ``threshold``
  (``max_edge_length``) only edges of length ``<= threshold`` enter, and a
  class still alive at the end has death ``inf``. For H0 that means one
  infinite bar per connected component of the thresholded graph.
* Bars of zero length (``death == birth``) are dropped everywhere: the engines
  never report them, and the MST engine drops the zero-length edges that
  duplicate points produce. Duplicate points therefore change nothing.
* ripser.py, redzed-tda and giotto-ph compare distances in float32, so their
  bars agree with the float64 MST engine to a relative ``~1e-7``, not bit for
  bit; with each other they agree exactly.

Memory
------
Before building a dense distance matrix the pipeline estimates the memory of
the whole computation (:func:`dense_bytes_of`): the float64 matrix (unless the
caller holds it), what the engine allocates for the homology dimensions asked
for (:meth:`Engine.peak_bytes`, from the estimated numbers of simplices,
:mod:`sktopo.topology.engines._memory`), the temporaries that scale with the
cloud's width and a metric's second ``n x n`` temporary. A precomputed matrix
is validated block by block, so its check adds no ``n^2`` temporaries. Over
``memory_limit`` the dense path is not taken: with a finite threshold (or
infinite entries in a precomputed matrix) the pipeline switches to a sparse
edge list built in chunks, whose size is checked as it grows; otherwise a
:class:`MemoryError` states the estimate and what to do. No engine is handed
a job that the estimate says cannot fit.
"""

from __future__ import annotations

import math

import numpy as np

from ..._distance import (
    check_memory,
    exact_squared,
    format_bytes,
    pairwise_distances,
    unresolved,
)
from ._registry import engine_for
from ._scale import finite_range, rescale
from ._settings import PersistenceSettings

__all__ = ["canonical", "check_metric_values", "clean", "compute_bars", "dense_bytes_of"]

# Bytes per undirected edge of the sparse path, by maxdim: our (row, col, value) arrays
# (24) plus the engine's peak, measured with ripser.py's sparse core on Gaussian clouds
# in R^3 and R^64 (64 for H0; 104-144 for H1; 147-222 for H2 at 3-6 neighbours a point:
# denser graphs at H2 and above hold more triangles per edge than this allows).
_SPARSE_BYTES_PER_EDGE = {0: 96, 1: 176}
_SPARSE_BYTES_PER_EDGE_ABOVE = 256


def _bytes_per_edge(settings) -> int:
    return _SPARSE_BYTES_PER_EDGE.get(settings.maxdim, _SPARSE_BYTES_PER_EDGE_ABOVE)


def compute_bars(data: np.ndarray, settings: PersistenceSettings | None = None, *,
                 label: str = "the cloud", where: str | None = None, **keywords) -> dict:
    """Vietoris-Rips persistence of one cloud.

    Parameters
    ----------
    data : ndarray of shape (n_points, n_features) or (n_points, n_points)
        The cloud, or its distance matrix when ``metric="precomputed"``
        (infinite entries mean "no edge"; a ``scipy.sparse`` matrix is a graph).
    settings : PersistenceSettings, optional
        What to compute and how. Without it, the keyword arguments
        (``engine``, ``homology_dimensions``, ``metric``, ``metric_params``,
        ``threshold``, ``coeff``, ``n_threads``, ``device``, ``memory_limit``,
        ``estimator``, ``auto``) build one.
    label : str, default="the cloud"
        Names the cloud in error messages, e.g. ``"the cloud at row 'conv1'"``;
        the settings' ``estimator`` starts the message.
    where : str, optional
        Older spelling of ``label`` (kept for callers that pass one string).
    **keywords
        Fields of :class:`PersistenceSettings` when ``settings`` is not given.

    Returns
    -------
    bars : dict of int to ndarray of shape (k, 2)
    """
    if settings is None:
        settings = PersistenceSettings(**keywords)
    elif keywords:
        settings = settings.with_(**keywords)
    if where is not None:
        label = where
    data, divisor = rescale(data, settings)
    if divisor != 1.0:
        # a power of two: every distance (and every bar) scales exactly
        settings = settings.with_(threshold=settings.threshold * divisor)
    if hasattr(data, "tocsr"):  # scipy.sparse: its stored entries are the edges
        dgms = _edge_list_bars(data, settings, label)
    else:
        dgms = _bars(data, settings, label)
    bars = {q: clean(dgms[q]) if q < len(dgms) else np.empty((0, 2))
            for q in settings.homology_dimensions}
    return {q: b / divisor for q, b in bars.items()} if divisor != 1.0 else bars


def _bars(data, settings, label):
    precomputed = settings.precomputed
    threshold = settings.threshold
    n = data.shape[0]
    has_inf = precomputed and finite_range(data)[0]
    engine = engine_for(settings)
    if has_inf and not engine.capabilities.missing_edges:
        return _edge_list_bars(data, settings, label)
    estimate = dense_bytes_of(data, settings)
    if np.isfinite(threshold) and not _fits(estimate, settings):
        why = (f"the dense computation of {label} ({n} points) needs about "
               f"{format_bytes(estimate)}, over memory_limit={format_bytes(settings.memory_limit)}, "
               f"so a sparse edge list of the edges up to max_edge_length must replace it; ")
        return _edge_list_bars(data, settings, label, why)
    _check_dense_memory(estimate, n, settings, label)
    return engine.bars_of(data, settings, lambda: _checked_distances(data, settings, label))


def _edge_list_bars(data, settings, label, why=""):
    engine = engine_for(settings, sparse=True, why=why)
    rows, cols, values = _sparse_edges(data, settings, label)
    threshold = settings.threshold if np.isfinite(settings.threshold) else np.inf
    return engine.sparse(rows, cols, values, data.shape[0], settings.maxdim, threshold,
                         settings.coeff, settings.n_threads)


def _fits(estimate, settings) -> bool:
    return settings.memory_limit is None or estimate <= settings.memory_limit


def clean(pairs) -> np.ndarray:
    """float64 ``(k, 2)`` bars without zero-length ones."""
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    return pairs[pairs[:, 1] > pairs[:, 0]]


def canonical(pairs) -> np.ndarray:
    """Bars in the Diagram's canonical order (birth, then death)."""
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))] if len(pairs) > 1 else pairs


# ---------------------------------------------------------------- distances
def _checked_distances(data, settings, label):
    """Dense distances of a cloud; a clear error if the metric produced NaN or inf."""
    D = pairwise_distances(data, settings.metric, **settings.params)
    if not settings.plain_euclidean:
        check_metric_values(D, data, settings, label)
    return D


def check_metric_values(D, data, settings, label):
    """A clear error where a metric overflowed (NaN, inf) or underflowed (all 0 for distinct points)."""
    problem = None
    if not np.isfinite(D).all():
        problem = "NaN or infinite distances"
    elif D.size and not D.any() and np.ptp(data, axis=0).any():
        problem = "only zero distances between distinct points"
    if problem:
        raise ValueError(
            f"{settings.lead()}the metric {settings.metric_name!r} gave {problem} on "
            f"{label} (finite input: the values overflow or underflow in this metric). Rescale "
            f"the cloud (e.g. divide it by its largest absolute value) or use a metric that "
            f"sktopo rescales internally ('euclidean', 'manhattan', 'chebyshev', 'minkowski', "
            f"'cosine', ...)."
        )


# -------------------------------------------------------------------- memory
def dense_bytes_of(data, settings, *, counts=None) -> int:
    """Peak bytes of the dense computation of ``data``, temporaries included.

    ``counts`` (estimated simplices per clique size) is estimated here from
    the data when the engine's model needs it and none is given.
    """
    from ._registry import get_engine

    n = data.shape[0]
    engine = get_engine(settings.engine)
    total = engine.peak_bytes(n, settings.maxdim, counts, device=settings.device)
    if (counts is None and engine.needs_counts(settings.maxdim)
            and settings.memory_limit is not None and total > settings.memory_limit):
        # the worst case (every clique) does not fit: estimate the simplices of this cloud
        # (a few ms; small clouds never get here)
        total = engine.peak_bytes(n, settings.maxdim, simplex_counts(data, settings),
                                  device=settings.device)
    if not settings.precomputed:
        if settings.device is None:
            total += 8 * n * n  # the float64 matrix
        d = data.shape[1] if data.ndim == 2 else 1
        # the product formula's two (n, d + 2) operands, or the metric's copy of the cloud
        total += 2 * n * (d + 2) * 8
        if not settings.plain_euclidean:
            total += 2 * n * n * 8  # sklearn's metrics keep a second n x n temporary
    return int(total)


def simplex_counts(data, settings) -> dict:
    """Estimated numbers of simplices of the filtration, by clique size (see ``_memory``)."""
    from ._memory import clique_counts

    max_size = min(settings.maxdim + 2, 6)  # above H4 the model reads the worst case
    if settings.precomputed:
        return clique_counts(distances=data, threshold=settings.threshold, max_size=max_size)
    return clique_counts(points=data, threshold=settings.threshold, max_size=max_size,
                         metric=settings.metric, metric_params=settings.params)


def _check_dense_memory(estimate, n, settings, label):
    limit = settings.memory_limit
    if limit is None or estimate <= limit:
        return
    # every term grows at least like n^2 (the matrix, the edges; simplices of k vertices
    # like n^k at the scale of the cloud), so n * sqrt(limit / estimate) points fit
    fitting = int(n * math.sqrt(limit / estimate))
    what = ("n^2" if settings.maxdim == 0 else
            f"the simplices of dimension up to {settings.maxdim} at the enclosing radius")
    check_memory(
        estimate, limit,
        f"{settings.lead()}Vietoris-Rips persistence of {label} ({n} points, H0 to "
        f"H{settings.maxdim}, engine {settings.engine!r}; the memory grows with {what})",
        f"Subsample with n_landmarks (greedy max-min landmarks; about {fitting} fit in the "
        f"limit, and the diagram records the covering radius that bounds the error), or set a "
        f"finite max_edge_length (edges longer than it are left out and a sparse edge list "
        f"replaces the dense matrix), or raise memory_limit (None disables this check).",
    )


# ---------------------------------------------------------------- sparse path
def _sparse_edges(data, settings, label, chunk=1024):
    """Edges ``i < j`` of length ``<= threshold`` (finite), built in chunks of rows.

    Zero-length edges (duplicate points) are kept explicitly: they connect.
    """
    metric, metric_params = settings.metric, settings.params
    threshold, memory_limit = settings.threshold, settings.memory_limit
    n = data.shape[0]
    if memory_limit is not None:
        # a chunk of rows can hold at most chunk * n edges: keep that well inside the limit
        chunk = int(max(1, min(chunk, memory_limit // (4 * _bytes_per_edge(settings) * n))))
    if hasattr(data, "tocsr"):
        import scipy.sparse as sp

        upper = sp.triu(data, k=1).tocoo()  # stored zeros stay: they are edges
        keep = np.isfinite(upper.data) & (upper.data <= threshold)
        check_memory(
            int(keep.sum()) * _bytes_per_edge(settings), memory_limit,
            f"{settings.lead()}the edge list of {label} ({n} points, max_edge_length={threshold:.4g})",
            "Lower max_edge_length, subsample with n_landmarks, or raise memory_limit "
            "(None disables this check).",
        )
        return (upper.row[keep].astype(np.int64), upper.col[keep].astype(np.int64),
                upper.data[keep].astype(np.float64))
    rows, cols, values = [], [], []
    n_edges = 0
    precomputed = settings.precomputed
    if memory_limit is not None:
        # the whole list, estimated from a sample of rows before the first chunk: a list
        # far over the limit is refused now, not after minutes of neighbour searches
        expected = _expected_edges(data, settings) * _bytes_per_edge(settings)
        if expected > _CLEAR_EXCESS * memory_limit:
            check_memory(
                int(expected), memory_limit,
                f"{settings.lead()}the edge list of {label} ({n} points, max_edge_length="
                f"{threshold:.4g}; estimated from the degrees of {min(n, _SAMPLED_ROWS)} sampled "
                f"points)",
                "Lower max_edge_length, subsample with n_landmarks, or raise memory_limit "
                "(None disables this check).",
            )
    if not precomputed:
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(radius=threshold, metric=metric, metric_params=metric_params or None)
        nn.fit(data)
        # sklearn's brute-force search (many features) uses |x|^2 + |y|^2 - 2 x.y,
        # which leaves ~1e-6 between identical points: spurious tiny bars
        sq_norms = np.einsum("ij,ij->i", data, data) if settings.plain_euclidean else None
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
            n_edges * _bytes_per_edge(settings), memory_limit,
            f"{settings.lead()}the edge list of {label} ({n} points, max_edge_length={threshold:.4g}; "
            f"{n_edges} edges after {stop} of {n} rows)",
            "Lower max_edge_length, subsample with n_landmarks, or raise memory_limit "
            "(None disables this check).",
        )
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(values)


# Rows sampled to estimate an edge list's size; the estimate refuses a list only when it is
# this many times the limit (a list near the limit is left to the exact running count).
_SAMPLED_ROWS = 256
_CLEAR_EXCESS = 1.5


def _expected_edges(data, settings) -> float:
    """Number of edges ``<= threshold``, from the degrees of a fixed sample of rows."""
    from sklearn.metrics import pairwise_distances as cross_distances

    n = data.shape[0]
    sample = np.random.default_rng(0).choice(n, size=min(n, _SAMPLED_ROWS), replace=False)
    degrees = 0
    for start in range(0, len(sample), 32):  # 32 x n distances at a time
        rows = sample[start:start + 32]
        block = (data[rows] if settings.precomputed
                 else cross_distances(data[rows], data, metric=settings.metric, **settings.params))
        degrees += int((block <= settings.threshold).sum()) - len(rows)  # not the diagonal
    return n * degrees / len(sample) / 2


def _refine_close_pairs(X, sq_norms, i, j, d):
    """Recompute from the differences the Euclidean distances too small for the product formula.

    The one rule of :func:`sktopo._distance.unresolved`: duplicate points come
    out at exactly 0.
    """
    close = unresolved(d * d, sq_norms[i] + sq_norms[j])
    if close.any():
        d[close] = np.sqrt(exact_squared(X, i[close], j[close]))
    return d
