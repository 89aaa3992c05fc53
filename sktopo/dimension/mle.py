"""Maximum-likelihood intrinsic dimension from nearest-neighbour distances.

Two estimators of the same family as :class:`~sktopo.TwoNN`, on the same collection
base (a table row per cloud, seeded per cloud by content, many small clouds batched):

- :class:`MLEDimension`: Levina & Bickel (NIPS 2004). Around a point ``x`` with
  neighbour distances ``T_1 <= ... <= T_k``, a locally uniform ``d``-dimensional
  density makes the counts a Poisson process of rate ``~ r^d`` and the likelihood
  gives the *local* estimate

      m_k(x) = (k - 1) / sum_{j<k} log(T_k / T_j)

  (``k - 2`` with ``unbiased=True``, the unbiased form of MacKay & Ghahramani).
  The cloud's estimate averages the *inverses*, ``1 / mean_x(1 / m_k(x))``, as
  MacKay & Ghahramani ("Comments on Levina & Bickel", 2005) showed is the
  maximum-likelihood combination; Levina & Bickel's plain mean of ``m_k(x)`` is
  biased upwards and is reported as ``mle_local_mean``. The local estimates' quantiles
  describe how the dimension varies across the cloud.
- :class:`TwoNNLikelihood`: the maximum-likelihood form of TwoNN (Facco et al.
  2017). The ratios ``mu = T_2 / T_1`` are Pareto distributed with exponent ``d``;
  the unbiased maximum-likelihood estimate from ``N`` ratios is
  ``(N - 1) / sum log(mu)`` (dadapy's ``compute_id_2NN(algorithm="ml")``).

Error bars by decimation, as dadapy's ``compute_id_2NN(data_fraction=f)``: the
estimate is repeated on ``n_iter = round(1 / f)`` random subsets of ``round(f N)``
points (neighbours found within each subset, which probes larger scales); the
estimate is their mean and the error ``std / sqrt(n_iter)``. With ``data_fraction=1``
the whole cloud is used once and the error is NaN (one estimate has no spread).
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval

from sktopo._base import CellMessage, CloudTransformer, one_cloud
from sktopo._parallel import N_JOBS
from sktopo._seeding import as_seeder
from sktopo.dimension import _batched
from sktopo.dimension._neighbors import DENSE_MAX_POINTS, rescaled, smallest, to_unit_scale

__all__ = ["MLEDimension", "TwoNNLikelihood", "mle_dimension", "twonn_likelihood",
           "local_dimension"]

_COMMON_CONSTRAINTS = {
    "data_fraction": [Interval(Real, 0, 1, closed="right")],
    "n_iter": [Interval(Integral, 1, None, closed="left"), None],
    "metric": [str, callable],
    "max_points": [Interval(Integral, 3, None, closed="left"), None],
    "random_state": ["random_state"],
    "n_jobs": N_JOBS,
    "verbose": ["verbose"],
}


# ------------------------------------------------------------------------ the estimators
def local_mle(r: np.ndarray, *, unbiased: bool = False) -> np.ndarray:
    """Levina-Bickel local estimates from sorted neighbour distances.

    Parameters
    ----------
    r : ndarray of shape (..., n, k)
        Each point's distances to its ``k >= 2`` nearest neighbours, ascending, positive.
    unbiased : bool
        ``k - 2`` instead of ``k - 1`` in the numerator (needs ``k >= 3``).

    Returns
    -------
    m : ndarray of shape (..., n)
        ``inf`` where all ``k`` distances are equal.
    """
    k = r.shape[-1]
    logs = np.log(r[..., -1:] / r[..., :-1]).sum(axis=-1)
    with np.errstate(divide="ignore"):
        return (k - 2 if unbiased else k - 1) / logs


def mackay_ghahramani(m: np.ndarray) -> np.ndarray:
    """The cloud's estimate from local ones: ``1 / mean(1 / m)`` over the last axis."""
    return 1.0 / np.mean(1.0 / m, axis=-1)


def twonn_ml(r: np.ndarray) -> np.ndarray:
    """TwoNN's maximum-likelihood estimate ``(N - 1) / sum log(T_2 / T_1)`` over axis -2.

    Parameters
    ----------
    r : ndarray of shape (..., N, 2)
        First and second neighbour distances of every point (positive).
    """
    n = r.shape[-2]
    with np.errstate(divide="ignore"):
        return (n - 1) / np.log(r[..., 1] / r[..., 0]).sum(axis=-1)


class _NeighbourLikelihood(CloudTransformer):
    """Shared machinery: neighbour distances of every cloud (batched when small), decimation.

    A subclass sets ``_min_points`` and implements ``_n_neighbors(n)`` (neighbours
    needed for a cloud of ``n`` points), ``_global(r)`` (estimates from ``(b, n, k)``
    distances) and ``_extra(r, values)`` (more columns from the whole cloud's distances).
    """

    _min_points = 3

    def _settings(self):
        return dict(estimator=self, data_fraction=float(self.data_fraction), n_iter=self.n_iter,
                    metric=self.metric, max_points=self.max_points)

    def _cell_task(self):
        return _one_cloud_values, self._settings()

    def _compute_cells(self, clouds, seeds, labels):
        return _batched.compute_cells(
            clouds, seeds, labels, key=_batch_key, batch=_batch_values,
            single=_one_cloud_values, settings=self._settings(), n_jobs=self.n_jobs,
            verbose=self.verbose, desc=type(self).__name__, cost=_batch_cost)

    # per subclass
    def _n_neighbors(self, n_points):  # pragma: no cover - abstract
        raise NotImplementedError

    def _global(self, r):  # pragma: no cover - abstract
        raise NotImplementedError

    def _extra(self, r):
        return {}


def _plan(n_points, data_fraction, n_iter):
    """``(n_subset, n_iter)`` of the decimation, or ``(n_points, 1)`` without it."""
    if data_fraction >= 1.0:
        return n_points, 1
    n_subset = int(np.rint(n_points * data_fraction))
    return n_subset, (int(np.rint(1.0 / data_fraction)) if n_iter is None else int(n_iter))


def _draws(seed, n_points, max_points, data_fraction, n_iter):
    """The ``max_points`` subsample (or None) and the decimation subsets, from the cloud's seed."""
    rng = np.random.default_rng(seed)
    keep = None
    if max_points is not None and n_points > max_points:
        keep = np.sort(rng.choice(n_points, max_points, replace=False))
        n_points = max_points
    subsets = None
    if data_fraction < 1.0:
        n_subset, iterations = _plan(n_points, data_fraction, n_iter)
        subsets = np.stack([rng.choice(n_points, n_subset, replace=False)
                            for _ in range(iterations)])
    return keep, subsets


def _too_few(estimator, label, n_points, needed):
    name = type(estimator).__name__
    return CellMessage(
        f"the cloud at {label} has {n_points} distinct point(s) (or a decimated subset that "
        f"small); {name} needs at least {needed}. Its dimension is NaN.",
        kind=f"have too few distinct points for {name} (at least {needed})",
        advice="Give more points per cloud, or raise data_fraction.",
    )


def _nan_values(estimator):
    return {name: np.nan for name in estimator._keys()}


# ------------------------------------------------------------------- one cloud at a time
def _distinct(cloud, metric):
    """Indices of the points kept once: exact duplicates, and points at distance 0 under the
    metric from an earlier point, are dropped (they have no finite neighbour ratio)."""
    if metric == "precomputed":
        zero = cloud == 0
        first = np.arange(cloud.shape[0])
    else:
        _, first = np.unique(cloud + 0.0, axis=0, return_index=True)  # + 0.0: -0.0 == 0.0
        first = np.sort(first)
        if metric == "euclidean" or len(first) > DENSE_MAX_POINTS:
            return first  # distinct coordinates (large clouds: checked after the search)
        from sktopo._distance import pairwise_distances

        zero = pairwise_distances(cloud[first], metric) == 0  # x and 2 x for "cosine"
    np.fill_diagonal(zero, False)
    # a point at distance 0 from an earlier one goes (pseudo-metrics: zero is transitive)
    return first[~np.tril(zero).any(axis=1)]


def _knn(cloud, k, metric):
    """Ascending distances ``(n, k)`` of every point to its ``k`` nearest other points."""
    n = cloud.shape[0]
    if metric == "precomputed":
        D = np.array(cloud, dtype=np.float64)
    elif n <= DENSE_MAX_POINTS:
        from sktopo._distance import pairwise_distances

        D = pairwise_distances(cloud, metric)
    else:
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors(n_neighbors=k, metric=metric).fit(cloud).kneighbors()[0]
    np.fill_diagonal(D, np.inf)
    return np.sort(np.partition(D, k - 1, axis=1)[:, :k], axis=1)


def _take(cloud, rows, metric):
    return cloud[np.ix_(rows, rows)] if metric == "precomputed" else cloud[rows]


def _one_cloud_values(cloud, seed, label, *, estimator, data_fraction, n_iter, metric,
                      max_points):
    """The row of one cloud by the general path (any metric, duplicates, large clouds)."""
    messages = []
    keep, subsets = _draws(seed, cloud.shape[0], max_points, data_fraction, n_iter)
    if keep is not None:
        cloud = _take(cloud, keep, metric)
    cloud = rescaled(cloud, metric)
    n_sampled = cloud.shape[0]
    distinct = _distinct(cloud, metric)
    if len(distinct) < n_sampled:
        messages.append(CellMessage(
            f"the cloud at {label} has {n_sampled - len(distinct)} duplicated point(s) out of "
            f"{n_sampled} (distance 0, no neighbour ratio); each point was kept once.",
            kind="have duplicated points (distance 0, no neighbour ratio); each point was kept "
                 "once",
            nan=False,
        ))
        cloud = _take(cloud, distinct, metric)
        if subsets is not None:  # a subset keeps its points that survived
            position = np.full(n_sampled, -1)
            position[distinct] = np.arange(len(distinct))
            subsets = [position[s][position[s] >= 0] for s in subsets]
    n_points = cloud.shape[0]
    needed = estimator._n_neighbors(n_points) + 1
    fewest = n_points if subsets is None else min(len(s) for s in subsets)
    if n_points < estimator._min_points or fewest < estimator._min_points:
        messages.append(_too_few(estimator, label, fewest, estimator._min_points))
        return _nan_values(estimator), messages
    r_full = _knn(cloud, needed - 1, metric)
    if not (r_full[:, 0] > 0).all():  # a large cloud with points at distance 0 under the metric
        messages.append(CellMessage(
            f"the cloud at {label} has distinct points at distance 0 under metric {metric!r}; "
            f"they have no neighbour ratio. Its dimension is NaN.",
            kind=f"have distinct points at distance 0 under metric {metric!r}",
            advice="Remove them first (or subsample with max_points).",
        ))
        return _nan_values(estimator), messages
    r_subsets = None
    n_subset, iterations = n_points, 1
    if subsets is not None:
        # each subset: its own neighbours (a larger scale), the estimate on it alone
        estimates_r = []
        for s in subsets:
            sub = _take(cloud, np.sort(s), metric)
            estimates_r.append(_knn(sub, estimator._n_neighbors(len(s)), metric))
        n_subset, iterations = len(subsets[0]), len(subsets)
        if len({r.shape for r in estimates_r}) == 1:
            r_subsets = np.stack(estimates_r)
        else:  # duplicates removed unevenly: estimate subset by subset
            r_subsets = estimates_r
    return _values_from(estimator, r_full, r_subsets, n_subset, iterations), messages


# ------------------------------------------------------------------- many clouds at once
def _batch_key(cloud, *, estimator, data_fraction, n_iter, metric, max_points):
    n_points = cloud.shape[0] if max_points is None else min(cloud.shape[0], max_points)
    if metric != "euclidean" or n_points > DENSE_MAX_POINTS:
        return None
    n_subset, _ = _plan(n_points, data_fraction, n_iter)
    if min(n_points, n_subset) < estimator._min_points:
        return None  # the general path says why
    return n_points, cloud.shape[1]


def _batch_cost(cloud, *, estimator, data_fraction, n_iter, metric, max_points):
    """Numbers a batch holds per cloud: points, distances, decimated sub-matrices."""
    n_points = cloud.shape[0] if max_points is None else min(cloud.shape[0], max_points)
    n_subset, iterations = _plan(n_points, data_fraction, n_iter)
    extra = iterations * n_subset ** 2 if data_fraction < 1.0 else 0
    return n_points * cloud.shape[1] + 2 * n_points ** 2 + 2 * extra


def _batch_values(clouds, seeds, labels, *, estimator, data_fraction, n_iter, metric,
                  max_points):
    """Rows of Euclidean clouds of one shape: one batched distance product, partial sorts."""
    from sktopo._distance import batched_squared_euclidean_distances

    settings = dict(estimator=estimator, data_fraction=data_fraction, n_iter=n_iter,
                    metric=metric, max_points=max_points)
    seeds = as_seeder(seeds)(clouds)  # a list, from a direct call: given by position
    draws = [_draws(seed, cloud.shape[0], max_points, data_fraction, n_iter)
             for cloud, seed in zip(clouds, seeds)]
    X = np.stack([cloud if keep is None else cloud[keep]
                  for cloud, (keep, _) in zip(clouds, draws)]).astype(np.float64, copy=False)
    peaks = np.maximum(X.max(axis=(1, 2)), -X.min(axis=(1, 2)))
    # the extreme-scale rule, cloud by cloud (exact powers of two; X itself when all are safe)
    views = list(X)
    scaled = [to_unit_scale(x, peak) for x, peak in zip(views, peaks.tolist())]
    if any(x is not view for x, view in zip(scaled, views)):
        X = np.stack(scaled)
    c, n_points, _ = X.shape
    D2 = batched_squared_euclidean_distances(X)
    del X
    idx = np.arange(n_points)
    D2[:, idx, idx] = np.inf
    k = estimator._n_neighbors(n_points)
    r_full = np.sqrt(smallest(D2, k))
    duplicated = (r_full[:, :, 0] == 0).any(axis=1)
    r_subsets = None
    n_subset, iterations = n_points, 1
    if data_fraction < 1.0:
        subsets = np.stack([np.sort(s, axis=1) for _, s in draws])  # (c, n_iter, n_subset)
        iterations, n_subset = subsets.shape[1:]
        rows = np.arange(c)[:, None, None, None]
        blocks = D2[rows, subsets[:, :, :, None], subsets[:, :, None, :]]
        r_subsets = np.sqrt(smallest(blocks.reshape(c * iterations, n_subset, n_subset),
                                     estimator._n_neighbors(n_subset)))
        r_subsets = r_subsets.reshape(c, iterations, n_subset, -1)
    results = []
    for i in range(c):
        if duplicated[i]:
            results.append(_one_cloud_values(clouds[i], seeds[i], labels[i], **settings))
            continue
        results.append((_values_from(estimator, r_full[i],
                                     None if r_subsets is None else r_subsets[i],
                                     n_subset, iterations), []))
    return results


# ---------------------------------------------------------------------------- classes
class MLEDimension(_NeighbourLikelihood):
    """Levina-Bickel maximum-likelihood intrinsic dimension of every cloud.

    Local estimates ``m_k(x)`` from each point's ``k`` nearest neighbours,
    combined by MacKay & Ghahramani's average of inverses; their distribution
    over the cloud is reported as quantiles.

    Parameters
    ----------
    n_neighbors : int, default=20
        ``k``, the neighbours of each point (at least 2; 3 with ``unbiased``).
        Clouds with fewer than ``k + 1`` points use all their other points.
    unbiased : bool, default=False
        Use ``k - 2`` instead of ``k - 1`` in the local estimate (MacKay &
        Ghahramani's unbiased form). False matches Levina & Bickel and
        scikit-dimension's ``MLE``.
    quantiles : tuple of float in (0, 1), default=(0.1, 0.5, 0.9)
        Quantiles of the local estimates, one column each
        (``mle_local_q10``, ...).
    data_fraction : float in (0, 1], default=1.0
        Decimation: below 1, the estimate is the mean over ``n_iter`` random
        subsets of ``round(data_fraction * n_points)`` points (neighbours
        found within each subset) and ``mle_std`` its standard error, as
        dadapy's ``compute_id_2NN(data_fraction=...)``. 1 uses the whole
        cloud once (``mle_std`` is NaN).
    n_iter : int or None, default=None
        Subsets drawn with ``data_fraction < 1``; None: ``round(1 / data_fraction)``.
    metric : str or callable, default="euclidean"
        Any metric of :func:`sklearn.metrics.pairwise_distances`, or
        ``"precomputed"`` when the cells are square distance matrices.
    max_points : int or None, default=None
        Clouds with more points are subsampled (at random, without
        replacement) to this many first. None uses every point.
    random_state : int, RandomState instance or None, default=None
        Seeds ``max_points`` and the decimation subsets. Each cloud's stream
        comes from ``random_state`` and the cloud's content
        (:mod:`sktopo._seeding`): the same cloud gives the same numbers in any
        row, order or subset and on any ``n_jobs``.
    n_jobs : int or None, default=None
        Clouds (or batches of small clouds) processed in parallel through joblib.
    verbose : int, default=0
        Show a progress bar when positive.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns of the input (1 for a list, 3-D array or Series).
    feature_names_in_ : ndarray of str
        Column names of a DataFrame input whose columns are all strings.

    See Also
    --------
    TwoNNLikelihood : the two-neighbour maximum-likelihood estimate.
    TwoNN : Facco et al.'s least-squares fit.
    local_dimension : the local estimates of one cloud.

    Notes
    -----
    Output columns, per cloud (prefixed ``"{column}__"`` for DataFrame inputs):

    - ``mle``: ``1 / mean(1 / m_k(x))`` over the points (the mean over
      decimated subsets with ``data_fraction < 1``);
    - ``mle_std``: the decimation standard error (NaN with ``data_fraction=1``);
    - ``mle_local_mean``: Levina & Bickel's plain mean of ``m_k(x)`` (biased
      upwards for small ``k``);
    - ``mle_local_q{100 q}``: quantiles of the local estimates;
    - ``mle_k``: the number of neighbours used.

    Duplicated points (distance 0) have no finite ratio: each is kept once,
    with a warning. Like every neighbour-based estimator, the result
    underestimates high dimensions on small clouds; ``k`` sets the scale.

    References
    ----------
    E. Levina and P. Bickel, "Maximum likelihood estimation of intrinsic dimension",
    NIPS 2004. D. MacKay and Z. Ghahramani, "Comments on 'Maximum likelihood
    estimation of intrinsic dimension' by E. Levina and P. Bickel", 2005.

    Examples
    --------
    >>> from sktopo import MLEDimension
    >>> from sktopo.datasets import make_sphere
    >>> table = MLEDimension().fit_transform([make_sphere(2000, 3, ambient_dim=10, random_state=0)])
    >>> bool(abs(table[0, 0] - 3) < 0.3)
    True
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(Integral, 2, None, closed="left")],
        "unbiased": ["boolean"],
        "quantiles": ["array-like"],
        **_COMMON_CONSTRAINTS,
    }
    _prefix = "mle"
    _one_cloud = "sktopo.mle_dimension(X)"

    def __init__(self, n_neighbors=20, *, unbiased=False, quantiles=(0.1, 0.5, 0.9),
                 data_fraction=1.0, n_iter=None, metric="euclidean", max_points=None,
                 random_state=None, n_jobs=None, verbose=0):
        self.n_neighbors = n_neighbors
        self.unbiased = unbiased
        self.quantiles = quantiles
        self.data_fraction = data_fraction
        self.n_iter = n_iter
        self.metric = metric
        self.max_points = max_points
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _check_settings(self):
        if self.unbiased and self.n_neighbors < 3:
            raise ValueError(
                f"MLEDimension: unbiased=True uses k - 2 in the local estimate and needs "
                f"n_neighbors >= 3; got n_neighbors={self.n_neighbors}."
            )
        quantiles = np.asarray(self.quantiles, dtype=float)
        if quantiles.ndim != 1 or not ((quantiles > 0) & (quantiles < 1)).all():
            raise ValueError(
                f"MLEDimension: quantiles must be a tuple of numbers in (0, 1); got "
                f"{self.quantiles!r}."
            )
        names = [_quantile_name(q) for q in quantiles]
        if len(set(names)) != len(names):
            raise ValueError(f"MLEDimension: quantiles {self.quantiles!r} repeat a value.")

    @property
    def _min_points(self):
        return 4 if self.unbiased else 3

    @property
    def _features(self):
        return self._keys()

    def _keys(self):
        # keys of one cloud's values; named "mle", "mle_std", "mle_local_mean", ...
        return ("mle", "std", "local_mean",
                *(_quantile_name(q) for q in self.quantiles), "k")

    def _n_neighbors(self, n_points):
        return min(int(self.n_neighbors), n_points - 1)

    def _global(self, r):
        return mackay_ghahramani(local_mle(r, unbiased=self.unbiased))

    def _extra(self, r):
        local = local_mle(r, unbiased=self.unbiased)
        values = {"local_mean": float(np.mean(local)), "k": float(r.shape[-1])}
        for q in self.quantiles:
            values[_quantile_name(q)] = float(np.quantile(local, q))
        return values

    def _values_keys(self, values):
        values["mle"] = values.pop("estimate")
        return values


def _quantile_name(q):
    return f"local_q{100 * float(q):g}"


class TwoNNLikelihood(_NeighbourLikelihood):
    """TwoNN's maximum-likelihood intrinsic dimension, with decimation error bars.

    From each point's first and second neighbour distances, ``mu = T_2 / T_1``
    is Pareto distributed with exponent ``d``; the estimate is the unbiased
    maximum-likelihood ``(N - 1) / sum log(mu)`` (dadapy's
    ``compute_id_2NN(algorithm="ml")``). Unlike :class:`TwoNN`, nothing is
    discarded and nothing is fitted.

    Parameters
    ----------
    data_fraction : float in (0, 1], default=1.0
        Decimation, as dadapy's ``data_fraction``: below 1, the estimate is
        the mean over ``n_iter`` random subsets of ``round(data_fraction *
        n_points)`` points (neighbours found within each subset, which probes
        larger scales) and ``twonn_ml_std`` its standard error
        ``std / sqrt(n_iter)``. 1 uses the whole cloud once (the error is NaN).
    n_iter : int or None, default=None
        Subsets drawn with ``data_fraction < 1``; None: ``round(1 / data_fraction)``.
    metric : str or callable, default="euclidean"
        Any metric of :func:`sklearn.metrics.pairwise_distances`, or
        ``"precomputed"`` when the cells are square distance matrices.
    max_points : int or None, default=None
        Clouds with more points are subsampled to this many first.
    random_state : int, RandomState instance or None, default=None
        Seeds ``max_points`` and the decimation subsets, per cloud by content
        (:mod:`sktopo._seeding`).
    n_jobs : int or None, default=None
        Clouds (or batches of small clouds) processed in parallel through joblib.
    verbose : int, default=0
        Show a progress bar when positive.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns of the input (1 for a list, 3-D array or Series).
    feature_names_in_ : ndarray of str
        Column names of a DataFrame input whose columns are all strings.

    See Also
    --------
    TwoNN : the least-squares fit of Facco et al.
    MLEDimension : the k-neighbour (Levina-Bickel) estimate.

    Notes
    -----
    Output columns, per cloud: ``twonn_ml`` (the estimate), ``twonn_ml_std``
    (the decimation standard error), ``twonn_ml_n_subset`` and
    ``twonn_ml_n_iter`` (the points per subset and the number of subsets).
    Duplicated points (distance 0) are kept once, with a warning.

    References
    ----------
    E. Facco, M. d'Errico, A. Rodriguez and A. Laio, "Estimating the intrinsic
    dimension of datasets by a minimal neighborhood information", Scientific
    Reports 7, 2017. A. Glielmo et al., "DADApy: Distance-based analysis of
    data-manifolds in Python", Patterns 3, 2022.

    Examples
    --------
    >>> from sktopo import TwoNNLikelihood
    >>> from sktopo.datasets import make_torus
    >>> table = TwoNNLikelihood(data_fraction=0.25, random_state=0).fit_transform(
    ...     [make_torus(2000, random_state=0)])
    >>> bool(abs(table[0, 0] - 2) < 0.2), bool(table[0, 1] > 0)
    (True, True)
    """

    _parameter_constraints: dict = dict(_COMMON_CONSTRAINTS)
    _prefix = "twonn_ml"
    _one_cloud = "sktopo.twonn_likelihood(X)"
    _features = ("twonn_ml", "std", "n_subset", "n_iter")

    def __init__(self, data_fraction=1.0, *, n_iter=None, metric="euclidean", max_points=None,
                 random_state=None, n_jobs=None, verbose=0):
        self.data_fraction = data_fraction
        self.n_iter = n_iter
        self.metric = metric
        self.max_points = max_points
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _keys(self):
        return self._features

    def _n_neighbors(self, n_points):
        return 2

    def _global(self, r):
        return twonn_ml(r)

    def _values_keys(self, values):
        values["twonn_ml"] = values.pop("estimate")
        return values


def _values_from(estimator, r_full, r_subsets, n_subset, iterations):
    """The row of one cloud from its neighbour distances: the whole cloud's ``(n, k)``, and
    the decimated subsets' ``(n_iter, n_subset, k)`` (a list when their sizes differ) or None."""
    values = estimator._extra(r_full)
    if r_subsets is None:
        estimate, std = float(estimator._global(r_full[None])[0]), np.nan
    else:
        if isinstance(r_subsets, list):
            estimates = np.array([estimator._global(r[None])[0] for r in r_subsets])
        else:
            estimates = estimator._global(r_subsets)
        estimate = float(np.mean(estimates))
        std = float(np.std(estimates) / np.sqrt(len(estimates)))  # as dadapy: ddof=0
    values.update({"estimate": estimate, "std": std, "n_subset": float(n_subset),
                   "n_iter": float(iterations)})
    values = estimator._values_keys(values)
    return {name: values[name] for name in estimator._keys()}


# ------------------------------------------------------------------- one-cloud functions
def mle_dimension(X, **params) -> pd.Series:
    """Levina-Bickel / MacKay-Ghahramani intrinsic dimension of one cloud.

    Parameters
    ----------
    X : array-like of shape (n_points, n_features)
        One point cloud (a square distance matrix with ``metric="precomputed"``).
    **params
        Any parameter of :class:`MLEDimension`.

    Returns
    -------
    result : pandas.Series
        Indexed by ``mle``, ``mle_std``, ``mle_local_mean``, the quantile columns and
        ``mle_k``; ``result["mle"]`` is the estimate.

    Examples
    --------
    >>> import sktopo
    >>> from sktopo.datasets import make_torus
    >>> bool(abs(sktopo.mle_dimension(make_torus(2000, random_state=0))["mle"] - 2) < 0.2)
    True
    """
    return one_cloud(MLEDimension(**params), X, "mle_dimension")


def twonn_likelihood(X, **params) -> pd.Series:
    """TwoNN's maximum-likelihood intrinsic dimension of one cloud.

    Parameters
    ----------
    X : array-like of shape (n_points, n_features)
        One point cloud (a square distance matrix with ``metric="precomputed"``).
    **params
        Any parameter of :class:`TwoNNLikelihood`.

    Returns
    -------
    result : pandas.Series
        Indexed by ``twonn_ml``, ``twonn_ml_std``, ``twonn_ml_n_subset``,
        ``twonn_ml_n_iter``.

    Examples
    --------
    >>> import sktopo
    >>> from sktopo.datasets import make_sphere
    >>> result = sktopo.twonn_likelihood(make_sphere(2000, 2, random_state=0))
    >>> bool(abs(result["twonn_ml"] - 2) < 0.2)
    True
    """
    return one_cloud(TwoNNLikelihood(**params), X, "twonn_likelihood")


def local_dimension(X, n_neighbors=20, *, unbiased=False, metric="euclidean") -> np.ndarray:
    """Levina-Bickel local intrinsic dimension of every point of one cloud.

    Parameters
    ----------
    X : array-like of shape (n_points, n_features)
        One point cloud (a square distance matrix with ``metric="precomputed"``),
        without duplicated points.
    n_neighbors : int, default=20
        ``k``, the neighbours of each point (capped at ``n_points - 1``, with a
        warning).
    unbiased : bool, default=False
        ``k - 2`` instead of ``k - 1`` in the numerator.
    metric : str or callable, default="euclidean"
        As in :class:`MLEDimension`.

    Returns
    -------
    m : ndarray of shape (n_points,)
        ``m_k(x) = (k - 1) / sum_{j<k} log(T_k / T_j)`` for every point, in input order.

    Examples
    --------
    >>> import numpy as np, sktopo
    >>> from sktopo.datasets import make_sphere
    >>> m = sktopo.local_dimension(make_sphere(1000, 2, random_state=0))
    >>> m.shape, bool(abs(np.median(m) - 2) < 0.3)
    ((1000,), True)
    """
    from sktopo._collections import check_cloud, check_distance_matrix

    MLEDimension(n_neighbors, unbiased=unbiased, metric=metric)._validate_params()
    if metric == "precomputed":
        X = check_distance_matrix(X, "the input", prefix="local_dimension: ")
    else:
        X = check_cloud(X, "the input", prefix="local_dimension: ")
    X = rescaled(X, metric)
    n_points = X.shape[0]
    needed = 4 if unbiased else 3
    if n_points < needed:
        raise ValueError(
            f"local_dimension: the cloud has {n_points} point(s); at least {needed} are needed."
        )
    if len(_distinct(X, metric)) < n_points:
        raise ValueError(
            "local_dimension: the cloud has duplicated points (distance 0: no neighbour "
            "ratio). Remove them first, e.g. numpy.unique(X, axis=0)."
        )
    k = min(int(n_neighbors), n_points - 1)
    if k < n_neighbors:
        warnings.warn(
            f"local_dimension: n_neighbors={n_neighbors} but the cloud has {n_points} points: "
            f"each point used its {k} other points (k={k}). Pass n_neighbors={k} (or fewer) "
            f"to ask for that, or give more points.", UserWarning, stacklevel=2)
    r = _knn(X, k, metric)
    return local_mle(r, unbiased=unbiased)
