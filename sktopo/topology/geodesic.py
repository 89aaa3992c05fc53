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
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, shortest_path
from scipy.spatial.distance import cdist
from sklearn.utils._param_validation import Interval

from sktopo._base import CloudMapper
from sktopo._distance import power_of_two_scale

__all__ = ["GeodesicDistances", "geodesic_distances"]


def geodesic_distances(X, n_neighbors=10):
    """Shortest-path distances in the symmetric kNN graph of one cloud.

    Parameters
    ----------
    X : array-like of shape (n_points, n_features)
        The cloud.
    n_neighbors : int, default=10
        Each point is joined to this many nearest neighbours (Euclidean, edge
        weight the distance); an edge of either direction joins both points.

    Returns
    -------
    D : ndarray of shape (n_points, n_points)
        Symmetric float64 matrix of graph shortest-path lengths, zero diagonal.

    Raises
    ------
    ValueError
        If the kNN graph is disconnected (some distances would be infinite).

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
    return _geodesic(X, n_neighbors, "geodesic_distances", "X")


def _geodesic(X, n_neighbors, _name, _label):
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"{_name}: the cloud at {_label} must be 2-D (points x features); "
                         f"got shape {X.shape}.")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{_name}: the cloud at {_label} has NaN or infinite values.")
    if not isinstance(n_neighbors, Integral) or isinstance(n_neighbors, bool) or n_neighbors < 1:
        raise ValueError(f"{_name}: n_neighbors must be an integer >= 1; got {n_neighbors!r}.")
    n = len(X)
    if n <= 1:
        return np.zeros((n, n))
    k = min(int(n_neighbors), n - 1)
    # the package's extreme-scale rule: squared distances of a cloud far from unit
    # scale underflow to 0 or overflow to inf, so compute on the cloud times a power
    # of two (exact) and divide the lengths by it after
    scale = power_of_two_scale(np.abs(X).max())
    full = cdist(X * scale, X * scale) if scale != 1.0 else cdist(X, X)
    np.fill_diagonal(full, np.inf)
    # k nearest per row (ties broken by argpartition; any choice gives a valid kNN graph)
    nearest = np.argpartition(full, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    cols = nearest.ravel()
    weights = full[rows, cols]
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

    Attributes
    ----------
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
    }

    def __init__(self, n_neighbors=10):
        self.n_neighbors = n_neighbors

    _one_cloud = "sktopo.geodesic_distances(X)"

    def _map_cloud(self, cloud, label):
        return _geodesic(cloud, self.n_neighbors, type(self).__name__, label)
