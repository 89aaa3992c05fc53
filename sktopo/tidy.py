"""Long ("tidy") form of sktopo feature tables.

sktopo's feature transformers return wide tables, one row per unit and one
column per feature. :func:`tidy` turns any of them into one row per
(unit, feature) with columns ``unit``, ``source``, ``homology_dimension``,
``feature`` and ``value``: the shape that ``seaborn`` / ``groupby`` want for
"feature across layers" plots.

The naming convention it parses
-------------------------------
sktopo names a feature column ``[source__]H{q}__{feature}`` or
``[source__]{feature}``:

- ``source`` is the DataFrame column (layer) the feature came from, present
  when the transformer got a DataFrame; any prefix that sklearn adds (a
  FeatureUnion's transformer name, ``"union__conv1__H0__n_bars"``) becomes
  part of the source;
- ``H{q}`` is the homology dimension, for features that have one
  (``H0__n_bars``); features without one (``PHDimension``'s ``phdim``,
  distances) have none;
- ``feature`` is the name of the quantity (``n_bars``, ``betti_3``, ...).

The parts are separated by a double underscore. The homology dimension is the
last ``H{q}`` part before the feature; with no such part, the last part is the
feature and everything before it is the source.
"""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pandas as pd

__all__ = ["tidy", "parse_feature_name"]

_DIM = re.compile(r"H(\d+)")


def parse_feature_name(name) -> tuple:
    """Split a feature name into ``(source, homology_dimension, feature)``.

    Parameters
    ----------
    name : str
        A name like ``"conv1__H0__n_bars"``, ``"H1__image_0_3"``, ``"phdim"``
        or ``"conv1__phdim"``.

    Returns
    -------
    source : str or None
    homology_dimension : int or None
    feature : str

    Examples
    --------
    >>> from sktopo.tidy import parse_feature_name
    >>> parse_feature_name("conv1__H0__n_bars")
    ('conv1', 0, 'n_bars')
    >>> parse_feature_name("H1__total_persistence_p1")
    (None, 1, 'total_persistence_p1')
    >>> parse_feature_name("layer.3__phdim")
    ('layer.3', None, 'phdim')
    >>> parse_feature_name("phdim")
    (None, None, 'phdim')
    """
    parts = str(name).split("__")
    if len(parts) == 1:
        return None, None, parts[0]
    # the last H{q} part that is not the feature itself
    for k in range(len(parts) - 2, -1, -1):
        match = _DIM.fullmatch(parts[k])
        if match:
            source = "__".join(parts[:k]) or None
            return source, int(match.group(1)), "__".join(parts[k + 1:])
    return "__".join(parts[:-1]), None, parts[-1]


def tidy(table, feature_names=None, *, index=None) -> pd.DataFrame:
    """Turn an sktopo feature table into long form.

    Parameters
    ----------
    table : DataFrame, Series or 2-D array
        A feature table: the DataFrame returned with
        ``set_output(transform="pandas")``, or the array returned otherwise
        (then give ``feature_names``). A Series is one feature (named by the
        Series' name) across units.
    feature_names : sequence of str or fitted transformer, optional
        Names of the array's columns, or a fitted transformer whose
        ``get_feature_names_out()`` gives them. For a DataFrame they replace
        its column names.
    index : sequence or pandas.Index, optional
        Row labels of an array (default ``0..n-1``); replaces a DataFrame's
        index.

    Returns
    -------
    long : DataFrame
        One row per (unit, feature) in the table's order (row by row), with
        columns

        - ``unit``: the row label. If the index is a MultiIndex (e.g.
          ``(model, layer)``), its levels become columns instead, named after
          the levels (``level_{k}`` for unnamed ones);
        - ``source``: the DataFrame column (layer) the feature came from, or
          None;
        - ``homology_dimension``: nullable integer (``<NA>`` for features
          without one);
        - ``feature``: the quantity's name;
        - ``value``: float.

    See the module docstring for the naming convention parsed.

    Examples
    --------
    >>> import pandas as pd
    >>> from sktopo import tidy
    >>> wide = pd.DataFrame({"conv1__H0__n_bars": [3, 5], "conv1__phdim": [2.1, 2.4]},
    ...                     index=pd.Index(["cat", "dog"], name="image"))
    >>> tidy(wide)
      unit source  homology_dimension feature  value
    0  cat  conv1                   0  n_bars    3.0
    1  cat  conv1                <NA>   phdim    2.1
    2  dog  conv1                   0  n_bars    5.0
    3  dog  conv1                <NA>   phdim    2.4
    """
    if isinstance(table, pd.Series):
        table = table.to_frame(name=table.name if table.name is not None else "value")
    if isinstance(table, pd.DataFrame):
        values = table.to_numpy()
        names = list(table.columns)
        row_index = table.index
    else:
        values = np.asarray(table)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise ValueError(f"tidy: expected a 2-D feature table; got an array of shape {values.shape}.")
        if feature_names is None:
            raise ValueError(
                "tidy: an array has no column names; pass feature_names "
                "(e.g. estimator.get_feature_names_out(), or the fitted estimator itself), "
                "or use set_output(transform='pandas')."
            )
        names = None
        row_index = pd.RangeIndex(len(values))
    if feature_names is not None:
        if hasattr(feature_names, "get_feature_names_out"):
            feature_names = feature_names.get_feature_names_out()
        names = list(feature_names)
    if len(names) != values.shape[1]:
        raise ValueError(f"tidy: {len(names)} feature names for a table of {values.shape[1]} column(s).")
    if index is not None:
        row_index = index if isinstance(index, pd.Index) else pd.Index(index)
        if len(row_index) != values.shape[0]:
            raise ValueError(f"tidy: index has {len(row_index)} labels for {values.shape[0]} row(s).")
    try:
        numbers = values.astype(float)
    except (TypeError, ValueError):
        raise ValueError(
            "tidy: the table has non-numeric values; it must be a feature table of numbers."
        ) from None

    parsed = [parse_feature_name(name) for name in names]
    n_rows, n_cols = numbers.shape
    rows = np.repeat(np.arange(n_rows), n_cols)
    cols = np.tile(np.arange(n_cols), n_rows)

    out = {}
    if isinstance(row_index, pd.MultiIndex):
        for k, level_name in enumerate(row_index.names):
            column = level_name if level_name is not None else f"level_{k}"
            if column in ("source", "homology_dimension", "feature", "value") or column in out:
                raise ValueError(
                    f"tidy: the index level name {column!r} clashes with another column of the "
                    f"long table; rename the level (table.rename_axis(...))."
                )
            out[column] = row_index.get_level_values(k).take(rows)
    else:
        out["unit"] = row_index.take(rows)
    out["source"] = pd.array([parsed[c][0] for c in cols], dtype=object)
    out["homology_dimension"] = pd.array([parsed[c][1] for c in cols], dtype="Int64")
    out["feature"] = [parsed[c][2] for c in cols]
    out["value"] = numbers[rows, cols]
    for key, column in out.items():
        if isinstance(column, pd.Index):
            out[key] = column.to_numpy()
    return pd.DataFrame(out)


class _CallableModule(types.ModuleType):
    """``sktopo.tidy`` is both this module and the function :func:`tidy`.

    Importing the submodule (``import sktopo.tidy``, or doctest collection)
    makes the attribute ``sktopo.tidy`` the module rather than the function;
    making the module callable keeps ``sktopo.tidy(table)`` working whatever
    was imported first.
    """

    def __call__(self, *args, **kwargs):
        return tidy(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
