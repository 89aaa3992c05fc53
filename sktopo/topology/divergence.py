"""Representation Topology Divergence (RTD): compare two representations of the same inputs.

Barannikov, Trofimov, Balabin & Burnaev, "Representation Topology Divergence: a
method for comparing neural network representations", ICML 2022.

Two representations ``P`` and ``Q`` of the same ``N`` inputs (two layers, two
models, two training stages: row ``i`` of both is input ``i``) give two
distance matrices ``w_P`` and ``w_Q`` on the same ``N`` points. Each is first
divided by its own 0.9 quantile (``normalize="quantile"``, the reference
code's default), so that a global change of scale is no difference.

The R-Cross-Barcode
-------------------
``R-Cross-Barcode(P, Q)`` is the Vietoris-Rips barcode of a graph on ``2N``
vertices, a copy ``A`` and a copy ``B`` of the inputs, with distances::

              A                 B
    A  [      0        ,    (w_P+)^T      ]
    B  [    w_P+       ,  min(w_P, w_Q)   ]

``w_P+`` is ``w_P`` with its entries below the diagonal set to ``+inf`` (the
paper's definition; the reference code's full-``w_P`` variant gives the same
barcode with more edges, which the tests check). ``A`` is one point from the
start, ``a_i`` and ``b_i`` coincide, and ``B`` carries the smaller of the two
distances. Its H1 bars record the cluster structure that ``Q`` has and ``P``
lacks: a bar is born at the scale where ``min(w_P, w_Q)`` already joins two
groups of inputs that ``w_P`` keeps apart, and dies where ``w_P`` joins them
too. H0 has a single (infinite) bar: every ``b_i`` is joined to ``a_i`` at 0.
Identical representations give no H1 bar at all.

RTD
---
``RTD_k(P, Q)`` is the sum of the lengths of the H_k bars of the R-Cross-Barcode
(``k = 1`` in the paper). The symmetric score (the default, as the paper and
its code report it) is ``(RTD(P, Q) + RTD(Q, P)) / 2``. As in the paper, the
score is averaged over ``n_trials`` random subsets of ``batch_size`` inputs
(the same inputs in ``P`` and ``Q``); ``rtd_std`` is the spread (standard
deviation, ``ddof=1``) over those subsets. Subsets come from
:func:`sktopo._seeding.cloud_seeds`: ``random_state`` plus the content of both
clouds, so a pair gets the same subsets, and the same score, in any row and
in either order.

Cost: the barcode is an H1 computation on ``2 * batch_size`` points, per
direction and per subset; it depends on the data as much as on the size
(``benchmarks/rtd.py``: 0.4-1.9 CPU seconds for 200 inputs, 3-8 s for 400).

Entries of the ``2N x 2N`` matrix below ``1e-6`` times the mean normalised
``P``-distance are set to 0, as the reference code does, so that rounding
does not create bars of length ~1e-9.

Memory: a subset of ``m`` inputs holds its two ``m x m`` distance matrices and
the ``2m x 2m`` cross matrix (48 bytes per ``m^2``) while the engine runs on
the cross matrix (redzed-tda first copies it with its infinite entries
replaced; ripser.py and giotto-ph get a sparse edge list of its finite
entries). The whole is estimated from ``m`` and the clouds' widths alone,
about ``130 m^2`` bytes with redzed-tda (about ``1100 m^2`` with ripser.py),
and ``transform`` refuses a pair whose estimate exceeds ``memory_limit``
before any distance is computed.
"""

from __future__ import annotations

from functools import partial
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._base import CollectionMapper, FixedOutput, PairTableTransformer, remember_input
from .._collections import Collection, check_cloud, check_distance_matrix, label_text
from .._distance import check_memory, pairwise_distances
from .._parallel import N_JOBS, run_parallel
from .._seeding import cloud_seeds
from ..diagram import Diagram
from ._base import check_homology_dimensions
from .engines import compute_bars, get_engine, resolve_engine
from .persistence import _check_metric_name, parse_memory

__all__ = ["CrossBarcode", "RTD", "cross_barcode", "rtd", "rtd_table"]

NORMALIZATIONS = ("quantile", "median", "mean")
# entries of the cross matrix below this fraction of the mean P-distance become 0 (as the
# reference code): rounding must not turn a zero into a tiny bar
_ZERO_FRACTION = 1e-6
# bytes per finite edge of the cross matrix when an engine without missing edges (ripser.py,
# giotto-ph) takes it as a sparse edge list: our (row, col, value) chunks and their
# concatenation, the COO matrix and the engine's H1 reduction on it (resident memory measured
# with ripser.py: 460 to 620 bytes per edge for 400 to 1000 inputs, growing slowly with size)
_SPARSE_CROSS_BYTES_PER_EDGE = 700


# ----------------------------------------------------------------- the kernel
def _distances(points, metric, metric_params):
    """Distance matrix of a subset: points, or a sub-matrix already (precomputed)."""
    if metric == "precomputed":
        return np.asarray(points, dtype=np.float64)
    return pairwise_distances(points, metric, **(metric_params or {}))


def _normalized(D, normalize, where):
    """``D`` divided by its 0.9 quantile, median or mean over all ``n^2`` entries."""
    if normalize is None:
        return D
    if normalize == "quantile":
        scale = float(np.quantile(D, 0.9))
    elif normalize == "median":
        scale = float(np.median(D))
    else:
        scale = float(D.mean())
    if not scale > 0:
        raise ValueError(
            f"{where}: the {normalize} of the distances is 0 (most points coincide), so "
            f"normalize={normalize!r} cannot rescale it. Remove the duplicate points, or use "
            f"normalize='mean' or normalize=None."
        )
    return D / scale


def _cross_matrix(DP, DQ):
    """The ``2n x 2n`` matrix of the R-Cross-Barcode of (P, Q), both already normalised.

    Built in place: no ``n x n`` float64 temporary, only boolean masks (the
    memory model of :func:`_cross_barcode_bytes`).
    """
    n = DP.shape[0]
    M = np.zeros((2 * n, 2 * n))
    upper = M[n:, :n]
    upper[...] = DP
    upper[np.tri(n, k=-1, dtype=bool)] = np.inf  # w_P+: the paper's definition, half the edges
    M[:n, n:] = upper.T
    np.minimum(DP, DQ, out=M[n:, n:])
    M[M < _ZERO_FRACTION * DP.mean()] = 0.0
    return M


def _cross_barcode_bytes(n_inputs, widths=(1, 1), *, metric="euclidean", metric_params=None,
                        normalize="quantile", engine="redzed", homology_dimensions=(1,)) -> int:
    """Peak bytes of the R-Cross-Barcode of one subset of ``n_inputs`` inputs, from shapes alone.

    The largest of three stages (``m = n_inputs``):

    - the distances: one normalised ``m x m`` float64 matrix held while the
      other is computed (the subset's copy or the metric's result, a second
      ``n x n`` temporary for metrics other than Euclidean, and the
      normalisation's copy);
    - the cross matrix: both matrices, the ``2m x 2m`` float64 matrix and a
      boolean mask (52 bytes per ``m^2``);
    - the engine: those three held (48 bytes per ``m^2``) plus what the engine
      takes on the ``2m``-vertex matrix: redzed-tda's finite copy of it (with
      its mask) and its own peak (:meth:`Engine.peak_bytes`); for engines that
      take no infinite entries (ripser.py, giotto-ph) the sparse edge list of
      its ``1.5 m^2`` finite entries and the engine's work on it (measured,
      ``_SPARSE_CROSS_BYTES_PER_EDGE``), about ``1100 m^2`` in all.

    Parameters
    ----------
    n_inputs : int
        Inputs in the subset (``min(batch_size, n)``).
    widths : tuple of int, default=(1, 1)
        Features of the two clouds (ignored with ``metric="precomputed"``).
    metric, metric_params, normalize
        As in :class:`CrossBarcode`.
    engine : str, default="redzed"
        The resolved engine (``estimator.engine_``).
    homology_dimensions : sequence of int, default=(1,)
        The dimensions computed.

    Returns
    -------
    bytes : int
    """
    m = int(n_inputs)
    square = m * m
    if metric == "precomputed":
        build = 8 * square  # the subset's copy of the matrix
    else:
        # the result, the cloud's copy and the product's two operands
        build = 8 * square + 8 * m * (max(widths) + 2) * 3
        if metric != "euclidean" or metric_params:
            build += 16 * square  # sklearn's metrics: a second n x n temporary
    if normalize is not None:
        build += 8 * square  # the quantile's (median's) partitioned copy, or the division's result
    distances = 8 * square + build
    cross = 52 * square
    held = 48 * square
    engine_ = get_engine(engine)
    maxdim = max(max(homology_dimensions), 1)
    if engine_.capabilities.missing_edges:
        # redzed-tda replaces the infinite entries: a float64 copy of the 2m x 2m matrix, a mask
        on_matrix = 36 * square + engine_.peak_bytes(2 * m, maxdim)
    else:
        on_matrix = _SPARSE_CROSS_BYTES_PER_EDGE * (3 * square // 2)
    return int(max(distances, cross, held + on_matrix))


def _cross_bars(DP, DQ, *, dims, engine, memory_limit, n_threads, where):
    """Bars ``{q: (k, 2)}`` of the R-Cross-Barcode of two normalised distance matrices."""
    try:
        return compute_bars(
            _cross_matrix(DP, DQ), engine=engine, homology_dimensions=dims, metric="precomputed",
            n_threads=n_threads, memory_limit=memory_limit, where=where,
        )
    except MemoryError as error:
        # the engines' advice (landmarks, thresholds) does not apply to the cross matrix
        raise MemoryError(
            f"{error} For RTD and CrossBarcode: lower batch_size (the cross matrix has "
            f"2 * {DP.shape[0]} vertices) or raise memory_limit."
        ) from None


def _total_length(bars):
    """Sum of the finite bar lengths (an H0 cross-barcode has one infinite bar: left out)."""
    finite = bars[np.isfinite(bars[:, 1])]
    return float(np.sum(finite[:, 1] - finite[:, 0]))


def _subset_scores(P, Q, idx, label, *, dims, symmetric, normalize, metric, metric_params,
                   engine, memory_limit, n_threads, estimator):
    """RTD of every dimension in ``dims`` on one subset ``idx`` of the inputs of a pair."""
    where = f"{estimator}: the pair at {label}"
    if metric == "precomputed":
        P, Q = P[np.ix_(idx, idx)], Q[np.ix_(idx, idx)]
    else:
        P, Q = P[idx], Q[idx]
    DP = _normalized(_distances(P, metric, metric_params), normalize, f"{where} (first cloud)")
    DQ = _normalized(_distances(Q, metric, metric_params), normalize, f"{where} (second cloud)")
    settings = dict(dims=dims, engine=engine, memory_limit=memory_limit, n_threads=n_threads,
                    where=where)
    forward = _cross_bars(DP, DQ, **settings)
    scores = np.array([_total_length(forward[q]) for q in dims])
    if symmetric:
        backward = _cross_bars(DQ, DP, **settings)
        scores = (scores + np.array([_total_length(backward[q]) for q in dims])) / 2
    return scores


def _pair_subsets(n_points, n_trials, batch_size, seed):
    """Index arrays of the subsets of one pair (all inputs once when they fit in a batch)."""
    if batch_size is None or batch_size >= n_points:
        return [np.arange(n_points)]
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n_points, batch_size, replace=False)) for _ in range(n_trials)]


def _pair_seeds(random_state, pairs, metric):
    """One seed per pair from ``random_state`` and both clouds' content, order-free."""
    flat = [cloud for pair in pairs for cloud in pair]
    seeds = cloud_seeds(random_state, flat, metric=metric)
    # sorted: (P, Q) and (Q, P) draw the same subsets of inputs
    return [sorted(seeds[2 * k:2 * k + 2]) for k in range(len(pairs))]


# -------------------------------------------------------------- validation
def _check_pair(P, Q, label, *, metric, prefix, min_points=3):
    if metric == "precomputed":
        P = check_distance_matrix(P, f"{label} (first)", prefix=prefix, min_points=min_points)
        Q = check_distance_matrix(Q, f"{label} (second)", prefix=prefix, min_points=min_points)
    else:
        P = check_cloud(P, f"{label} (first)", prefix=prefix, min_points=min_points)
        Q = check_cloud(Q, f"{label} (second)", prefix=prefix, min_points=min_points)
    if P.shape[0] != Q.shape[0]:
        raise ValueError(
            f"{prefix}the pair at {label} has {P.shape[0]} points in its first cloud and "
            f"{Q.shape[0]} in its second. RTD compares two representations of the SAME inputs: "
            f"row i of both clouds must be input i. Embed the same inputs in both."
        )
    return P, Q


def _check_pairs(X, *, estimator, metric) -> Collection:
    """A DataFrame with two columns of clouds, or a sequence of (P, Q) pairs."""
    prefix = f"{estimator}: "
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 2:
            raise ValueError(
                f"{prefix}a DataFrame of pairs must have exactly 2 columns (the two "
                f"representations, e.g. 'before' and 'after'); got {X.shape[1]}: "
                f"{list(X.columns)}. To compare every layer with every other, use "
                f"sktopo.rtd_table."
            )
        rows = [list(row) for row in X.itertuples(index=False, name=None)]
        kind, index, columns = "frame", X.index, X.columns

        def label(i):
            return f"row {label_text(X.index[i])!r}"
    elif isinstance(X, (list, tuple)):
        rows = []
        for i, pair in enumerate(X):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(
                    f"{prefix}item {i} is not a pair: give a list of (P, Q) tuples of clouds of "
                    f"the same inputs, or a DataFrame with two columns of clouds."
                )
            rows.append(list(pair))
        kind, index, columns = "list", None, None

        def label(i):
            return f"row {i}"
    else:
        raise TypeError(
            f"{prefix}expected pairs of clouds: a DataFrame with two columns of clouds, or a "
            f"list of (P, Q) tuples; got {type(X).__name__}."
        )
    if not rows:
        raise ValueError(f"{prefix}there are no pairs: give at least one (P, Q) pair.")
    checked = [list(_check_pair(P, Q, label(i), metric=metric, prefix=prefix))
               for i, (P, Q) in enumerate(rows)]
    return Collection(cells=checked, kind=kind, index=index, columns=columns)


def _pair_labels(collection):
    if collection.kind == "frame":
        return [f"row {label_text(label)!r}" for label in collection.index]
    return [f"row {i}" for i in range(collection.n_rows)]


# ------------------------------------------------------------ the estimators
class _PairInput:
    """What CrossBarcode and RTD share: pairs of clouds in, one result per pair.

    A mixin, first among the bases: :class:`CrossBarcode` maps the pairs to diagrams
    (:class:`~sktopo._base.CollectionMapper`), :class:`RTD` to a table of scores
    (:class:`~sktopo._base.CollectionTransformer`).
    """

    _parameter_constraints: dict = {
        "homology_dimensions": [Interval(Integral, 0, None, closed="left"), "array-like"],
        "normalize": [StrOptions(set(NORMALIZATIONS)), None],
        "batch_size": [Interval(Integral, 3, None, closed="left"), None],
        "metric": [str, callable],
        "metric_params": [dict, None],
        "backend": [StrOptions({"auto", "redzed", "ripser", "giotto"})],
        "memory_limit": [Interval(Real, 0, None, closed="neither"), str, None],
        "random_state": ["random_state"],
        "n_jobs": N_JOBS,
        "verbose": ["verbose"],
    }

    def _check_cells(self, X) -> Collection:
        return _check_pairs(X, estimator=type(self).__name__, metric=self.metric)

    def _check_settings(self):
        name = type(self).__name__
        self.homology_dimensions_ = check_homology_dimensions(self.homology_dimensions, name)
        if isinstance(self.metric, str) and self.metric != "precomputed":
            _check_metric_name(self.metric, name)
        # the H0-only MST engine cannot serve: ask for H1 at least when resolving "auto"
        self.engine_ = resolve_engine(self.backend, (max(self.homology_dimensions_), 1), name)
        self.memory_limit_ = parse_memory(self.memory_limit)

    def _check_memory(self, collection):
        """MemoryError, naming the pair, before any distance of a pair that would not fit.

        Each subset is estimated from its number of inputs and the clouds'
        widths (:func:`_cross_barcode_bytes`); subsets running at once with
        ``n_jobs`` are each within the limit, as with PersistenceDiagram.
        """
        limit = self.memory_limit_
        if limit is None:
            return
        name = type(self).__name__
        settings = dict(metric=self.metric, metric_params=self.metric_params,
                        normalize=self.normalize, engine=self.engine_,
                        homology_dimensions=self.homology_dimensions_)
        for (P, Q), label in zip(collection.cells, _pair_labels(collection)):
            n = P.shape[0]
            m = n if self.batch_size is None or self.batch_size >= n else int(self.batch_size)
            widths = (1, 1) if self.metric == "precomputed" else (P.shape[1], Q.shape[1])
            needed = _cross_barcode_bytes(m, widths, **settings)
            if needed <= limit:
                continue
            per_square = needed / max(m * m, 1)
            fitting = int(np.sqrt(limit / per_square))
            subset = f"{m} of its {n} inputs per subset" if m < n else f"{n} inputs"
            check_memory(
                needed, limit,
                f"{name}: the pair at {label} ({subset}: two {m} x {m} distance matrices, the "
                f"{2 * m} x {2 * m} cross matrix and engine {self.engine_!r}'s "
                f"H{max(max(self.homology_dimensions_), 1)} computation on it)",
                f"To fit, lower batch_size (the cross matrix has 2 * {m} vertices; about "
                f"{fitting} inputs fit in the limit), or raise memory_limit (None disables "
                f"this check).",
            )

    def _tasks(self, collection):
        """``(P, Q, subset, label)`` per subset of every pair, and each pair's task count."""
        pairs = collection.cells
        seeds = _pair_seeds(self.random_state, pairs, self.metric)
        labels = _pair_labels(collection)
        tasks, counts = [], []
        for (P, Q), seed, label in zip(pairs, seeds, labels):
            subsets = _pair_subsets(P.shape[0], self._n_trials(), self.batch_size, seed)
            tasks.extend((P, Q, idx, label) for idx in subsets)
            counts.append(len(subsets))
        return tasks, counts

    def _n_trials(self):
        return 1

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = False  # pairs: a DataFrame of two columns or tuples
        tags.input_tags.pairwise = self.metric == "precomputed"
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags


class CrossBarcode(FixedOutput, _PairInput, CollectionMapper):
    """R-Cross-Barcode of every pair of representations of the same inputs.

    For a pair ``(P, Q)`` (row ``i`` of both is input ``i``), the barcode of
    the ``2N``-vertex Vietoris-Rips filtration of Barannikov et al. (ICML 2022),
    see :mod:`sktopo.topology.divergence`. Its H1 bars are the clusters that
    ``Q`` joins before ``P`` does; their total length is ``RTD(P, Q)``
    (one direction, one subset: :class:`RTD` averages over both).

    Parameters
    ----------
    homology_dimensions : int or sequence of int, default=(1,)
        Dimensions of the barcode to compute. H1 is the one RTD uses; H0 is
        always a single infinite bar.
    normalize : {"quantile", "median", "mean"} or None, default="quantile"
        Each cloud's distances are divided by their 0.9 quantile (median,
        mean) over all ``n^2`` entries before the matrix is built, as in the
        reference code; None keeps them as they are.
    batch_size : int or None, default=None
        Use a random subset of this many inputs (the same in ``P`` and ``Q``)
        when a pair has more; None uses every input. The cost grows as about
        ``(2 * batch_size) ** 2.5``.
    metric : str or callable, default="euclidean"
        Metric of :func:`sklearn.metrics.pairwise_distances`, or
        ``"precomputed"`` when the cells are square distance matrices.
    metric_params : dict, default=None
        Extra arguments of the metric.
    backend : {"auto", "redzed", "ripser", "giotto"}, default="auto"
        Engine (:mod:`sktopo.topology.engines`): ``"auto"`` is redzed-tda
        over Z/2 (ripser.py if it cannot be imported); ``"giotto"`` needs
        giotto-ph (AGPL-3.0).
    memory_limit : int, str or None, default="4GiB"
        Largest memory one barcode may take, in bytes or as a string such as
        ``"16GiB"``: the two clouds' distance matrices, the ``2N x 2N`` cross
        matrix and the engine's work on it, about ``130 * N ** 2`` bytes with
        redzed-tda for ``N`` inputs (or ``batch_size``). The estimate is made
        from the pairs' shapes before any distance is computed; above it a
        :class:`MemoryError` names the pair and suggests ``batch_size``.
        ``None`` disables the check. With ``n_jobs`` pairs run at once, each
        within this limit.
    random_state : int, RandomState instance or None, default=None
        Seeds the subset of inputs (only with ``batch_size``), together with
        the content of both clouds (:mod:`sktopo._seeding`).
    n_jobs : int or None, default=None
        Pairs processed in parallel (joblib).
    verbose : int, default=0
        Show a progress bar over pairs when positive.

    Attributes
    ----------
    homology_dimensions_ : tuple of int
        The dimensions computed.
    engine_ : str
        The engine ``backend`` resolved to.
    memory_limit_ : int or None
        ``memory_limit`` in bytes.
    n_features_in_ : int
        2 for a DataFrame of pairs, 1 for a list of pairs.

    See Also
    --------
    cross_barcode : the same for one pair.
    RTD : the divergence score, averaged over subsets and both directions.

    Examples
    --------
    >>> import numpy as np
    >>> from sktopo import CrossBarcode
    >>> rng = np.random.default_rng(0)
    >>> P = rng.normal(size=(60, 2))
    >>> Q = P.copy()
    >>> Q[:30] += 10  # Q splits the inputs into two clusters that P does not have
    >>> same, split = CrossBarcode().fit_transform([(P, P), (P, Q)])
    >>> len(same[1]), len(split[1]) > 0
    (0, True)
    """

    def __init__(self, homology_dimensions=(1,), *, normalize="quantile", batch_size=None,
                 metric="euclidean", metric_params=None, backend="auto", memory_limit="4GiB",
                 random_state=None, n_jobs=None, verbose=0):
        self.homology_dimensions = homology_dimensions
        self.normalize = normalize
        self.batch_size = batch_size
        self.metric = metric
        self.metric_params = metric_params
        self.backend = backend
        self.memory_limit = memory_limit
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters and the pairs; nothing is learnt.

        Parameters
        ----------
        X : DataFrame with two columns of clouds, or list of (P, Q) tuples
            Row ``i`` of ``P`` and of ``Q`` is input ``i`` (square distance
            matrices with ``metric="precomputed"``).
        y : None
            Ignored.

        Returns
        -------
        self : CrossBarcode
            The fitted transformer.
        """
        self._check_settings()
        remember_input(self, self._check_cells(X))
        return self

    def transform(self, X):
        """Compute the R-Cross-Barcode of every pair.

        Parameters
        ----------
        X : DataFrame with two columns of clouds, or list of (P, Q) tuples
            As in :meth:`fit`.

        Returns
        -------
        barcodes : list or Series of Diagram
            One :class:`~sktopo.Diagram` per pair; a Series indexed like a
            DataFrame input. ``n_points`` is the number of inputs,
            ``n_landmarks`` the number used (``2 * n_landmarks`` vertices).
        """
        check_is_fitted(self, "engine_")
        collection = self._check_cells(X)  # the output follows the input's container
        self._check_memory(collection)
        tasks, _ = self._tasks(collection)
        function = partial(
            _pair_barcode, dims=self.homology_dimensions_, normalize=self.normalize,
            metric=self.metric, metric_params=self.metric_params, engine=self.engine_,
            memory_limit=self.memory_limit_, estimator=type(self).__name__,
        )
        diagrams = run_parallel(function, tasks, n_jobs=self.n_jobs, verbose=self.verbose,
                                desc=type(self).__name__, unit="pair")
        if collection.kind == "frame":
            return pd.Series(diagrams, index=collection.index, dtype=object)
        return diagrams

    def fit_transform(self, X, y=None):
        """Fit and transform in one go.

        Parameters
        ----------
        X : DataFrame with two columns of clouds, or list of (P, Q) tuples
            As in :meth:`fit`.
        y : None
            Ignored.

        Returns
        -------
        barcodes : list or Series of Diagram
            As in :meth:`transform`.
        """
        return self.fit(X).transform(X)

    def get_feature_names_out(self, input_features=None):
        """Not available: the output is a collection of diagrams, not a table."""
        raise AttributeError(
            "CrossBarcode returns diagrams, not a feature table; follow it with "
            "sktopo.DiagramFeatures (homology_dimensions=(1,)) for features."
        )


def _pair_barcode(P, Q, idx, label, *, dims, normalize, metric, metric_params, engine,
                  memory_limit, estimator):
    where = f"{estimator}: the pair at {label}"
    if metric == "precomputed":
        Ps, Qs = P[np.ix_(idx, idx)], Q[np.ix_(idx, idx)]
    else:
        Ps, Qs = P[idx], Q[idx]
    DP = _normalized(_distances(Ps, metric, metric_params), normalize, f"{where} (first cloud)")
    DQ = _normalized(_distances(Qs, metric, metric_params), normalize, f"{where} (second cloud)")
    bars = _cross_bars(DP, DQ, dims=dims, engine=engine, memory_limit=memory_limit,
                       n_threads=1, where=where)
    return Diagram(bars, n_points=P.shape[0], n_landmarks=len(idx), metric="precomputed"
                   if metric == "precomputed" else (metric if isinstance(metric, str) else "callable"),
                   engine=engine)


class RTD(_PairInput, PairTableTransformer):
    """Representation Topology Divergence of every pair of representations of the same inputs.

    For a pair ``(P, Q)`` (row ``i`` of both is input ``i``): the total
    length of the H1 bars of the R-Cross-Barcode (:class:`CrossBarcode`),
    averaged over both directions and over ``n_trials`` random subsets of
    ``batch_size`` inputs, as in Barannikov et al. (ICML 2022). 0 for
    identical representations (and for any two that differ by an isometry
    and a global scale); larger when the cluster structure of the inputs
    differs between ``P`` and ``Q``.

    Parameters
    ----------
    homology_dimensions : int or sequence of int, default=(1,)
        Dimensions of the cross-barcode to score. H1 is the paper's RTD.
    n_trials : int, default=10
        Random subsets of inputs; the score is their mean.
    batch_size : int or None, default=500
        Inputs per subset (the paper's 500); pairs with at most this many
        inputs are used whole, once (and ``rtd_std`` is 0). None uses every
        input. The cost grows as about ``(2 * batch_size) ** 2.5``: 200 is about
        10x cheaper than 500. The score grows with it too (it sums bar lengths
        over ``batch_size`` inputs): compare RTD values only at equal
        ``batch_size`` (and ``normalize``, ``symmetric``, ``metric``).
    symmetric : bool, default=True
        Average ``RTD(P, Q)`` and ``RTD(Q, P)``, as the paper reports it;
        False gives ``RTD(P, Q)`` alone (the clusters of ``Q`` that ``P``
        lacks).
    normalize : {"quantile", "median", "mean"} or None, default="quantile"
        Each cloud's distances are divided by their 0.9 quantile (median,
        mean) over the subset, as in the reference code; None keeps the
        scale (then RTD is not scale-invariant).
    metric : str or callable, default="euclidean"
        Metric of :func:`sklearn.metrics.pairwise_distances`, or
        ``"precomputed"`` when the cells are square distance matrices.
    metric_params : dict, default=None
        Extra arguments of the metric.
    backend : {"auto", "redzed", "ripser", "giotto"}, default="auto"
        Engine (:mod:`sktopo.topology.engines`): ``"auto"`` is redzed-tda
        over Z/2 (ripser.py if it cannot be imported); ``"giotto"`` needs
        giotto-ph (AGPL-3.0).
    memory_limit : int, str or None, default="4GiB"
        Largest memory one subset's barcode may take, in bytes or as a string
        such as ``"16GiB"``: the two clouds' distance matrices, the
        ``2 * batch_size`` square cross matrix and the engine's work on it,
        about ``130 * batch_size ** 2`` bytes with redzed-tda. The estimate is
        made from the pairs' shapes before any distance is computed; above it
        a :class:`MemoryError` names the pair and suggests ``batch_size``.
        ``None`` disables the check. With ``n_jobs`` subsets run at once, each
        within this limit.
    random_state : int, RandomState instance or None, default=None
        Seeds the subsets, together with the content of both clouds
        (:mod:`sktopo._seeding`): a pair gets the same subsets, and the same
        score, in any row, any order of the two clouds, and on any ``n_jobs``.
    n_jobs : int or None, default=None
        Subsets processed in parallel (joblib), over all pairs.
    verbose : int, default=0
        Show a progress bar over subsets when positive.

    Attributes
    ----------
    homology_dimensions_ : tuple of int
        The dimensions scored.
    engine_ : str
        The engine ``backend`` resolved to.
    memory_limit_ : int or None
        ``memory_limit`` in bytes.
    n_features_in_ : int
        2 for a DataFrame of pairs, 1 for a list of pairs.

    See Also
    --------
    rtd : the score of one pair.
    rtd_table : RTD between the layers of one or two models, as a table.
    CrossBarcode : the barcodes themselves.

    Notes
    -----
    Output columns, per homology dimension ``q``: ``H{q}__rtd`` (the mean
    over subsets) and ``H{q}__rtd_std`` (their standard deviation, ``ddof=1``;
    0 when one subset covers every input; NaN with ``n_trials=1``).

    Examples
    --------
    >>> import numpy as np
    >>> from sktopo import RTD
    >>> rng = np.random.default_rng(0)
    >>> P = rng.normal(size=(60, 2))
    >>> Q = P.copy()
    >>> Q[:30] += 10  # the same inputs, split into two clusters
    >>> table = RTD(random_state=0).fit_transform([(P, P), (P, Q)])
    >>> float(table[0, 0]), bool(table[1, 0] > 1)
    (0.0, True)
    """

    _parameter_constraints: dict = {
        **_PairInput._parameter_constraints,
        "n_trials": [Interval(Integral, 1, None, closed="left")],
        "symmetric": ["boolean"],
    }

    def __init__(self, homology_dimensions=(1,), *, n_trials=10, batch_size=500, symmetric=True,
                 normalize="quantile", metric="euclidean", metric_params=None, backend="auto",
                 memory_limit="4GiB", random_state=None, n_jobs=None, verbose=0):
        self.homology_dimensions = homology_dimensions
        self.n_trials = n_trials
        self.batch_size = batch_size
        self.symmetric = symmetric
        self.normalize = normalize
        self.metric = metric
        self.metric_params = metric_params
        self.backend = backend
        self.memory_limit = memory_limit
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _n_trials(self):
        return int(self.n_trials)

    def _cell_names(self):
        return [name for q in self.homology_dimensions_ for name in (f"H{q}__rtd", f"H{q}__rtd_std")]

    def transform(self, X):
        """Compute the RTD of every pair.

        Parameters
        ----------
        X : DataFrame with two columns of clouds, or list of (P, Q) tuples
            As in :meth:`fit`.

        Returns
        -------
        table : ndarray of shape (n_pairs, 2 * n_dimensions)
            Per dimension, the mean RTD and its spread over subsets (see
            Notes). A DataFrame indexed like ``X`` with
            ``set_output(transform="pandas")``.
        """
        check_is_fitted(self, "engine_")
        collection = self._validate_collection(X, reset=False)
        self._check_memory(collection)
        scores = self._trial_scores(collection)
        return np.vstack([
            _summarise(s, exact=self.batch_size is None or self.batch_size >= P.shape[0])
            for s, (P, _) in zip(scores, collection.cells)
        ])

    def _trial_scores(self, collection):
        """Per pair, the ``(n_subsets, n_dims)`` array of subset scores."""
        tasks, counts = self._tasks(collection)
        function = partial(
            _subset_scores, dims=self.homology_dimensions_, symmetric=bool(self.symmetric),
            normalize=self.normalize, metric=self.metric, metric_params=self.metric_params,
            engine=self.engine_, memory_limit=self.memory_limit_, n_threads=1,
            estimator=type(self).__name__,
        )
        flat = run_parallel(function, tasks, n_jobs=self.n_jobs, verbose=self.verbose,
                            desc=type(self).__name__, unit="subset")
        out, start = [], 0
        for count in counts:
            out.append(np.vstack(flat[start:start + count]))
            start += count
        return out


def _summarise(scores, exact):
    """Interleaved (mean, std) per dimension of a ``(n_subsets, n_dims)`` array.

    ``exact``: the one subset covered every input, so there is no spread (0);
    a single random subset has an unknown spread (NaN).
    """
    mean = scores.mean(axis=0)
    if exact:
        std = np.zeros_like(mean)
    elif len(scores) == 1:
        std = np.full_like(mean, np.nan)
    else:
        std = scores.std(axis=0, ddof=1)
    return np.column_stack([mean, std]).ravel()


# -------------------------------------------------------------- functions
def cross_barcode(P, Q, homology_dimensions=(1,), **params) -> Diagram:
    """R-Cross-Barcode of one pair of representations of the same inputs.

    Parameters
    ----------
    P, Q : array-like of shape (n_inputs, n_features_P) and (n_inputs, n_features_Q)
        Two representations of the same inputs (row ``i`` is input ``i`` in
        both); square distance matrices with ``metric="precomputed"``.
    homology_dimensions : int or sequence of int, default=(1,)
        Dimensions to compute.
    **params
        Any other parameter of :class:`CrossBarcode`.

    Returns
    -------
    barcode : Diagram

    Examples
    --------
    >>> import numpy as np
    >>> import sktopo
    >>> P = np.random.default_rng(0).normal(size=(40, 3))
    >>> len(sktopo.cross_barcode(P, 2 * P)[1])  # a rescaled copy: no difference
    0
    """
    return CrossBarcode(homology_dimensions, **params).fit_transform([(P, Q)])[0]


def _single_dimension(params, function):
    dims = params.get("homology_dimensions", 1)
    dims = check_homology_dimensions(dims, function)
    if len(dims) != 1:
        raise ValueError(
            f"{function}: give one homology dimension (e.g. homology_dimensions=1); for several, "
            f"use sktopo.RTD, which returns one column per dimension."
        )
    params["homology_dimensions"] = dims
    return dims[0]


def rtd(P, Q, *, return_std=False, **params):
    """Representation Topology Divergence of one pair of representations of the same inputs.

    Parameters
    ----------
    P, Q : array-like of shape (n_inputs, n_features_P) and (n_inputs, n_features_Q)
        Two representations of the same inputs (row ``i`` is input ``i`` in
        both); square distance matrices with ``metric="precomputed"``.
    return_std : bool, default=False
        Also return the spread (standard deviation) over subsets.
    **params
        Any parameter of :class:`RTD` (``n_trials=10``, ``batch_size=500``,
        ``symmetric=True``, ``normalize="quantile"``, ``random_state``, ...);
        ``homology_dimensions`` must name one dimension (default 1).

    Returns
    -------
    score : float
        The mean RTD over subsets.
    std : float
        Its standard deviation over subsets, when ``return_std=True``.

    Examples
    --------
    >>> import numpy as np
    >>> import sktopo
    >>> P = np.random.default_rng(0).normal(size=(100, 5))
    >>> sktopo.rtd(P, P)
    0.0
    """
    params = dict(params)
    _single_dimension(params, "rtd")
    table = RTD(**params).set_output(transform="default").fit_transform([(P, Q)])
    mean, std = float(table[0, 0]), float(table[0, 1])
    return (mean, std) if return_std else mean


def rtd_table(X, Y=None, *, pairs="all", return_std=False, **params):
    """RTD between the layers of one or two models, as a table indexed by the layer names.

    Which call answers which question:

    - ``rtd_table(layers)``: how the layers of **one** model differ from
      each other (every pair of layers, a symmetric table with a zero
      diagonal).
    - ``rtd_table(before, after, pairs="matched")``: what **changed** between
      two versions of the same architecture (before vs after training,
      before vs after fine-tuning): each layer against the same layer, one
      number per layer (a Series). This is the usual "before vs after
      training" question.
    - ``rtd_table(before, after)`` (``pairs="all"``): every layer of one
      model against **every** layer of the other, ``len(X) * len(Y)`` pairs
      (9 for three layers): which layer of the second model is closest to
      each layer of the first (a cross-model correspondence).

    Every entry is the number :func:`rtd` gives for that pair alone with the
    same parameters.

    Parameters
    ----------
    X : Series, dict or list of clouds
        Representations of the same inputs, one per layer (as
        :class:`~sktopo.LayerEmbedder` with ``unit="dataset"`` returns them);
        every cloud has one row per input, in the same order.
    Y : Series, dict or list of clouds, optional
        A second set (another model, or the same model at another training
        stage). None compares ``X`` with itself: the table is symmetric (for
        ``symmetric=True``) with a zero diagonal, and each pair is computed
        once.
    pairs : {"all", "matched"}, default="all"
        ``"all"``: every layer of ``X`` against every layer of ``Y``.
        ``"matched"``: each layer of ``X`` against the layer of ``Y`` with
        the same label (Series, dict) or position (lists); needs ``Y`` with
        the same labels, and computes ``len(X)`` pairs instead of
        ``len(X) * len(Y)``.
    return_std : bool, default=False
        Also return the spreads over subsets.
    **params
        Any parameter of :class:`RTD`; ``homology_dimensions`` must name one
        dimension (default 1).

    Returns
    -------
    table : DataFrame or Series
        ``pairs="all"``: a DataFrame, ``table.loc[a, b]`` is
        RTD(``X[a]``, ``Y[b]``); index and columns are the labels of ``X``
        and ``Y`` (0, 1, ... for lists). ``pairs="matched"``: a Series named
        ``"rtd"`` indexed by the labels of ``X``, ``table[a]`` is
        RTD(``X[a]``, ``Y[a]``).
    std : DataFrame or Series
        The spreads (a Series named ``"rtd_std"`` for ``"matched"``), when
        ``return_std=True``.

    Notes
    -----
    RTD values are comparable only when computed with the same settings:
    the score is a total bar length on subsets of ``batch_size`` inputs and
    grows with it, about in proportion (the three ReLU layers of a digits MLP
    before vs after training: 8-11 with ``batch_size=100``, 15-23 with 200,
    23-33 with 300), and it depends on ``normalize``, ``symmetric``,
    ``metric`` and on the inputs themselves. Compare entries of one table, or tables computed
    with equal ``batch_size``, ``n_trials``, ``normalize`` and ``metric`` on
    the same inputs; ``n_trials`` and ``random_state`` change only the
    subsampling noise (reported by ``return_std``).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import sktopo
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(80, 4))
    >>> layers = pd.Series({"a": a, "a_scaled": 3 * a, "b": rng.normal(size=(80, 4))})
    >>> table = sktopo.rtd_table(layers, random_state=0)
    >>> float(table.loc["a", "a_scaled"]), bool(table.loc["a", "b"] > 1)
    (0.0, True)
    >>> after = pd.Series({"a": 2 * a, "a_scaled": rng.normal(size=(80, 4)), "b": layers["b"]})
    >>> changed = sktopo.rtd_table(layers, after, pairs="matched", random_state=0)
    >>> float(changed["a"]), float(changed["b"]), bool(changed["a_scaled"] > 1)
    (0.0, 0.0, True)
    """
    if pairs not in ("all", "matched"):
        raise ValueError(f"rtd_table: pairs must be 'all' or 'matched'; got {pairs!r}.")
    params = dict(params)
    _single_dimension(params, "rtd_table")
    estimator = RTD(**params)
    x_labels, x_clouds = _layers(X, "X")
    same = Y is None
    if pairs == "matched":
        if same:
            raise ValueError(
                "rtd_table: pairs='matched' compares each layer of X with the same layer of Y "
                "(for example before and after training); give Y. For the layers of one model "
                "against each other, call rtd_table(X)."
            )
        y_labels, y_clouds = _layers(Y, "Y")
        positions = _matched_positions(x_labels, y_labels)
    else:
        y_labels, y_clouds = (x_labels, x_clouds) if same else _layers(Y, "Y")
        positions = []
        symmetric = bool(estimator.symmetric)
        for i in range(len(x_clouds)):
            for j in range(len(y_clouds)):
                if same and (i == j or (symmetric and j < i)):
                    continue
                positions.append((i, j))
    values = np.zeros((0, 2))
    if positions:
        pair_table = pd.DataFrame(
            {"X": [x_clouds[i] for i, _ in positions], "Y": [y_clouds[j] for _, j in positions]},
            index=pd.Index([f"{label_text(x_labels[i])} vs {label_text(y_labels[j])}"
                            for i, j in positions]),
        )
        values = estimator.set_output(transform="default").fit_transform(pair_table)[:, :2]
    if pairs == "matched":
        mean = pd.Series(values[:, 0], index=x_labels, name="rtd")
        std = pd.Series(values[:, 1], index=x_labels, name="rtd_std")
        return (mean, std) if return_std else mean
    mean = pd.DataFrame(0.0, index=x_labels, columns=y_labels)
    std = pd.DataFrame(0.0, index=x_labels, columns=y_labels)
    for (i, j), (m, s) in zip(positions, values):
        mean.iat[i, j], std.iat[i, j] = m, s
        if same and symmetric:
            mean.iat[j, i], std.iat[j, i] = m, s
    return (mean, std) if return_std else mean


def _matched_positions(x_labels, y_labels):
    """(i, j) pairs of equal labels of X and Y, in X's order; the label sets must be equal."""
    if isinstance(x_labels, pd.RangeIndex) != isinstance(y_labels, pd.RangeIndex) or (
            len(x_labels) != len(y_labels) or set(x_labels) != set(y_labels)):
        only_x = [label_text(v) for v in x_labels if v not in set(y_labels)]
        only_y = [label_text(v) for v in y_labels if v not in set(x_labels)]
        raise ValueError(
            "rtd_table: pairs='matched' needs the same layers in X and Y (the same labels, or "
            f"lists of the same length); got {len(x_labels)} and {len(y_labels)} layers"
            + (f", only in X: {only_x}" if only_x else "")
            + (f", only in Y: {only_y}" if only_y else "") + "."
        )
    if not x_labels.is_unique:
        raise ValueError("rtd_table: pairs='matched' needs unique layer labels.")
    where = {label: j for j, label in enumerate(y_labels)}
    return [(i, where[label]) for i, label in enumerate(x_labels)]


def _layers(X, name):
    """Labels and clouds of a Series, dict or list of clouds."""
    if isinstance(X, pd.Series):
        return X.index, list(X.values)
    if isinstance(X, dict):
        return pd.Index(list(X)), list(X.values())
    if isinstance(X, (list, tuple)):
        return pd.RangeIndex(len(X)), list(X)
    raise TypeError(
        f"rtd_table: {name} must be a Series, dict or list of clouds (one per layer), as "
        f"LayerEmbedder(unit='dataset') returns; got {type(X).__name__}."
    )
