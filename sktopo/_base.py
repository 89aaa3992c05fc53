"""The one base of sktopo's "collection of cells -> table" transformers.

Every feature transformer takes a collection (see :mod:`sktopo._collections`)
and returns an ``(n_rows, n_columns * n_features)`` table: the diagram
transformers (:class:`~sktopo.DiagramFeatures`, :class:`~sktopo.BettiCurve`, ...)
and the cloud estimators (:class:`~sktopo.PHDimension`, :class:`~sktopo.TwoNN`).
:class:`CollectionTransformer` owns what they share, so each is written once:

- validation, in the spirit of scikit-learn's ``validate_data(self, X, reset=...)``:
  :meth:`~CollectionTransformer._validate_collection` checks the cells (the
  subclass says how, in ``_check_cells``) and, with ``reset=True`` (``fit``),
  remembers the container kind and columns, ``n_features_in_`` and
  ``feature_names_in_``; with ``reset=False`` (``transform``) it refuses a
  different container kind or different columns, naming both;
- :meth:`~CollectionTransformer.get_feature_names_out`: ``"{column}__{name}"``
  for DataFrame inputs, the plain per-cell names otherwise;
- ``__sklearn_tags__``: collections are not 2-D arrays;
- :func:`warn_cell_messages`: the warnings of many cells, those of one kind
  summarised in one warning (how many, which rows, what to change).

:class:`CloudTransformer` adds the per-cloud machinery: seeds from
:func:`sktopo._seeding.cloud_seeds` (``random_state`` plus the cloud's content,
through a :class:`~sktopo._seeding.CloudSeeder`, so a batch seeds its own clouds),
one task per cloud (``_cell_task``) run by :meth:`~CloudTransformer._compute_cells`
over :func:`sktopo._parallel.run_parallel`, and a subclass may override
``_compute_cells`` to batch many clouds at once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import InvalidParameterError, Interval, make_constraint
from sklearn.utils.validation import check_is_fitted

from sktopo._collections import Collection, check_cloud, check_collection, check_distance_matrix, label_text
from sktopo._parallel import run_parallel
from sktopo._seeding import CloudSeeder

__all__ = [
    "CellMessage",
    "CloudMapper",
    "CloudTransformer",
    "CollectionMapper",
    "CollectionTransformer",
    "FixedOutput",
    "NoBoolNumbers",
    "one_cloud",
    "remember_input",
    "warn_cell_messages",
]


class FixedOutput:
    """Mixin: ``set_output`` is accepted and ignored, for transformers whose output container
    is fixed (clouds, diagrams: pandas objects of arrays, never a plain table), so that
    ``Pipeline.set_output(transform="pandas")``, which calls it on every step, works on a
    pipeline that holds one. Put it first among the bases."""

    def set_output(self, *, transform=None):
        """Accepted for ``Pipeline.set_output``; the output container is fixed.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None
            Ignored.

        Returns
        -------
        self : object
        """
        return self


class NoBoolNumbers:
    """Mixin: a bool given for a number parameter is refused in ``_validate_params``.

    scikit-learn's ``Interval(Integral, ...)`` and ``Interval(Real, ...)``, and
    the bare ``Integral`` and ``Real`` constraints, take ``True`` as 1 and
    ``False`` as 0 (``bool`` is an ``int``): ``rank_tol=True`` or
    ``n_directions=True`` would run as if 1 had been given. A parameter whose
    constraints also list ``"boolean"`` keeps taking bools. Put it first among
    the bases (before ``BaseEstimator``).
    """

    def _validate_params(self):
        params = self.get_params(deep=False)
        for name, options in self._parameter_constraints.items():
            value = params.get(name)
            if (not isinstance(value, bool) or options == "no_validation" or "boolean" in options
                    or bool in options):
                continue
            if any(isinstance(c, Interval) or c in (Integral, Real) for c in options):
                described = [str(make_constraint(c)) for c in options]
                allowed = (", ".join(described[:-1]) + " or " + described[-1]
                           if len(described) > 1 else described[0])
                raise InvalidParameterError(
                    f"{type(self).__name__}: {name} must be {allowed}; got the bool {value!r}, "
                    f"which would be read as {int(value)}. Pass the number you mean.")
        super()._validate_params()


def remember_input(estimator, collection: Collection) -> None:
    """Store what ``fit`` learns about its input's shape on ``estimator``.

    ``n_features_in_`` (the number of columns: 1 for a list, 3-D array or
    Series), ``feature_names_in_`` (for a DataFrame whose column labels are all
    strings; removed otherwise) and, privately, the container kind and columns.
    """
    estimator._input_kind = collection.kind
    estimator._columns = collection.columns
    estimator.n_features_in_ = collection.n_cols
    if collection.kind == "frame" and all(isinstance(c, str) for c in collection.columns):
        estimator.feature_names_in_ = np.asarray(collection.columns, dtype=object)
    elif hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_


class CollectionTransformer(NoBoolNumbers, TransformerMixin, BaseEstimator):
    """Base: a collection of cells -> an ``(n_rows, n_columns * n_features)`` table.

    Subclasses implement ``_check_cells(X) -> Collection`` (validate the cells)
    and ``_cell_names()`` (the feature names of one cell, without the column
    prefix), optionally ``_check_settings()`` (checks beyond
    ``_parameter_constraints``, run in :meth:`fit`), and compute the table in
    ``transform``.
    """

    # ------------------------------------------------------------------ fit
    def _check_settings(self):
        """Checks beyond ``_parameter_constraints``, run in ``fit``."""

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters and remember the input's columns; nothing is learnt.

        Parameters
        ----------
        X : collection
            The cells the class documents: a list of 2-D arrays, a 3-D array,
            or a Series / DataFrame of clouds (distance matrices with
            ``metric="precomputed"``); for the pair estimators, a DataFrame
            with two columns of clouds or a list of ``(P, Q)`` tuples.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._check_settings()
        self._validate_collection(X, reset=True)
        return self

    # ------------------------------------------------------------ validation
    def _check_cells(self, X) -> Collection:  # pragma: no cover - abstract
        raise NotImplementedError

    def _validate_collection(self, X, *, reset: bool) -> Collection:
        """Validate ``X``; ``reset=True`` remembers its shape, ``False`` checks it.

        Parameters
        ----------
        X : collection
            The input of ``fit`` or ``transform``.
        reset : bool
            True in ``fit``: store ``n_features_in_``, ``feature_names_in_`` (for a
            DataFrame whose column labels are all strings) and the container
            kind and columns. False in ``transform``: the container kind and
            columns must be those seen in ``fit``.

        Returns
        -------
        collection : Collection
        """
        collection = self._check_cells(X)
        if reset:
            remember_input(self, collection)
        else:
            self._check_same_shape(collection)
        return collection

    def _check_same_shape(self, collection: Collection) -> None:
        name = type(self).__name__
        fitted_frame = self._input_kind == "frame"
        given = "DataFrame" if collection.kind == "frame" else collection.kind
        if (collection.kind == "frame") != fitted_frame:
            raise ValueError(
                f"{name} was fitted on a {'DataFrame' if fitted_frame else 'list or Series'} but "
                f"transform got a {given}; give the same kind of container (the output columns "
                f"depend on it), or fit again on this input."
            )
        if fitted_frame and not collection.columns.equals(self._columns):
            raise ValueError(
                f"{name}: transform got DataFrame columns {list(collection.columns)}, but it was "
                f"fitted on columns {list(self._columns)}; they must be the same, in the same "
                f"order (or fit again on this input)."
            )

    # ----------------------------------------------------------------- names
    def _cell_names(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns.

        The feature names of one cell (``"H{q}__{feature}"`` or
        ``"{prefix}_{feature}"``); for DataFrame inputs each column's features
        come in turn, named ``"{column}__{name}"``. :func:`sktopo.tidy` parses
        these.

        Parameters
        ----------
        input_features : array-like of str, optional
            Column names of the DataFrame input, to use instead of the fitted
            ones (they must have the same length).

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self, "n_features_in_")
        names = list(self._cell_names())
        columns = self._columns
        if input_features is not None:
            input_features = list(input_features)
            if len(input_features) != self.n_features_in_:
                raise ValueError(
                    f"{type(self).__name__}: input_features has {len(input_features)} entries; "
                    f"the fitted input had {self.n_features_in_} column(s)."
                )
            columns = pd.Index(input_features)
        if self._input_kind != "frame":
            return np.asarray(names, dtype=object)
        return np.asarray(
            [f"{label_text(column)}__{name}" for column in columns for name in names],
            dtype=object,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # a collection is a list / 3-D array / Series / DataFrame of cells, never a 2-D table
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        return tags


class PairTableTransformer(CollectionTransformer):
    """Base of the transformers of pairs of clouds (RTD, the similarity measures).

    One result per pair: a DataFrame's two columns are the pair's two sides, so
    they add no prefix to the output names.
    """

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns: those of one pair (no column prefix).

        Parameters
        ----------
        input_features : None
            Ignored.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self, "n_features_in_")
        return np.asarray(self._cell_names(), dtype=object)


class CollectionMapper(NoBoolNumbers, TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Base of the transformers that map a collection to a collection of the same shape.

    Their output is not a table: a Series or DataFrame of cells gives a Series or
    DataFrame with the same index, columns and name; lists and 3-D arrays give a
    list, or a Series indexed ``0..n-1`` with ``set_output(transform="pandas")``
    (so a Pipeline configured for pandas keeps its row labels).
    """

    def set_output(self, *, transform=None):
        """Configure the output container; cells are objects, so little changes.

        Outputs already follow the input; with ``transform="pandas"`` lists and
        3-D arrays give a Series too. This method exists so that
        ``Pipeline.set_output(transform="pandas")`` works on pipelines that hold
        this transformer.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"}, default=None
            ``None`` leaves the configuration unchanged.

        Returns
        -------
        self : object
        """
        if transform is not None:
            self._output_transform = transform
        return self

    def _output_is_pandas(self) -> bool:
        configured = getattr(self, "_output_transform", None)
        if configured is None or configured == "default":
            from sklearn import get_config

            configured = (get_config().get("transform_output", "default")
                          if configured is None else configured)
        return configured == "pandas"

    def _rebuild(self, collection: Collection, cells: list):
        """The new cells in the input's container (see the class docstring)."""
        out = collection.rebuild(cells)
        if collection.kind in ("list", "array") and self._output_is_pandas():
            out = pd.Series(cells, index=collection.row_index, dtype=object)
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = []
        tags.non_deterministic = False
        return tags


class CloudMapper(CollectionMapper):
    """Base of the collection -> collection transformers that map each cloud on its own.

    A subclass sets ``_one_cloud`` (the one-cloud function suggested for a bare
    2-D array) and implements ``_map_cloud(cloud, label)``; ``fit`` checks the
    parameters and the collection and learns nothing.
    """

    _one_cloud: str | None = None

    def _check_collection(self, X):
        return check_collection(X, cell="cloud", estimator=type(self).__name__,
                                one_cloud=self._one_cloud)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters and the collection (nothing is learned).

        Parameters
        ----------
        X : collection of clouds
            A list of 2-D arrays, a 3-D array, or a Series / DataFrame of clouds.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        remember_input(self, self._check_collection(X))
        return self

    def transform(self, X):
        """Map every cloud of the collection.

        Parameters
        ----------
        X : collection of clouds

        Returns
        -------
        mapped : collection
            The same container as ``X`` (a list for lists and 3-D arrays, a
            Series with ``set_output(transform="pandas")``), one result per cloud.
        """
        check_is_fitted(self, "n_features_in_")
        collection = self._check_collection(X)
        cells = [self._map_cloud(cloud, collection.cell_label(i, j))
                 for cloud, (i, j) in zip(collection.flat(), collection.positions())]
        return self._rebuild(collection, cells)

    def _map_cloud(self, cloud, label):  # pragma: no cover - abstract
        raise NotImplementedError


# ------------------------------------------------------------------ messages
@dataclass(frozen=True)
class CellMessage:
    """A warning about one cell, grouped with the other cells' of the same ``kind``.

    Parameters
    ----------
    text : str
        The full message for this cell (it names the cell), used when it is
        the only one of its kind.
    kind : str
        What went wrong, as a phrase completing "N of M clouds ..." (for
        example ``"have too few points for 3 subsample sizes"``).
    advice : str
        What to change, said once in the summary.
    nan : bool
        Whether the cell's result is NaN.
    """

    text: str
    kind: str
    advice: str = ""
    nan: bool = True

    def __str__(self):
        return self.text


# labels listed in a summary warning; the rest are counted
_MAX_LABELS = 10
# up to this many cells of one kind keep their own detailed warnings
_MAX_SEPARATE = 3


def warn_cell_messages(estimator: str, messages_per_cell, labels, *, unit: str = "cloud",
                       stacklevel: int = 3) -> None:
    """Turn the messages of every cell into warnings.

    A plain string is one warning, prefixed by the estimator's name. The
    :class:`CellMessage` of one kind from more than three cells become ONE
    warning saying how many cells, which (the first few labels) and what to
    change; up to three keep their own detailed warnings.

    Parameters
    ----------
    estimator : str
        Name at the start of every warning.
    messages_per_cell : sequence of sequence of (str or CellMessage)
        The messages of each cell, in the order of ``labels``.
    labels : sequence of str
        Each cell's location (``"row 3, column 'fc1'"``).
    unit : str
        What a cell is, for the summary ("cloud").
    stacklevel : int
        Passed to :func:`warnings.warn`.
    """
    n_cells = len(labels)
    groups: dict = {}
    for messages, label in zip(messages_per_cell, labels):
        for message in messages:
            if isinstance(message, CellMessage):
                groups.setdefault(message.kind, []).append((label, message))
            else:
                warnings.warn(f"{estimator}: {message}", UserWarning, stacklevel=stacklevel)
    for kind, members in groups.items():
        if len(members) <= _MAX_SEPARATE:
            for _, message in members:
                warnings.warn(f"{estimator}: {message.text}", UserWarning, stacklevel=stacklevel)
            continue
        shown = [label for label, _ in members[:_MAX_LABELS]]
        more = len(members) - len(shown)
        where = "; ".join(shown) + (f"; and {more} more" if more else "")
        message = members[0][1]
        outcome = " Their results are NaN." if all(m.nan for _, m in members) else ""
        advice = f" {message.advice}" if message.advice else ""
        warnings.warn(
            f"{estimator}: {len(members)} of {n_cells} {unit}s {kind} ({where}).{outcome}{advice}",
            UserWarning, stacklevel=stacklevel,
        )


# ------------------------------------------------------------- cloud estimators
class CloudTransformer(CollectionTransformer):
    """Base of the estimators that compute one table row of numbers per cloud.

    A subclass sets

    - ``_features``: the keys of one cloud's values (``"phdim"``, ``"r2"``, ...);
    - ``_prefix``: the estimator prefix of the output names: a key ``k`` is
      named ``"{_prefix}_{k}"`` unless it already starts with the prefix
      (``"phdim"``, ``"phdim_std"``, ``"phdim_r2"``), so that every column
      follows the ``{prefix}_{feature}`` convention :func:`sktopo.tidy` parses
      and two estimators' tables can be joined without clashes;
    - ``_one_cloud``: the one-cloud function suggested for a bare 2-D array
      (``"sktopo.ph_dimension(X)"``);
    - ``_cell_task()``: ``(function, settings)`` with
      ``function(cloud, seed, label, **settings) -> (values, messages)``:
      ``values`` a dict keyed by ``_features``, ``messages`` a list of str or
      :class:`CellMessage` (a bad cloud gives NaN and a message, it never
      raises in the middle of a collection);
    - optionally ``_check_settings()``: checks beyond ``_parameter_constraints``,
      run in ``fit``.

    and has the parameters ``metric``, ``random_state``, ``n_jobs`` and
    ``verbose``. :meth:`_compute_cells` runs ``_cell_task`` over the clouds;
    a subclass may override it to batch many small clouds (same results).
    """

    _features: tuple = ()
    _prefix: str = ""
    _one_cloud: str | None = None

    def _cell_task(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_cells(self, X) -> Collection:
        return check_collection(
            X,
            cell="distance" if self.metric == "precomputed" else "cloud",
            estimator=type(self).__name__,
            one_cloud=self._one_cloud,
        )

    def _cell_names(self):
        return [_prefixed(self._prefix, key) for key in self._features]

    def transform(self, X):
        """Compute the features of every cloud.

        Parameters
        ----------
        X : collection of clouds
            Clouds in the container kind (and, for a DataFrame, with the
            columns) seen in ``fit``.

        Returns
        -------
        table : ndarray of shape (n_rows, n_columns * n_features)
            One row per input row, the features of each input column side by
            side, named by :meth:`get_feature_names_out`. A DataFrame indexed
            like ``X`` with ``set_output(transform="pandas")``.
        """
        check_is_fitted(self, "n_features_in_")
        return self._table(self._validate_collection(X, reset=False))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit to ``X`` and compute its table, validating the collection once.

        Parameters
        ----------
        X : collection of clouds
        y : None
            Ignored.

        Returns
        -------
        table : ndarray of shape (n_rows, n_columns * n_features)
            As :meth:`transform`.
        """
        self._check_settings()
        return self._table(self._validate_collection(X, reset=True))

    def _draws_randomly(self) -> bool:
        """Whether any cloud may need its random stream (a subclass says when not)."""
        return True

    def _table(self, collection: Collection):
        clouds = collection.flat()
        # per-cloud streams from random_state and the cloud's content: the same cloud
        # gets the same numbers in any row, order, subset, n_jobs, as points or distances.
        # random_state is read here, once; the seeds are computed where the clouds are (a
        # batch computes its own clouds' seeds in its thread, see _compute_cells)
        seeds = (CloudSeeder(self.random_state, metric=self.metric)
                 if self._draws_randomly() else CloudSeeder.given([None] * len(clouds)))
        labels = [collection.cell_label(i, j) for i, j in collection.positions()]
        results = self._compute_cells(clouds, seeds, labels)
        warn_cell_messages(type(self).__name__, [messages for _, messages in results], labels)
        rows = [[values[name] for name in self._features] for values, _ in results]
        return collection.stack_features(rows)

    def _compute_cells(self, clouds, seeds, labels) -> list:
        """``(values, messages)`` of every cloud, in order.

        ``seeds`` is a :class:`~sktopo._seeding.CloudSeeder`: ``seeds(clouds)``
        gives the seeds of these clouds (the same wherever it is called; ``None``
        when nothing is drawn), ``seeds.take(positions)`` the seeder of a part. The
        default runs ``_cell_task()`` on each cloud through
        :func:`sktopo._parallel.run_parallel` (``n_jobs``, ``verbose``).
        Override to batch many clouds; the results must not change.
        """
        function, settings = self._cell_task()
        return run_parallel(
            partial(function, **settings), zip(clouds, seeds(clouds), labels),
            n_jobs=self.n_jobs, verbose=self.verbose, desc=type(self).__name__, unit="cloud",
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # (n_clouds, n_points, n_features)
        # "pairwise" stays False even with metric="precomputed": the matrices are within
        # clouds, not between samples (cross-validation must not slice them)
        tags.input_tags.pairwise = False
        tags.non_deterministic = False
        return tags


def one_cloud(estimator: CloudTransformer, X, name: str) -> pd.Series:
    """Run ``estimator`` on the single cloud ``X``; a Series indexed by its feature names."""
    prefix = f"{name}: "
    if estimator.metric == "precomputed":
        X = check_distance_matrix(X, "the input", prefix=prefix)
    else:
        X = check_cloud(X, "the input", prefix=prefix)
    # a plain array whatever the global transform_output, so table[0] is the first row
    table = estimator.set_output(transform="default").fit_transform([X])
    return pd.Series(table[0], index=estimator._cell_names(), name=name)


def _prefixed(prefix: str, key: str) -> str:
    """``"{prefix}_{key}"``, or ``key`` when it is the prefix or already starts with it."""
    if not prefix or key == prefix or key.startswith(prefix + "_"):
        return key
    return f"{prefix}_{key}"
