"""Summary features and Betti curves of persistence diagrams.

:class:`DiagramFeatures` gives a handful of interpretable numbers per homology
dimension (counts, total persistence, lifetimes, entropy, Betti numbers at
chosen scales); :class:`BettiCurve` samples the Betti number on a grid of
scales learned in ``fit``. Both follow the infinite-bar policy of
:mod:`sktopo.diagram`: counts use all bars, lifetime-based quantities use
:meth:`Diagram.finite`.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ..diagram import Diagram
from ._base import DiagramTransformer, scale_grids

__all__ = ["DiagramFeatures", "BettiCurve"]

# Every feature DiagramFeatures knows, in output order.
_ALL_FEATURES = (
    "n_bars",
    "n_infinite",
    "total_persistence",
    "max_lifetime",
    "mean_lifetime",
    "std_lifetime",
    "persistence_entropy",
    "betti",
)
_DEFAULT_FEATURES = (
    "n_bars",
    "n_infinite",
    "total_persistence",
    "max_lifetime",
    "mean_lifetime",
    "persistence_entropy",
)


def _format_number(value: float) -> str:
    """Short text for a number in a feature name: 0.5 -> '0.5', 2.0 -> '2'."""
    return f"{float(value):g}"


def total_persistence(lifetimes: np.ndarray, p: float) -> float:
    """``(sum_i l_i ** p) ** (1 / p)``, computed without overflow or underflow.

    The lifetimes are divided by the largest one first, ``L * (sum_i (l_i / L) ** p) ** (1 / p)``:
    every term is at most 1 and the largest is exactly 1, so a large ``p`` (200, 1000) neither
    underflows to 0 nor overflows to inf (it tends to the largest lifetime, as it should).
    No bars, or all of length zero, give 0.
    """
    lifetimes = np.asarray(lifetimes, dtype=float)
    largest = lifetimes.max() if len(lifetimes) else 0.0
    if not largest > 0:
        return 0.0
    return float(largest * np.sum((lifetimes / largest) ** p) ** (1.0 / p))


def persistence_entropy(lifetimes: np.ndarray, normalize: bool = False) -> float:
    """Shannon entropy (in nats) of the lifetimes seen as a probability vector.

    ``E = -sum_i p_i log p_i`` with ``p_i = l_i / sum_j l_j``; bars of zero
    length contribute nothing. ``normalize=True`` divides by ``log(n)`` (``n``
    bars), giving a number in [0, 1] (persim's ``normalize=True``). No bars,
    or all of length zero, give 0.
    """
    lifetimes = np.asarray(lifetimes, dtype=float)
    total = lifetimes.sum()
    if len(lifetimes) == 0 or total <= 0:
        return 0.0
    p = lifetimes[lifetimes > 0] / total
    entropy = float(-(p * np.log(p)).sum())
    if normalize:
        n = len(lifetimes)
        return entropy / np.log(n) if n > 1 else 0.0
    return entropy


class DiagramFeatures(DiagramTransformer):
    """Interpretable summary numbers of persistence diagrams, per homology dimension.

    Takes a collection of :class:`~sktopo.Diagram` (a list, Series or
    DataFrame of diagrams, e.g. the output of
    :class:`~sktopo.PersistenceDiagram`) and returns one row per input row.
    For each homology dimension ``q`` the features are named
    ``"H{q}__{feature}"``; for DataFrame inputs each column's features are
    concatenated and named ``"{column}__H{q}__{feature}"``.

    Infinite bars follow the policy of :mod:`sktopo.diagram`: ``n_bars`` and
    the Betti numbers count every bar, infinite ones included; everything
    computed from lifetimes uses the bars of :meth:`Diagram.finite` (infinite
    deaths replaced by the filtration threshold when it is finite, left out
    otherwise). A dimension without bars gives zeros, never NaN.

    Parameters
    ----------
    homology_dimensions : int, sequence of int or None, default=None
        Dimensions to describe. ``None`` means every dimension present in the
        diagrams seen in ``fit`` (stored in ``homology_dimensions_``).
    features : "default" or list of str, default="default"
        Which features to compute, from

        - ``"n_bars"``: number of bars (all bars);
        - ``"n_infinite"``: number of bars that never die;
        - ``"total_persistence"``: ``(sum_i l_i^p)^(1/p)`` over the lifetimes
          ``l_i = death - birth`` of the finite bars, one feature
          ``total_persistence_p{p}`` per entry of ``p``. With ``p=1`` this is
          the plain sum of lifetimes (H0 of a Rips filtration run to
          completion: the sum of the minimum spanning tree's edge lengths).
          Study A's "lifespans sum" is another quantity: half of it, per
          class, averaged over the classes (``sktopo.mean_over_labels``);
        - ``"max_lifetime"``, ``"mean_lifetime"``, ``"std_lifetime"``: of the
          finite bars' lifetimes (the mean divides by the number of finite
          bars, not ``n_bars``);
        - ``"persistence_entropy"``: ``-sum_i p_i log p_i`` with
          ``p_i = l_i / sum_j l_j`` (natural logarithm) over the finite bars;
          divided by ``log(n)`` when ``normalize_entropy=True``;
        - ``"betti"``: Betti number (bars with ``birth <= t < death``, infinite
          ones included) at each scale ``t`` of ``betti_scales``, named
          ``betti_at_{t}``.

        ``"default"`` is every feature above except ``std_lifetime``, with
        ``betti`` only when ``betti_scales`` is given.
    p : float or sequence of float, default=(1, 2)
        Exponents of the total persistence; each must be >= 1. The same
        exponent as the Wasserstein ``order`` of :class:`~sktopo.DiagramDistance`
        (``total_persistence_p{p}`` is ``sqrt(2)`` times the order-``p``
        distance to the empty diagram) and as :class:`~sktopo.PHDimension`'s
        ``alpha`` (its ``E_alpha`` is the H0 total persistence to the power
        ``alpha``). Computed stably for any ``p`` (lifetimes scaled by the
        largest one).
    betti_scales : sequence of float or None, default=None
        Scales at which to report Betti numbers.
    normalize_entropy : bool, default=False
        Divide the persistence entropy by ``log(n_finite_bars)`` so that it
        lies in [0, 1] (0 with fewer than two bars).

    Attributes
    ----------
    homology_dimensions_ : tuple of int
        Dimensions described, in output order.
    features_ : tuple of str
        Features computed per dimension (``"default"`` resolved).
    n_features_in_ : int
        Number of columns of the input (1 for a list or Series).
    feature_names_in_ : ndarray of str
        Column names of a DataFrame input whose columns are all strings.

    See Also
    --------
    BettiCurve : Betti numbers on a whole grid of scales.
    PersistenceImage, PersistenceLandscape : vectorisations for learning.

    Examples
    --------
    >>> import numpy as np
    >>> from sktopo import Diagram, DiagramFeatures
    >>> d = Diagram({0: [[0, 1], [0, 3], [0, np.inf]], 1: [[1, 2]]})
    >>> est = DiagramFeatures(features=["n_bars", "total_persistence"], p=1)
    >>> est.fit_transform([d])
    array([[3., 4., 1., 1.]])
    >>> list(est.get_feature_names_out())
    ['H0__n_bars', 'H0__total_persistence_p1', 'H1__n_bars', 'H1__total_persistence_p1']
    """

    _parameter_constraints = {
        **DiagramTransformer._parameter_constraints,
        "features": [StrOptions({"default"}), list, tuple],
        "p": [Interval(Real, 1, None, closed="left"), "array-like"],
        "betti_scales": [None, "array-like"],
        "normalize_entropy": ["boolean"],
    }

    def __init__(
        self,
        homology_dimensions=None,
        *,
        features="default",
        p=(1, 2),
        betti_scales=None,
        normalize_entropy=False,
    ):
        self.homology_dimensions = homology_dimensions
        self.features = features
        self.p = p
        self.betti_scales = betti_scales
        self.normalize_entropy = normalize_entropy

    def _fit_dims(self, collection) -> None:
        name = type(self).__name__
        if isinstance(self.features, str):
            features = list(_DEFAULT_FEATURES)
            if self.betti_scales is not None:
                features.append("betti")
        else:
            features = list(self.features)
            unknown = [f for f in features if f not in _ALL_FEATURES]
            if unknown:
                raise ValueError(
                    f"{name}: unknown feature(s) {unknown}; choose from {list(_ALL_FEATURES)} "
                    f"or features='default'."
                )
            if not features:
                raise ValueError(f"{name}: features is empty; give at least one or 'default'.")
            if len(set(features)) != len(features):
                raise ValueError(f"{name}: features has repeated entries: {features}.")
            if "betti" in features and self.betti_scales is None:
                raise ValueError(
                    f"{name}: feature 'betti' needs betti_scales, the scales at which to count "
                    f"bars, e.g. betti_scales=[0.5, 1.0]."
                )
        self.features_ = tuple(features)
        p = np.atleast_1d(np.asarray(self.p, dtype=float))
        if p.ndim != 1 or len(p) == 0 or not np.all(p >= 1) or not np.all(np.isfinite(p)):
            raise ValueError(f"{name}: p must be finite numbers >= 1, e.g. (1, 2); got {self.p!r}.")
        self._p = tuple(float(v) for v in p)
        if self.betti_scales is not None:
            scales = np.atleast_1d(np.asarray(self.betti_scales, dtype=float))
            if scales.ndim != 1 or len(scales) == 0 or np.isnan(scales).any():
                raise ValueError(
                    f"{name}: betti_scales must be a non-empty list of numbers; got {self.betti_scales!r}."
                )
            self._betti_scales = scales
        else:
            self._betti_scales = np.empty(0)

    def _names_one_dim(self):
        names = []
        for feature in self.features_:
            if feature == "total_persistence":
                names += [f"total_persistence_p{_format_number(p)}" for p in self._p]
            elif feature == "betti":
                names += [f"betti_at_{_format_number(t)}" for t in self._betti_scales]
            else:
                names.append(feature)
        return names

    def _cell_names(self):
        per_dim = self._names_one_dim()
        return [f"H{q}__{name}" for q in self.homology_dimensions_ for name in per_dim]

    def _cell_features(self, diagram: Diagram) -> np.ndarray:
        values = []
        for q in self.homology_dimensions_:
            bars = diagram[q]
            finite = diagram.finite(q)
            lifetimes = finite[:, 1] - finite[:, 0]
            for feature in self.features_:
                if feature == "n_bars":
                    values.append(len(bars))
                elif feature == "n_infinite":
                    values.append(diagram.n_infinite(q))
                elif feature == "total_persistence":
                    values += [total_persistence(lifetimes, p) for p in self._p]
                elif feature == "max_lifetime":
                    values.append(lifetimes.max() if len(lifetimes) else 0.0)
                elif feature == "mean_lifetime":
                    values.append(lifetimes.mean() if len(lifetimes) else 0.0)
                elif feature == "std_lifetime":
                    values.append(lifetimes.std() if len(lifetimes) else 0.0)
                elif feature == "persistence_entropy":
                    values.append(persistence_entropy(lifetimes, self.normalize_entropy))
                elif feature == "betti":
                    values += list(diagram.betti(q, self._betti_scales))
        return np.asarray(values, dtype=float)


class BettiCurve(DiagramTransformer):
    """Betti numbers of each diagram on a grid of scales learned in ``fit``.

    For each homology dimension ``q``, ``fit`` places ``n_bins`` evenly spaced
    scales from the smallest birth to the largest finite death (or birth) of
    the fitted diagrams' bars of that dimension (every row and every column
    of the fitted input together, so columns mean the same scales for every
    layer), unless ``scale_range`` fixes them. ``transform`` counts, at each scale ``t``, the bars with
    ``birth <= t < death``: the output width does not depend on the data
    transformed, so the transformer is safe in a grid search.

    Infinite bars follow the policy of :mod:`sktopo.diagram`: they are counted
    (an infinite bar is alive at every scale after its birth); the grid's end
    is set from :meth:`Diagram.finite`, so it stops at the filtration threshold
    when there is one.

    Parameters
    ----------
    homology_dimensions : int, sequence of int or None, default=None
        Dimensions to describe; ``None`` means every dimension present in the
        fitted diagrams.
    n_bins : int, default=100
        Number of scales per dimension.
    scale_range : (float, float) or None, default=None
        First and last scale, the same for every dimension. ``None`` learns
        them per dimension from the fitted diagrams.

    Attributes
    ----------
    homology_dimensions_ : tuple of int
        Dimensions described, in output order.
    grids_ : dict of int to ndarray of shape (n_bins,)
        The scales of each dimension; column ``H{q}__betti_{i}`` is the
        Betti number at ``grids_[q][i]``.
    n_features_in_ : int
        Number of columns of the input.

    Examples
    --------
    >>> from sktopo import BettiCurve, Diagram
    >>> d = Diagram({0: [[0, 1], [0, 2]]})
    >>> curve = BettiCurve(n_bins=3).fit([d])
    >>> curve.grids_[0]
    array([0., 1., 2.])
    >>> curve.transform([d])
    array([[2., 1., 0.]])
    """

    _parameter_constraints = {
        **DiagramTransformer._parameter_constraints,
        "n_bins": [Interval(Integral, 1, None, closed="left")],
        "scale_range": [None, tuple, list],
    }

    def __init__(self, homology_dimensions=None, *, n_bins=100, scale_range=None):
        self.homology_dimensions = homology_dimensions
        self.n_bins = n_bins
        self.scale_range = scale_range

    def _fit_dims(self, collection) -> None:
        self.grids_ = scale_grids(collection, self.homology_dimensions_, self.n_bins,
                                  self.scale_range, type(self).__name__)

    def _cell_names(self):
        return [f"H{q}__betti_{i}" for q in self.homology_dimensions_ for i in range(self.n_bins)]

    def _cell_features(self, diagram: Diagram) -> np.ndarray:
        return np.concatenate(
            [diagram.betti(q, self.grids_[q]) for q in self.homology_dimensions_]
        ).astype(float)

