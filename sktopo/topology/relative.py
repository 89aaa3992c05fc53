"""Relative (quotient) persistence: what a ReLU network can destroy.

Let M be a sample of the data manifold and A the inputs that lie in linear regions where the
network's map has low rank (below a chosen level, by default the input dimension). By the long
exact sequence of the pair (M, A), the relative homology H(M, A) ~ reduced H(M/A) tells which
classes of M survive once the low-rank part, where the network can glue or collapse the data, is
quotiented out (study B of the research notes).

The quotient metric is built from the distance matrix of M as in study B:

1. inside each low-rank region (points sharing an activation pattern) distances are set to 0;
2. every other point's distance to a region is its minimum distance to the region's points, and
   two regions are at the minimum distance between their points;
3. one representative node per region is kept;
4. all-pairs shortest paths (scipy.sparse.csgraph) restore the triangle inequality.

Vietoris-Rips persistence of that metric gives the diagram of M/A. With ``collapse="all"`` the
whole of A becomes a single point (the topological quotient M/A, whose reduced homology is
H(M, A)); this is what study B's Fig. 2 notebook computes (its equivalence-class code merges every
low-rank point into one class). ``collapse="region"`` collapses each region separately.

This module is metric code only (numpy and scipy, no torch): the estimator that takes a torch
model, :class:`sktopo.QuotientPersistence` (``from sktopo import
QuotientPersistence``), builds the labels from a network's low-rank regions and calls it.
"""

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import csgraph_from_dense, shortest_path

__all__ = ["quotient_distances", "quotient_persistence"]


def quotient_distances(D, labels, *, collapse="region"):
    """Distance matrix of the quotient of a finite metric space by labelled subsets.

    Parameters
    ----------
    D : ndarray of shape (n, n)
        Symmetric distance matrix of the points.
    labels : array-like of shape (n,)
        Integer per point: points with the same label ``>= 0`` are collapsed together (with
        ``collapse="region"``); a negative label marks a point outside A, kept as it is.
    collapse : {"region", "all"}, default="region"
        "all" collapses every point with a label ``>= 0`` into one point.

    Returns
    -------
    Q : ndarray of shape (m, m)
        Shortest-path metric on the m nodes of the quotient.
    nodes : ndarray of shape (n,)
        Node of each point (points of one collapsed set share a node; nodes are numbered in
        order of first appearance).

    Examples
    --------
    >>> import numpy as np
    >>> from sktopo.topology.relative import quotient_distances
    >>> x = np.array([0.0, 1.0, 2.0, 3.0])
    >>> D = np.abs(x[:, None] - x[None, :])
    >>> Q, nodes = quotient_distances(D, [0, -1, -1, 0], collapse="region")
    >>> Q
    array([[0., 1., 1.],
           [1., 0., 1.],
           [1., 1., 0.]])
    """
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"D must be a square distance matrix, got shape {D.shape}.")
    if not np.isfinite(D).all() or (D < 0).any():
        raise ValueError("D must contain finite, non-negative distances.")
    labels = np.asarray(labels)
    if labels.shape != (D.shape[0],):
        raise ValueError(f"labels must have one entry per point ({D.shape[0]}), got shape "
                         f"{labels.shape}.")
    if collapse not in ("region", "all"):
        raise ValueError(f"collapse must be 'region' or 'all', got {collapse!r}.")
    labels = labels.astype(np.int64)
    if collapse == "all":
        labels = np.where(labels >= 0, 0, -1)
    # Every point outside A gets its own key; collapsed sets share one.
    keys = np.where(labels >= 0, labels, -1 - np.arange(labels.size, dtype=np.int64))
    _, first, nodes = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    renumber = np.empty_like(order)
    renumber[order] = np.arange(order.size)
    nodes = renumber[nodes.reshape(-1)]
    m = order.size
    # Minimum over members, rows then columns, with reduceat on points sorted by node.
    by_node = np.argsort(nodes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(nodes[by_node]) != 0])
    Q = np.minimum.reduceat(D[by_node], starts, axis=0)
    Q = np.minimum.reduceat(Q[:, by_node], starts, axis=1)
    Q = np.minimum(Q, Q.T)
    np.fill_diagonal(Q, 0.0)
    # Dense zeros would read as "no edge": build the graph with inf as the null value.
    graph = csgraph_from_dense(Q, null_value=np.inf)
    Q = shortest_path(graph, method="D", directed=False)
    assert Q.shape == (m, m)
    return Q, nodes


def quotient_persistence(X, labels, *, collapse="region", homology_dimensions=(0, 1),
                         metric="euclidean"):
    """Vietoris-Rips persistence of the quotient of a point cloud by labelled subsets.

    Parameters
    ----------
    X : ndarray of shape (n, n_features), or (n, n) distances with ``metric="precomputed"``
    labels : array-like of shape (n,)
        See :func:`quotient_distances`.
    collapse : {"region", "all"}, default="region"
    homology_dimensions : tuple of int, default=(0, 1)
    metric : str, default="euclidean"
        Any metric of :func:`sklearn.metrics.pairwise_distances`, or "precomputed".

    Returns
    -------
    diagram : sktopo.diagram.Diagram
    """
    from sktopo.topology._base import check_homology_dimensions

    dims = check_homology_dimensions(homology_dimensions, "quotient_persistence")
    D = _distances(X, metric)
    Q, _ = quotient_distances(D, labels, collapse=collapse)
    return _rips(Q, dims)


# ---------------------------------------------------------------------- helpers
def _as_points(X):
    if isinstance(X, pd.DataFrame):
        X = X.to_numpy()
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(X.shape[0], -1)


def _distances(X, metric):
    if metric == "precomputed":
        D = np.asarray(X, dtype=np.float64)
        if D.ndim != 2 or D.shape[0] != D.shape[1]:
            raise ValueError(f"metric='precomputed' needs a square distance matrix, got shape "
                             f"{D.shape}.")
        return D
    from sktopo._distance import pairwise_distances

    # sktopo's distances, not sklearn's: identical points (inputs a network
    # collapses) come out at exactly 0 rather than ~1e-7, a spurious tiny H0 bar
    D = pairwise_distances(_as_points(X), metric=metric)
    return np.maximum(D, D.T)


def _rips(D, homology_dimensions, *, n_landmarks=None, random_state=None):
    """Vietoris-Rips diagram of a distance matrix (through PersistenceDiagram).

    With ``n_landmarks`` and more points than that, the diagram of the greedy max-min
    landmarks' sub-matrix (first landmark seeded from random_state and the matrix's content).
    """
    from sktopo.diagram import Diagram
    from sktopo.topology.persistence import persistence

    dims = tuple(homology_dimensions)
    if D.shape[0] == 1:  # everything collapsed to one point: one H0 class, nothing else
        return Diagram({q: [[0.0, np.inf]] if q == 0 else [] for q in dims}, n_points=1,
                       metric="precomputed")
    n_points, covering_radius = D.shape[0], 0.0
    if n_landmarks is not None and n_points > n_landmarks:
        from sktopo._seeding import cloud_seeds
        from sktopo.topology.landmarks import greedy_landmarks

        seed = cloud_seeds(random_state, [D], metric="precomputed")[0]
        keep, covering_radius = greedy_landmarks(D, n_landmarks, metric="precomputed",
                                                 random_state=seed)
        D = D[np.ix_(keep, keep)]
    diagram = persistence(D, homology_dimensions=dims, metric="precomputed")
    if D.shape[0] == n_points:
        return diagram
    return Diagram({q: diagram[q] for q in dims}, n_points=n_points, n_landmarks=D.shape[0],
                   covering_radius=covering_radius, threshold=diagram.threshold,
                   coeff=diagram.coeff, metric="precomputed", engine=diagram.engine)
