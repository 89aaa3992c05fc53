"""Geodesic (kNN-graph shortest-path) distances, for ``metric="precomputed"``.

Points on a curved manifold are far apart *along* it even when the straight
line between them is short (the two ends of a horseshoe). The usual estimate,
as in Isomap and in the code of several topology-of-representations papers: join
every point to its ``n_neighbors`` nearest neighbours (edges weighted by their
Euclidean length, made symmetric), then take shortest-path lengths in that
graph. :func:`geodesic_distances` does it for one cloud,
:class:`GeodesicDistances` for every cloud of a collection; the matrices go to
:class:`~sktopo.PersistenceDiagram` with ``metric="precomputed"``.

A kNN graph in several pieces has no finite distance between the pieces; that is
an error (naming the cloud and the number of pieces), never a silent ``inf``.

Memory: the nearest neighbours are found block of rows by block of rows (no
``n x n`` matrix of Euclidean distances), so what grows as ``n^2`` is the output
itself, the ``n x n`` float64 matrix that Dijkstra fills, and one boolean
temporary. That, with the kNN graph, is estimated from the cloud's shape before
anything is computed and refused above ``memory_limit`` with a
:class:`MemoryError` that gives the figure (``"4GiB"`` by default; None
disables the check).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, shortest_path
from scipy.spatial.distance import cdist
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval

from sktopo._base import CloudMapper, remember_input
from sktopo._distance import check_memory, power_of_two_scale

from .persistence import parse_memory

__all__ = ["GeodesicDistances", "geodesic_distances"]


# bytes of one block of rows of the kNN search (its distances and argpartition's indices)
_KNN_BLOCK_BYTES = 16 * 2**20
# bytes per stored edge of the kNN graph: the (row, col, weight) triplets, the CSR
# matrix, its transpose and their symmetric maximum, and scipy's float64 copy in
# shortest_path
_GRAPH_BYTES_PER_EDGE = 96


def _knn_block(n):
    """Rows per block of the kNN search: ``block x n`` float64 distances and int64 indices."""
    return max(1, min(n, _KNN_BLOCK_BYTES // (16 * max(n, 1))))


def _geodesic_bytes(n_points, n_neighbors) -> int:
    """Peak bytes of the geodesic matrix of a cloud of ``n_points``, from its shape alone.

    The output (the ``n x n`` float64 matrix Dijkstra fills and returns), one
    ``n x n`` boolean temporary (the zeroing of the stand-ins for duplicate
    points, the finiteness check), the symmetric kNN graph, and one block of
    the kNN search.
    """
    n = int(n_points)
    k = min(int(n_neighbors), max(n - 1, 0))
    return 9 * n * n + _GRAPH_BYTES_PER_EDGE * n * k + 16 * _knn_block(n) * n


def geodesic_distances(X, n_neighbors=10, *, memory_limit="4GiB"):
    """Shortest-path distances in the symmetric kNN graph of one cloud.

    Parameters
    ----------
    X : array-like of shape (n_points, n_features)
        The cloud.
    n_neighbors : int, default=10
        Each point is joined to this many nearest neighbours (Euclidean, edge
        weight the distance); an edge of either direction joins both points.
    memory_limit : int, str or None, default="4GiB"
        Largest memory the computation may take, in bytes or as a string such
        as ``"16GiB"``: about ``9 * n_points ** 2`` bytes (the dense float64
        output and a boolean temporary) plus the kNN graph. The estimate is
        made from the cloud's shape before anything is computed; above it a
        :class:`MemoryError` gives the figure. ``None`` disables the check.

    Returns
    -------
    D : ndarray of shape (n_points, n_points)
        Symmetric float64 matrix of graph shortest-path lengths, zero diagonal.

    Raises
    ------
    ValueError
        If the kNN graph is disconnected (some distances would be infinite).
    MemoryError
        If the estimate is above ``memory_limit``.

    Examples
    --------
    >>> import numpy as np
    >>> from sktopo import geodesic_distances
    >>> t = np.linspace(0, 2 * np.pi, 100, endpoint=False)
    >>> circle = np.c_[np.cos(t), np.sin(t)]
    >>> D = geodesic_distances(circle, n_neighbors=2)
    >>> round(float(D.max()), 3)  # half the perimeter of the 100-gon, about pi
    3.141
    """
    return _geodesic(X, n_neighbors, "geodesic_distances", "X",
                     parse_memory(memory_limit))


def _check_geodesic_memory(n, n_neighbors, limit, name, label):
    """MemoryError before anything ``n x n`` is allocated, when the estimate exceeds ``limit``."""
    if limit is None:
        return
    needed = _geodesic_bytes(n, n_neighbors)
    # the largest cloud that fits: 9 n^2 dominates
    fitting = math.isqrt(max(int(limit) // 9, 0))
    check_memory(
        needed, limit,
        f"{name}: the geodesic distances of the cloud at {label} ({n} points, a dense "
        f"{n} x {n} float64 matrix and its {n_neighbors}-nearest-neighbour graph)",
        f"Subsample the cloud (about {fitting} points fit in the limit), e.g. with "
        f"sktopo.topology.landmarks.greedy_landmarks, or raise memory_limit (None disables "
        f"this check).",
    )


def _nearest(X, k):
    """Indices and lengths of the ``k`` nearest other points of every point, by blocks of rows.

    Row for row the same as ``argpartition`` of the full distance matrix (with an
    infinite diagonal): each row's distances are computed and partitioned on their
    own, without the ``n x n`` matrix.
    """
    n = len(X)
    block = _knn_block(n)
    nearest = np.empty((n, k), dtype=np.intp)
    lengths = np.empty((n, k))
    for start in range(0, n, block):
        stop = min(start + block, n)
        part = cdist(X[start:stop], X)
        part[np.arange(stop - start), np.arange(start, stop)] = np.inf
        found = np.argpartition(part, k - 1, axis=1)[:, :k]
        nearest[start:stop] = found
        lengths[start:stop] = np.take_along_axis(part, found, axis=1)
    return nearest, lengths


def _geodesic(X, n_neighbors, _name, _label, memory_limit=None):
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"{_name}: the cloud at {_label} must be 2-D (points x features); "
                         f"got shape {X.shape}.")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{_name}: the cloud at {_label} has NaN or infinite values.")
    if not isinstance(n_neighbors, Integral) or isinstance(n_neighbors, bool) or n_neighbors < 1:
        raise ValueError(f"{_name}: n_neighbors must be an integer >= 1; got {n_neighbors!r}.")
    n = len(X)
    _check_geodesic_memory(n, n_neighbors, memory_limit, _name, _label)
    if n <= 1:
        return np.zeros((n, n))
    k = min(int(n_neighbors), n - 1)
    # the package's extreme-scale rule: squared distances of a cloud far from unit
    # scale underflow to 0 or overflow to inf, so compute on the cloud times a power
    # of two (exact) and divide the lengths by it after
    scale = power_of_two_scale(np.abs(X).max())
    # k nearest per row (ties broken by argpartition; any choice gives a valid kNN graph)
    nearest, lengths = _nearest(X * scale if scale != 1.0 else X, k)
    rows = np.repeat(np.arange(n), k)
    cols = nearest.ravel()
    weights = lengths.ravel()
    del nearest, lengths
    # a zero-length edge (duplicate points) would vanish from a sparse matrix: keep it tiny
    weights = np.where(weights > 0, weights, np.finfo(float).tiny)
    graph = csr_matrix((weights, (rows, cols)), shape=(n, n))
    graph = graph.maximum(graph.T)
    n_pieces, _ = connected_components(graph, directed=False)
    if n_pieces > 1:
        raise ValueError(
            f"{_name}: the {k}-nearest-neighbour graph of the cloud at {_label} has "
            f"{n_pieces} connected components, so some geodesic distances are infinite. "
            f"Use a larger n_neighbors (now {n_neighbors}).")
    D = shortest_path(graph, method="D", directed=False)
    D[D < 1e-300] = 0.0  # the tiny stand-ins for duplicate points
    np.fill_diagonal(D, 0.0)
    if scale != 1.0:
        with np.errstate(over="ignore"):
            D /= scale
    if not np.isfinite(D).all():
        raise ValueError(
            f"{_name}: some geodesic distances of the cloud at {_label} are larger than the "
            f"largest float64 (about 1.8e308): its paths add up past it. Scale the cloud "
            f"down first (for example divide it by 2**10).")
    return D


class GeodesicDistances(CloudMapper):
    """Geodesic distance matrix of every cloud (shortest paths in its kNN graph).

    A collection of clouds in, the same collection of square distance matrices
    out, ready for ``PersistenceDiagram(metric="precomputed")``. See
    :func:`geodesic_distances` for the graph. Nothing is learned in ``fit``.

    Parameters
    ----------
    n_neighbors : int, default=10
        Neighbours per point in each cloud's kNN graph. A disconnected graph
        raises a ValueError naming the cloud: raise ``n_neighbors``.
    memory_limit : int, str or None, default="4GiB"
        Largest memory one cloud's matrix may take, in bytes or as a string
        such as ``"16GiB"``: about ``9 * n_points ** 2`` bytes (the dense
        float64 output and a boolean temporary) plus the kNN graph. The
        estimate is made from the cloud's shape before anything is computed;
        above it a :class:`MemoryError` names the cloud and gives the figure.
        ``None`` disables the check. The output holds every cloud's matrix.

    Attributes
    ----------
    memory_limit_ : int or None
        ``memory_limit`` in bytes.
    n_features_in_ : int
        Number of columns of the input (1 for a list, 3-D array or Series).
    feature_names_in_ : ndarray of str
        Column names of a DataFrame input whose columns are all strings.

    See Also
    --------
    sklearn.manifold.Isomap : the same graph distances, then an embedding.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sktopo import GeodesicDistances, PersistenceDiagram
    >>> t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    >>> clouds = [np.c_[np.cos(t), np.sin(t)]]
    >>> pipe = make_pipeline(GeodesicDistances(n_neighbors=4),
    ...                      PersistenceDiagram((1,), metric="precomputed"))
    >>> len(pipe.fit_transform(clouds)[0].finite(1))
    1
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "memory_limit": [Interval(Real, 0, None, closed="neither"), str, None],
    }

    def __init__(self, n_neighbors=10, *, memory_limit="4GiB"):
        self.n_neighbors = n_neighbors
        self.memory_limit = memory_limit

    _one_cloud = "sktopo.geodesic_distances(X)"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters and the collection (nothing is learned).

        Parameters
        ----------
        X : collection of clouds
            A list of 2-D arrays, a 3-D array, or a Series / DataFrame of clouds.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        self.memory_limit_ = parse_memory(self.memory_limit)
        remember_input(self, self._check_collection(X))
        return self

    def _map_cloud(self, cloud, label):
        return _geodesic(cloud, self.n_neighbors, type(self).__name__, label,
                         self.memory_limit_)
