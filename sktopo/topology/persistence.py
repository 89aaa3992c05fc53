"""Vietoris-Rips persistence diagrams of point clouds: :class:`PersistenceDiagram`.

One diagram per cloud of a collection (see :mod:`sktopo._collections`), in the
same container shape: a list gives a list of :class:`~sktopo.Diagram`, a
Series a Series with the same index, a DataFrame a DataFrame with the same
index and columns. :func:`persistence` does the same for one cloud.

How the work is done (see :mod:`sktopo.topology.engines` for the engines and
their shared conventions, and :mod:`sktopo.topology.landmarks` for the
landmark guarantee):

1. each cloud is validated (finite numbers, at least 2 points; duplicates are
   fine: they only add zero-length bars, which are dropped);
2. with ``n_landmarks``, a greedy max-min subsample replaces the cloud and
   its covering radius is recorded in the diagram;
3. the memory of the computation is estimated before any ``n x n`` matrix is
   built, and a :class:`MemoryError` says what to do when it is over
   ``memory_limit``;
4. the engine (``backend``) computes the bars.

Clouds are processed in parallel with joblib (``n_jobs``); the result does not
depend on ``n_jobs`` nor on the other rows: each cloud's landmark seed is
derived from ``random_state`` and a hash of the cloud's own values with
:class:`numpy.random.SeedSequence`, so a cloud gets the same landmarks in any
collection, row order or cross-validation split.
"""

from __future__ import annotations

import hashlib
import re
from functools import partial
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._collections import Collection, check_cloud, check_collection, check_distance_matrix
from .._device import resolve_device
from .._parallel import effective_jobs, run_parallel
from ..diagram import Diagram
from ._base import check_homology_dimensions
from .engines import ENGINES, compute_bars, resolve_engine
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


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % k for k in range(2, int(p**0.5) + 1))


def _check_device(device, engine: str):
    """The torch device of the MST engine, or None for the numpy path."""
    resolved = resolve_device(device, owner="PersistenceDiagram")
    if resolved == "cpu" or engine != "mst":
        return None
    return resolved


class PersistenceDiagram(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
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
        zero diagonal (infinite entries mean "no edge").
    metric_params : dict, default=None
        Extra arguments of the metric.
    max_edge_length : float, default=inf
        Edges longer than this never enter the filtration; classes alive at
        that scale get death ``inf`` (and are read as living until the
        threshold by features, see :mod:`sktopo.diagram`). A finite value
        also lets the engines work from a sparse edge list when the dense
        matrix would not fit in ``memory_limit``.
    coeff : int, default=2
        Prime field of coefficients Z/pZ.
    n_landmarks : int, default=None
        Compute the diagram of a greedy max-min subsample of this many points
        instead of the whole cloud (clouds with fewer points are used whole).
        The diagram records ``n_landmarks`` and ``covering_radius`` ``eps``;
        its bottleneck distance to the full cloud's diagram is at most
        ``2 * eps`` (see :mod:`sktopo.topology.landmarks`).
    backend : {"auto", "mst", "ripser", "giotto"}, default="auto"
        Engine. ``"auto"`` uses the exact minimum-spanning-tree engine when
        only H0 is asked for, giotto-ph for H1 and above when it is installed,
        else ripser.py. ``"giotto"`` needs ``pip install sktopo[fast]``
        (giotto-ph is AGPL-3.0).
    memory_limit : int, str or None, default="4GiB"
        Largest memory one cloud's computation may take, in bytes or as a
        string such as ``"16GiB"``. The estimate is made before anything big
        is allocated; above it a :class:`MemoryError` suggests
        ``n_landmarks`` or ``max_edge_length``. ``None`` disables the check.
        With ``n_jobs`` clouds run at once, each within this limit.
    device : {"cpu", "auto", "cuda"} or str, default="cpu"
        Where the MST engine (H0 only) runs: ``"cpu"`` uses numpy (float64);
        a torch device uses torch distances and Boruvka in float32 there;
        ``"auto"`` takes CUDA when available. Other engines run on the CPU.
    n_jobs : int, default=None
        Clouds processed in parallel (joblib). When there are fewer clouds
        than workers, the remaining cores go to giotto-ph's own threads.
    random_state : int, RandomState instance or None, default=None
        Seeds the first landmark of each cloud (only used with
        ``n_landmarks``), together with a hash of the cloud: the same seed
        gives the same diagram of a cloud for any ``n_jobs`` and whatever
        the other rows are.
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

    See Also
    --------
    persistence : the same for one cloud.
    sktopo.DiagramFeatures : feature tables from the diagrams.

    Notes
    -----
    Zero-length bars are dropped by every engine; H0 has one infinite bar
    per connected component (one for the whole cloud unless
    ``max_edge_length`` cuts it). Values from ripser.py and giotto-ph are
    float32 computations; the MST engine on the CPU is float64.

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
        "backend": [StrOptions({"auto", *ENGINES})],
        "memory_limit": [Interval(Real, 0, None, closed="neither"), str, None],
        "device": "no_validation",  # a string or a torch.device: checked in fit
        "n_jobs": [Integral, None],
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
        backend="auto",
        memory_limit="4GiB",
        device="cpu",
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
        self._check_collection(X)
        return self

    def _validate_settings(self):
        name = type(self).__name__
        # None is refused by _parameter_constraints before this
        self.homology_dimensions_ = check_homology_dimensions(self.homology_dimensions, name)
        if not _is_prime(int(self.coeff)):
            raise ValueError(f"{name}: coeff must be a prime number (the field Z/pZ); got {self.coeff}.")
        if self.metric != "precomputed" and isinstance(self.metric, str):
            _check_metric_name(self.metric, name)
        self.memory_limit_ = parse_memory(self.memory_limit)
        self.engine_ = resolve_engine(self.backend, self.homology_dimensions_)
        self._device = _check_device(self.device, self.engine_)

    def _check_collection(self, X):
        name = type(self).__name__
        if self.metric == "precomputed":
            return check_collection(X, cell="distance", estimator=name,
                                    one_cloud="sktopo.persistence", min_points=2)
        return check_collection(X, cell="cloud", estimator=name,
                                one_cloud="sktopo.persistence", min_points=2)

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
        return self._diagrams(self._check_collection(X))

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
        return self._diagrams(self._check_collection(X))

    def _diagrams(self, collection):
        clouds = collection.flat()
        labels = [collection.cell_label(i, j) for i, j in collection.positions()]
        seeds = _cloud_seeds(self.random_state, clouds)
        n_jobs = effective_jobs(self.n_jobs)
        # cores left over when there are fewer clouds than workers go to giotto-ph's threads
        n_threads = n_jobs // min(n_jobs, len(clouds))
        one_cloud = partial(
            _cloud_diagram,
            homology_dimensions=self.homology_dimensions_,
            engine=self.engine_,
            metric=self.metric,
            metric_params=self.metric_params,
            threshold=float(self.max_edge_length),
            coeff=int(self.coeff),
            n_landmarks=self.n_landmarks,
            memory_limit=self.memory_limit_,
            device=self._device,
            n_threads=n_threads,
            estimator=type(self).__name__,
        )
        diagrams = run_parallel(one_cloud, zip(clouds, labels, seeds), n_jobs=self.n_jobs,
                                verbose=self.verbose, desc=type(self).__name__, unit="cloud")
        out = collection.rebuild(diagrams)
        if collection.kind in ("list", "array") and self._output_is_pandas():
            out = pd.Series(diagrams, index=collection.row_index, dtype=object)
        return out

    # -------------------------------------------------------------- output
    def set_output(self, *, transform=None):
        """Configure the output container; diagrams are objects, so little changes.

        Outputs already follow the input: a Series or DataFrame of clouds
        gives a Series or DataFrame of diagrams with the same index. With
        ``transform="pandas"``, lists and 3-D arrays give a Series too. This
        method exists so that ``Pipeline.set_output(transform="pandas")``
        works on pipelines that start with this transformer.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"}, default=None
            ``None`` leaves the configuration unchanged.

        Returns
        -------
        self : PersistenceDiagram
        """
        if transform is not None:
            self._output_transform = transform
        return self

    def _output_is_pandas(self) -> bool:
        configured = getattr(self, "_output_transform", None)
        if configured is None or configured == "default":
            from sklearn import get_config

            configured = get_config().get("transform_output", "default") if configured is None else configured
        return configured == "pandas"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # a sample is a whole cloud: 2-D tabular X is not accepted, 3-D arrays
        # (equal-sized clouds) are; "pairwise" stays False even for
        # metric="precomputed", since the matrices are within clouds, not
        # between samples (cross-validation must not slice them).
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = []
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags


def _check_metric_name(metric: str, estimator: str) -> None:
    from sklearn.metrics.pairwise import _VALID_METRICS, PAIRWISE_DISTANCE_FUNCTIONS

    valid = set(_VALID_METRICS) | set(PAIRWISE_DISTANCE_FUNCTIONS)
    if metric not in valid:
        raise ValueError(
            f"{estimator}: unknown metric {metric!r}; use a metric of "
            f"sklearn.metrics.pairwise_distances (e.g. 'euclidean', 'cosine', 'manhattan'), "
            f"a callable, or 'precomputed' for distance matrices."
        )


def _cloud_seeds(random_state, clouds) -> list:
    """One seed per cloud, from ``random_state`` and the cloud's own bytes.

    Seeding from the content (not the position) makes a cloud's landmarks the
    same whatever else is in the collection: for any ``n_jobs``, any row
    order, and any cross-validation split.
    """
    if random_state is None:
        return [None] * len(clouds)
    if isinstance(random_state, np.random.RandomState):
        entropy = int(random_state.randint(2**31 - 1))
    else:
        entropy = int(random_state)
    seeds = []
    for cloud in clouds:
        digest = hashlib.blake2b(np.ascontiguousarray(cloud).view(np.uint8), digest_size=8).digest()
        sequence = np.random.SeedSequence([entropy, int.from_bytes(digest, "little")])
        seeds.append(int(sequence.generate_state(1)[0]))
    return seeds


def _cloud_diagram(data, label, seed, *, homology_dimensions, engine, metric, metric_params,
                   threshold, coeff, n_landmarks, memory_limit, device, n_threads, estimator):
    """Diagram of one validated cloud (or distance matrix)."""
    n_points = data.shape[0]
    covering_radius = 0.0
    n_used = n_points
    if n_landmarks is not None and n_landmarks < n_points:
        indices, covering_radius = greedy_landmarks(
            data, n_landmarks, metric=metric, metric_params=metric_params, random_state=seed
        )
        data = data[np.ix_(indices, indices)] if metric == "precomputed" else data[indices]
        n_used = len(indices)
    bars = compute_bars(
        data,
        engine=engine,
        homology_dimensions=homology_dimensions,
        metric=metric,
        metric_params=metric_params,
        threshold=threshold,
        coeff=coeff,
        n_threads=n_threads,
        device=device,
        memory_limit=memory_limit,
        where=f"{estimator}: the cloud at {label}",
    )
    return Diagram(
        bars,
        n_points=n_points,
        n_landmarks=n_used,
        covering_radius=covering_radius,
        threshold=threshold,
        coeff=coeff,
        metric=metric if isinstance(metric, str) else getattr(metric, "__name__", "callable"),
        engine=engine,
    )


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
        X = check_distance_matrix(X, "X", prefix="persistence: ", min_points=2)
    else:
        X = check_cloud(X, "X", prefix="persistence: ", min_points=2, one_cloud="sktopo.persistence")
    # X is checked: fit_transform([X]) would check it again (an n^2 symmetry
    # test for a distance matrix), so take the estimator's steps after that
    estimator._validate_params()
    estimator._validate_settings()
    return estimator._diagrams(Collection(cells=[[X]], kind="list"))[0]
