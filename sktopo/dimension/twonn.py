"""TwoNN intrinsic dimension (Facco, d'Errico, Rodriguez & Laio, Scientific Reports 2017).

For each point, ``mu = r2 / r1`` is the ratio of the distances to its second
and first nearest neighbours. On a locally uniform ``d``-dimensional sample
``mu`` is Pareto distributed, ``F(mu) = 1 - mu ** -d``, so
``-log(1 - F(mu)) = d log(mu)``: a line through the origin. The empirical
``F`` is fitted by least squares through the origin after discarding the
largest ``discard_fraction`` of the ratios (the tail, where noise and
curvature dominate), as in the paper.

Only the two nearest neighbours of each point matter, so TwoNN probes the
smallest scales of a cloud; it is the geometric cross-check the studies pair
with the (multi-scale, topological) PH dimension.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval

from sktopo._base import CellMessage, CloudTransformer, one_cloud
from sktopo._parallel import N_JOBS
from sktopo._seeding import as_seeder
from sktopo.dimension import _batched
from sktopo.dimension._batched import _unit_scaled
from sktopo.dimension._neighbors import DENSE_MAX_POINTS, batched_knn_distances, rescaled

__all__ = ["TwoNN", "twonn"]

FEATURES = ("twonn", "r2", "n_used")
_MIN_POINTS = 3


class TwoNN(CloudTransformer):
    """TwoNN intrinsic dimension of every cloud in a collection.

    Parameters
    ----------
    discard_fraction : float in [0, 1), default=0.1
        Fraction of the largest ratios ``r2 / r1`` left out of the fit.
    metric : str, default="euclidean"
        Any metric of :class:`sklearn.neighbors.NearestNeighbors`, or
        ``"precomputed"`` when the cells are square distance matrices.
    max_points : int or None, default=None
        Clouds with more points are subsampled (at random, without
        replacement) to this many first. None uses every point.
    random_state : int, RandomState instance or None, default=None
        Seeds the subsampling of ``max_points`` (the estimate is otherwise
        deterministic). Each cloud's stream comes from ``random_state`` and
        the cloud's content (:mod:`sktopo._seeding`): the same cloud gives the
        same numbers in any row, order or subset, on any ``n_jobs``, and as
        points or as its distance matrix.
    n_jobs : int or None, default=None
        Clouds processed in parallel through joblib (``None`` means 1 unless a
        ``joblib.parallel_config`` context sets it, ``-1`` all cores).
    verbose : int, default=0
        Show a progress bar over clouds when positive.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns of the input (1 for a list, 3-D array or Series).
    feature_names_in_ : ndarray of str
        Column names of a DataFrame input whose columns are all strings.

    Notes
    -----
    Duplicated points (equal, or at distance 0 under ``metric``, as ``x`` and
    ``2 x`` are for ``"cosine"``) have ``r1 = 0`` and no ratio: every point is
    kept once (duplicates removed) with a warning saying how many were removed. A cloud
    with fewer than 3 distinct points gives NaN with a warning naming its row; when
    several clouds fail for the same reason, one warning says how many and which.

    Output columns, per cloud: ``twonn`` (the estimate), ``twonn_r2`` (of the fit
    through the origin) and ``twonn_n_used`` (ratios in the fit), prefixed
    ``"{column}__"`` for DataFrame inputs.

    Examples
    --------
    >>> from sktopo import TwoNN
    >>> from sktopo.datasets import make_sphere
    >>> table = TwoNN().fit_transform([make_sphere(2000, 3, ambient_dim=10, random_state=0)])
    >>> bool(abs(table[0, 0] - 3) < 0.3)
    True
    """

    _parameter_constraints: dict = {
        "discard_fraction": [Interval(Real, 0, 1, closed="left")],
        "metric": [str, callable],
        "max_points": [Interval(Integral, _MIN_POINTS, None, closed="left"), None],
        "random_state": ["random_state"],
        "n_jobs": N_JOBS,
        "verbose": ["verbose"],
    }
    _features = FEATURES
    _prefix = "twonn"
    _one_cloud = "sktopo.twonn(X)"

    def __init__(self, discard_fraction=0.1, *, metric="euclidean", max_points=None,
                 random_state=None, n_jobs=None, verbose=0):
        self.discard_fraction = discard_fraction
        self.metric = metric
        self.max_points = max_points
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _draws_randomly(self):
        # the only random step is the max_points subsample
        return self.max_points is not None

    def _cell_task(self):
        return _twonn_cloud, dict(discard_fraction=float(self.discard_fraction),
                                  metric=self.metric, max_points=self.max_points)

    def _compute_cells(self, clouds, seeds, labels):
        # many small Euclidean clouds of one shape: one batched product and partial sort
        function, settings = self._cell_task()
        return _batched.compute_cells(clouds, seeds, labels, key=twonn_batch_key,
                                      batch=twonn_batch, single=function, settings=settings,
                                      n_jobs=self.n_jobs, verbose=self.verbose,
                                      desc=type(self).__name__)


def twonn(X, **params) -> pd.Series:
    """TwoNN intrinsic dimension of one cloud.

    Parameters
    ----------
    X : array-like of shape (n_points, n_features)
        One point cloud (a square distance matrix with ``metric="precomputed"``).
    **params
        Any parameter of :class:`TwoNN`.

    Returns
    -------
    result : pandas.Series
        Indexed by ``twonn``, ``twonn_r2``, ``twonn_n_used``; ``result["twonn"]`` is
        the estimate.

    Examples
    --------
    >>> import sktopo
    >>> from sktopo.datasets import make_torus
    >>> bool(abs(sktopo.twonn(make_torus(2000, random_state=0))["twonn"] - 2) < 0.2)
    True
    """
    return one_cloud(TwoNN(**params), X, "twonn")


def _twonn_cloud(cloud, seed, label, *, discard_fraction, metric, max_points):
    """TwoNN of one cloud: ``(values, warning messages)``; never raises on bad data."""
    from sklearn.neighbors import NearestNeighbors

    messages = []
    nan = {name: np.nan for name in FEATURES}
    precomputed = metric == "precomputed"
    n_points = cloud.shape[0]
    if max_points is not None and n_points > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(n_points, max_points, replace=False))
        cloud = _take(cloud, keep, precomputed)
    n_sampled = cloud.shape[0]
    # ratios are scale-invariant: bring a cloud far from unit scale (1e200, 1e-300) near 1
    # by an exact power of two, so its squared distances neither overflow nor vanish
    cloud = rescaled(cloud, metric)
    if precomputed:
        distinct = _distinct_by_distance(cloud)
    else:
        _, distinct = np.unique(cloud + 0.0, axis=0, return_index=True)  # + 0.0: -0.0 == 0.0
        distinct = np.sort(distinct)
    cloud = _take(cloud, distinct, precomputed)
    distances = None
    while len(distinct) >= _MIN_POINTS:
        distances, nearest = NearestNeighbors(n_neighbors=2, metric=metric).fit(cloud).kneighbors()
        tied = np.flatnonzero(distances[:, 0] == 0)
        if not tied.size:
            break
        # Distinct coordinates at distance 0 under the metric (x and 2x for "cosine"): drop
        # the later point of each such pair; the first point of every group always stays.
        keep = np.setdiff1d(np.arange(len(distinct)), np.maximum(tied, nearest[tied, 0]))
        distinct, cloud, distances = distinct[keep], _take(cloud, keep, precomputed), None
    n_removed = n_sampled - len(distinct)
    if n_removed:
        messages.append(CellMessage(
            f"the cloud at {label} has {n_removed} duplicated point(s) out of {n_sampled} "
            f"(r1 = 0, no ratio); each point was kept once.",
            kind="have duplicated points (r1 = 0, no ratio); each point was kept once",
            nan=False,
        ))
    if distances is None:
        messages.append(CellMessage(
            f"the cloud at {label} has {len(distinct)} distinct point(s); TwoNN needs at least "
            f"{_MIN_POINTS}. Its dimension is NaN.",
            kind=f"have fewer than {_MIN_POINTS} distinct points",
            advice="Give more points per cloud.",
        ))
        return nan, messages

    # the one fit, shared with the batches
    dimension, r2_fit, n_used, ok = twonn_fit(distances[None], discard_fraction)
    if n_used < 2:
        messages.append(CellMessage(
            f"the cloud at {label} leaves {n_used} ratio(s) after discarding; its dimension is NaN.",
            kind="leave fewer than 2 ratios after discarding",
            advice="Give more points per cloud or lower discard_fraction.",
        ))
        return nan, messages
    if not ok[0]:
        messages.append(CellMessage(
            f"the cloud at {label} has r2 = r1 for every point (a lattice?); TwoNN is "
            f"undefined, NaN.",
            kind="have r2 = r1 for every point (a lattice?), where TwoNN is undefined",
        ))
        return nan, messages
    return {"twonn": float(dimension[0]), "r2": float(r2_fit[0]), "n_used": float(n_used)}, messages


def _take(cloud, rows, precomputed):
    """The points ``rows`` of a cloud, or their sub-matrix of a distance matrix."""
    return cloud[np.ix_(rows, rows)] if precomputed else cloud[rows]


def _distinct_by_distance(D):
    """Indices of the first point of every group at distance 0 (precomputed matrices)."""
    n = D.shape[0]
    zero = D == 0
    np.fill_diagonal(zero, False)
    first = np.ones(n, dtype=bool)
    for i, j in zip(*np.nonzero(np.triu(zero))):
        first[j] = False
    return np.flatnonzero(first)


# ---------------------------------------------------------------------------------------------
# many small clouds at once (sktopo.dimension._batched.compute_cells): the same numbers

def twonn_batch_key(cloud, *, discard_fraction, metric, max_points):
    """The shape (after ``max_points``) of a cloud TwoNN can batch, or None."""
    n_points = cloud.shape[0]
    if max_points is not None:
        n_points = min(n_points, max_points)
    if metric != "euclidean" or not 3 <= n_points <= DENSE_MAX_POINTS:
        return None
    return n_points, cloud.shape[1]


def twonn_batch(clouds, seeds, labels, *, discard_fraction, metric, max_points):
    """TwoNN of Euclidean clouds of one :func:`twonn_batch_key` (dense two nearest neighbours).

    Clouds with duplicated points, or whose fit is undefined, go to
    :func:`_twonn_cloud`, which removes the duplicates and warns.
    """
    settings = dict(discard_fraction=discard_fraction, metric=metric, max_points=max_points)
    seeds = as_seeder(seeds)(clouds)  # a list, from a direct call: given by position
    sampled = []
    for cloud, seed in zip(clouds, seeds):
        n_points = cloud.shape[0]
        if max_points is not None and n_points > max_points:
            keep = np.sort(np.random.default_rng(seed).choice(n_points, max_points, replace=False))
            cloud = cloud[keep]
        sampled.append(cloud)
    d2 = batched_knn_distances(_unit_scaled(sampled), 2)
    dimension, r2_fit, n_used, ok = twonn_fit(np.sqrt(d2), discard_fraction)
    results = []
    for i in range(len(clouds)):
        if not ok[i]:
            results.append(_twonn_cloud(clouds[i], seeds[i], labels[i], **settings))
        else:
            results.append(({"twonn": float(dimension[i]), "r2": float(r2_fit[i]),
                             "n_used": float(n_used)}, []))
    return results


def twonn_fit(r, discard_fraction):
    """Facco et al.'s fit through the origin for clouds of one size.

    Parameters
    ----------
    r : ndarray of shape (b, n, 2)
        Distances of every point to its first and second nearest neighbours.
    discard_fraction : float
        Fraction of the largest ratios left out.

    Returns
    -------
    dimension, r2 : ndarray of shape (b,)
    n_used : int
    ok : ndarray of bool, shape (b,)
        False where the fit is undefined (a duplicate, too few ratios, all ratios 1).
    """
    b, n, _ = r.shape
    ok = (r[:, :, 0] > 0).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.sort(r[:, :, 1] / r[:, :, 0], axis=1)
    # the largest ratio has F = 1 and log(1 - F) = -inf: it never enters the fit
    n_used = min(int(np.floor(n * (1 - discard_fraction))), n - 1)
    if n_used < 2:
        return np.full(b, np.nan), np.full(b, np.nan), n_used, np.zeros(b, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log(mu[:, :n_used])
    y = -np.log(1 - np.arange(1, n_used + 1) / n)  # empirical F(mu_i) = i / n
    xx = (x * x).sum(axis=1)
    ok &= xx > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dimension = (x * y).sum(axis=1) / xx
        residuals = y - dimension[:, None] * x
        total = ((y - y.mean()) ** 2).sum()
        r2 = 1 - (residuals ** 2).sum(axis=1) / total if total > 0 else np.full(b, np.nan)
    return dimension, r2, n_used, ok
