"""Landmarks: a greedy max-min (farthest point) subsample and its covering radius.

Vietoris-Rips persistence needs all pairwise distances, so its memory grows as
``n^2`` and its time faster still. A *landmark* subsample keeps the shape:
greedy max-min picks a first point at random (from ``random_state``), then
repeatedly the point farthest from all landmarks chosen so far. After ``m``
steps every point of the cloud lies within the *covering radius* ``eps`` of a
landmark (``eps`` is the Hausdorff distance between the landmarks and the
cloud).

The guarantee
-------------
The Gromov-Hausdorff distance between the landmarks ``L`` and the cloud ``X``
is at most ``eps``, and Vietoris-Rips diagrams are stable (Chazal, de Silva
and Oudot, 2014): with the convention used here (an edge enters at its
length), the bottleneck distance between the diagram of ``L`` and that of
``X`` is at most ``2 * eps``, in every homology dimension. Bars shorter than
``2 * eps`` may be noise of the subsample; longer ones are certified to match
bars of the full cloud. :class:`~sktopo.PersistenceDiagram` records ``eps`` in
every diagram (``Diagram.covering_radius``).

Cost: ``m`` passes over the cloud, each computing the distances from one point
to all ``n`` points: ``O(n m d)`` time and ``O(n)`` memory, never a full
distance matrix.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from .._distance import exact_squared, power_of_two_scale, unresolved

__all__ = ["greedy_landmarks"]


def _distances_to(X, sq_norms, i, metric, metric_params):
    """Distances from point ``i`` to every row of ``X`` (a new array, never a view of ``X``)."""
    if metric == "precomputed":
        if hasattr(X, "tocsr"):  # scipy.sparse: entries not stored are missing edges
            row = X.getrow(i)
            d = np.full(X.shape[0], np.inf)
            d[row.indices] = row.data
            d[i] = 0.0
            return d
        # a copy: the caller updates it in place, which must not touch the user's matrix
        return np.array(X[i], dtype=np.float64)
    if metric == "euclidean" and not metric_params:
        # |x|^2 + |y|^2 - 2 x.y: one matrix-vector product per landmark, with the
        # package's refinement rule for the pairs that formula cannot resolve
        d2 = sq_norms + sq_norms[i] - 2.0 * (X @ X[i])
        close = np.flatnonzero(unresolved(d2, sq_norms + sq_norms[i]))
        if close.size:
            d2[close] = exact_squared(X, close, np.full_like(close, i))
        np.maximum(d2, 0.0, out=d2)
        d = np.sqrt(d2, out=d2)
        d[i] = 0.0
        return d
    from sklearn.metrics import pairwise_distances

    return pairwise_distances(X, X[i:i + 1], metric=metric, **(metric_params or {}))[:, 0]


def greedy_landmarks(X, n_landmarks, *, metric="euclidean", metric_params=None, random_state=None):
    """Greedy max-min landmarks of a cloud and their covering radius.

    Parameters
    ----------
    X : ndarray of shape (n_points, n_features), or (n_points, n_points)
        The cloud, or a distance matrix when ``metric="precomputed"``.
    n_landmarks : int
        Number of landmarks. If it is at least ``n_points`` every point is
        used (in greedy order) and the covering radius is 0.
    metric : str or callable, default="euclidean"
        Any metric of :func:`sklearn.metrics.pairwise_distances`, or
        ``"precomputed"``.
    metric_params : dict, optional
        Extra arguments of the metric.
    random_state : int, RandomState instance or None, default=None
        Chooses the first landmark.

    Returns
    -------
    indices : ndarray of shape (min(n_landmarks, n_points),)
        Row indices of the landmarks, in the order they were picked.
    covering_radius : float
        Largest distance from a point of ``X`` to its nearest landmark.

    Examples
    --------
    >>> from sktopo.datasets import make_circle
    >>> from sktopo.topology.landmarks import greedy_landmarks
    >>> X = make_circle(500, random_state=0)
    >>> idx, eps = greedy_landmarks(X, 50, random_state=0)
    >>> len(idx), eps < 0.1
    (50, True)
    """
    if metric == "precomputed" and hasattr(X, "tocsr"):
        X = X.tocsr().astype(np.float64)  # scipy.sparse: rows read one at a time
    else:
        X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    m = int(min(n_landmarks, n))
    rng = check_random_state(random_state)
    scale = 1.0
    if metric == "euclidean" and not metric_params and X.size:
        # squared norms of extreme clouds overflow or underflow: work on an
        # exactly rescaled copy (a power of two) and scale the radius back
        scale = power_of_two_scale(max(float(X.max()), -float(X.min())))
        if scale != 1.0:
            X = X * scale
    sq_norms = np.einsum("ij,ij->i", X, X) if metric == "euclidean" and not metric_params else None

    indices = np.empty(m, dtype=np.intp)
    first = int(rng.randint(n))
    indices[0] = first
    nearest = _distances_to(X, sq_norms, first, metric, metric_params)
    chosen = np.zeros(n, dtype=bool)
    chosen[first] = True
    for k in range(1, m):
        # chosen points are excluded explicitly: with duplicate points every
        # remaining distance can be 0, and argmax must not pick a landmark twice
        candidate = np.where(chosen, -np.inf, nearest)
        i = int(np.argmax(candidate))
        indices[k] = i
        chosen[i] = True
        np.minimum(nearest, _distances_to(X, sq_norms, i, metric, metric_params), out=nearest)
    nearest[chosen] = 0.0
    covering_radius = float(nearest.max()) / scale if m < n else 0.0
    return indices, covering_radius
