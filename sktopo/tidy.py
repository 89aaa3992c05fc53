"""Long ("tidy") form of sktopo feature tables.

sktopo's feature transformers return wide tables, one row per unit and one
column per feature. :func:`tidy` turns any of them into one row per
(unit, feature) with columns ``unit``, ``source``, ``homology_dimension``,
``feature`` and ``value``: the shape that ``seaborn`` / ``groupby`` want for
"feature across layers" plots.

The naming convention it parses
-------------------------------
sktopo names every feature column ``[source__]H{q}__{feature}`` or
``[source__]{prefix}_{feature}``:

- ``source`` is the DataFrame column (layer) the feature came from, present
  when the transformer got a DataFrame; any prefix that sklearn adds (a
  FeatureUnion's transformer name, ``"union__conv1__H0__n_bars"``) becomes
  part of the source;
- ``H{q}`` is the homology dimension, for features that have one
  (``H0__n_bars``): the part just before the feature;
- ``{prefix}_{feature}`` names a feature without a homology dimension by its
  estimator (``phdim``, ``phdim_std``, ``twonn_r2``, ``mle_std``,
  ``bottleneck_distance_to_{row}``): the prefixes are listed in
  :data:`DIMENSIONLESS_PREFIXES`, a fixed list (the same answer whatever
  was imported; a test checks that it holds the ``_prefix`` of every cloud
  estimator), so a source that looks like ``H1`` stays a source
  (``"H1__phdim"`` is the PH dimension of the layer called ``H1``).

The parts are separated by a double underscore. :func:`feature_name` builds a
name back from its parts: ``feature_name(*parse_feature_name(name)) == name``
for every name sktopo emits.

``sktopo.tidy`` is the function :func:`tidy`: ``sktopo/__init__.py`` binds it when
the package is imported (this module imports numpy and pandas only when called),
so importing this module (``from sktopo.tidy import parse_feature_name``) never
turns the attribute into the module.
"""

from __future__ import annotations

import re

__all__ = ["DIMENSIONLESS_PREFIXES", "feature_name", "parse_feature_name", "tidy"]

_DIM = re.compile(r"H(\d+)")


# estimator prefixes of features without a homology dimension ({prefix} or {prefix}_...):
# the dimension estimators (their ``_prefix``: phdim, twonn, mle, twonn_ml), DiagramDistance,
# ReLURankRegions' per-layer columns, the per-space columns of QuotientPersistence.table_ and
# the similarity measures (CKA, SVCCA, PWCCA, ProcrustesDistance).
# Fixed: the parse never depends on which modules were imported.
DIMENSIONLESS_PREFIXES = ("phdim", "twonn", "twonn_ml", "mle", "bottleneck_distance",
                          "wasserstein_distance", "sliced_wasserstein_distance",
                          "sliced_wasserstein_kernel", "rank", "active", "kernel_dim", "region",
                          "n_points", "frac_low_rank", "cka", "svcca", "pwcca", "procrustes")


def _is_dimensionless(feature: str) -> bool:
    return any(feature == p or feature.startswith(p + "_") for p in DIMENSIONLESS_PREFIXES)


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
    >>> parse_feature_name("H1__phdim")  # a layer called H1
    ('H1', None, 'phdim')
    >>> parse_feature_name("phdim")
    (None, None, 'phdim')
    """
    parts = str(name).split("__")
    feature = parts[-1]
    if len(parts) == 1:
        return None, None, feature
    match = _DIM.fullmatch(parts[-2])
    if match and not _is_dimensionless(feature):
        return "__".join(parts[:-2]) or None, int(match.group(1)), feature
    return "__".join(parts[:-1]), None, feature


def feature_name(source, homology_dimension, feature) -> str:
    """The column name of a feature: the inverse of :func:`parse_feature_name`.

    Parameters
    ----------
    source : str or None
        The DataFrame column (layer), or None.
    homology_dimension : int or None
        The homology dimension, or None for features without one.
    feature : str
        The quantity's name.

    Returns
    -------
    name : str

    Examples
    --------
    >>> from sktopo.tidy import feature_name
    >>> feature_name("conv1", 0, "n_bars")
    'conv1__H0__n_bars'
    >>> feature_name(None, None, "phdim")
    'phdim'
    """
    import pandas as pd

    parts = [] if source is None or source is pd.NA else [str(source)]
    if homology_dimension is not None and homology_dimension is not pd.NA:
        parts.append(f"H{int(homology_dimension)}")
    return "__".join(parts + [str(feature)])


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
    import numpy as np
    import pandas as pd

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

