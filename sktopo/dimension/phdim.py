"""The persistent-homology dimension (PHdim) of point clouds.

For a random subsample of ``n`` points, the H0 Vietoris-Rips bars are the edge
lengths of a minimum spanning tree (MST). With
``E_alpha(n) = sum over MST edges of length ** alpha``, a measure on a
``d``-dimensional set gives ``E_alpha(n) ~ n ** ((d - alpha) / d)``, so the
slope ``m`` of ``log E_alpha`` against ``log n`` gives

    PHdim = alpha / (1 - m),

which holds for every ``alpha > 0`` (``alpha / (alpha - m)``, used by some
published code, is only right for ``alpha = 1``).

Engine. Each cloud gets ONE distance matrix, over a pool of at most
``max_points`` points; every subsample is a sub-matrix of it. On the CPU each
MST is scipy's compiled single-linkage (Prim-type, O(m^2), the merge heights
are the MST edge lengths); on CUDA the draws of one size are batched into one
``(B, m, m)`` tensor and solved by a batched Prim in torch. Subsamples come from
a :class:`numpy.random.SeedSequence` spawned per cloud, so a seed gives the same
numbers on any ``n_jobs``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import Interval, StrOptions

from sktopo._device import resolve_device
from sktopo._distance import check_memory, distance_matrix_bytes, pairwise_distances
from sktopo._base import _MAX_LABELS, CellMessage, CloudTransformer, one_cloud
from sktopo._parallel import N_JOBS
from sktopo._seeding import as_seeder, seeded_generators
from sktopo.dimension import _batched
from sktopo.dimension._batched import _unit_scaled
from sktopo.dimension._neighbors import rescaled
from sktopo.dimension._protocols import MIN_N_SIZES, PRESET_FIXED, PRESETS, make_plan

__all__ = ["PHDimension", "ph_dimension"]

FEATURES = ("phdim", "phdim_std", "phdim_ci_low", "phdim_ci_high", "r2", "n_min", "n_max",
            "n_sizes", "reliable")
_CI_LEVEL = 0.95
# draws of one size solved together on a torch device: keep the (B, m, m) block under this
_TORCH_BATCH_BYTES = 1 << 30


class PHDimension(CloudTransformer):
    """Persistent-homology dimension of every cloud in a collection.

    Subsamples of increasing size ``n`` are drawn from each cloud, the
    ``alpha``-weighted length ``E_alpha(n)`` of their minimum spanning tree
    (the total ``alpha``-persistence of H0) is computed, and the slope ``m``
    of ``log E_alpha`` against ``log n`` gives ``phdim = alpha / (1 - m)``.

    Parameters
    ----------
    alpha : float, default=1.0
        Power of the MST edge lengths. Any positive value; the estimate is
        ``alpha / (1 - slope)``. Values near the dimension or above make the
        slope small or negative and the estimate noisier.
    min_points : int or None, default=None
        Smallest subsample size. None: an eighth of the largest size, at
        least 20 points (but never more than the cloud).
    max_points : int or None, default=None
        Largest subsample size, which is also the size of the *pool*: a cloud
        with more points is first subsampled (once, at random) to this many
        points, and every subsample is drawn from the pool's distance matrix.
        None: ``min(n_points, 2000)``. Larger values lower the bias for
        high-dimensional data at a cost growing as ``max_points ** 2``.
    n_sizes : int or None, default=None
        Number of subsample sizes, spaced geometrically from ``min_points`` to
        ``max_points`` (duplicates after rounding are merged). None: 4, a
        factor 2 apart with the default ``min_points``.
    n_draws : int or None, default=None
        Subsamples per size; the median of their ``E_alpha`` is fitted.
        None: 1. The largest size uses the whole pool, so its draws coincide.
    n_reruns : int or None, default=None
        Independent repetitions of the whole procedure; their slopes are
        averaged and ``phdim_std`` is the spread of their estimates.
        None: 5.
    metric : str, default="euclidean"
        ``"euclidean"``, any metric of :func:`sklearn.metrics.pairwise_distances`,
        or ``"precomputed"`` when the cells are square distance matrices.
    protocol : {"study_a", "birdal", "tulchinskii"} or None, default=None
        Reproduce a published protocol exactly (see ``docs/phdim.md``):

        - ``"study_a"``: sizes 500, 850, ... while below the cloud size, one
          subsample per size.
        - ``"birdal"``: sizes 200, 250, ..., 950, one subsample per size.
        - ``"tulchinskii"``: sizes 50, 90, ..., 490, median of 7 subsamples
          per size (of 3 at the sizes ``n`` where the cloud has at most ``2 n``
          points, as their code does), slopes of 3 reruns averaged.

        Subsamples are drawn from the whole cloud (no pool). A preset fixes
        ``min_points``, ``max_points``, ``n_sizes``, ``n_draws`` and
        ``n_reruns``: setting any of them as well raises a ValueError. Preset
        sizes larger than a cloud are dropped with a warning. The published
        studies used ``alpha=1``; ``alpha`` and ``metric`` stay yours to set.
    random_state : int, RandomState instance or None, default=None
        Seeds the subsampling. Each cloud's stream comes from ``random_state``
        and the cloud's content (:mod:`sktopo._seeding`), so the same cloud
        gives the same numbers in any row, any order, any subset, for any
        ``n_jobs`` and any device, and a cloud and its distance matrix
        (``metric="precomputed"``) draw the same subsamples.
    n_jobs : int or None, default=None
        Clouds processed in parallel through joblib (``None`` means 1 unless a
        ``joblib.parallel_config`` context sets it, ``-1`` all cores;
        ``joblib.parallel_config`` also selects the backend).
    device : str, default="auto"
        ``"auto"`` (CUDA when available, else the CPU: the one device rule of
        sktopo, see :func:`sktopo._device.resolve_device`), ``"cpu"``
        (numpy/scipy), or a torch device such as ``"cuda"`` or ``"cuda:1"``.
        On a torch device distances are computed in float32 (TF32 off).
    verbose : int, default=0
        Show a progress bar over clouds when positive.
    homology_dimension : {0, 1}, default=0
        Bars whose ``alpha``-weighted lengths make ``E_alpha(n)``: 0, the
        minimum spanning tree; 1, the finite H1 bars of each subsample's
        Vietoris-Rips diagram (through the engine registry,
        :mod:`sktopo.topology.engines`: redzed-tda, or ripser.py where it is
        missing), the variant of study A's
        ``PHdim(X, hom_dim=1)``. The same scaling ``n ** ((d - alpha) / d)``
        holds for H1 bars (Schweinhart 2020) and the same ``alpha / (1 - m)``
        gives the dimension. H1 costs a Rips diagram per subsample (computed
        on the CPU whatever ``device``, never batched): keep ``max_points`` to
        a few hundred, and a subsample without loops gives NaN.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns of the input (1 for a list, 3-D array or Series).
    feature_names_in_ : ndarray of str
        Column names of a DataFrame input whose columns are all strings.

    Notes
    -----
    Output columns, per cloud:

    - ``phdim``: ``alpha / (1 - mean slope over reruns)``.
    - ``phdim_std``: standard deviation (ddof=1) of the reruns' estimates;
      NaN with a single rerun.
    - ``phdim_ci_low``, ``phdim_ci_high``: a 95% interval for the mean slope,
      mapped through ``alpha / (1 - m)``: Student t over the reruns, or with a
      single rerun the least-squares standard error of its slope. It covers
      subsampling noise, not the finite-size bias of the estimator (which
      is negative for high dimensions and small ``max_points``).
    - ``phdim_r2``: coefficient of determination of the log-log fit of the
      rerun-averaged curve; a curved plot (low ``phdim_r2``) means the sizes are
      outside the scaling range. It reads so only when the slope is well away
      from 0: as ``alpha`` nears the dimension ``d`` the slope ``1 - alpha / d``
      nears 0, ``log E_alpha`` is almost flat and ``phdim_r2`` measures the
      subsampling noise around a flat line, not curvature. A low ``phdim_r2`` is
      then expected and the estimate is still right: ``PHDimension(alpha=2)`` on a
      2-sphere gives about 2.01 with ``phdim_r2`` about 0.49 (five 2,000-point
      spheres: ``phdim`` 1.98 to 2.02, ``phdim_r2`` 0.10 to 0.85; see
      ``docs/phdim.md``). Read ``phdim_ci_low``/``phdim_ci_high`` and
      ``phdim_reliable`` for the estimate's quality there.
    - ``phdim_n_min``, ``phdim_n_max``, ``phdim_n_sizes``: the subsample sizes
      actually used.
    - ``phdim_reliable``: 1.0 when the fit can be trusted, 0.0 when it cannot (NaN
      with the rest of a row whose estimate failed). A finite ``phdim`` is flagged
      when a rerun's slope is 1 or more (that rerun has no finite dimension, so
      ``phdim_std`` is NaN), when the 95% interval of the slope reaches 1 (the data
      do not bound the dimension from above: ``phdim_ci_high`` is NaN), when the
      whole interval lies above 1.5 times the ambient dimension (``n_features``, for
      a cloud of points under a norm: a subset of ``R^d`` has dimension at most
      ``d``, and the margin covers the upward bias of small full-dimensional
      clouds), or when the
      log-log curve is flat (``phdim_r2`` is NaN). ``phdim_std`` and
      ``phdim_ci_high`` stay NaN there rather than being computed over the finite
      reruns, which would understate the spread of an estimate that is not
      bounded; one warning per transform says how many rows are flagged, which
      and why. Every NaN of a finite estimate is thus flagged: with ``n_reruns >
      1`` the rows with ``phdim_reliable == 1`` are finite in every column (one
      rerun has no ``phdim_std``, flagged or not), which is what to keep before a
      model that refuses NaN.

    Every column starts with ``phdim`` (prefixed ``"{column}__"`` for DataFrame
    inputs), so :func:`sktopo.tidy` parses them and a table joined with
    :class:`~sktopo.TwoNN`'s has no clashing names.

    A cloud that cannot be measured (fewer points than the smallest
    subsample, a constant cloud, a zero-length tree, a slope of 1 or more)
    gives NaN in every column with a warning naming its row; it never raises
    in the middle of a collection. When several clouds fail for the same
    reason, one warning says how many, which rows and what to change.

    ``alpha`` is the power of the H0 bar lengths (MST edges), the same
    quantity as the exponent ``p`` of :class:`~sktopo.DiagramFeatures`'
    total persistence (without its ``1/p`` root); it is unrelated to the
    Wasserstein ``order`` of :class:`~sktopo.DiagramDistance`.

    Examples
    --------
    >>> from sktopo import PHDimension
    >>> from sktopo.datasets import make_sphere, make_torus
    >>> clouds = [make_sphere(1000, 2, random_state=0), make_torus(1000, random_state=0)]
    >>> table = PHDimension(random_state=0).fit_transform(clouds)
    >>> table.shape
    (2, 9)
    >>> bool(abs(table[0, 0] - 2) < 0.2)
    True
    """

    _parameter_constraints: dict = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "min_points": [Interval(Integral, 2, None, closed="left"), None],
        "max_points": [Interval(Integral, 3, None, closed="left"), None],
        "n_sizes": [Interval(Integral, MIN_N_SIZES, None, closed="left"), None],
        "n_draws": [Interval(Integral, 1, None, closed="left"), None],
        "n_reruns": [Interval(Integral, 1, None, closed="left"), None],
        "metric": [str, callable],
        "protocol": [StrOptions(set(PRESETS)), None],
        "random_state": ["random_state"],
        "n_jobs": N_JOBS,
        "device": "no_validation",  # checked in fit: "cpu", "auto" or a torch device
        "verbose": ["verbose"],
        "homology_dimension": [Interval(Integral, 0, 1, closed="both")],
    }
    _features = FEATURES
    _prefix = "phdim"
    _one_cloud = "sktopo.ph_dimension(X)"

    def __init__(self, alpha=1.0, *, min_points=None, max_points=None, n_sizes=None,
                 n_draws=None, n_reruns=None, metric="euclidean", protocol=None,
                 random_state=None, n_jobs=None, device="auto", verbose=0,
                 homology_dimension=0):
        self.alpha = alpha
        self.min_points = min_points
        self.max_points = max_points
        self.n_sizes = n_sizes
        self.n_draws = n_draws
        self.n_reruns = n_reruns
        self.metric = metric
        self.protocol = protocol
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.device = device
        self.verbose = verbose
        self.homology_dimension = homology_dimension

    def _check_settings(self):
        if self.protocol is not None:
            clash = [name for name in PRESET_FIXED if getattr(self, name) is not None]
            if clash:
                raise ValueError(
                    f"PHDimension: protocol={self.protocol!r} fixes {', '.join(PRESET_FIXED)}; "
                    f"you also set {', '.join(f'{n}={getattr(self, n)!r}' for n in clash)}. "
                    f"Leave them at None to reproduce the published protocol, or set "
                    f"protocol=None to choose them yourself."
                )
        if (self.min_points is not None and self.max_points is not None
                and self.min_points >= self.max_points):
            raise ValueError(
                f"PHDimension: min_points={self.min_points} must be below "
                f"max_points={self.max_points}."
            )
        resolve_device(self.device, owner="PHDimension")

    def _cell_task(self):
        return _estimate_cloud, dict(
            alpha=float(self.alpha), protocol=self.protocol, min_points=self.min_points,
            max_points=self.max_points, n_sizes=self.n_sizes, n_draws=self.n_draws,
            n_reruns=self.n_reruns, metric=self.metric,
            device=resolve_device(self.device, owner="PHDimension"),
        )

    def _compute_cells(self, clouds, seeds, labels):
        # many small Euclidean clouds of one shape are computed as one batch (same numbers)
        function, settings = self._cell_task()
        if self.homology_dimension == 1:  # a Rips diagram per subsample: no batch, no torch
            settings = dict(settings, homology_dimension=1, device="cpu")
            results = _batched.compute_cells(clouds, seeds, labels, key=_no_batch, batch=None,
                                             single=function, settings=settings,
                                             n_jobs=self.n_jobs, verbose=self.verbose,
                                             desc=type(self).__name__)
        else:
            results = _batched.compute_cells(clouds, seeds, labels, key=phdim_batch_key,
                                             batch=phdim_batch, single=function,
                                             settings=settings, n_jobs=self.n_jobs,
                                             verbose=self.verbose, desc=type(self).__name__,
                                             cost=phdim_batch_cost)
        return _summarise_unreliable(results, labels)


def ph_dimension(X, **params) -> pd.Series:
    """PH dimension of one cloud.

    Parameters
    ----------
    X : array-like of shape (n_points, n_features)
        One point cloud (a square distance matrix with ``metric="precomputed"``).
    **params
        Any parameter of :class:`PHDimension` (``alpha``, ``random_state``, ...).

    Returns
    -------
    result : pandas.Series
        Indexed by ``phdim``, ``phdim_std``, ``phdim_ci_low``, ``phdim_ci_high``,
        ``phdim_r2``, ``phdim_n_min``, ``phdim_n_max``, ``phdim_n_sizes``,
        ``phdim_reliable``; ``result["phdim"]`` is the estimate.

    Examples
    --------
    >>> import sktopo
    >>> from sktopo.datasets import make_closed_curve
    >>> result = sktopo.ph_dimension(make_closed_curve(1500, random_state=0), random_state=0)
    >>> bool(abs(result["phdim"] - 1) < 0.15)
    True
    """
    return one_cloud(PHDimension(**params), X, "ph_dimension")


def _memory_limit():
    """Half of the physical memory, the most one cloud's distance matrix may take."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


# ---------------------------------------------------------------------------------------------
# one cloud


def _nan_result():
    return {name: np.nan for name in FEATURES}


def _no_batch(cloud, **settings):
    return None


def _estimate_cloud(cloud, seed, label, *, alpha, protocol, min_points, max_points, n_sizes,
                    n_draws, n_reruns, metric, device, homology_dimension=0):
    """Estimate one cloud. Returns ``(values, warning messages)``; never raises on bad data."""
    messages = []
    precomputed = metric == "precomputed"
    n_points = cloud.shape[0]
    plan = make_plan(n_points, protocol=protocol, min_points=min_points, max_points=max_points,
                     n_sizes=n_sizes, n_draws=n_draws, n_reruns=n_reruns)
    if plan.dropped_sizes:
        messages.append(CellMessage(
            f"the cloud at {label} has {n_points} points; protocol {protocol!r} sizes "
            f"{list(plan.dropped_sizes)} are larger and were dropped.",
            kind=f"are smaller than some sizes of protocol {protocol!r}, which were dropped",
            advice="Give clouds of more points to use every size of the protocol.", nan=False,
        ))
    if len(plan.sizes) < MIN_N_SIZES:
        smallest = min_points if min_points is not None else (
            PRESETS[protocol].start if protocol else None)
        messages.append(CellMessage(
            f"the cloud at {label} has {n_points} points, too few for {MIN_N_SIZES} subsample "
            f"sizes (sizes available: {plan.sizes.tolist()}"
            + (f"; the smallest subsample is {smallest} points" if smallest else "")
            + "); its PH dimension is NaN. Give more points or lower min_points.",
            kind=f"have too few points for {MIN_N_SIZES} subsample sizes",
            advice=("Give more points per cloud (e.g. a larger sample unit), lower min_points"
                    + (", or use protocol=None" if protocol else "") + "."),
        ))
        return _nan_result(), messages
    if not precomputed:
        n_distinct = _count_distinct_rows(cloud)
        if n_distinct < 2:
            messages.append(CellMessage(
                f"the cloud at {label} is constant (all points equal); its PH dimension is NaN.",
                kind="are constant (all points equal)"))
            return _nan_result(), messages
        if n_distinct < n_points:
            messages.append(CellMessage(
                f"the cloud at {label} has {n_points - n_distinct} duplicated point(s) out of "
                f"{n_points}; they add zero-length MST edges and bias the estimate down. "
                f"Remove them first (numpy.unique(X, axis=0)) unless they are meant as point masses.",
                kind="have duplicated points, which add zero-length MST edges and bias the estimate down",
                advice="Remove them first (numpy.unique(X, axis=0)) unless they are meant as point masses.",
                nan=False,
            ))

    # the estimate is scale-invariant: a cloud far from unit scale (1e200, 1e-300) is
    # multiplied by an exact power of two so its squared distances neither overflow nor vanish
    cloud = rescaled(cloud, metric)
    rng = np.random.default_rng(seed)
    E = _length_sums(cloud, plan, rng, alpha=alpha, metric=metric, device=device, label=label,
                     homology_dimension=homology_dimension)
    E = plan.pad_draws(E)  # sizes with fewer draws: unused slots keep their median
    with np.errstate(divide="ignore", invalid="ignore"):
        logE = np.log(E)
    if not np.isfinite(logE).all():
        messages.append(_infinite_length_message(label))
        return _nan_result(), messages
    values, message = _fit(plan, logE, alpha, label,
                           ambient=None if precomputed or metric not in _NORMS else cloud.shape[1])
    if message:
        messages.append(message)
    return values, messages


def _infinite_length_message(label):
    return CellMessage(
        f"the cloud at {label} gave a zero or infinite MST length for some subsample "
        f"(duplicated points or infinite distances); its PH dimension is NaN.",
        kind="gave a zero or infinite MST length for some subsample (duplicated points or "
             "infinite distances)",
        advice="Remove duplicated points (numpy.unique(X, axis=0)).",
    )


def _count_distinct_rows(cloud):
    """Number of distinct points, from a hash of each row's bytes (np.unique(axis=0) sorts
    whole rows and is 10-50x slower on wide clouds)."""
    cloud = np.ascontiguousarray(cloud) + 0.0  # -0.0 and 0.0 are the same point
    return len({hash(row.tobytes()) for row in cloud})


def _draw_subsets(plan, rng):
    """The subsamples of every (rerun, size, draw), as ``(order, targets)`` jobs.

    ``order`` indexes the pool; each target ``(rerun, size_position, draw, m)``
    is the subsample ``order[:m]``. Nested plans give one job per (rerun, draw)
    whose order is a random permutation prefix serving all sizes; independent
    plans give one sorted subsample per target. Sizes equal to the pool are
    left out: the whole pool is computed once.
    """
    below = [(s, int(m)) for s, m in enumerate(plan.sizes) if m < plan.pool_size]
    jobs = []
    if not below:
        return jobs
    if plan.nested:
        orders = _shuffled_orders(
            rng, np.empty((plan.n_reruns * plan.n_draws, plan.pool_size), dtype=np.intp))
        orders = orders[:, :below[-1][1]]
        for r in range(plan.n_reruns):
            for k in range(plan.n_draws):
                jobs.append((orders[r * plan.n_draws + k], [(r, s, k, m) for s, m in below]))
        return jobs
    for r in range(plan.n_reruns):
        for s, m in below:
            for k in range(plan.draws_at(s)):  # fewer at some sizes ("tulchinskii")
                order = np.sort(rng.choice(plan.pool_size, m, replace=False))
                jobs.append((order, [(r, s, k, m)]))
    return jobs


def _shuffled_orders(rng, out):
    """Fill ``out`` (``(n_reruns * n_draws, pool)``) with one random order of the pool per row.

    Row ``r * n_draws + k`` serves draw ``k`` of rerun ``r`` of a nested plan: its first
    ``m`` entries are the subsample of size ``m``, for every size. One shuffle of the
    rows in place: the stream of one ``rng.permutation(pool)`` per row, in a single call
    (the batched path draws the orders of thousands of clouds).
    """
    out[...] = np.arange(out.shape[1])
    return rng.permuted(out, axis=1, out=out)


def _length_sums(cloud, plan, rng, *, alpha, metric, device, label, homology_dimension=0):
    """``E_alpha`` for every (rerun, size, draw): an array ``(n_reruns, n_sizes, n_draws)``."""
    n_points = cloud.shape[0]
    precomputed = metric == "precomputed"
    if plan.pool_size < n_points:
        pool = np.sort(rng.choice(n_points, plan.pool_size, replace=False))
        cloud = cloud[np.ix_(pool, pool)] if precomputed else cloud[pool]
    if metric == "euclidean":
        cloud = cloud - cloud.mean(axis=0)  # smaller norms, less cancellation in |x|^2 + |y|^2 - 2 x.y
    jobs = _draw_subsets(plan, rng)
    whole_needed = plan.sizes[-1] >= plan.pool_size
    E = np.empty((plan.n_reruns, len(plan.sizes), plan.n_draws))
    if device != "cpu":
        _length_sums_torch(cloud, plan, jobs, E, alpha=alpha, metric=metric, device=device)
        return E

    # One matrix for the pool, unless the drawn points are few and the matrix
    # would cost more than the subsamples' own distances (the presets on big clouds).
    cost_subsets = sum(len(order) ** 2 for order, _ in jobs) + whole_needed * plan.pool_size ** 2
    D = None
    if precomputed:
        D, scale = cloud, 1.0
    elif plan.pool_size ** 2 <= cost_subsets:
        check_memory(
            distance_matrix_bytes(plan.pool_size, 8, copies=2), _memory_limit(),
            f"PHDimension: the distance matrix of the cloud at {label} ({plan.pool_size} points)",
            "Lower max_points.",
        )
        D, scale = _dense_distances(cloud, metric)

    def length_sum(block, scale):
        if homology_dimension == 1:
            return _h1_length_sum(block, scale, alpha)
        return float(np.sum(_mst_lengths(block) ** (alpha * scale)))

    def subsample_sum(points):
        return length_sum(*_dense_distances(points, metric))

    if whole_needed:  # then D exists: the whole pool's cost counts in cost_subsets
        E[:, -1, :] = length_sum(D, scale)
    for order, targets in jobs:
        if D is not None:
            block = D[order][:, order]  # rows, then columns: faster than np.ix_
            for r, s, k, m in targets:
                E[r, s, k] = length_sum(block[:m, :m], scale)
        else:
            for r, s, k, m in targets:
                E[r, s, k] = subsample_sum(cloud[order[:m]])
    return E


def _h1_length_sum(block, scale, alpha):
    """Sum of ``alpha``-powered finite H1 bar lengths of the Rips diagram of one block."""
    from sktopo.topology.engines import rips_bars

    # squared Euclidean blocks (scale 1/2) back to distances, in float64 for the engine
    D = np.sqrt(block, dtype=float) if scale == 0.5 else np.asarray(block, dtype=float)
    bars = rips_bars(D, 1)[1]
    bars = bars[np.isfinite(bars[:, 1])]
    return float(np.sum((bars[:, 1] - bars[:, 0]) ** alpha))


def _dense_distances(points, metric):
    """``(matrix, scale)``: float32 distances; ``E = sum(tree edges ** (alpha * scale))``.

    Euclidean clouds give *squared* distances (same MST, one n^2 square root
    saved) and ``scale = 1/2``. float32 storage halves the memory traffic
    of the sub-matrix gathers; its 6e-8 relative rounding is far below the
    estimator's noise.
    """
    from sktopo._distance import squared_euclidean_distances

    if metric == "euclidean":
        D = squared_euclidean_distances(points)
        np.maximum(D, 0.0, out=D)
        np.fill_diagonal(D, 0.0)
        return D.astype(np.float32), 0.5
    return pairwise_distances(points, metric).astype(np.float32), 1.0


# The one dense MST kernel lives in sktopo._mst; the old private names stay importable.
from sktopo._mst import mst_edge_lengths as _mst_lengths  # noqa: E402
from sktopo._mst import single_linkage as _single_linkage  # noqa: E402,F401


def _length_sums_torch(cloud, plan, jobs, E, *, alpha, metric, device):
    """The same sums on a torch device: one distance matrix, equally long jobs batched."""
    import torch

    from sktopo._distance import torch_pairwise_distances
    from sktopo._mst import torch_batched_mst_edge_lengths

    if metric == "precomputed":
        D = torch.as_tensor(cloud, dtype=torch.float32, device=device)
    elif metric == "euclidean":
        X = torch.as_tensor(cloud, dtype=torch.float32, device=device)
        allow_tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False  # TF32 rounds short MST edges too coarsely
        try:
            D = torch_pairwise_distances(X)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    else:
        D = torch.as_tensor(pairwise_distances(cloud, metric), dtype=torch.float32, device=device)

    def sums(block):
        return (torch_batched_mst_edge_lengths(block).double() ** alpha).sum(dim=1)

    if plan.sizes[-1] >= plan.pool_size:
        # one matrix: Boruvka (about log2(n) passes) beats n sequential Prim steps
        from sktopo._mst import torch_mst_edge_lengths

        E[:, -1, :] = (torch_mst_edge_lengths(D).double() ** alpha).sum().item()
    by_length = {}
    for order, targets in jobs:
        by_length.setdefault(len(order), []).append((order, targets))
    for length, group in by_length.items():
        chunk = max(1, _TORCH_BATCH_BYTES // (4 * length ** 2))
        for start in range(0, len(group), chunk):
            part = group[start:start + chunk]
            idx = torch.as_tensor(np.stack([order for order, _ in part]), device=device)
            block = D[idx[:, :, None], idx[:, None, :]]
            sizes = sorted({m for _, targets in part for *_, m in targets})
            results = {m: sums(block[:, :m, :m]).cpu().numpy() for m in sizes}
            for b, (_, targets) in enumerate(part):
                for r, s, k, m in targets:
                    E[r, s, k] = results[m][b]


# ---------------------------------------------------------------------------------------------
# the fit


def _slopes(x, Y):
    """Least-squares slopes of every row of ``Y`` against ``x`` (last axis)."""
    xc = x - x.mean()
    # an elementwise product and a sum, not a BLAS product: a cloud's slopes then do not
    # depend on how many clouds share the array (the batched path stacks thousands)
    return ((Y - Y.mean(axis=-1, keepdims=True)) * xc).sum(axis=-1) / (xc @ xc)


@functools.lru_cache(maxsize=64)
def _t_quantile(dof):
    from scipy import stats

    return float(stats.t.ppf(0.5 + _CI_LEVEL / 2, dof))


def _fit_many(plan, logE, alpha):
    """The fit of many clouds of one plan: ``log E`` of shape (clouds, reruns, sizes, draws).

    Returns a dict of per-cloud arrays keyed like :data:`FEATURES`, plus ``"slope"``
    (the mean slope, for messages). Vectorised over clouds; each cloud's numbers
    depend on its own ``log E`` only.
    """
    x = np.log(plan.sizes.astype(float))
    curves = np.median(logE, axis=3)  # median of the draws (log is monotone): (c, R, S)
    slopes = _slopes(x, curves)  # (c, R)
    slope = slopes.mean(axis=1)
    mean_curve = curves.mean(axis=1)  # its slope is the mean slope: least squares is linear
    intercept = mean_curve.mean(axis=1) - slope * x.mean()
    residuals = mean_curve - (intercept[:, None] + slope[:, None] * x)
    total = ((mean_curve - mean_curve.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(total > 0, 1.0 - (residuals ** 2).sum(axis=1) / total, np.nan)

    def to_dim(m):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(m < 1, alpha / (1 - m), np.nan)

    c = logE.shape[0]
    values = {
        "slope": slope,
        "phdim": to_dim(slope),
        "phdim_std": (np.std(to_dim(slopes), axis=1, ddof=1) if plan.n_reruns > 1
                      else np.full(c, np.nan)),
        "r2": r2,
        "n_min": np.full(c, float(plan.sizes[0])),
        "n_max": np.full(c, float(plan.sizes[-1])),
        "n_sizes": np.full(c, float(len(plan.sizes))),
    }
    # 95% interval of the mean slope, mapped through alpha / (1 - m)
    if plan.n_reruns > 1:  # Student t over the independent reruns
        dof = plan.n_reruns - 1
        se = np.std(slopes, axis=1, ddof=1) / np.sqrt(plan.n_reruns)
    else:  # one rerun: the least-squares standard error of its slope
        dof = len(x) - 2
        se = np.sqrt((residuals ** 2).sum(axis=1) / dof / ((x - x.mean()) ** 2).sum())
    half = _t_quantile(dof) * se
    values["phdim_ci_low"], values["phdim_ci_high"] = to_dim(slope - half), to_dim(slope + half)
    # what phdim_reliable checks (_fit_results): reruns without a finite dimension, an
    # interval of the slope reaching 1
    values["bad_reruns"] = (~(slopes < 1)).sum(axis=1)
    values["open_above"] = ~(slope + half < 1)
    values["reliable"] = np.full(c, np.nan)
    return values


# Metrics that are norms of R^d: a set of points in R^d has dimension at most d under them. An
# interval wholly above _AMBIENT_MARGIN * d is flagged: beyond the finite-sample bias of a
# full-dimensional cloud (40 Gaussian points in R^2 give 2.4 in the median, a uniform square of
# 200 points 1.9-2.1: flagging every interval above d flagged 4 of 200 such squares)
_NORMS = frozenset({"euclidean", "l2", "minkowski", "manhattan", "cityblock", "l1", "chebyshev",
                    "infinity"})
_AMBIENT_MARGIN = 1.5
_UNRELIABLE_KIND = "gave PH dimensions whose fit cannot be trusted"
# the reasons a finite estimate is flagged, as told in the summary of many clouds
_REASONS = {
    "reruns": "a rerun's log-log slope >= 1, no finite dimension (phdim_std is NaN)",
    "interval": "a 95% interval of the slope reaching 1, no upper bound (phdim_ci_high is NaN)",
    "ambient": f"a 95% interval wholly above {_AMBIENT_MARGIN:g} times the ambient dimension",
    "flat": "a flat log-log curve (phdim_r2 is NaN)",
}


@dataclass(frozen=True)
class _Unreliable(CellMessage):
    """A finite estimate whose fit cannot be trusted: gathered by :func:`_summarise_unreliable`
    into one warning per transform."""

    reasons: tuple = ()


def _unreliable_reasons(plan, values, bad_reruns, open_above, ambient):
    """``(key, phrase)`` of every reason the finite estimate ``values`` is not to be trusted."""
    reasons = []
    if bad_reruns:
        reasons.append(("reruns", f"{bad_reruns} of {plan.n_reruns} reruns gave a log-log slope "
                                  f">= 1 (no finite dimension), so phdim_std is NaN"))
    if open_above:
        reasons.append(("interval", "the 95% interval of the slope reaches 1, so the dimension "
                                    "has no upper bound (phdim_ci_high is NaN)"))
    if ambient is not None and values["phdim_ci_low"] > _AMBIENT_MARGIN * ambient:
        reasons.append(("ambient", f"its whole 95% interval ({values['phdim_ci_low']:.3g} and "
                                   f"up) lies above {_AMBIENT_MARGIN:g} times the ambient "
                                   f"dimension {ambient}"))
    if not np.isfinite(values["r2"]):
        reasons.append(("flat", "the log-log curve is flat (phdim_r2 is NaN)"))
    return reasons


_UNRELIABLE_ADVICE = (
    "Use more points per cloud (max_points) or more n_reruns; before a model that refuses "
    "NaN, keep the rows with phdim_reliable == 1 or impute.")


def _fit_results(plan, logE, alpha, labels, ambient=None):
    """``(values, message or None)`` per cloud from ``log E`` (clouds, reruns, sizes, draws).

    ``ambient``: the clouds' number of features when the metric is a norm of ``R^d`` (an
    interval wholly above it is flagged), else None.
    """
    fitted = _fit_many(plan, logE, alpha)
    columns = {name: fitted[name].tolist() for name in FEATURES}  # Python floats, at once
    bad_reruns, open_above = fitted["bad_reruns"].tolist(), fitted["open_above"].tolist()
    results = []
    for i, label in enumerate(labels):
        values = {name: columns[name][i] for name in FEATURES}
        message = None
        if np.isfinite(values["phdim"]):
            reasons = _unreliable_reasons(plan, values, bad_reruns[i], open_above[i], ambient)
            values["reliable"] = 0.0 if reasons else 1.0
            if reasons:
                message = _Unreliable(
                    f"the cloud at {label} gave a PH dimension of {values['phdim']:.4g} whose fit "
                    f"cannot be trusted: {'; '.join(phrase for _, phrase in reasons)}. Its "
                    f"phdim_reliable is 0.",
                    kind=_UNRELIABLE_KIND, advice=_UNRELIABLE_ADVICE, nan=False,
                    reasons=tuple(key for key, _ in reasons))
        else:
            slope = fitted["slope"][i]
            message = CellMessage(
                f"the cloud at {label} gave a log-log slope of {slope:.3f} >= 1 (the MST length "
                f"grows at least linearly with the number of points, as for far too few points "
                f"in high dimension); its PH dimension is NaN. Use more points.",
                kind="gave a log-log slope >= 1 (too few points for their dimension)",
                advice="Use more points per cloud.",
            )
            values = {**_nan_result(), "n_min": values["n_min"], "n_max": values["n_max"],
                      "n_sizes": values["n_sizes"]}
        results.append((values, message))
    return results


def _fit(plan, logE, alpha, label, ambient=None):
    """Slopes, estimate, spread, interval and fit quality from ``log E`` (reruns, sizes, draws)."""
    return _fit_results(plan, logE[None], alpha, [label], ambient=ambient)[0]


def _summarise_unreliable(results, labels):
    """``results`` with the :class:`_Unreliable` messages of all clouds turned into ONE
    message (a plain string, so one warning whatever their number): how many clouds, which,
    why. A warning per cloud, or the usual "separately up to three", would drown a
    collection's other warnings; the column ``phdim_reliable`` names every row."""
    flagged = []
    for i, (values, messages) in enumerate(results):
        flags = [m for m in messages if isinstance(m, _Unreliable)]
        if flags:
            results[i] = (values, [m for m in messages if not isinstance(m, _Unreliable)])
            flagged.append((i, flags[0]))
    if not flagged:
        return results
    if len(flagged) == 1:
        text = f"{flagged[0][1].text} {_UNRELIABLE_ADVICE}"
    else:
        shown = [labels[i] for i, _ in flagged[:_MAX_LABELS]]
        more = len(flagged) - len(shown)
        where = "; ".join(shown) + (f"; and {more} more" if more else "")
        counts = [f"{sum(key in m.reasons for _, m in flagged)} with {phrase}"
                  for key, phrase in _REASONS.items() if any(key in m.reasons for _, m in flagged)]
        text = (f"{len(flagged)} of {len(labels)} clouds {_UNRELIABLE_KIND} ({where}): "
                f"phdim_reliable is 0 for them ({'; '.join(counts)}). {_UNRELIABLE_ADVICE}")
    first = flagged[0][0]
    values, messages = results[first]
    results[first] = (values, [*messages, text])
    return results


# PHDimension computes the distances of clouds of this many float64 numbers at a time
# (2 MiB, ten token clouds of 64 x 384): their centred copies, float64 distances and gather
# indices stay in cache (measured: 0.44-0.47 ms per cloud from 10 to 20 clouds, 0.57 at 2).
_CENTRED_ENTRIES = 1 << 18
# PHDimension batches clouds up to this many points. Measured (2 cores, d = 64): batched
# 0.7 vs 1.9 ms per cloud at 128 points, 1.9 vs 2.7 at 256, 4.0 vs 4.8 at 400; above
# that scipy's compiled single linkage, cloud by cloud, catches up with the numpy Prim.
PHDIM_BATCH_MAX_POINTS = 384


# ---------------------------------------------------------------------------------------------
# many small clouds at once (sktopo.dimension._batched.compute_cells): the same numbers

@functools.lru_cache(maxsize=256)
def _phdim_plan(n_points, *, protocol, min_points, max_points, n_sizes, n_draws, n_reruns):
    """The plan of a cloud of ``n_points`` (cached: the batch keys ask once per cloud)."""
    return make_plan(n_points, protocol=protocol, min_points=min_points, max_points=max_points,
                     n_sizes=n_sizes, n_draws=n_draws, n_reruns=n_reruns)


def phdim_batch_key(cloud, *, alpha, protocol, min_points, max_points, n_sizes, n_draws,
                    n_reruns, metric, device):
    """The shape of a cloud PHDimension can batch, or None (computed on its own).

    Clouds too small for the plan's sizes are batched too: the batch hands them to the
    per-cloud function, which gives NaN at once (no process to start for them).
    """
    n_points = cloud.shape[0]
    if device != "cpu" or metric != "euclidean" or n_points > PHDIM_BATCH_MAX_POINTS:
        return None
    plan = _phdim_plan(n_points, protocol=protocol, min_points=min_points,
                       max_points=max_points, n_sizes=n_sizes, n_draws=n_draws,
                       n_reruns=n_reruns)
    if not plan.nested or plan.pool_size != n_points or plan.dropped_sizes:
        return None
    return cloud.shape


def phdim_batch_cost(cloud, *, protocol, min_points, max_points, n_sizes, n_draws, n_reruns,
                     **settings):
    """Numbers a PHDimension chunk holds per cloud: its distances and the largest size's
    sub-matrices of every (rerun, draw) (points, float64 distances and gather indices are
    held a few clouds at a time, see ``_CENTRED_ENTRIES``)."""
    n_points = cloud.shape[0]
    plan = _phdim_plan(n_points, protocol=protocol, min_points=min_points,
                       max_points=max_points, n_sizes=n_sizes, n_draws=n_draws,
                       n_reruns=n_reruns)
    below = plan.sizes[plan.sizes < n_points]
    longest = int(below[-1]) if len(below) else 0
    return (n_points ** 2 + plan.n_reruns * plan.n_draws * longest ** 2) // 2  # float32: half


def phdim_batch(clouds, seeds, labels, *, alpha, protocol, min_points, max_points, n_sizes,
                n_draws, n_reruns, metric, device):
    """PH dimension of equally shaped Euclidean clouds (a :func:`phdim_batch_key` group).

    The same numbers as :func:`_estimate_cloud` on each
    cloud (same subsamples, float32 squared distances, the same MST edge
    lengths summed in the same ascending order).
    """
    settings = dict(alpha=alpha, protocol=protocol, min_points=min_points,
                    max_points=max_points, n_sizes=n_sizes, n_draws=n_draws,
                    n_reruns=n_reruns, metric=metric, device=device)
    c, n_points = len(clouds), clouds[0].shape[0]
    plan = _phdim_plan(n_points, protocol=protocol, min_points=min_points,
                       max_points=max_points, n_sizes=n_sizes, n_draws=n_draws,
                       n_reruns=n_reruns)
    seeds = as_seeder(seeds)  # a list of seeds, from a direct call: given by position
    if len(plan.sizes) < MIN_N_SIZES:  # too few points: NaN and the per-cloud message
        return [_estimate_cloud(cloud, seed, label, **settings)
                for cloud, seed, label in zip(clouds, seeds(clouds), labels)]
    below = plan.sizes[plan.sizes < plan.pool_size]
    longest = int(below[-1]) if len(below) else 0
    n_orders = plan.n_reruns * plan.n_draws
    D = np.empty((c, n_points, n_points), dtype=np.float32)
    # (cloud, rerun * n_draws + draw): the sub-matrix of the largest size below the pool;
    # the smaller sizes are its leading blocks (nested prefixes of one order)
    blocks = np.empty((c, n_orders, longest, longest), dtype=np.float32)
    duplicated = np.empty(c, dtype=bool)
    # a few clouds at a time: their points, distances and gather indices stay in cache
    step = max(1, _CENTRED_ENTRIES // clouds[0].size)
    centred = np.empty((min(step, c), *clouds[0].shape))
    keys = []
    for start in range(0, c, step):
        stop = min(start + step, c)
        keys += seeds.keys(clouds[start:stop])  # the content keys while the clouds are in cache
        duplicated[start:stop] = _pool_distances(clouds[start:stop], centred[:stop - start],
                                                 out=D[start:stop])
    seeds = seeds.seeds_of(keys)  # all at once: the hash is vectorised over the keys
    if longest:
        orders = np.empty((min(step, c), n_orders, n_points), dtype=np.intp)
        generators = seeded_generators(seeds)  # default_rng(seed) of each cloud, in turn
        for start in range(0, c, step):
            stop = min(start + step, c)
            drawn = orders[:stop - start]
            for cloud_orders, rng in zip(drawn, generators):
                _shuffled_orders(rng, cloud_orders)
            _sub_matrices(D[start:stop], drawn[:, :, :longest], out=blocks[start:stop])
    power = alpha * 0.5  # squared distances: E = sum(edge2 ** (alpha / 2))
    E = np.empty((c, plan.n_reruns, len(plan.sizes), plan.n_draws))
    if plan.sizes[-1] >= plan.pool_size:
        E[:, :, -1, :] = _mst_length_sums(D, power)[:, None, None]
    blocks = blocks.reshape(c * n_orders, longest, longest)
    for s, m in enumerate(below):
        sums = _mst_length_sums(blocks[:, :m, :m], power)
        E[:, :, s, :] = sums.reshape(c, plan.n_reruns, plan.n_draws)
    with np.errstate(divide="ignore", invalid="ignore"):
        logE = np.log(E)
    finite = np.isfinite(logE).all(axis=(1, 2, 3))
    fit = np.flatnonzero(finite & ~duplicated)
    fitted = dict(zip(fit, _fit_results(plan, logE[fit], alpha, [labels[i] for i in fit],
                                        ambient=clouds[0].shape[1])))  # Euclidean clouds
    results = []
    for i in range(c):
        if duplicated[i]:  # the per-cloud path counts them, warns and decides
            results.append(_estimate_cloud(clouds[i], seeds[i], labels[i], **settings))
        elif not finite[i]:
            results.append((_nan_result(), [_infinite_length_message(labels[i])]))
        else:
            values, message = fitted[i]
            results.append((values, [message] if message else []))
    return results


def _pool_distances(clouds, centred, out):
    """Squared distances of the centred clouds into ``out`` (float32, ``(c, n, n)``).

    ``centred`` is a ``(c, n, d)`` float64 buffer for the centred points. Returns, per
    cloud, whether a point has a duplicate (a zero off the diagonal of the float64
    distances).
    """
    from sktopo._distance import batched_squared_euclidean_distances

    for x, buffer in zip(_unit_scaled(clouds), centred):
        # as the per-cloud path: smaller norms, less cancellation in |x|^2 + |y|^2 - 2 x.y
        np.subtract(x, x.mean(axis=0), out=buffer)
    D2 = batched_squared_euclidean_distances(centred)
    idx = np.arange(D2.shape[1])
    D2[:, idx, idx] = np.inf
    duplicated = (D2.min(axis=2) == 0).any(axis=1)
    D2[:, idx, idx] = 0.0
    out[...] = D2  # rounded to float32: what the per-cloud path feeds its MSTs
    return duplicated


def _sub_matrices(D, orders, out):
    """``out[i, j] = D[i][orders[i, j]][:, orders[i, j]]``, by one flat ``np.take``."""
    c, n, _ = D.shape
    starts = orders * n + (np.arange(c) * n * n)[:, None, None]  # rows, as flat offsets
    index = starts[:, :, :, None] + orders[:, :, None, :]
    np.take(D.reshape(-1), index, out=out, mode="clip")  # valid indices: no checks, no buffer


def _mst_length_sums(D, power):
    """``sum(edge ** power)`` of the minimum spanning tree of every matrix of ``D``."""
    from sktopo._mst import batched_mst_edge_lengths

    lengths = batched_mst_edge_lengths(D).astype(np.float64)
    return np.sum(lengths ** power, axis=1)
