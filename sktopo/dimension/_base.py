"""What the dimension estimators share: a few numbers per cloud, each cloud on its own.

:class:`~sktopo.PHDimension` and :class:`~sktopo.TwoNN` differ only in what they compute
for one cloud. Around that, both:

- check the collection (clouds, or square distance matrices with ``metric="precomputed"``)
  and remember its columns in ``fit``, so ``get_feature_names_out`` names the output;
- give every cell its own :class:`numpy.random.SeedSequence`, spawned from
  ``random_state``, so a seed gives the same numbers on any ``n_jobs``;
- run the cells through joblib in order (:func:`sktopo._parallel.run_parallel`), with a
  progress bar, and turn the messages a cell returns into warnings (a bad cloud gives NaN,
  it never raises mid-collection);
- offer a one-cloud function returning a :class:`pandas.Series`.
"""

from __future__ import annotations

import warnings
from functools import partial
from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from sktopo._collections import check_cloud, check_collection, check_distance_matrix
from sktopo._parallel import run_parallel


class CloudFeatures(TransformerMixin, BaseEstimator):
    """Base of the estimators that compute one table row per cloud.

    A subclass sets ``_features`` (the output names for one cloud) and ``_one_cloud`` (the
    one-cloud function suggested for a bare 2-D array), and implements ``_cell_task()``:
    ``(function, settings)`` with ``function(cloud, seed, label, **settings)`` returning
    ``(values, messages)``: a dict keyed by ``_features`` and the warnings for that cloud.
    It has ``metric``, ``random_state``, ``n_jobs`` and ``verbose`` parameters.
    """

    _features: tuple = ()
    _one_cloud: str | None = None

    def _check_settings(self):
        """Checks beyond ``_parameter_constraints``, run in ``fit``."""

    def _cell_task(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_X(self, X):
        return check_collection(
            X,
            cell="distance" if self.metric == "precomputed" else "cloud",
            estimator=type(self).__name__,
            one_cloud=self._one_cloud,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters and remember the input's columns.

        Parameters
        ----------
        X : collection of clouds
            A list of 2-D arrays, a 3-D array, or a Series / DataFrame of
            clouds (distance matrices with ``metric="precomputed"``).
        y : ignored

        Returns
        -------
        self
        """
        self._check_settings()
        collection = self._check_X(X)
        self.columns_ = collection.columns
        self.feature_names_out_ = collection.feature_names(list(self._features))
        return self

    def transform(self, X):
        """Compute the features of every cloud.

        Parameters
        ----------
        X : collection of clouds

        Returns
        -------
        table : ndarray of shape (n_rows, n_columns * n_features)
            One row per input row, the features of each input column side by side, named
            by :meth:`get_feature_names_out`. A DataFrame indexed like ``X`` with
            ``set_output(transform="pandas")``.
        """
        check_is_fitted(self, "feature_names_out_")
        collection = self._check_X(X)
        _check_same_columns(self.columns_, collection.columns)
        flat = collection.flat()
        seeds = _cell_seeds(self.random_state, len(flat))
        labels = [collection.cell_label(i, j) for i, j in collection.positions()]
        function, settings = self._cell_task()
        results = run_parallel(
            partial(function, **settings), zip(flat, seeds, labels),
            n_jobs=self.n_jobs, verbose=self.verbose, desc=type(self).__name__, unit="cloud",
        )
        rows = []
        for values, messages in results:
            for message in messages:
                warnings.warn(f"{type(self).__name__}: {message}", UserWarning, stacklevel=2)
            rows.append([values[name] for name in self._features])
        return collection.stack_features(rows)

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns (``"{column}__{feature}"`` for DataFrame inputs)."""
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()


def one_cloud(estimator, X, name):
    """Run ``estimator`` on the single cloud ``X``; a Series indexed by its feature names."""
    prefix = f"{name}: "
    if estimator.metric == "precomputed":
        X = check_distance_matrix(X, "the input", prefix=prefix)
    else:
        X = check_cloud(X, "the input", prefix=prefix)
    # a plain array whatever the global transform_output, so table[0] is the first row
    table = estimator.set_output(transform="default").fit_transform([X])
    return pd.Series(table[0], index=list(estimator._features), name=name)


def _check_same_columns(fitted, given):
    if fitted is None and given is None:
        return
    if fitted is None or given is None or not fitted.equals(given):
        raise ValueError(
            f"the columns of X ({None if given is None else list(given)}) differ from those seen "
            f"in fit ({None if fitted is None else list(fitted)}); fit again on this input."
        )


def _cell_seeds(random_state, n_cells):
    """One independent SeedSequence per cell, so results do not depend on n_jobs."""
    if random_state is None:
        root = np.random.SeedSequence()
    elif isinstance(random_state, Integral):
        root = np.random.SeedSequence(int(random_state))
    else:  # a RandomState instance: draw the entropy from it
        root = np.random.SeedSequence(random_state.randint(0, 2**31 - 1, size=4).tolist())
    return root.spawn(n_cells)
