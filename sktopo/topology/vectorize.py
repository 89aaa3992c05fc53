"""Vectorisations of persistence diagrams for learning: images and landscapes.

Both are our own vectorised numpy implementations rather than wrappers of
persim, because persim's ``PersistenceImager`` cannot be cloned (it has no
``get_params``) and breaks on infinite bars; the tests check the numbers
against persim's ``PersistenceImager`` and ``PersLandscapeExact``.

Infinite bars follow the policy of :mod:`sktopo.diagram`: both read bars
through :meth:`Diagram.finite` (infinite deaths clipped to a finite filtration
threshold, left out when the filtration ran to completion). Ranges and grids
are learned in ``fit`` over every fitted cell (all rows and all columns of a
DataFrame together, so a pixel or grid point means the same thing for every
layer), so the output width is fixed and does not depend on the diagrams
transformed.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.special import ndtr
from sklearn.utils._param_validation import Interval, StrOptions

from ..diagram import Diagram
from ._base import DiagramTransformer, check_range, scale_grids

__all__ = ["PersistenceImage", "PersistenceLandscape"]


class PersistenceImage(DiagramTransformer):
    """Persistence images (Adams et al., 2017) of diagrams, per homology dimension.

    Each finite bar ``(b, d)`` becomes the point ``(b, p)``, ``p = d - b``, of
    the birth-persistence plane, carrying a weight ``w(b, p)`` and spread by an
    isotropic Gaussian of standard deviation ``sigma``. The image is the
    integral of that sum over each pixel of a grid learned in ``fit`` (the
    smallest and largest birth, and persistence from 0 to the largest, of the
    fitted diagrams' bars of each dimension). Mass falling outside the grid is
    not counted, as in persim.

    Infinite bars follow the policy of :mod:`sktopo.diagram`
    (:meth:`Diagram.finite`): clipped to a finite threshold, else left out.

    Parameters
    ----------
    homology_dimensions : int, sequence of int or None, default=None
        Dimensions to describe; ``None`` means every dimension present in the
        fitted diagrams.
    resolution : (int, int), default=(20, 20)
        Number of pixels along the birth and the persistence axis.
    sigma : float or None, default=None
        Standard deviation of the Gaussian, in filtration units (persim's
        ``kernel_params={"sigma": sigma**2}`` is the variance). ``None`` uses
        one pixel: the larger side of a pixel of each dimension's grid.
    weight : {"linear", "persistence"} or callable, default="linear"
        Weight of a bar. ``"linear"``: ``p / p_max`` capped at 1, where
        ``p_max`` is the top of the fitted persistence range (the linear ramp of
        Adams et al.; weights lie in [0, 1] whatever the scale). ``"persistence"``:
        ``p`` itself (persim's default weight). A callable gets the arrays
        ``(birth, persistence)`` and returns one weight per bar; it should
        vanish at ``p = 0`` for the image to be stable.
    birth_range, persistence_range : (float, float) or None, default=None
        Fix the grid instead of learning it (the same for every dimension).
        Useful to compare images fitted separately.

    Attributes
    ----------
    homology_dimensions_ : tuple of int
        Dimensions described, in output order.
    birth_ranges_, persistence_ranges_ : dict of int to (float, float)
        The grid of each dimension. A dimension whose fitted births are all
        equal (H0 of a Rips filtration: every birth is 0) gets a birth range
        centred on that birth, as wide as its persistence range.
    sigmas_ : dict of int to float
        Standard deviation used for each dimension.
    n_features_in_ : int
        Number of columns of the input.

    Notes
    -----
    Column ``H{q}__image_{i}_{j}`` is pixel ``i`` along the birth axis and
    ``j`` along the persistence axis (the same layout as persim's images).

    Examples
    --------
    >>> from sktopo import Diagram, PersistenceImage
    >>> d = Diagram({1: [[0.0, 1.0], [0.5, 2.0]]})
    >>> image = PersistenceImage(resolution=(4, 3)).fit([d])
    >>> image.transform([d]).shape
    (1, 12)
    >>> image.birth_ranges_[1], image.persistence_ranges_[1]
    ((0.0, 0.5), (0.0, 1.5))
    """

    _parameter_constraints = {
        **DiagramTransformer._parameter_constraints,
        "resolution": [tuple, list],
        "sigma": [None, Interval(Real, 0, None, closed="neither")],
        "weight": [StrOptions({"linear", "persistence"}), callable],
        "birth_range": [None, tuple, list],
        "persistence_range": [None, tuple, list],
    }

    def __init__(
        self,
        homology_dimensions=None,
        *,
        resolution=(20, 20),
        sigma=None,
        weight="linear",
        birth_range=None,
        persistence_range=None,
    ):
        self.homology_dimensions = homology_dimensions
        self.resolution = resolution
        self.sigma = sigma
        self.weight = weight
        self.birth_range = birth_range
        self.persistence_range = persistence_range

    def _fit_dims(self, collection) -> None:
        name = type(self).__name__
        # whole numbers only: int(2.5) would silently truncate to 2
        values = list(self.resolution)
        valid = len(values) == 2 and all(
            not isinstance(v, bool) and isinstance(v, (Integral, np.integer, Real))
            and float(v).is_integer() and v >= 1 for v in values
        )
        if valid:
            n_birth, n_pers = (int(v) for v in values)
        if not valid:
            raise ValueError(f"{name}: resolution must be two positive integers, e.g. (20, 20); got {self.resolution!r}.")
        self._resolution = (n_birth, n_pers)
        fixed_birth = check_range(self.birth_range, "birth_range", name)
        fixed_pers = check_range(self.persistence_range, "persistence_range", name)
        self.birth_ranges_, self.persistence_ranges_, self.sigmas_ = {}, {}, {}
        for q in self.homology_dimensions_:
            births, lifetimes = [], []
            for diagram in collection.flat():
                finite = diagram.finite(q)
                births.append(finite[:, 0])
                lifetimes.append(finite[:, 1] - finite[:, 0])
            births = np.concatenate(births)
            lifetimes = np.concatenate(lifetimes)
            if fixed_pers is not None:
                p_low, p_high = fixed_pers
            else:
                p_low, p_high = 0.0, float(lifetimes.max()) if len(lifetimes) else 0.0
                if p_high <= 0:
                    p_high = 1.0  # nothing to show: any non-empty range will do
            if fixed_birth is not None:
                b_low, b_high = fixed_birth
            else:
                b_low, b_high = (float(births.min()), float(births.max())) if len(births) else (0.0, 0.0)
            if b_high - b_low <= 0:
                centre, half = (b_low + b_high) / 2, (p_high - p_low) / 2
                b_low, b_high = centre - half, centre + half
            if p_high - p_low <= 0:
                raise ValueError(f"{name}: persistence_range must have low < high; got {self.persistence_range!r}.")
            self.birth_ranges_[q] = (b_low, b_high)
            self.persistence_ranges_[q] = (p_low, p_high)
            pixel = max((b_high - b_low) / n_birth, (p_high - p_low) / n_pers)
            self.sigmas_[q] = float(self.sigma) if self.sigma is not None else pixel

    def _cell_names(self):
        n_birth, n_pers = self._resolution
        return [
            f"H{q}__image_{i}_{j}"
            for q in self.homology_dimensions_
            for i in range(n_birth)
            for j in range(n_pers)
        ]

    def _weights(self, births, lifetimes, q):
        if callable(self.weight):
            weights = np.asarray(self.weight(births, lifetimes), dtype=float)
            if weights.shape != births.shape:
                raise ValueError(
                    f"{type(self).__name__}: the weight function returned shape {weights.shape} "
                    f"for {len(births)} bars; it must return one weight per bar."
                )
            return weights
        if self.weight == "persistence":
            return lifetimes
        return np.clip(lifetimes / self.persistence_ranges_[q][1], 0.0, 1.0)

    def image(self, diagram: Diagram, q: int) -> np.ndarray:
        """The ``(n_birth, n_persistence)`` image of one diagram's dimension ``q``."""
        n_birth, n_pers = self._resolution
        finite = diagram.finite(q)
        if len(finite) == 0:
            return np.zeros((n_birth, n_pers))
        births, lifetimes = finite[:, 0], finite[:, 1] - finite[:, 0]
        weights = self._weights(births, lifetimes, q)
        sigma = self.sigmas_[q]
        b_edges = np.linspace(*self.birth_ranges_[q], n_birth + 1)
        p_edges = np.linspace(*self.persistence_ranges_[q], n_pers + 1)
        # The Gaussian is a product of two 1-D Gaussians: its mass over a
        # pixel is (mass over the birth interval) x (mass over the
        # persistence interval), differences of normal CDFs at the edges.
        along_birth = np.diff(ndtr((b_edges[None, :] - births[:, None]) / sigma), axis=1)
        along_pers = np.diff(ndtr((p_edges[None, :] - lifetimes[:, None]) / sigma), axis=1)
        return np.einsum("k,ki,kj->ij", weights, along_birth, along_pers)

    def _cell_features(self, diagram: Diagram) -> np.ndarray:
        return np.concatenate([self.image(diagram, q).ravel() for q in self.homology_dimensions_])


class PersistenceLandscape(DiagramTransformer):
    """Persistence landscapes (Bubenik, 2015) sampled on a grid learned in ``fit``.

    Each finite bar ``(b, d)`` gives the tent function
    ``max(0, min(t - b, d - t))``; the ``k``-th landscape layer ``lambda_k(t)``
    is the ``k``-th largest tent value at ``t`` (0 when fewer than ``k`` bars
    are alive). Layers ``1..n_layers`` are sampled at ``n_bins`` evenly spaced
    scales from the smallest birth to the largest finite death of the fitted
    diagrams' bars of each dimension (or ``scale_range``).

    Infinite bars follow the policy of :mod:`sktopo.diagram`
    (:meth:`Diagram.finite`): clipped to a finite threshold, else left out.

    Parameters
    ----------
    homology_dimensions : int, sequence of int or None, default=None
        Dimensions to describe; ``None`` means every dimension present in the
        fitted diagrams.
    n_layers : int, default=5
        Number of landscape layers.
    n_bins : int, default=100
        Number of scales per dimension.
    scale_range : (float, float) or None, default=None
        First and last scale, the same for every dimension; ``None`` learns
        them per dimension.

    Attributes
    ----------
    homology_dimensions_ : tuple of int
        Dimensions described, in output order.
    grids_ : dict of int to ndarray of shape (n_bins,)
        Scales of each dimension; column ``H{q}__landscape_{k}_{i}`` is layer
        ``k`` (from 1) at ``grids_[q][i]``.
    n_features_in_ : int
        Number of columns of the input.

    Notes
    -----
    The tents are Bubenik's: a bar ``(b, d)`` peaks at ``(d - b) / 2``, as in
    persim's ``PersLandscapeExact`` (the tests check the values against it).
    GUDHI's ``gudhi.representations.Landscape`` multiplies its landscapes by
    ``sqrt(2)`` by design (a tent then peaks at the point's Euclidean
    distance to the diagonal, ``(d - b) / sqrt(2)``): on the same grid (its ``sample_range`` with
    ``keep_endpoints=True``) its values are exactly ``sqrt(2)`` times ours
    (checked against GUDHI 3.13). Divide GUDHI's by ``sqrt(2)``, or multiply
    ours, to compare them.

    Examples
    --------
    >>> from sktopo import Diagram, PersistenceLandscape
    >>> d = Diagram({1: [[0.0, 2.0], [1.0, 3.0]]})
    >>> landscape = PersistenceLandscape(n_layers=2, n_bins=7).fit([d])
    >>> landscape.grids_[1]
    array([0. , 0.5, 1. , 1.5, 2. , 2.5, 3. ])
    >>> landscape.transform([d]).reshape(2, 7)
    array([[0. , 0.5, 1. , 0.5, 1. , 0.5, 0. ],
           [0. , 0. , 0. , 0.5, 0. , 0. , 0. ]])
    """

    _parameter_constraints = {
        **DiagramTransformer._parameter_constraints,
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "n_bins": [Interval(Integral, 1, None, closed="left")],
        "scale_range": [None, tuple, list],
    }

    def __init__(self, homology_dimensions=None, *, n_layers=5, n_bins=100, scale_range=None):
        self.homology_dimensions = homology_dimensions
        self.n_layers = n_layers
        self.n_bins = n_bins
        self.scale_range = scale_range

    def _fit_dims(self, collection) -> None:
        self.grids_ = scale_grids(collection, self.homology_dimensions_, self.n_bins,
                                  self.scale_range, type(self).__name__)

    def _cell_names(self):
        return [
            f"H{q}__landscape_{k}_{i}"
            for q in self.homology_dimensions_
            for k in range(1, self.n_layers + 1)
            for i in range(self.n_bins)
        ]

    def landscape(self, diagram: Diagram, q: int) -> np.ndarray:
        """The ``(n_layers, n_bins)`` landscape of one diagram's dimension ``q``."""
        finite = diagram.finite(q)
        grid = self.grids_[q]
        out = np.zeros((self.n_layers, len(grid)))
        if len(finite) == 0:
            return out
        tents = np.minimum(grid[None, :] - finite[:, :1], finite[:, 1:] - grid[None, :])
        tents = np.maximum(tents, 0.0)
        k = min(self.n_layers, len(finite))
        # the k largest values per scale, in decreasing order
        out[:k] = -np.sort(-tents, axis=0)[:k]
        return out

    def _cell_features(self, diagram: Diagram) -> np.ndarray:
        return np.concatenate([self.landscape(diagram, q).ravel() for q in self.homology_dimensions_])
