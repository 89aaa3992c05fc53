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
whole computation (:func:`dense_bytes_of`): ``n^2 * bytes_per_entry``
(:func:`dense_bytes_per_entry`): 8 bytes for the float64 matrix, plus the
float32 copies ripser.py / giotto-ph make (2-6 bytes) or the MST kernel's
condensed copy (5 bytes), plus, when H1 or higher is asked for, a rough 8 bytes
for the reduction (the coboundary columns and pivots scale with the number of
edges; the true figure depends on the data and can be smaller or, on unlucky
clouds, larger); plus the temporaries that scale with the cloud's width (the
two ``(n, d + 2)`` operands of the distance product) and a metric's second
``n x n`` temporary (cosine and the other scikit-learn metrics). A precomputed
matrix is validated block by block, so its check adds no ``n^2`` temporaries. Over ``memory_limit`` the dense path is not taken:
with a finite threshold (or infinite entries in a precomputed matrix) the
engines switch to a sparse edge list built in chunks, whose size is checked as
it grows; otherwise a :class:`MemoryError` states the estimate and what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from .._distance import (
    check_memory,
    exact_squared,
    pairwise_distances,
    power_of_two_scale,
    unresolved,
)

__all__ = [
    "ENGINES",
    "MAX_COEFF",
    "PersistenceSettings",
    "check_coeff",
    "compute_bars",
    "dense_bytes_per_entry",
    "giotto_available",
    "resolve_engine",
]

ENGINES = ("mst", "ripser", "giotto")

# Largest prime field each engine computes correctly (probed in subprocesses on
# a 20-point circle): ripser.py hangs at coeff=131 and 251, aborts the process
# at 65521 and returns H1 bars that never die at 65537; giotto-ph gives a wrong
# H1 death at 131 and 197 and hangs at 241 and 251 (it refuses 255 and above).
# H0 does not depend on the field, so the MST engine shares the bound.
MAX_COEFF = 127

# Metrics with d(s x, s y) = s d(x, y): a cloud scaled by a power of two gives
# exactly scaled bars. Scale-invariant ones (d(s x, s y) = d(x, y)) give the
# same bars.
_HOMOGENEOUS = {"euclidean", "l2", "manhattan", "cityblock", "l1", "chebyshev", "minkowski",
                "infinity", "p"}
_SCALE_INVARIANT = {"cosine", "correlation", "braycurtis", "canberra"}


@dataclass(frozen=True)
class PersistenceSettings:
    """Everything one persistence computation needs, fixed for a whole collection.

    Built once per :meth:`~sktopo.PersistenceDiagram.transform` (or per call of
    :func:`compute_bars`) and passed whole to every cloud, instead of a dozen
    keyword arguments threaded by hand.

    Parameters
    ----------
    homology_dimensions : tuple of int
        Dimensions to return, sorted.
    engine : {"mst", "ripser", "giotto"}
        Engine (see :func:`resolve_engine` for ``"auto"``).
    metric : str or callable
        Metric of :func:`sklearn.metrics.pairwise_distances`, or ``"precomputed"``.
    metric_params : mapping or None
        Extra arguments of the metric.
    threshold : float
        Largest edge length of the filtration (``max_edge_length``).
    coeff : int
        Prime field of coefficients (irrelevant for H0).
    n_landmarks : int or None
        Greedy max-min landmarks per cloud (used by the caller, not the engines).
    representatives : bool
        Keep the input indices of a representative of every H0 and H1 bar
        (used by the caller, see :mod:`sktopo.topology.representatives`).
    memory_limit : int or None
        Bytes one cloud's computation may take; ``None`` disables the check.
    device : str or None
        Torch device of the MST engine; ``None`` uses numpy.
    n_threads : int
        Threads of giotto-ph per cloud.
    estimator : str
        Name that starts error messages (e.g. ``"PersistenceDiagram"``).
    auto : bool
        The engine was chosen by ``backend="auto"``: where two engines give the
        same diagram, the faster one for the cloud may be used.
    """

    homology_dimensions: tuple = (0, 1)
    engine: str = "ripser"
    metric: Any = "euclidean"
    metric_params: Mapping | None = field(default=None, hash=False)
    threshold: float = np.inf
    coeff: int = 2
    n_landmarks: int | None = None
    representatives: bool = False
    memory_limit: int | None = None
    device: str | None = None
    n_threads: int = 1
    estimator: str = ""
    auto: bool = False

    def __post_init__(self):
        dims = tuple(sorted(int(q) for q in self.homology_dimensions))
        object.__setattr__(self, "homology_dimensions", dims)
        object.__setattr__(self, "threshold", float(self.threshold))

    @property
    def maxdim(self) -> int:
        return self.homology_dimensions[-1]

    @property
    def precomputed(self) -> bool:
        return isinstance(self.metric, str) and self.metric == "precomputed"

    @property
    def params(self) -> dict:
        return dict(self.metric_params or {})

    @property
    def plain_euclidean(self) -> bool:
        return isinstance(self.metric, str) and self.metric == "euclidean" and not self.metric_params

    def lead(self) -> str:
        """Start of an error message: ``"PersistenceDiagram: "`` or nothing."""
        return f"{self.estimator}: " if self.estimator else ""

    def with_(self, **changes) -> "PersistenceSettings":
        return replace(self, **changes)


def check_coeff(coeff, estimator: str = "PersistenceDiagram") -> int:
    """``coeff`` if it is a prime in the range every engine computes correctly, else ValueError.

    The range is checked before primality, so a huge number is refused at
    once (a trial division up to ``sqrt(2**61 - 1)`` would stall).
    """
    p = int(coeff)
    if not 2 <= p <= MAX_COEFF:
        raise ValueError(
            f"{estimator}: coeff={p} is outside the range the engines compute correctly "
            f"(primes 2 to {MAX_COEFF}): ripser.py hangs or aborts the Python process and "
            f"giotto-ph returns wrong deaths for larger fields. Use a prime up to {MAX_COEFF}."
        )
    if any(p % k == 0 for k in range(2, int(math.isqrt(p)) + 1)):
        raise ValueError(f"{estimator}: coeff must be a prime number (the field Z/pZ); got {p}.")
    return p

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
        # the squared-distance matrix (8), the compiled kernel's condensed float64
        # copy (4) and its finiteness mask (1)
        return 5 if precomputed else 13
    matrix = 0 if precomputed else 8
    if engine == "ripser":
        copies = 4  # our float32 condensed matrix (2) and ripser's C++ copy (2)
    else:
        copies = 6  # giotto-ph's float64 squareform (4) and its float32 copy (2)
    reduction = 8 if maxdim > 0 else 0
    return matrix + copies + reduction


def compute_bars(data: np.ndarray, settings: PersistenceSettings | None = None, *,
                 label: str = "the cloud", where: str | None = None, **keywords) -> dict:
    """Vietoris-Rips persistence of one cloud.

    Parameters
    ----------
    data : ndarray of shape (n_points, n_features) or (n_points, n_points)
        The cloud, or its distance matrix when ``metric="precomputed"``
        (infinite entries mean "no edge").
    settings : PersistenceSettings, optional
        What to compute and how. Without it, the keyword arguments
        (``engine``, ``homology_dimensions``, ``metric``, ``metric_params``,
        ``threshold``, ``coeff``, ``n_threads``, ``device``, ``memory_limit``,
        ``estimator``) build one.
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
    if _is_sparse(data):
        return _sparse_bars(data, settings, label)
    data, scale = _rescaled(data, settings, label)
    if scale != 1.0:
        # a power of two: every distance (and every bar) scales exactly
        bars = _bars(data, settings.with_(threshold=settings.threshold * scale), label)
        return {q: b / scale for q, b in bars.items()}
    return _bars(data, settings, label)


def _is_sparse(data) -> bool:
    return hasattr(data, "tocoo") and hasattr(data, "nnz")


def _sparse_bars(data, settings, label):
    """A scipy.sparse distance matrix: its stored entries are the edges (see check_precomputed)."""
    import scipy.sparse as sp

    values = data.data if data.nnz else np.zeros(1)
    s = power_of_two_scale(float(values.max())) if data.nnz else 1.0
    if s != 1.0:
        data = sp.csr_matrix(data * s)
    scaled = settings.with_(threshold=settings.threshold * s)
    n = data.shape[0]
    if settings.engine == "mst":
        lengths, n_components = _sparse_mst(data, scaled, label)
        bars = {0: h0_bars(lengths, scaled.threshold, n_components)}
    else:
        if settings.engine == "giotto":
            try:
                import gph  # noqa: F401
            except ImportError:
                raise ImportError(_GIOTTO_MISSING) from None
        edges = _sparse_edges(data, scaled, label)
        dgms = _run_sparse(settings.engine, edges, n, settings.maxdim, scaled.threshold,
                           settings.coeff, settings.n_threads)
        bars = {q: _clean(dgms[q]) if q < len(dgms) else np.empty((0, 2))
                for q in settings.homology_dimensions}
    return {q: b / s for q, b in bars.items()} if s != 1.0 else bars


def _bars(data, settings, label):
    engine = settings.engine
    dims = settings.homology_dimensions
    maxdim = settings.maxdim
    precomputed = settings.precomputed
    threshold = settings.threshold
    memory_limit = settings.memory_limit
    n = data.shape[0]
    has_inf = precomputed and finite_range(data)[0]

    dense_bytes = dense_bytes_of(data, settings)
    fits = memory_limit is None or dense_bytes <= memory_limit
    use_sparse = (np.isfinite(threshold) and not fits) or (has_inf and engine != "mst")
    if not use_sparse:
        _check_dense_memory(dense_bytes, n, settings, label)

    if engine == "mst":
        if use_sparse:
            lengths, n_components = _sparse_mst(data, settings, label)
        else:
            lengths = _dense_mst(data, settings, label)
            n_components = 1
        return {0: h0_bars(lengths, threshold, n_components)}

    if engine == "giotto":
        try:
            from gph import ripser_parallel
        except ImportError:
            raise ImportError(_GIOTTO_MISSING) from None
    if use_sparse:
        edges = _sparse_edges(data, settings, label)
        dgms = _run_sparse(engine, edges, n, maxdim, threshold, settings.coeff, settings.n_threads)
    else:
        D = data if precomputed else _checked_distances(data, settings, label)
        if engine == "ripser":
            dgms = ripser_dense(D, maxdim, threshold, settings.coeff)
        else:
            # our distances, not giotto-ph's: they are exact for duplicate points
            # (sklearn's leave ~1e-8 there, i.e. spurious tiny bars)
            dgms = ripser_parallel(D, metric="precomputed", maxdim=maxdim, thresh=threshold,
                                   coeff=settings.coeff, n_threads=settings.n_threads)["dgms"]
    return {q: _clean(dgms[q]) if q < len(dgms) else np.empty((0, 2)) for q in dims}


# ------------------------------------------------------------------- scales
def scale_of(data, settings) -> float:
    """Power of two that brings a cloud's values (or a matrix's distances) near 1; 1 if fine.

    Squared distances overflow float64 above about 1e154 and underflow below
    about 1e-154; ripser.py and giotto-ph store float32 (1e38, 1e-38). A power of
    two is exact in floating point, so the rescaled cloud gives exactly rescaled
    bars.
    """
    if settings.precomputed:
        _, low, high = finite_range(data)
        if not np.isfinite(high) or high <= 0:
            return 1.0
        s = power_of_two_scale(high)
        if s == 1.0 and low < 2.0**-60:
            s = power_of_two_scale(high, low=2.0**60)  # bring the largest near 1 anyway
            if high * s > 2.0**60:  # pragma: no cover - both ends far apart: leave it
                return 1.0
        return s
    if not isinstance(settings.metric, str) or settings.metric not in (_HOMOGENEOUS | _SCALE_INVARIANT):
        return 1.0
    # no |data| temporary: a wide cloud's copy would dodge memory_limit
    max_abs = max(float(data.max()), -float(data.min())) if data.size else 0.0
    return power_of_two_scale(max_abs)


def finite_range(D, block_entries=1 << 20):
    """``(has_inf, smallest positive finite entry, largest finite entry)`` of a matrix.

    Row block by row block: no ``n x n`` mask or copy (memory_limit counts the
    computation, and this runs before it).
    """
    n = D.shape[0]
    block = max(1, block_entries // max(D.shape[1] if D.ndim == 2 else 1, 1))
    has_inf, low, high = False, np.inf, 0.0
    for start in range(0, n, block):
        rows = D[start:start + block]
        finite = np.isfinite(rows)
        if not finite.all():
            has_inf = True
        high = max(high, float(np.max(rows, where=finite, initial=0.0)))
        low = min(low, float(np.min(rows, where=finite & (rows > 0), initial=np.inf)))
    return has_inf, low, high


def _rescaled(data, settings, label):
    """``(data * s, s)`` with ``s`` from :func:`scale_of`; ``s = 1`` for scale-invariant metrics."""
    s = scale_of(data, settings)
    if s == 1.0:
        return data, 1.0
    scaled = data * s
    if isinstance(settings.metric, str) and settings.metric in _SCALE_INVARIANT:
        return scaled, 1.0  # the distances do not change: only their computation is safer
    return scaled, s


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
            f"{settings.lead()}the metric {_metric_name(settings.metric)!r} gave {problem} on "
            f"{label} (finite input: the values overflow or underflow in this metric). Rescale "
            f"the cloud (e.g. divide it by its largest absolute value) or use a metric that "
            f"sktopo rescales internally ('euclidean', 'manhattan', 'chebyshev', 'minkowski', "
            f"'cosine', ...)."
        )


def _metric_name(metric):
    return metric if isinstance(metric, str) else getattr(metric, "__name__", "callable")


def dense_bytes_of(data, settings) -> int:
    """Peak bytes of the dense computation of ``data``, temporaries included."""
    n = data.shape[0]
    per_entry = dense_bytes_per_entry(settings.engine, settings.maxdim,
                                      precomputed=settings.precomputed, device=settings.device)
    total = n * n * per_entry
    if not settings.precomputed:
        d = data.shape[1] if data.ndim == 2 else 1
        # the product formula's two (n, d + 2) operands, or the metric's copy of the cloud
        total += 2 * n * (d + 2) * 8
        if not settings.plain_euclidean:
            total += 2 * n * n * 8  # sklearn's metrics keep a second n x n temporary
    return int(total)


# --------------------------------------------------------------------- memory
def _check_dense_memory(estimate, n, settings, label):
    limit = settings.memory_limit
    if limit is None or estimate <= limit:
        return
    per_entry = max(1, estimate // max(n * n, 1))
    fitting = int(math.isqrt(int(limit // per_entry)))
    check_memory(
        estimate, limit,
        f"{settings.lead()}Vietoris-Rips persistence of {label} ({n} points, engine "
        f"{settings.engine!r}, about n^2 x {per_entry} bytes)",
        f"Subsample with n_landmarks (greedy max-min landmarks; about {fitting} fit in the "
        f"limit, and the diagram records the covering radius that bounds the error), or set a "
        f"finite max_edge_length (edges longer than it are left out and a sparse edge list "
        f"replaces the dense matrix), or raise memory_limit (None disables this check).",
    )


# ------------------------------------------------------------------------ H0
def h0_bars(lengths, threshold, n_components=1):
    """H0 bars from the edge lengths of a minimum spanning tree (or forest)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    kept = np.isfinite(lengths) & (lengths <= threshold)
    finite = lengths[kept & (lengths > 0)]  # zero-length bars are dropped
    n_infinite = n_components + int((~kept).sum())
    bars = np.zeros((len(finite) + n_infinite, 2))
    bars[:len(finite), 1] = finite
    bars[len(finite):, 1] = np.inf
    return bars


def h0_bars_batch(lengths, threshold) -> list:
    """H0 bars of a batch of trees, in the canonical order (what :func:`h0_bars` gives per row).

    Parameters
    ----------
    lengths : ndarray of shape (b, n - 1)
        Edge lengths of one spanning tree per row, each row ascending
        (infinite lengths: missing edges).
    threshold : float
        Filtration threshold: longer edges never join, their bars are infinite.

    Returns
    -------
    bars : list of b ndarrays of shape (k, 2)
        Views of one ``(b, n, 2)`` array: born at 0, finite deaths ascending,
        then the infinite bars; zero-length bars left out.
    """
    b, m = lengths.shape
    pairs = np.zeros((b, m + 1, 2))
    deaths = pairs[:, :, 1]
    deaths[:, :m] = lengths
    deaths[:, m] = np.inf
    if threshold < np.inf:
        deaths[deaths > threshold] = np.inf
    zeros = (deaths[:, :m] <= 0.0).sum(axis=1)  # ascending rows: the zero lengths come first
    return [pairs[k, zeros[k]:] for k in range(b)]


_h0_bars = h0_bars  # older private name


def _dense_mst(data, settings, label):
    precomputed = settings.precomputed
    device = settings.device
    if device is None:
        from .._distance import squared_euclidean_distances
        from .._mst import mst_edge_lengths

        if settings.plain_euclidean:
            # the tree only compares lengths: build it on squared distances and
            # take n - 1 roots instead of n^2
            lengths = mst_edge_lengths(squared_euclidean_distances(data))
            return np.sqrt(np.maximum(lengths, 0.0))
        D = data if precomputed else _checked_distances(data, settings, label)
        return mst_edge_lengths(D)
    import torch

    from .._distance import torch_pairwise_distances
    from .._mst import torch_mst_edge_lengths

    if precomputed:
        D = torch.as_tensor(data, dtype=torch.float32, device=device)
    elif settings.plain_euclidean:
        D = torch_pairwise_distances(torch.as_tensor(data, dtype=torch.float32, device=device))
    else:
        D = torch.as_tensor(_checked_distances(data, settings, label),
                            dtype=torch.float32, device=device)
    return torch_mst_edge_lengths(D).cpu().numpy().astype(np.float64)


def _sparse_mst(data, settings, label):
    """Minimum spanning forest of the thresholded graph: lengths and component count."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

    n = data.shape[0]
    rows, cols, values = _sparse_edges(data, settings, label)
    graph = sp.csr_matrix((values, (rows, cols)), shape=(n, n))
    # explicit zeros (duplicate points) count as edges for the components;
    # they are zero-length bars, dropped anyway, so losing them in the tree is harmless
    n_components = connected_components(graph, directed=False)[0]
    tree = minimum_spanning_tree(graph)
    return tree.data, n_components


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
        chunk = int(max(1, min(chunk, memory_limit // (4 * _SPARSE_BYTES_PER_EDGE * n))))
    if _is_sparse(data):
        import scipy.sparse as sp

        upper = sp.triu(data, k=1).tocoo()  # stored zeros stay: they are edges
        keep = np.isfinite(upper.data) & (upper.data <= threshold)
        check_memory(
            int(keep.sum()) * _SPARSE_BYTES_PER_EDGE, memory_limit,
            f"{settings.lead()}the edge list of {label} ({n} points, max_edge_length={threshold:.4g})",
            "Lower max_edge_length, subsample with n_landmarks, or raise memory_limit "
            "(None disables this check).",
        )
        return (upper.row[keep].astype(np.int64), upper.col[keep].astype(np.int64),
                upper.data[keep].astype(np.float64))
    rows, cols, values = [], [], []
    n_edges = 0
    precomputed = settings.precomputed
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
            n_edges * _SPARSE_BYTES_PER_EDGE, memory_limit,
            f"{settings.lead()}the edge list of {label} ({n} points, max_edge_length={threshold:.4g}; "
            f"{n_edges} edges after {stop} of {n} rows)",
            "Lower max_edge_length, subsample with n_landmarks, or raise memory_limit "
            "(None disables this check).",
        )
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(values)


def _refine_close_pairs(X, sq_norms, i, j, d):
    """Recompute from the differences the Euclidean distances too small for the product formula.

    The one rule of :func:`sktopo._distance.unresolved`: duplicate points come
    out at exactly 0.
    """
    close = unresolved(d * d, sq_norms[i] + sq_norms[j])
    if close.any():
        d[close] = np.sqrt(exact_squared(X, i[close], j[close]))
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


def enclosing_radius(D) -> float:
    """``min_i max_j D[i, j]``: above it the Rips complex is a cone (contractible).

    Every class of dimension 1 and above dies by this scale and the graph is
    connected, so a filtration cut there gives exactly the same diagram; giotto-ph
    does the same. ``inf`` for a matrix with infinite entries in every row.
    """
    return float(np.min(np.max(D, axis=1))) if D.shape[0] else 0.0


def ripser_dense(D, maxdim, threshold, coeff):
    """ripser.py's compiled core on a dense matrix: ``[H0, H1, ...]`` arrays of pairs."""
    if maxdim > 0:
        # exact (see enclosing_radius) and 1.5-2x faster: ripser.py does not cut there itself
        threshold = min(threshold, enclosing_radius(D))
    return ripser_condensed(_condensed_float32(D), D.shape[0], maxdim, threshold, coeff)


def ripser_condensed(condensed, n, maxdim, threshold, coeff, n_threads=1):
    """ripser.py's compiled core on a float32 condensed matrix (no Python-level checks).

    ``threshold`` is used as given: pass the enclosing radius for speed.
    ``n_threads`` is ignored (ripser.py is single-threaded).
    """
    try:
        from pyRipser import doRipsFiltrationDM
    except ImportError:  # pragma: no cover - ripser.py's layout changed: use its public API
        from ripser import ripser
        from scipy.spatial.distance import squareform

        return ripser(squareform(condensed.astype(np.float64)), distance_matrix=True,
                      maxdim=maxdim, thresh=threshold, coeff=coeff)["dgms"]
    condensed = np.ascontiguousarray(condensed, dtype=np.float32)
    result = doRipsFiltrationDM(condensed, maxdim, thresh=threshold, coeff=coeff, do_cocycles=0)
    return [np.reshape(np.asarray(flat, dtype=np.float64), (-1, 2))
            for flat in result["births_and_deaths_by_dim"]]


def giotto_dense(D, maxdim, threshold, coeff, n_threads=1):
    """giotto-ph's compiled core on a dense matrix (no Python-level checks): ``[H0, H1, ...]``."""
    if maxdim > 0:
        threshold = min(threshold, enclosing_radius(D))
    return giotto_condensed(_condensed_float32(D), D.shape[0], maxdim, threshold, coeff, n_threads)


def giotto_condensed(condensed, n, maxdim, threshold, coeff, n_threads=1):
    """giotto-ph's compiled core on a float32 condensed matrix (releases the GIL)."""
    from gph.python.ripser_interface import _compute_ph_vr_dense

    # the compiled core reads the buffer as C-contiguous float32 without checking
    condensed = np.ascontiguousarray(condensed, dtype=np.float32)
    diagonal = np.zeros(n, dtype=np.float32)
    result = _compute_ph_vr_dense(condensed, diagonal, maxdim, threshold, coeff, n_threads)
    return [np.reshape(np.asarray(flat, dtype=np.float64), (-1, 2))
            for flat in result.births_and_deaths_by_dim()]


def _clean(pairs) -> np.ndarray:
    """float64 (k, 2) bars without zero-length ones."""
    pairs = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
    return pairs[pairs[:, 1] > pairs[:, 0]]
