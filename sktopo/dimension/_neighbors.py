"""Nearest-neighbour distances of small clouds, many at once, for the dimension estimators.

TwoNN needs each point's two nearest neighbours, the Levina-Bickel MLE its ``k``
nearest. On a small cloud (tens to a few thousand points) one dense distance
matrix and a partial sort per row beat a tree or scikit-learn's chunked
``kneighbors`` (whose OpenMP reduction costs tens of milliseconds per call on a
tiny cloud and competes with joblib workers for the cores). Equally sized clouds
are stacked ``(b, n, d)`` and handled by one batched matrix product
(:func:`sktopo._distance.batched_squared_euclidean_distances`), so a thousand
clouds cost a few numpy calls, not a thousand.

Each cloud's numbers depend on that cloud alone (the batched product computes
every matrix on its own), so a cloud gives the same distances in any batch.

Scale. Ratios of distances (TwoNN, MLE) and the PH dimension are scale-invariant,
but squared distances overflow for coordinates near 1e160 and underflow near
1e-160. :func:`unit_scale` gives the power of two that brings a cloud's largest
coordinate near 1 (capped at ``2**1023``: :func:`to_unit_scale` multiplies twice for
deep subnormals); multiplying by a power of two is exact, so a cloud already in
a safe range is left alone and a rescaled one gives the numbers its unscaled
arithmetic would give without overflow.
"""

from __future__ import annotations

import numpy as np

from sktopo._distance import power_of_two_scale

__all__ = ["DENSE_MAX_POINTS", "SCALE_FREE_METRICS", "batched_knn_distances", "rescaled",
           "smallest", "to_unit_scale", "unit_scale"]

# Clouds up to this many points get a dense (n, n) float64 matrix (32 MiB at 2048).
DENSE_MAX_POINTS = 2048
# Up to this many neighbours, repeated row minima (argmin, set aside, again) beat a partial
# sort: measured 15 vs 28 us per 64 x 64 matrix for TwoNN's k = 2.
_MINIMA_UP_TO = 3

# Metrics with d(s x, s y) = s^p d(x, y) for s > 0 (or invariant): rescaling the
# coordinates rescales every distance alike, so ratios and log-log slopes stay.
SCALE_FREE_METRICS = frozenset({
    "euclidean", "l2", "sqeuclidean", "minkowski", "manhattan", "cityblock", "l1",
    "chebyshev", "infinity", "cosine", "correlation", "braycurtis", "canberra",
})

# A cloud whose largest |coordinate| lies in [2^-_SAFE_EXP, 2^_SAFE_EXP] is used as it
# is: its squared distances (even summed over thousands of coordinates, even in float32)
# neither overflow nor underflow.
_SAFE_EXP = 40


def unit_scale(max_abs: float) -> float:
    """The power of two ``s`` with ``max_abs * s`` in ``[0.5, 1)``, or 1 in the safe range.

    The package's extreme-scale rule (:func:`sktopo._distance.power_of_two_scale`)
    with the safe range ``[2**-40, 2**40]``. The factor is capped at ``2**1023``
    (the largest power of two): a subnormal ``max_abs`` (below ``2**-1022``, a
    cloud times 1e-310) would ask for more, i.e. ``inf``; :func:`to_unit_scale`
    then multiplies twice.

    Parameters
    ----------
    max_abs : float
        The largest absolute coordinate (or distance) of a cloud.

    Returns
    -------
    scale : float
        1.0 when ``max_abs`` is 0, not finite, or within ``[2**-40, 2**40]``.
    """
    return power_of_two_scale(max_abs, low=2.0 ** -_SAFE_EXP, high=2.0 ** _SAFE_EXP)


def to_unit_scale(cloud: np.ndarray, max_abs: float) -> np.ndarray:
    """``cloud`` (whose largest absolute entry is ``max_abs``) times powers of two that bring
    ``max_abs`` into ``[0.5, 1)``; ``cloud`` itself in the safe range.

    One factor, :func:`unit_scale`, except for subnormal ``max_abs`` (below
    ``2**-1022``, a cloud times 1e-310), where the capped ``2**1023`` is followed by a
    second power of two. Every step is exact: a subnormal times ``2**1023`` is a
    normal number with the same bits.
    """
    scale = unit_scale(max_abs)
    if scale == 1.0:
        return cloud
    cloud = cloud * scale
    peak = float(max_abs) * scale
    if peak < 0.5:  # the factor was capped
        cloud = cloud * float(np.ldexp(1.0, -int(np.frexp(peak)[1])))
    return cloud


def rescaled(cloud: np.ndarray, metric) -> np.ndarray:
    """``cloud`` brought near unit scale (:func:`to_unit_scale`) when the metric allows it.

    Points (or a precomputed distance matrix) of a scale-free metric are
    rescaled by exact powers of two; other metrics (callables, ``"hamming"``
    ...) are returned unchanged.
    """
    if not (metric == "precomputed" or (isinstance(metric, str) and metric in SCALE_FREE_METRICS)):
        return cloud
    if cloud.size == 0:
        return cloud
    finite = cloud[np.isfinite(cloud)] if metric == "precomputed" else cloud
    if finite.size == 0:
        return cloud
    return to_unit_scale(cloud, np.abs(finite).max())


def batched_knn_distances(X: np.ndarray, k: int) -> np.ndarray:
    """Squared Euclidean distances of every point to its ``k`` nearest other points.

    Parameters
    ----------
    X : ndarray of shape (b, n, d), or a sequence of b arrays of shape (n, d)
        ``b`` clouds of ``n`` points each (``n > k``), in a safe scale
        (see :func:`rescaled`).
    k : int
        Number of neighbours.

    Returns
    -------
    d2 : ndarray of shape (b, n, k)
        Ascending along the last axis; duplicates of a point give exact zeros.
    """
    from sktopo._distance import batched_squared_euclidean_distances

    D2 = batched_squared_euclidean_distances(X)
    idx = np.arange(D2.shape[1])
    D2[:, idx, idx] = np.inf  # a point is not its own neighbour
    return smallest(D2, k)


def smallest(D2: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` smallest entries of every row of ``D2``, ascending.

    Parameters
    ----------
    D2 : ndarray of shape (..., n, n)
        Matrices whose rows are searched (the diagonal set to inf, so that a
        point is not its own neighbour). Left as it was.
    k : int
        Number of entries per row, at most ``n``.

    Returns
    -------
    near : ndarray of shape (..., n, k)
    """
    n = D2.shape[-1]
    if k >= n - 1:
        return np.sort(D2, axis=-1)[..., :k]
    if k > _MINIMA_UP_TO:
        return np.sort(np.partition(D2, k - 1, axis=-1)[..., :k], axis=-1)
    rows = np.ascontiguousarray(D2).reshape(-1, n)
    flat = rows.reshape(-1)
    starts = np.arange(0, flat.size, n)
    near = np.empty((len(rows), k), dtype=D2.dtype)
    taken = []
    for q in range(k):
        at = rows.argmin(axis=1)
        at += starts
        near[:, q] = flat[at]
        flat[at] = np.inf  # set aside: the next minimum is the next neighbour
        taken.append(at)
    for q in reversed(range(k)):  # put the entries back, last taken first
        flat[taken[q]] = near[:, q]
    return near.reshape(*D2.shape[:-1], k)
