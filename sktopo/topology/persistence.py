"""Vietoris-Rips persistence diagrams of point clouds: :class:`PersistenceDiagram`.

One diagram per cloud of a collection (see :mod:`sktopo._collections`), in the
same container shape: a list gives a list of :class:`~sktopo.Diagram`, a
Series a Series with the same index, a DataFrame a DataFrame with the same
index and columns. :func:`persistence` does the same for one cloud.

How the work is done (see :mod:`sktopo.topology.engines` for the engine
registry and the conventions every engine shares, and
:mod:`sktopo.topology.landmarks` for the landmark guarantee):

1. each cloud is validated (finite numbers, at least 2 points; duplicates are
   fine: they only add zero-length bars, which are dropped);
2. with ``n_landmarks``, a greedy max-min subsample replaces the cloud and
   its covering radius is recorded in the diagram;
3. clouds of up to ``BATCH_MAX_POINTS`` points go to the many-cloud
   scheduler (:mod:`sktopo.topology.engines._scheduler`: batched distances
   and MSTs, the engine's compiled core per cloud, threads or processes as
   the engine allows), the others one by one through
   :func:`~sktopo.topology.engines.compute_bars`, which estimates the memory
   of the computation before any ``n x n`` matrix is built.

Clouds are processed in parallel with joblib (``n_jobs``); the result does not
depend on ``n_jobs`` nor on the other rows: each cloud's landmark seed comes
from ``random_state`` and the cloud's content (:func:`sktopo._seeding.cloud_seeds`),
so a cloud gets the same landmarks in any collection, row order or
cross-validation split, and a cloud and its distance matrix pick the same
landmarks.
"""

from __future__ import annotations

import re
from functools import partial
from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._base import CollectionMapper, remember_input
from .._collections import (
    Collection,
    check_cloud,
    check_collection,
    _refuse_non_real,
    check_distance_matrix,
    require_finite,
)
from .._device import cuda_possible, resolve_device
from .._distance import check_memory, pairwise_distances
from .._parallel import N_JOBS, effective_jobs, gc_paused, run_parallel
from .._progress import progress
from .._seeding import cloud_seeds
from ..diagram import Diagram
from ._base import check_homology_dimensions
from .engines import (
    ENGINES,
    PersistenceSettings,
    check_coeff,
    compute_bars,
    get_engine,
    resolve_engine,
)
from .engines._scale import rescale
from .engines._scheduler import batchable, batched_bars
from .landmarks import greedy_landmarks

__all__ = ["PersistenceDiagram", "persistence", "parse_memory"]

_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


def parse_memory(value, name: str = "memory_limit"):
    """Bytes from a number or a string such as ``"4GiB"``, ``"500 MB"``; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise ValueError(
                f"{name}={value!r} is not a memory size; give bytes as a number or a string "
                f"such as '4GiB', '512MiB' or '2GB' (None disables the check)."
            )
        value = float(match.group(1)) * _UNITS[unit]
    if isinstance(value, bool) or not isinstance(value, Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number of bytes, a string such as '4GiB', or None; got {value!r}.")
    return int(value)


def _check_device(device, engine: str, owner: str = "PersistenceDiagram"):
    """The torch device of the MST engine, or None for the numpy path.

    The shared rule of :func:`sktopo._device.resolve_device`; only the MST
    engine runs on a torch device, so for the other engines ``"auto"`` means
    the CPU without importing torch (other values are still checked).
    """
    if isinstance(device, str) and device == "auto" and (engine != "mst" or not cuda_possible()):
        return None
    resolved = resolve_device(device, owner=owner)
    if resolved == "cpu" or engine != "mst":
        return None
    return resolved


class PersistenceDiagram(CollectionMapper):
    """Vietoris-Rips persistence diagram of every cloud of a collection.

    Parameters
    ----------
    homology_dimensions : sequence of int, default=(0, 1)
        Homology dimensions to compute, e.g. ``(0,)``, ``(0, 1)`` or
        ``(0, 1, 2)``.
    metric : str or callable, default="euclidean"
        Metric between points, any accepted by
        :func:`sklearn.metrics.pairwise_distances`; or ``"precomputed"``, in
        which case every cell is a square, symmetric distance matrix with a
        zero diagonal (infinite entries mean "no edge"), dense or
        ``scipy.sparse`` (a graph: stored entries are the edges, an explicit
        0 is an edge of length 0, entries not stored are missing edges, as in
        ripser.py).
    metric_params : dict, default=None
        Extra arguments of the metric.
    max_edge_length : float, default=inf
        Edges longer than this never enter the filtration; classes alive at
        that scale get death ``inf`` (and are read as living until the
        threshold by features, see :mod:`sktopo.diagram`). A finite value
        also lets the engines work from a sparse edge list when the dense
        matrix would not fit in ``memory_limit``.
    coeff : int, default=2
        Prime field of coefficients Z/pZ, a prime from 2 to 127 (the range
        ripser.py and giotto-ph compute correctly; larger fields hang,
        crash or give wrong deaths there, so they are refused up front).
    n_landmarks : int, default=None
        Compute the diagram of a greedy max-min subsample of this many points
        instead of the whole cloud (clouds with fewer points are used whole).
        The diagram records ``n_landmarks`` and ``covering_radius`` ``eps``;
        its bottleneck distance to the full cloud's diagram is at most
        ``2 * eps`` (see :mod:`sktopo.topology.landmarks`).
    representatives : bool, default=False
        Keep, with every diagram, the input indices of a representative of
        each H0 and H1 bar: ``diagram.representatives[q][k]`` goes with
        ``diagram[q][k]`` (H0: the two endpoints of the tree edge that kills
        the bar, or one point of a component that never dies; H1: the loop,
        in cycle order, that the bar's birth edge closes). Indices refer to
        the cloud's rows, also with ``n_landmarks``. Needs a dense distance
        matrix per cloud (not scipy.sparse input) and skips the batched
        path. See :mod:`sktopo.topology.representatives`.
    backend : {"auto", "mst", "redzed", "ripser", "giotto"}, default="auto"
        Engine (:mod:`sktopo.topology.engines`). ``"auto"`` chooses by
        capability: the exact minimum-spanning-tree engine when only H0 is
        asked for, redzed-tda (MIT) for H1 and above over Z/2, ripser.py for
        other fields (``coeff``) and for clouds that need a sparse edge list;
        if redzed-tda cannot be imported or fails, ripser.py takes its jobs
        with one warning. ``"giotto"`` (giotto-ph, AGPL-3.0) is used only when
        named and needs ``pip install sktopo[fast]``. A backend that cannot
        do the job (``"mst"`` for H1, ``"redzed"`` with ``coeff=3``) raises
        a ValueError.
    memory_limit : int, str or None, default="4GiB"
        Largest memory one cloud's computation may take, in bytes or as a
        string such as ``"16GiB"``. The estimate is made before anything big
        is allocated; above it a :class:`MemoryError` suggests
        ``n_landmarks`` or ``max_edge_length``. ``None`` disables the check.
        With ``n_jobs`` clouds run at once, each within this limit.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        Where the MST engine (H0 only) runs, by the package's one device rule
        (:mod:`sktopo._device`): ``"auto"`` takes CUDA when torch sees a GPU,
        else the CPU; ``"cpu"`` uses numpy (float64); a torch device uses
        torch distances and minimum spanning trees in float32 there. Other
        engines run on the CPU (``"auto"`` then never imports torch).
    n_jobs : int, default=None
        Clouds processed in parallel (joblib). When there are fewer clouds
        than workers, the remaining cores go to giotto-ph's own threads.
    random_state : int, RandomState instance or None, default=None
        Seeds the first landmark of each cloud (only used with
        ``n_landmarks``), together with the cloud's content
        (:func:`sktopo._seeding.cloud_seeds`): the same seed gives the same
        diagram of a cloud for any ``n_jobs``, whatever the other rows are,
        and whether the cloud comes as points or as its distance matrix.
    verbose : int, default=0
        Show a progress bar over clouds when positive.

    Attributes
    ----------
    homology_dimensions_ : tuple of int
        The dimensions computed, sorted.
    engine_ : str
        The engine ``backend`` resolved to.
    memory_limit_ : int or None
        ``memory_limit`` in bytes.
    n_features_in_ : int
        The number of columns (sources) of the collection seen in ``fit``: 1 for a
        list, a 3-D array or a Series, the number of columns for a DataFrame (as
        every sktopo transformer; a cloud's own coordinates are not features).
    feature_names_in_ : ndarray of str
        The DataFrame's column names, when they are all strings.

    See Also
    --------
    persistence : the same for one cloud.
    sktopo.DiagramFeatures : feature tables from the diagrams.

    Notes
    -----
    Zero-length bars are dropped by every engine; H0 has one infinite bar
    per connected component (one for the whole cloud unless
    ``max_edge_length`` cuts it). Values from redzed-tda, ripser.py and giotto-ph are
    float32 computations; the MST engine on the CPU is float64.

    Extreme scales are handled exactly: a cloud whose values (or a matrix
    whose distances) lie far outside ``[2**-60, 2**60]`` is multiplied by a
    power of two before the computation and its bars divided by it after,
    which is exact in floating point; squared distances neither overflow nor
    underflow. A metric other than the Minkowski family and the
    scale-invariant ones that still overflows raises a ValueError.

    Examples
    --------
    >>> from sktopo import PersistenceDiagram
    >>> from sktopo.datasets import make_circle
    >>> clouds = [make_circle(100, noise=0.05, random_state=s) for s in range(3)]
    >>> diagrams = PersistenceDiagram(homology_dimensions=(0, 1)).fit_transform(clouds)
    >>> len(diagrams), diagrams[0].dims
    (3, (0, 1))
    >>> bool(diagrams[0].finite(1)[:, 1].max() > 1.5)  # the circle's loop
    True
    """

    _parameter_constraints: dict = {
        "homology_dimensions": [Interval(Integral, 0, None, closed="left"), "array-like"],
        "metric": [str, callable],
        "metric_params": [dict, None],
        "max_edge_length": [Interval(Real, 0, np.inf, closed="both")],
        "coeff": [Interval(Integral, 2, None, closed="left")],
        "n_landmarks": [Interval(Integral, 2, None, closed="left"), None],
        "representatives": ["boolean"],
        "backend": [StrOptions({"auto", *ENGINES})],
        "memory_limit": [Interval(Real, 0, None, closed="neither"), str, None],
        "device": "no_validation",  # a string or a torch.device: checked in fit
        "n_jobs": N_JOBS,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        homology_dimensions=(0, 1),
        *,
        metric="euclidean",
        metric_params=None,
        max_edge_length=np.inf,
        coeff=2,
        n_landmarks=None,
        representatives=False,
        backend="auto",
        memory_limit="4GiB",
        device="auto",
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.homology_dimensions = homology_dimensions
        self.metric = metric
        self.metric_params = metric_params
        self.max_edge_length = max_edge_length
        self.coeff = coeff
        self.n_landmarks = n_landmarks
        self.representatives = representatives
        self.backend = backend
        self.memory_limit = memory_limit
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters and the collection; nothing is learnt.

        Parameters
        ----------
        X : list, 3-D array, Series or DataFrame of clouds
            Clouds ``(n_points, n_features)``, or square distance matrices
            with ``metric="precomputed"``.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        self._validate_settings()
        remember_input(self, self._check_collection(X))
        return self

    def _validate_settings(self):
        name = type(self).__name__
        # None is refused by _parameter_constraints before this
        self.homology_dimensions_ = check_homology_dimensions(self.homology_dimensions, name)
        check_coeff(self.coeff, name)
        if self.metric != "precomputed" and isinstance(self.metric, str):
            _check_metric_name(self.metric, name)
        self.memory_limit_ = parse_memory(self.memory_limit)
        self.engine_ = resolve_engine(self.backend, self.homology_dimensions_, name,
                                      coeff=int(self.coeff))
        self._device = _check_device(self.device, self.engine_, name)

    def _check_collection(self, X, *, finite=True, keep_float32=False):
        name = type(self).__name__
        if self.metric == "precomputed":
            limit = getattr(self, "memory_limit_", None)

            def check(value, label):
                return check_precomputed(value, label, prefix=f"{name}: ", min_points=2,
                                         memory_limit=limit)

            return check_collection(X, cell=check, estimator=name,
                                    one_cloud="sktopo.persistence", min_points=2)
        return check_collection(X, cell="cloud", estimator=name,
                                one_cloud="sktopo.persistence", min_points=2, finite=finite,
                                keep_float32=keep_float32)

    # ------------------------------------------------------------ transform
    def transform(self, X):
        """Compute the persistence diagram of every cloud.

        Parameters
        ----------
        X : list, 3-D array, Series or DataFrame of clouds
            As in :meth:`fit`.

        Returns
        -------
        diagrams : list, Series or DataFrame of Diagram
            Same container shape as ``X``: a list for lists and 3-D arrays
            (a Series when pandas output is configured with
            :meth:`set_output`), a Series or DataFrame with ``X``'s index,
            columns and name otherwise.
        """
        check_is_fitted(self, "engine_")
        # diagrams_of checks finiteness and converts float32 where each cloud is computed
        with gc_paused():  # thousands of small objects, no reference cycles
            return self._diagrams(self._check_collection(X, finite=False, keep_float32=True))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit and transform in one go, validating the collection once.

        Parameters
        ----------
        X : list, 3-D array, Series or DataFrame of clouds
            As in :meth:`fit`.
        y : None
            Ignored.

        Returns
        -------
        diagrams : list, Series or DataFrame of Diagram
            As in :meth:`transform`.
        """
        self._validate_settings()
        # diagrams_of checks finiteness and converts float32 where each cloud is computed
        collection = self._check_collection(X, finite=False, keep_float32=True)
        remember_input(self, collection)
        with gc_paused():  # thousands of small objects, no reference cycles
            return self._diagrams(collection)

    def _diagrams(self, collection):
        clouds = collection.flat()
        labels = [collection.cell_label(i, j) for i, j in collection.positions()]
        settings = PersistenceSettings(
            homology_dimensions=self.homology_dimensions_,
            engine=self.engine_,
            metric=self.metric,
            metric_params=self.metric_params,
            threshold=float(self.max_edge_length),
            coeff=int(self.coeff),
            n_landmarks=self.n_landmarks,
            representatives=bool(self.representatives),
            auto=self.backend == "auto",
            memory_limit=self.memory_limit_,
            device=self._device,
            estimator=type(self).__name__,
        )
        diagrams = diagrams_of(clouds, labels, settings, random_state=self.random_state,
                               n_jobs=self.n_jobs, verbose=self.verbose)
        return self._rebuild(collection, diagrams)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()  # CollectionMapper's: cells, not a 2-D table
        # "pairwise" stays False even for metric="precomputed": the matrices are
        # within clouds, not between samples (cross-validation must not slice them)
        tags.requires_fit = True
        return tags


def check_precomputed(value, label, *, prefix="", min_points=2, memory_limit=None):
    """A dense distance matrix (checked by the collection contract) or a scipy.sparse one.

    A sparse matrix is a graph: its stored entries are the edges (an explicit
    0 is an edge of length 0, a duplicate point), entries not stored are
    missing edges (infinite distance), as in ripser.py. It must be square,
    symmetric (same pattern, values within 1e-6 relative), non-negative, with
    a zero diagonal. Returned as CSR float64 without infinite entries.

    A dense matrix of another dtype (float32) is converted to float64: that copy
    is checked against ``memory_limit`` before it is made.
    """
    import scipy.sparse as sp

    if not sp.issparse(value):
        _check_conversion(value, label, prefix, memory_limit)
        return check_distance_matrix(value, label, prefix=prefix, min_points=min_points,
                                     allow_inf=True)
    _refuse_non_real(value, f"{prefix}the sparse distance matrix at {label}",
                     "Give a matrix of real distances.")
    A = sp.csr_matrix(value, dtype=np.float64, copy=True)
    where = f"{prefix}the sparse distance matrix at {label}"
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"{where} has shape {A.shape}; it must be square.")
    if A.shape[0] < min_points:
        raise ValueError(f"{where} covers {A.shape[0]} point(s); at least {min_points} are needed.")
    if np.isnan(A.data).any():
        raise ValueError(f"{where} contains NaN values.")
    if (A.data < 0).any():
        raise ValueError(f"{where} has negative entries.")
    diagonal = A.diagonal()
    if diagonal.any():
        raise ValueError(
            f"{where} has non-zero diagonal entries (first at point "
            f"{int(np.flatnonzero(diagonal)[0])}); a point is at distance 0 from itself."
        )
    coo = A.tocoo()
    # stored zeros on the diagonal mean nothing; infinite entries are missing edges
    keep = (coo.row != coo.col) & np.isfinite(coo.data)
    A = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=A.shape)
    A.sort_indices()
    pattern = sp.csr_matrix((np.ones(A.nnz), A.indices, A.indptr), shape=A.shape)
    asymmetric = abs(pattern - pattern.T).nnz > 0
    if not asymmetric and A.nnz:
        diff = abs(A - A.T)
        asymmetric = diff.nnz > 0 and diff.max() > 1e-6 * np.abs(A.data).max() + 1e-9
    if asymmetric:
        raise ValueError(
            f"{where} is not symmetric (its stored entries, or their values, differ from its "
            f"transpose's). Symmetrise it, e.g. A.maximum(A.T), if that is what you mean."
        )
    return A


def _check_conversion(value, label, prefix, memory_limit):
    """A MemoryError before a dense non-float64 matrix is copied to float64 beyond the limit."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if memory_limit is None or shape is None or len(shape) != 2 or dtype == np.float64:
        return
    check_memory(
        8 * int(shape[0]) * int(shape[1]), memory_limit,
        f"{prefix}the float64 copy of the {dtype} distance matrix at {label} ({shape[0]} x "
        f"{shape[1]})",
        "Pass the matrix as float64 (the copy is then not needed, and the computation is "
        "estimated before it starts), pass the edges you need as a scipy.sparse matrix, or "
        "raise memory_limit (None disables this check).",
    )


def _check_metric_name(metric: str, estimator: str) -> None:
    from sklearn.metrics.pairwise import _VALID_METRICS, PAIRWISE_DISTANCE_FUNCTIONS

    valid = set(_VALID_METRICS) | set(PAIRWISE_DISTANCE_FUNCTIONS)
    if metric not in valid:
        raise ValueError(
            f"{estimator}: unknown metric {metric!r}; use a metric of "
            f"sklearn.metrics.pairwise_distances (e.g. 'euclidean', 'cosine', 'manhattan'), "
            f"a callable, or 'precomputed' for distance matrices."
        )


# ------------------------------------------------------------------ the work
def diagrams_of(clouds, labels, settings: PersistenceSettings, *, random_state=None,
                n_jobs=None, verbose=0) -> list:
    """Diagrams of validated clouds (or distance matrices), in order.

    1. landmarks (``settings.n_landmarks``), seeded per cloud by content;
    2. clouds of at most ``BATCH_MAX_POINTS`` points whose dense computation
       fits ``memory_limit``: the many-cloud scheduler
       (:func:`~sktopo.topology.engines._scheduler.batched_bars`);
    3. the others one by one through :func:`~sktopo.topology.engines.compute_bars`.
    """
    n_clouds = len(clouds)
    if n_clouds == 0:
        return []
    metric_params = settings.params or None
    n_points = [c.shape[0] for c in clouds]
    # clouds may come unchecked for finiteness and in float32 (check_collection(finite=
    # False, keep_float32=True)): the batched Euclidean path reads finiteness off the
    # squared norms and converts each cloud for its product; the others are done here
    fused = settings.plain_euclidean and not settings.precomputed and settings.device is None
    prefix = settings.lead()

    def checked(k):
        require_finite(clouds[k], labels[k], prefix=prefix)
        return np.asarray(clouds[k], dtype=np.float64)

    if not settings.precomputed and (not fused or settings.n_landmarks is not None):
        clouds = [checked(k) for k in range(n_clouds)]
    subsets = [None] * n_clouds
    radii = [0.0] * n_clouds
    if settings.n_landmarks is not None:
        need = [k for k in range(n_clouds) if settings.n_landmarks < n_points[k]]
        if need:
            seeds = cloud_seeds(random_state, [clouds[k] for k in need], metric=settings.metric,
                                metric_params=metric_params)
            pick = partial(greedy_landmarks, n_landmarks=settings.n_landmarks,
                           metric=settings.metric, metric_params=metric_params)
            picked = run_parallel(_LandmarksTask(pick), [(clouds[k], seed) for k, seed in zip(need, seeds)],
                                  n_jobs=n_jobs if len(need) > 1 else None, verbose=verbose,
                                  desc=f"{settings.estimator or 'persistence'} landmarks", unit="cloud")
            for k, (indices, radius) in zip(need, picked):
                subsets[k], radii[k] = indices, radius
    data = [_subset(c, idx, settings.precomputed) for c, idx in zip(clouds, subsets)]

    fits = {}  # by shape: the same answer for every cloud of a shape (but see batchable)
    batched = [k for k in range(n_clouds) if batchable(data[k], settings, fits)]
    batched_set = set(batched)
    single = [k for k in range(n_clouds) if k not in batched_set]
    if fused and settings.n_landmarks is None:
        for k in single:
            data[k] = checked(k)
    bars = [None] * n_clouds
    workers = effective_jobs(n_jobs)

    if batched:
        batched_bars(data, labels, batched, bars, settings, n_jobs=n_jobs, verbose=verbose)
    if single:
        # cores left over when there are fewer clouds than workers go to giotto-ph's threads
        n_threads = workers // min(workers, len(single))
        one = partial(_one_cloud_bars, settings=settings.with_(n_threads=n_threads))
        caps = get_engine(settings.engine).capabilities
        threads = caps.max_dimension > 0 and caps.releases_gil and caps.thread_safe
        results = run_parallel(one, [(data[k], labels[k]) for k in single], n_jobs=n_jobs,
                               verbose=verbose, desc=settings.estimator or "persistence",
                               unit="cloud", prefer="threads" if threads else None)
        for k, b in zip(single, results):
            bars[k] = b
    metric_name = settings.metric_name
    reps = [None] * n_clouds
    if settings.representatives:
        reps = [_representatives(data[k], bars[k], subsets[k], labels[k], settings)
                for k in range(n_clouds)]
    diagrams = []
    for k in range(n_clouds):
        meta = dict(n_points=n_points[k], n_landmarks=data[k].shape[0], covering_radius=radii[k],
                    threshold=settings.threshold, coeff=settings.coeff, metric=metric_name)
        if k in batched_set:
            # the batched path's bars are checked and in canonical order (the scheduler sorts them)
            diagrams.append(Diagram._from_engine(bars[k], canonical=True, engine=settings.engine,
                                                 **meta))
        else:
            diagrams.append(Diagram(bars[k], representatives=reps[k], engine=settings.engine,
                                    **meta))
    return diagrams


def _representatives(data, bars, subset, label, settings):
    """Representatives of one cloud's H0/H1 bars, as indices of the cloud's rows."""
    from .representatives import bar_representatives

    if hasattr(data, "tocsr"):
        raise ValueError(
            f"{settings.lead()}representatives=True needs a dense distance matrix; the one at "
            f"{label} is scipy.sparse. Pass it as a dense array with np.inf for the missing "
            f"edges (matrix.toarray() and set the missing entries to np.inf)."
        )
    data, scale = rescale(data, settings)
    D = data if settings.precomputed else pairwise_distances(data, settings.metric, **settings.params)
    scaled = {q: b * scale for q, b in bars.items()}
    threshold = settings.threshold * scale
    birth_edges = None
    engine = get_engine(settings.engine)
    if 1 in scaled and engine.capabilities.representatives:
        birth_edges = _birth_edges(engine, D, scaled[1], threshold)
    reps = bar_representatives(D, scaled, [q for q in settings.homology_dimensions if q <= 1],
                               threshold, birth_edges=birth_edges)
    if subset is not None:  # landmark positions -> the cloud's rows
        reps = {q: [np.asarray(subset)[r] for r in rs] for q, rs in reps.items()}
    return reps


def _birth_edges(engine, D, h1, threshold):
    """The birth edge of each bar of ``h1`` (its order) from the engine's simplex pairs, or None.

    The engine runs again on ``D`` with its birth simplices; its bars must be the
    diagram's own, else (None) the edges are found by their lengths.
    """
    dgms, simplices = engine.dense_with_simplices(D, 1, threshold)
    if simplices is None:
        return None
    pairs = np.asarray(dgms[1], dtype=float).reshape(-1, 2)
    keep = np.flatnonzero(pairs[:, 1] > pairs[:, 0])
    theirs = keep[np.lexsort((pairs[keep, 1], pairs[keep, 0]))]
    ours = np.lexsort((h1[:, 1], h1[:, 0]))
    if len(theirs) != len(ours) or not np.array_equal(pairs[theirs], h1[ours]):
        return None
    edges = [None] * len(h1)
    for mine, k in zip(ours, theirs):
        edges[mine] = tuple(simplices[1][k][0])
    return edges


def _one_cloud_bars(data, label, *, settings):
    return compute_bars(data, settings, label=label)


class _LandmarksTask:
    """``(cloud, seed) -> (indices, covering radius)``; a class so that it pickles."""

    def __init__(self, pick):
        self.pick = pick

    def __call__(self, cloud, seed):
        return self.pick(cloud, random_state=seed)


def _subset(data, indices, precomputed):
    if indices is None:
        return data
    if precomputed and hasattr(data, "tocsr"):  # scipy.sparse
        return data.tocsr()[indices][:, indices]
    return data[np.ix_(indices, indices)] if precomputed else data[indices]


def persistence(X, homology_dimensions=(0, 1), **params) -> Diagram:
    """Vietoris-Rips persistence diagram of one cloud.

    Parameters
    ----------
    X : array-like of shape (n_points, n_features), or (n_points, n_points)
        The cloud, or its distance matrix with ``metric="precomputed"``.
    homology_dimensions : sequence of int, default=(0, 1)
        Homology dimensions to compute.
    **params
        Any other parameter of :class:`PersistenceDiagram` (``metric``,
        ``max_edge_length``, ``coeff``, ``n_landmarks``, ``backend``,
        ``memory_limit``, ``device``, ``random_state``, ...).

    Returns
    -------
    diagram : Diagram

    Examples
    --------
    >>> import sktopo
    >>> from sktopo.datasets import make_circle
    >>> d = sktopo.persistence(make_circle(100, random_state=0))
    >>> d[1].shape
    (1, 2)
    """
    estimator = PersistenceDiagram(homology_dimensions=homology_dimensions, **params)
    if params.get("metric") == "precomputed":
        limit = parse_memory(params.get("memory_limit", estimator.memory_limit))
        X = check_precomputed(X, "X", prefix="persistence: ", min_points=2, memory_limit=limit)
    else:
        X = check_cloud(X, "X", prefix="persistence: ", min_points=2, one_cloud="sktopo.persistence")
    # X is checked: fit_transform([X]) would check it again (an n^2 symmetry
    # test for a distance matrix), so take the estimator's steps after that
    estimator._validate_params()
    estimator._validate_settings()
    return estimator._diagrams(Collection(cells=[[X]], kind="list"))[0]
