"""The collection contract: what every sktopo transformer takes and gives back.

A *cloud* is a 2-D float array ``(n_points, n_features)``. A *collection* is
one of

- a list (or tuple) of clouds,
- a 3-D array ``(n_clouds, n_points, n_features)``,
- a :class:`pandas.Series` of clouds (for example one per layer),
- a :class:`pandas.DataFrame` whose cells are clouds (one row per input, one
  column per layer).

Rows are the units being compared, columns are sources. A bare 2-D array is a
single cloud, not a collection, and is refused with a hint, because guessing
would silently turn one cloud of ``n`` points into ``n`` clouds of one point.

:func:`check_collection` validates any of those and returns a
:class:`Collection`, which remembers the container so that results can be put
back into the same shape (:meth:`Collection.rebuild`) and feature tables can be
named (:meth:`Collection.feature_names`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np
import pandas as pd

__all__ = [
    "Collection",
    "check_collection",
    "check_cloud",
    "check_distance_matrix",
    "label_text",
    "require_finite",
]


@dataclass(frozen=True)
class Collection:
    """A validated collection: its cells and the shape of the container.

    Attributes
    ----------
    cells : list of list
        ``cells[i][j]`` is the cell in row ``i`` and column ``j``. Lists,
        3-D arrays and Series have one column.
    kind : {"list", "array", "series", "frame"}
        The container the cells came in.
    index : pandas.Index or None
        Row labels of a Series or DataFrame.
    columns : pandas.Index or None
        Column labels of a DataFrame.
    name : hashable
        The name of a Series.
    """

    cells: list
    kind: str
    index: pd.Index | None = None
    columns: pd.Index | None = None
    name: Hashable = None

    @property
    def n_rows(self) -> int:
        return len(self.cells)

    @property
    def n_cols(self) -> int:
        return len(self.columns) if self.columns is not None else 1

    @property
    def row_index(self) -> pd.Index:
        """Row labels: the input's index, or 0..n_rows-1."""
        if self.index is not None:
            return self.index
        return pd.RangeIndex(self.n_rows)

    def flat(self) -> list:
        """All cells in row-major order."""
        return [cell for row in self.cells for cell in row]

    def positions(self) -> list[tuple[int, int]]:
        """``(i, j)`` of every cell, in the order of :meth:`flat`."""
        return [(i, j) for i in range(self.n_rows) for j in range(self.n_cols)]

    def cell_label(self, i: int, j: int = 0) -> str:
        """Human-readable location of a cell, for error messages."""
        if self.kind in ("series", "frame"):
            label = f"row {_plain(self.index[i])!r}"
        else:
            label = f"row {i}"
        if self.kind == "frame":
            label += f", column {_plain(self.columns[j])!r}"
        return label

    def rebuild(self, flat_values: list) -> Any:
        """Put one value per cell back into the container's shape.

        Lists and 3-D arrays give a list; Series and DataFrames keep their
        index, columns and name.
        """
        flat_values = list(flat_values)
        if len(flat_values) != self.n_rows * self.n_cols:
            raise ValueError(
                f"expected {self.n_rows * self.n_cols} values, got {len(flat_values)}"
            )
        if self.kind in ("list", "array"):
            return flat_values
        if self.kind == "series":
            out = pd.Series(index=self.index, dtype=object, name=self.name)
            for i, value in enumerate(flat_values):
                out.iloc[i] = value
            return out
        out = pd.DataFrame(index=self.index, columns=self.columns, dtype=object)
        for k, value in enumerate(flat_values):
            out.iat[k // self.n_cols, k % self.n_cols] = value
        return out

    def feature_names(self, names: list[str]) -> np.ndarray:
        """Names of a feature table built from per-cell features ``names``.

        DataFrame inputs concatenate the features of each column, named
        ``"{column}__{feature}"`` (see :func:`label_text`); other inputs keep
        the plain names.
        """
        if self.kind != "frame":
            return np.asarray(names, dtype=object)
        return np.asarray(
            [f"{label_text(column)}__{name}" for column in self.columns for name in names],
            dtype=object,
        )

    def stack_features(self, flat_features: list) -> np.ndarray:
        """Join per-cell feature vectors into an ``(n_rows, n_cols * k)`` table."""
        rows = [
            np.concatenate(
                [np.asarray(v, dtype=float).ravel() for v in flat_features[i * self.n_cols:(i + 1) * self.n_cols]]
            )
            for i in range(self.n_rows)
        ]
        if not rows:
            return np.empty((0, 0))
        return np.vstack(rows)


def _plain(label):
    """numpy scalars print as np.int64(3) in numpy 2: show the Python value."""
    return label.item() if isinstance(label, np.generic) else label


def label_text(label) -> str:
    """A row or column label as text: tuples (MultiIndex entries) joined by '/'."""
    label = _plain(label)
    if isinstance(label, tuple):
        return "/".join(label_text(part) for part in label)
    return str(label)


def _one_cloud_hint(one_cloud: str | None) -> str:
    hint = "wrap it in a list (`[X]`)"
    if one_cloud:
        hint += f" or use the one-cloud function (`{one_cloud}`)"
    return hint


def check_collection(
    X,
    *,
    cell: str | Callable = "cloud",
    estimator: str = "X",
    one_cloud: str | None = None,
    min_points: int = 1,
    finite: bool = True,
    keep_float32: bool = False,
) -> Collection:
    """Validate a collection and return it as a :class:`Collection`.

    Parameters
    ----------
    X : list, tuple, 3-D array, Series or DataFrame
        The collection.
    cell : {"cloud", "distance", "any"} or callable
        How to check each cell: ``"cloud"`` converts it to a finite 2-D
        float64 array with at least ``min_points`` rows; ``"distance"`` to a
        square distance matrix; ``"any"`` leaves it alone. A callable gets
        ``(cell, label)`` and returns the checked cell.
    estimator : str
        Name used at the start of error messages.
    one_cloud : str, optional
        The one-cloud function to suggest when a bare 2-D array is given.
    min_points : int
        Smallest number of points a cloud may have.
    finite : bool, default=True
        Check that clouds are finite. ``False`` leaves that check to a caller
        that sees every value anyway (the batched persistence path reads it off
        the squared norms) and must then call :func:`require_finite`.
    keep_float32 : bool, default=False
        Leave float32 clouds in float32 (LayerEmbedder's dtype) for a caller
        that converts them chunk by chunk where it computes: a float64 copy of
        every cloud up front doubles the memory of the collection.

    Returns
    -------
    collection : Collection
    """
    prefix = f"{estimator}: " if estimator != "X" else ""
    kind, cells, index, columns, name = _split_container(X, prefix, one_cloud)
    if not cells:
        raise ValueError(f"{prefix}the collection is empty: give at least one cloud.")

    collection = Collection(cells=cells, kind=kind, index=index, columns=columns, name=name)
    if cell == "any":
        return collection
    if cell == "cloud":
        def check(value, label):
            return check_cloud(value, label, prefix=prefix, min_points=min_points,
                               one_cloud=one_cloud, finite=finite, keep_float32=keep_float32)
    elif cell == "distance":
        def check(value, label):
            return check_distance_matrix(value, label, prefix=prefix, min_points=min_points,
                                         allow_inf=True)
    elif callable(cell):
        def check(value, label):
            # the contract's value checks first: a custom check (scipy.sparse distance
            # matrices) may cast, which would drop an imaginary part or a mask silently
            what = f"{prefix}the cell at {label}"
            _refuse_masked(value, what, "")
            if isinstance(getattr(value, "dtype", None), np.dtype):
                _refuse_non_real(value, what, "")
            return cell(value, label)
    else:
        raise ValueError(f"unknown cell check {cell!r}")
    checked = [
        [check(value, collection.cell_label(i, j)) for j, value in enumerate(row)]
        for i, row in enumerate(cells)
    ]
    return Collection(cells=checked, kind=kind, index=index, columns=columns, name=name)


def _split_container(X, prefix, one_cloud):
    """Return ``(kind, cells, index, columns, name)`` of a container."""
    if isinstance(X, pd.DataFrame):
        if X.shape[1] == 0:
            raise ValueError(f"{prefix}the DataFrame has no columns: give one column per source of clouds.")
        cells = [list(row) for row in X.itertuples(index=False, name=None)]
        return "frame", cells, X.index, X.columns, None
    if isinstance(X, pd.Series):
        return "series", [[value] for value in X.tolist()], X.index, None, X.name
    if _is_tensor(X):
        X = X.detach().cpu().numpy()
    if isinstance(X, np.ndarray):
        if X.dtype == object and X.ndim == 1:
            return "list", [[value] for value in X], None, None, None
        if X.ndim == 3:
            return "array", [[cloud] for cloud in X], None, None, None
        if X.ndim == 2:
            raise ValueError(
                f"{prefix}got a single 2-D array of shape {X.shape}, which is one cloud, "
                f"not a collection of clouds. To analyse it, {_one_cloud_hint(one_cloud)}."
            )
        raise ValueError(
            f"{prefix}expected a collection of clouds (a list of 2-D arrays, a 3-D array, "
            f"a Series or a DataFrame of clouds); got an array with {X.ndim} dimension(s) "
            f"of shape {X.shape}."
        )
    if isinstance(X, (str, bytes)) or not hasattr(X, "__iter__"):
        raise TypeError(
            f"{prefix}expected a collection of clouds (a list of 2-D arrays, a 3-D array, "
            f"a Series or a DataFrame of clouds); got {type(X).__name__}."
        )
    if isinstance(X, dict):
        raise TypeError(
            f"{prefix}got a dict; pass `pandas.Series(your_dict)` so its keys become the row labels."
        )
    return "list", [[value] for value in X], None, None, None


def _is_tensor(value) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def check_cloud(value, label: str = "cloud", *, prefix: str = "", min_points: int = 1,
                one_cloud: str | None = None, finite: bool = True,
                keep_float32: bool = False) -> np.ndarray:
    """Return ``value`` as a finite 2-D float64 array, or raise naming ``label``.

    ``finite=False`` skips the finiteness check and ``keep_float32=True``
    returns float32 clouds as they are (see :func:`check_collection`).
    """
    if (type(value) is np.ndarray and value.ndim == 2 and value.dtype in _FLOATS
            and value.shape[0] >= max(min_points, 1) and value.shape[1] > 0
            and (not finite or np.isfinite(value).all())):
        # the common case, checked in one pass: thousands of small clouds must not
        # pay the general path's conversions (an error always takes that path)
        if value.dtype == np.float64 or keep_float32:
            return value
        return value.astype(np.float64)
    if _is_tensor(value):
        value = value.detach().cpu().numpy()
    _refuse_masked(value, f"{prefix}the cloud at {label}",
                   "Give each cloud as a 2-D array of real numbers (n_points, n_features).")
    try:
        array = np.asarray(value)
    except ValueError:
        raise ValueError(
            f"{prefix}the cloud at {label} is ragged: its points do not all have the same "
            f"number of coordinates. Give each cloud as a 2-D array (n_points, n_features)."
        ) from None
    _refuse_non_real(array, f"{prefix}the cloud at {label}",
                     "Give each cloud as a 2-D array of real numbers (n_points, n_features).")
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{prefix}the cloud at {label} is not numeric (dtype {array.dtype}). "
                f"Give each cloud as a 2-D array of numbers (n_points, n_features)."
            ) from None
    if array.ndim != 2:
        extra = ""
        if array.ndim == 1:
            extra = (" If you passed a single cloud as nested lists, "
                     f"{_one_cloud_hint(one_cloud)}.")
        raise ValueError(
            f"{prefix}the cloud at {label} has {array.ndim} dimension(s) (shape {array.shape}); "
            f"each cloud must be 2-D (n_points, n_features).{extra}"
        )
    n_points, n_features = array.shape
    if n_points == 0:
        raise ValueError(f"{prefix}the cloud at {label} is empty (0 points).")
    if n_features == 0:
        raise ValueError(f"{prefix}the cloud at {label} has points with 0 coordinates.")
    if n_points < min_points:
        raise ValueError(
            f"{prefix}the cloud at {label} has {n_points} point(s); at least {min_points} are needed."
        )
    array = np.asarray(array, dtype=np.float64)
    if finite:
        require_finite(array, label, prefix=prefix)
    return array


def require_finite(cloud: np.ndarray, label: str = "cloud", *, prefix: str = "") -> None:
    """Raise the collection contract's ValueError, naming ``label``, if ``cloud`` is not finite."""
    if np.isfinite(cloud).all():
        return
    bad = ~np.isfinite(cloud)
    n_nan = int(np.isnan(cloud).sum())
    n_inf = int(bad.sum()) - n_nan
    first = int(np.argmax(bad.any(axis=1)))
    raise ValueError(
        f"{prefix}the cloud at {label} contains {n_nan} NaN and {n_inf} infinite value(s) "
        f"(first at point {first}). Remove or impute those points first."
    )


def check_distance_matrix(value, label: str = "matrix", *, prefix: str = "", min_points: int = 1,
                          allow_inf: bool = True) -> np.ndarray:
    """Return ``value`` as a square, symmetric, non-negative float64 matrix."""
    array = _as_float_matrix(value, label, prefix)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(
            f"{prefix}with metric='precomputed' each cell must be a square distance matrix; "
            f"the one at {label} has shape {array.shape}."
        )
    n = array.shape[0]
    if n < min_points:
        raise ValueError(
            f"{prefix}the distance matrix at {label} covers {n} point(s); at least {min_points} are needed."
        )
    # Every check below goes block of rows by block of rows: whole-matrix masks and
    # the symmetry test's temporaries would take several times the matrix itself
    # (memory_limit counts the matrix, not its check).
    block = max(1, (1 << 18) // max(n, 1))  # a few MiB of temporaries at a time
    for start in range(0, n, block):
        rows = array[start:start + block]
        if np.isnan(rows).any():
            raise ValueError(f"{prefix}the distance matrix at {label} contains NaN values.")
        if not allow_inf and np.isinf(rows).any():
            raise ValueError(f"{prefix}the distance matrix at {label} contains infinite values.")
        if (rows < 0).any():
            raise ValueError(f"{prefix}the distance matrix at {label} has negative entries.")
    diagonal = np.diagonal(array)
    if diagonal.any():
        # engines disagree on a non-zero diagonal (giotto-ph reads it as vertex
        # birth times, ripser.py and the MST engine ignore it)
        raise ValueError(
            f"{prefix}the distance matrix at {label} has non-zero diagonal entries (first at "
            f"point {int(np.flatnonzero(diagonal)[0])}); a point is at distance 0 from itself."
        )
    if not _is_symmetric(array, block):
        raise ValueError(
            f"{prefix}the distance matrix at {label} is not symmetric. "
            f"Symmetrise it, e.g. (D + D.T) / 2, if that is what you mean."
        )
    return array


def _refuse_masked(value, what: str, fix: str) -> None:
    """ValueError for a numpy masked array with masked entries: ``np.asarray`` drops
    the mask, and the masked values would be read as numbers."""
    if not (isinstance(value, np.ma.MaskedArray) and np.ma.is_masked(value)):
        return
    mask = np.ma.getmaskarray(value)
    points = mask.reshape(len(mask), -1).any(axis=1) if mask.ndim else mask.reshape(1)
    raise ValueError(
        f"{what} is a numpy masked array with {int(mask.sum())} masked value(s) in "
        f"{int(points.sum())} point(s) (first at point {int(np.argmax(points))}); sktopo "
        f"would read the masked values as numbers. Drop the masked points first "
        f"(X.data[~np.ma.getmaskarray(X).any(axis=1)]), or fill them (X.filled(...)) if "
        f"that is what you mean. {fix}".rstrip()
    )


def _refuse_non_real(array, what: str, fix: str) -> None:
    """ValueError for complex, text, date or duration values: numpy would drop the
    imaginary part (with only a ComplexWarning), parse the text or count the dates'
    units, and the result would look fine. ``array`` is a numpy array or anything
    with a numpy ``dtype`` (a scipy.sparse matrix)."""
    kind = array.dtype.kind
    if kind == "O" and isinstance(array, np.ndarray) and array.size:
        kind = np.asarray(array.ravel().tolist()).dtype.kind
    if kind == "c":
        raise ValueError(
            f"{what} has complex values (dtype {array.dtype}); sktopo works with real "
            f"numbers. Pass the real part, the modulus (numpy.abs) or both as separate "
            f"coordinates (numpy.hstack([X.real, X.imag])). {fix}"
        )
    if kind in "USa":
        raise ValueError(
            f"{what} is not numeric: it holds text (dtype {array.dtype}). Convert it first "
            f"(X.astype(float)) if the text is numbers. {fix}"
        )
    if kind in "mM":
        raise ValueError(
            f"{what} holds dates or durations (dtype {array.dtype}); numpy would read them "
            f"as counts of their unit ({np.datetime_data(array.dtype)[0]!r}). Convert them to the "
            f"numbers you mean first, e.g. (X - X.min()) / np.timedelta64(1, 's') for "
            f"seconds. {fix}"
        )


def _is_symmetric(array, block):
    """Equal infinite pattern and ``allclose`` finite entries of ``array`` and its transpose."""
    n = array.shape[0]
    for start in range(0, n, block):
        rows = array[start:start + block]
        cols = array[:, start:start + block].T
        finite = np.isfinite(rows)
        if not np.array_equal(finite, np.isfinite(cols)) or not np.allclose(
            np.where(finite, rows, 0), np.where(finite, cols, 0), rtol=1e-6, atol=1e-9
        ):
            return False
    return True


def _as_float_matrix(value, label, prefix):
    if _is_tensor(value):
        value = value.detach().cpu().numpy()
    _refuse_masked(value, f"{prefix}the distance matrix at {label}",
                   "Give each cell as a square matrix of distances.")
    try:
        array = np.asarray(value)
    except ValueError:
        array = None
    if array is not None:
        _refuse_non_real(array, f"{prefix}the distance matrix at {label}",
                         "Give each cell as a square matrix of distances.")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{prefix}the distance matrix at {label} is not a numeric square array."
        ) from None
