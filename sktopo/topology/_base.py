"""Shared machinery of the transformers that turn diagrams into feature tables.

Every such transformer (:class:`~sktopo.DiagramFeatures`,
:class:`~sktopo.BettiCurve`, :class:`~sktopo.PersistenceImage`,
:class:`~sktopo.PersistenceLandscape`, :class:`~sktopo.DiagramDistance`) takes
a collection of :class:`~sktopo.Diagram` cells (a list, a Series or a
DataFrame of diagrams, see :mod:`sktopo._collections`) and returns an
``(n_rows, n_features)`` table. This module holds what they share:

- checking that every cell is a :class:`~sktopo.Diagram` (with an error that
  names the row, since the usual mistake is passing clouds straight in);
- choosing the homology dimensions: ``homology_dimensions=None`` means the
  dimensions present in the diagrams seen in ``fit``;
- learning scales (grids, image ranges) over *every* fitted cell, all rows
  and all columns together, so that a feature column means the same scale
  in every row and every source (layer) and rows stay comparable;
- remembering the shape of the fitted input so that
  :meth:`get_feature_names_out` can name the columns
  (``"H{q}__{feature}"``, prefixed ``"{column}__"`` for DataFrame inputs),
  which is what lets ``set_output(transform="pandas")`` return DataFrames
  indexed like the input.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._base import CollectionTransformer
from .._collections import Collection, check_collection, label_text
from ..diagram import Diagram

__all__ = [
    "DiagramTransformer",
    "check_diagrams",
    "check_range",
    "fitted_finite_range",
    "scale_grids",
]


def check_diagrams(X, *, estimator: str) -> Collection:
    """Validate a collection whose cells must all be :class:`~sktopo.Diagram`.

    Raises
    ------
    TypeError
        If a cell is not a Diagram; the message names the row (and column).
    """

    def check(value, label):
        if not isinstance(value, Diagram):
            raise TypeError(
                f"{estimator}: the cell at {label} is a {type(value).__name__}, not a Diagram. "
                f"{estimator} takes persistence diagrams: did you forget PersistenceDiagram "
                f"before it (e.g. make_pipeline(PersistenceDiagram(), {estimator}()))?"
            )
        return value

    return check_collection(X, cell=check, estimator=estimator)


def check_homology_dimensions(value, estimator: str):
    """``homology_dimensions`` as a sorted tuple of distinct ints, or None."""
    if value is None:
        return None
    if isinstance(value, (Integral, np.integer)):
        value = (value,)
    dims = []
    for q in value:
        if isinstance(q, bool) or not isinstance(q, (Integral, np.integer)) or q < 0:
            raise ValueError(
                f"{estimator}: homology_dimensions must be non-negative integers, e.g. (0, 1); "
                f"got {value!r}."
            )
        dims.append(int(q))
    if not dims:
        raise ValueError(
            f"{estimator}: homology_dimensions is empty; give a non-empty sequence of "
            f"dimensions, e.g. (0, 1)."
        )
    if len(set(dims)) != len(dims):
        raise ValueError(f"{estimator}: homology_dimensions has repeated entries: {value!r}.")
    return tuple(sorted(dims))


def fitted_finite_range(collection: Collection, q: int) -> tuple[float, float]:
    """Smallest birth and largest finite value over the fitted diagrams' bars of dimension ``q``.

    Follows the infinite-bar policy of :mod:`sktopo.diagram`: deaths are read
    through :meth:`Diagram.finite`; births of infinite bars count too (the
    class is born there). Returns ``(0.0, 0.0)`` when there are no bars at all.
    """
    lows, highs = [], []
    for diagram in collection.flat():
        pairs = diagram[q]
        if len(pairs):
            lows.append(pairs[:, 0].min())
            highs.append(pairs[:, 0].max())
        finite = diagram.finite(q)
        if len(finite):
            highs.append(finite[:, 1].max())
    if not lows:
        return 0.0, 0.0
    return float(min(lows)), float(max(highs))


def scale_grids(collection: Collection, dims, n_bins: int, scale_range, estimator: str) -> dict:
    """Per dimension ``q``, ``n_bins`` evenly spaced scales over ``scale_range``.

    ``scale_range=None`` learns each dimension's range from the fitted
    diagrams (:func:`fitted_finite_range`).
    """
    fixed = check_range(scale_range, "scale_range", estimator)
    return {
        q: np.linspace(*(fixed if fixed is not None else fitted_finite_range(collection, q)), n_bins)
        for q in dims
    }


def check_range(value, param: str, estimator: str):
    """A (low, high) pair of finite numbers with low <= high, or None."""
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{estimator}: {param} must be a pair (low, high) of numbers; got {value!r}.") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise ValueError(f"{estimator}: {param} must be finite with low <= high; got {value!r}.")
    return low, high


class DiagramTransformer(CollectionTransformer):
    """Base class: a collection of Diagram cells -> an ``(n_rows, n_features)`` table.

    Validation, ``n_features_in_``, ``feature_names_in_``, the column checks and
    :meth:`get_feature_names_out` come from :class:`sktopo._base.CollectionTransformer`.
    Subclasses implement

    - ``_fit_dims(collection)``: learn what transform needs (scales, grids),
      after ``homology_dimensions_`` is set;
    - ``_cell_names()``: feature names of one cell, without the column prefix;
    - ``_cell_features(diagram)``: the 1-D feature vector of one diagram.
    """

    _parameter_constraints: dict = {
        "homology_dimensions": [None, Interval(Integral, 0, None, closed="left"), "array-like"],
    }

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the homology dimensions and any scales from the diagrams.

        Parameters
        ----------
        X : list, Series or DataFrame of Diagram
            The diagrams, one per cell.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        collection = self._validate_diagrams(X, reset=True)
        self._fit_dims(collection)
        return self

    def _fit_dims(self, collection: Collection) -> None:
        """Learn what transform needs; the default learns nothing."""

    def _check_cells(self, X) -> Collection:
        return check_diagrams(X, estimator=type(self).__name__)

    def _validate_diagrams(self, X, *, reset: bool) -> Collection:
        name = type(self).__name__
        collection = self._validate_collection(X, reset=reset)
        if reset:
            requested = check_homology_dimensions(self.homology_dimensions, name)
            if requested is None:
                requested = tuple(sorted({q for d in collection.flat() for q in d.dims}))
                if not requested:
                    raise ValueError(
                        f"{name}: the diagrams have no homology dimensions at all; "
                        f"compute them with PersistenceDiagram(homology_dimensions=(0, 1))."
                    )
            self.homology_dimensions_ = requested
        self._check_dims_present(collection)
        return collection

    def _check_dims_present(self, collection: Collection) -> None:
        name = type(self).__name__
        for (i, j), diagram in zip(collection.positions(), collection.flat()):
            missing = [q for q in self.homology_dimensions_ if q not in diagram]
            if missing:
                raise ValueError(
                    f"{name}: the diagram at {collection.cell_label(i, j)} has no bars of "
                    f"dimension {missing} (it has dimensions {diagram.dims}), but "
                    f"homology_dimensions_ is {self.homology_dimensions_}. Compute the diagrams "
                    f"with PersistenceDiagram(homology_dimensions={self.homology_dimensions_}) "
                    f"or set homology_dimensions to the dimensions you have."
                )

    # ------------------------------------------------------------ transform
    def transform(self, X):
        """Compute the feature table.

        Parameters
        ----------
        X : list, Series or DataFrame of Diagram
            Diagrams with the dimensions seen in ``fit`` (and, for a
            DataFrame, the same columns).

        Returns
        -------
        features : ndarray of shape (n_rows, n_features)
            One row per input row. With ``set_output(transform="pandas")``, a
            DataFrame indexed like ``X`` with columns
            :meth:`get_feature_names_out`.
        """
        check_is_fitted(self, "homology_dimensions_")
        collection = self._validate_diagrams(X, reset=False)
        features = [self._cell_features(diagram) for diagram in collection.flat()]
        return collection.stack_features(features)

    def _cell_features(self, diagram: Diagram) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError
