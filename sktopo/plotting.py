"""Plots of diagrams, barcodes, Betti curves, per-layer profiles and rank histograms.

Every function draws on the Axes it is given (``ax=...``) and returns it. With
``ax=None`` it makes a new figure with one Axes (through pyplot, so that
``plt.show()`` and notebooks display it); it never draws on pyplot's *current*
Axes, so calls do not interfere with each other or with your own figures.

matplotlib is imported only when this module is used: ``import sktopo`` does
not load it.

Infinite bars are drawn, not dropped: in :func:`plot_diagram` they sit on a
dashed line marked ``∞`` above every finite value (and above the filtration's
threshold, which is drawn as a dotted line when it is finite); in
:func:`plot_barcode` they run to the right edge and end in an arrow.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from sktopo.diagram import Diagram

__all__ = [
    "plot_diagram",
    "plot_barcode",
    "plot_betti_curves",
    "plot_layer_profile",
    "plot_rank_histogram",
    "plot_cycle",
]

# Headroom above the largest finite value at which infinite bars are drawn.
_INF_MARGIN = 0.1


# ----------------------------------------------------------------------------- helpers
def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    return ax


def _color(q):
    # The default colour cycle, indexed by homology dimension, so that H1 has
    # the same colour in a diagram, a barcode and a Betti-curve plot.
    import matplotlib as mpl

    cycle = mpl.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    return cycle[q % len(cycle)]


def _as_diagram(diagram, where):
    if isinstance(diagram, Diagram):
        return diagram
    if isinstance(diagram, (pd.Series, pd.DataFrame)) or (
        isinstance(diagram, (list, tuple)) and diagram and isinstance(diagram[0], Diagram)
    ):
        raise TypeError(
            f"{where} draws one diagram; got a collection of {len(diagram)}. "
            f"Pass one cell, e.g. diagrams.iloc[0] or diagrams[0]."
        )
    try:
        return Diagram(diagram)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{where} expects a sktopo Diagram (or the per-dimension (birth, death) arrays "
            f"that Diagram accepts, such as ripser's 'dgms'); got {type(diagram).__name__}: {exc}"
        ) from None


def _dimensions(diagram, homology_dimensions, where):
    if homology_dimensions is None:
        return list(diagram.dims)
    if np.isscalar(homology_dimensions):
        homology_dimensions = [homology_dimensions]
    dims = [int(q) for q in homology_dimensions]
    missing = [q for q in dims if q not in diagram]
    if missing:
        raise ValueError(
            f"{where}: the diagram has no dimension(s) {missing}; it has {list(diagram.dims)}. "
            f"Compute them with PersistenceDiagram(homology_dimensions=...)."
        )
    return dims


def _finite_range(diagram, dims):
    """Smallest birth and largest finite value (death or threshold) over ``dims``."""
    values = [diagram[q][np.isfinite(diagram[q])] for q in dims]
    values = np.concatenate(values) if values else np.empty(0)
    if np.isfinite(diagram.threshold):
        values = np.append(values, diagram.threshold)
    if values.size == 0:
        return 0.0, 1.0
    low, high = float(min(values.min(), 0.0)), float(values.max())
    if high <= low:
        high = low + 1.0
    return low, high


def _has_infinite(diagram, dims):
    return any(diagram.n_infinite(q) for q in dims)


def _legend(ax, legend):
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right" if legend is True else legend)


# ----------------------------------------------------------------------------- diagrams
def plot_diagram(diagram, *, ax=None, homology_dimensions=None, diagonal=True, legend=True,
                 marker_size=20, alpha=0.8, title=None):
    """Scatter the (birth, death) points of a persistence diagram, per homology dimension.

    Parameters
    ----------
    diagram : Diagram
        One diagram (a cell of :class:`~sktopo.PersistenceDiagram`'s output). A
        sequence of ``(k, 2)`` arrays, such as ripser's ``dgms``, is converted.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made when None.
    homology_dimensions : int or sequence of int, optional
        Dimensions to draw; None draws all of ``diagram.dims``. A dimension
        with no bars still gets its legend entry, with ``(0)`` bars.
    diagonal : bool, default=True
        Draw the diagonal ``death = birth``.
    legend : bool or str, default=True
        Draw a legend (``"H1 (12)"``: dimension and number of bars); a string
        is passed to ``Axes.legend`` as ``loc``.
    marker_size : float, default=20
        Marker area, as in ``Axes.scatter``.
    alpha : float, default=0.8
        Marker opacity.
    title : str, optional
        Axes title.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Notes
    -----
    Bars that never die are drawn at the height of a dashed line labelled
    ``∞``, above every finite death. When the filtration stopped at a finite
    threshold (``max_edge_length``), a dotted line marks it: by the
    infinite-bar policy of :class:`~sktopo.Diagram`, lifetime features read
    those bars as dying at the threshold.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sktopo import Diagram
    >>> from sktopo.plotting import plot_diagram
    >>> ax = plot_diagram(Diagram({0: [[0, 1], [0, float("inf")]], 1: [[0.5, 0.8]]}))
    >>> len(ax.collections)
    2
    """
    diagram = _as_diagram(diagram, "plot_diagram")
    dims = _dimensions(diagram, homology_dimensions, "plot_diagram")
    ax = _axes(ax)
    low, high = _finite_range(diagram, dims)
    span = high - low
    infinite = _has_infinite(diagram, dims)
    inf_level = high + _INF_MARGIN * span
    top = inf_level if infinite else high
    pad = 0.04 * span

    if diagonal:
        ax.plot([low - pad, top + pad], [low - pad, top + pad], color="0.6", lw=1, zorder=1)
    if np.isfinite(diagram.threshold):
        ax.axhline(diagram.threshold, color="0.4", ls=":", lw=1, zorder=1)
        ax.text(1.01, diagram.threshold, "threshold", transform=ax.get_yaxis_transform(),
                va="center", ha="left", fontsize="small", color="0.4")
    if infinite:
        ax.axhline(inf_level, color="0.4", ls="--", lw=1, zorder=1)
        # labelled right of the axes, so it hides neither a point nor a tick label
        ax.text(1.01, inf_level, "∞", transform=ax.get_yaxis_transform(),
                va="center", ha="left", color="0.3")

    for q in dims:
        pairs = diagram[q]
        deaths = np.where(np.isinf(pairs[:, 1]), inf_level, pairs[:, 1])
        ax.scatter(pairs[:, 0], deaths, s=marker_size, alpha=alpha, color=_color(q),
                   label=f"H{q} ({len(pairs)})", zorder=2)

    ax.set_xlim(low - pad, top + pad)
    ax.set_ylim(low - pad, top + pad)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("birth")
    ax.set_ylabel("death")
    if title is not None:
        ax.set_title(title)
    _legend(ax, legend)
    return ax


def plot_barcode(diagram, *, ax=None, homology_dimensions=None, sort=True, legend=True,
                 linewidth=None, title=None):
    """Draw a persistence diagram as a barcode: one horizontal bar per class.

    Parameters
    ----------
    diagram : Diagram
        One diagram; a sequence of ``(k, 2)`` arrays is converted.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made when None.
    homology_dimensions : int or sequence of int, optional
        Dimensions to draw, stacked from the top in this order; None draws
        all of ``diagram.dims``.
    sort : bool, default=True
        Within a dimension, put the earliest births at the top and, among
        equal births, the longest bars first. False keeps the diagram's order.
    legend : bool or str, default=True
        Draw a legend with the number of bars per dimension.
    linewidth : float, optional
        Bar thickness in points; None picks one from the number of bars.
    title : str, optional
        Axes title.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Notes
    -----
    Every bar is drawn; none is dropped. Bars that never die run to a dashed
    line labelled ``∞`` at the right and end in an arrow head. A finite
    filtration threshold is marked with a dotted vertical line.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sktopo import Diagram
    >>> from sktopo.plotting import plot_barcode
    >>> ax = plot_barcode(Diagram({0: [[0, 1], [0, float("inf")]], 1: [[0.5, 0.8]]}))
    >>> len(ax.collections)
    2
    """
    diagram = _as_diagram(diagram, "plot_barcode")
    dims = _dimensions(diagram, homology_dimensions, "plot_barcode")
    ax = _axes(ax)
    low, high = _finite_range(diagram, dims)
    span = high - low
    infinite = _has_infinite(diagram, dims)
    inf_level = high + _INF_MARGIN * span
    right = inf_level if infinite else high
    n_bars = sum(len(diagram[q]) for q in dims)
    if linewidth is None:
        linewidth = float(np.clip(150.0 / max(n_bars, 1), 0.5, 6.0))

    row = 0
    gap = max(1, n_bars // 50)  # space between dimensions, in bar rows
    for q in dims:
        pairs = diagram[q]
        if sort and len(pairs):
            lengths = np.where(np.isinf(pairs[:, 1]), np.inf, pairs[:, 1] - pairs[:, 0])
            pairs = pairs[np.lexsort((-lengths, pairs[:, 0]))]
        ends = np.where(np.isinf(pairs[:, 1]), inf_level, pairs[:, 1])
        rows = row + np.arange(len(pairs))
        ax.hlines(rows, pairs[:, 0], ends, colors=_color(q), lw=linewidth,
                  label=f"H{q} ({len(pairs)})")
        is_inf = np.isinf(pairs[:, 1])
        if is_inf.any():
            ax.plot(ends[is_inf], rows[is_inf], ls="none", marker=">", color=_color(q),
                    markersize=max(3.0, linewidth * 1.5))
        row += len(pairs) + gap

    pad = 0.04 * span
    if np.isfinite(diagram.threshold):
        ax.axvline(diagram.threshold, color="0.4", ls=":", lw=1)
    if infinite:
        ax.axvline(inf_level, color="0.4", ls="--", lw=1)
        ax.text(inf_level, 1.0, "∞", transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", color="0.4")
    ax.set_xlim(low - pad, right + pad)
    ax.set_ylim(max(row - gap, 1), -1)  # first row at the top
    ax.set_yticks([])
    ax.set_xlabel("filtration value")
    if title is not None:
        ax.set_title(title)
    _legend(ax, legend)
    return ax


def plot_betti_curves(diagram, *, ax=None, homology_dimensions=None, scales=None, n_scales=200,
                      legend=True, title=None):
    """Betti numbers of a diagram as step functions of the filtration scale.

    Parameters
    ----------
    diagram : Diagram
        One diagram; a sequence of ``(k, 2)`` arrays is converted.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made when None.
    homology_dimensions : int or sequence of int, optional
        Dimensions to draw; None draws all of ``diagram.dims``.
    scales : array-like, optional
        Scales at which to count bars; None takes ``n_scales`` evenly spaced
        values from 0 (or the smallest birth) to the largest finite death or
        threshold.
    n_scales : int, default=200
        Number of scales when ``scales`` is None.
    legend : bool or str, default=True
        Draw a legend.
    title : str, optional
        Axes title.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Notes
    -----
    Counts use every bar, infinite ones included (:meth:`Diagram.betti`:
    birth <= t < death), as the infinite-bar policy says for Betti numbers.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sktopo import Diagram
    >>> from sktopo.plotting import plot_betti_curves
    >>> ax = plot_betti_curves(Diagram({0: [[0, 1], [0, float("inf")]], 1: [[0.5, 0.8]]}))
    >>> len(ax.lines)
    2
    """
    diagram = _as_diagram(diagram, "plot_betti_curves")
    dims = _dimensions(diagram, homology_dimensions, "plot_betti_curves")
    ax = _axes(ax)
    if scales is None:
        low, high = _finite_range(diagram, dims)
        scales = np.linspace(low, high + 0.05 * (high - low), int(n_scales))
    scales = np.asarray(scales, dtype=float)
    if scales.ndim != 1 or scales.size == 0:
        raise ValueError(f"plot_betti_curves: scales must be a non-empty 1-D array; got shape "
                         f"{scales.shape}.")
    for q in dims:
        ax.step(scales, diagram.betti(q, scales), where="post", color=_color(q), label=f"β{q}")
    ax.set_xlabel("filtration value")
    ax.set_ylabel("Betti number")
    if title is not None:
        ax.set_title(title)
    _legend(ax, "upper right" if legend is True else legend)
    return ax


# ----------------------------------------------------------------------------- tables
def _column_or_level(table, name, where):
    """Values of a column, or of an index level, of ``table``."""
    if name in table.columns:
        return table[name]
    if name in (table.index.names or []):
        return pd.Series(table.index.get_level_values(name), index=table.index)
    raise ValueError(
        f"{where}: {name!r} is neither a column nor an index level of the table; "
        f"columns are {list(table.columns)}, index levels {list(table.index.names)}."
    )


_WORDS = {
    "phdim": "PH dimension", "twonn": "TwoNN dimension", "n_bars": "number of bars",
    "n_infinite": "number of infinite bars", "total_persistence_p1": "total persistence",
    "total_persistence_p2": "total persistence (p = 2)", "max_lifetime": "longest bar",
    "entropy": "persistent entropy", "mean_rank": "mean cumulative rank",
    "min_rank": "minimum cumulative rank", "n_features": "number of features",
    "n_inputs": "number of inputs", "r2": "R² of the fit",
}


def _column_words(name):
    """A column name in words for axis labels: ``"H1__total_persistence_p1"`` -> ``"H1
    total persistence"``; unknown names are returned as they are."""
    name = str(name)
    source, _, feature = name.rpartition("__")
    words = _WORDS.get(feature, feature.replace("_", " ") if source else feature)
    if source:
        return f"{source.replace('__', ' ')} {words}"
    if name.endswith("_std") and name[:-4] in _WORDS:
        return f"standard deviation of the {_WORDS[name[:-4]]}"
    return words


def _error_words(yerr):
    if str(yerr).endswith("_std"):
        return f"error bars: ± 1 s.d. ({yerr})"
    return f"error bars: ± {yerr}"


def plot_layer_profile(table, *, y="phdim", yerr="auto", x=None, ax=None, hue=None, label=None,
                       marker="o", capsize=3, rotate_labels=None, title=None, ylabel=None,
                       **kwargs):
    """Plot a per-layer quantity (with error bars) along the network's depth.

    Parameters
    ----------
    table : pandas.DataFrame or pandas.Series
        A feature table with one row per layer, as :class:`~sktopo.PHDimension`
        or :class:`~sktopo.DiagramFeatures` return with
        ``set_output(transform="pandas")`` on the dataset unit (indexed by
        layer); a long (tidy) table with one row per (group, layer), with
        ``x`` and ``hue`` naming its columns; or a Series indexed by layer. A table whose index has
        two levels, such as ``(model, layer)``, draws one line per value of the
        first level unless ``hue`` says otherwise.
    y : str, default="phdim"
        Column to plot (ignored for a Series).
    yerr : str, "auto" or None, default="auto"
        Column of error-bar half-widths (for example a standard deviation over
        reruns). "auto" uses ``"{y}_std"`` when the table has it and draws no
        error bars otherwise; None never draws them.
    x : str, optional
        Column or index level giving the position along depth. None uses the
        (last level of the) index: layer names are placed in their order of
        first appearance and used as tick labels. A numeric column (e.g. a
        relative depth) is plotted as numbers.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made when None.
    hue : str, optional
        Column or index level whose values get one line each.
    label : str, optional
        Legend label of the line when there is no ``hue``; defaults to ``y`` in words.
    marker : str, default="o"
        Marker of the points.
    capsize : float, default=3
        Width of the error-bar caps.
    rotate_labels : float, optional
        Rotation of categorical tick labels, in degrees; None rotates by 45
        when there are more than 6 of them.
    title : str, optional
        Axes title.
    ylabel : str, optional
        Label of the y axis; None writes ``y`` in words (``"phdim"`` -> ``"PH dimension"``,
        ``"H0__total_persistence_p1"`` -> ``"H0 total persistence"``). When error bars are drawn,
        the legend says what they show (``"error bars: ± 1 s.d. (phdim_std)"``).
    **kwargs
        Passed to ``Axes.errorbar``.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from sktopo.plotting import plot_layer_profile
    >>> table = pd.DataFrame({"phdim": [5.0, 9.0, 3.0], "phdim_std": [0.2, 0.4, 0.1]},
    ...                      index=pd.Index(["fc1", "fc2", "fc3"], name="layer"))
    >>> ax = plot_layer_profile(table)
    >>> [t.get_text() for t in ax.get_xticklabels()]
    ['fc1', 'fc2', 'fc3']
    """
    where = "plot_layer_profile"
    if isinstance(table, pd.Series):
        name = table.name if table.name is not None else "value"
        table = table.to_frame(name=name)
        y, yerr = name, None if yerr == "auto" else yerr
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{where} expects a pandas DataFrame or Series; got "
                        f"{type(table).__name__}. Use set_output(transform='pandas') on the "
                        f"estimator to get one.")
    if table.shape[0] == 0:
        raise ValueError(f"{where}: the table has no rows.")
    yvals = pd.to_numeric(_column_or_level(table, y, where), errors="coerce").to_numpy(float)
    if yerr == "auto":
        yerr = f"{y}_std" if f"{y}_std" in table.columns else None
    errs = None
    if yerr is not None:
        errs = pd.to_numeric(_column_or_level(table, yerr, where),
                             errors="coerce").to_numpy(float)

    if hue is None and x is None and isinstance(table.index, pd.MultiIndex) \
            and table.index.nlevels == 2:
        hue = 0  # (model, layer): one line per model
    if hue is None:
        groups = np.zeros(len(table), dtype=int)
        group_labels = [label if label is not None else _column_words(y)]
    else:
        if isinstance(hue, int) and isinstance(table.index, pd.MultiIndex):
            hue_values = table.index.get_level_values(hue)
        else:
            hue_values = _column_or_level(table, hue, where).to_numpy()
        codes, uniques = pd.factorize(hue_values)
        groups, group_labels = codes, [str(u) for u in uniques]

    if x is None:
        positions = table.index.get_level_values(-1) if isinstance(table.index, pd.MultiIndex) \
            else table.index
        positions = pd.Series(positions, index=table.index)
    else:
        positions = _column_or_level(table, x, where)
    categorical = not pd.api.types.is_numeric_dtype(positions) or x is None
    if categorical:
        codes, categories = pd.factorize(positions.to_numpy())
        xvals = codes.astype(float)
    else:
        xvals = positions.to_numpy(float)

    ax = _axes(ax)
    for g, group_label in enumerate(group_labels):
        sel = groups == g
        order = np.argsort(xvals[sel], kind="stable")
        ax.errorbar(xvals[sel][order], yvals[sel][order],
                    yerr=None if errs is None else errs[sel][order],
                    marker=marker, capsize=capsize if errs is not None else 0,
                    label=group_label, **kwargs)
    if categorical:
        ax.set_xticks(np.arange(len(categories)))
        rotation = rotate_labels if rotate_labels is not None else (45 if len(categories) > 6 else 0)
        ax.set_xticklabels([str(c) for c in categories], rotation=rotation,
                           ha="right" if rotation else "center")
    ax.set_xlabel(_column_words(x) if x is not None else (table.index.names[-1] or "layer"))
    ax.set_ylabel(ylabel if ylabel is not None else _column_words(y))
    if title is not None:
        ax.set_title(title)
    note = None if errs is None else _error_words(yerr)
    if hue is not None or label is not None or note is not None:
        hue_name = hue if isinstance(hue, str) else (
            table.index.names[hue] if isinstance(hue, int) and table.index.nlevels > 1 else None)
        handles, labels = ax.get_legend_handles_labels()
        if note is not None:  # a legend entry that says what the error bars show
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], color="0.4", marker="|", markersize=12,
                                  linestyle="None"))
            labels.append(note)
        ax.legend(handles, labels, title=hue_name)
    return ax


def _rank_columns(ranks, layers, where):
    if isinstance(ranks, pd.Series):
        return {ranks.name if ranks.name is not None else "rank": ranks}
    if isinstance(ranks, Mapping):
        return {str(k): pd.Series(np.asarray(v).ravel()) for k, v in ranks.items()}
    if not isinstance(ranks, pd.DataFrame):
        raise TypeError(
            f"{where} expects the DataFrame that ReLURankRegions.transform returns (columns "
            f"'{{layer}}__rank'), a dict of layer -> ranks, or a Series; got "
            f"{type(ranks).__name__}."
        )
    rank_cols = [c for c in ranks.columns if str(c).endswith("__rank")]
    found = {str(c)[: -len("__rank")]: ranks[c] for c in rank_cols}
    if not found:
        raise ValueError(
            f"{where}: no '{{layer}}__rank' columns in the table; its columns are "
            f"{list(ranks.columns)[:10]}{' ...' if ranks.shape[1] > 10 else ''}. Pass the output "
            f"of ReLURankRegions.transform or region_table."
        )
    if layers is None:
        return found
    if isinstance(layers, str):
        layers = [layers]
    missing = [layer for layer in layers if layer not in found]
    if missing:
        raise ValueError(f"{where}: no rank column for layer(s) {missing}; layers with ranks "
                         f"are {list(found)}.")
    return {layer: found[layer] for layer in layers}


def plot_rank_histogram(ranks, *, ax=None, layers=None, weights=None, full_rank=None,
                        density=False, histtype="step", legend=True, title=None, **kwargs):
    """Histogram of the cumulative rank per ReLU layer.

    Parameters
    ----------
    ranks : pandas.DataFrame, dict or pandas.Series
        The per-input table of :class:`~sktopo.ReLURankRegions` (or its
        ``region_table``): every column named ``"{layer}__rank"`` is one layer,
        other columns are ignored. A dict maps layer names to arrays of ranks;
        a Series is one layer.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made when None.
    layers : str or list of str, optional
        Layers to draw, in this order; None draws every rank column.
    weights : str, optional
        Column of per-row weights. For a region table, ``weights="n_inputs"``
        counts inputs instead of regions.
    full_rank : int, optional
        Draw a vertical dotted line at this rank (the input dimension, or the
        ``low_rank_`` level): rows left of it are rank deficient.
    density : bool, default=False
        Normalise each layer's histogram to a fraction of its rows.
    histtype : str, default="step"
        As in ``Axes.hist``; "step" keeps overlapping layers readable.
    legend : bool or str, default=True
        Draw a legend of layers.
    title : str, optional
        Axes title.
    **kwargs
        Passed to ``Axes.hist``.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Notes
    -----
    Ranks are integers: bins are one unit wide and centred on them.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from sktopo.plotting import plot_rank_histogram
    >>> table = pd.DataFrame({"0__rank": [2, 2, 1], "0__active": [3, 2, 1],
    ...                       "2__rank": [2, 1, 0], "2__active": [2, 1, 0]})
    >>> ax = plot_rank_histogram(table, full_rank=2)
    >>> len(ax.patches)
    2
    """
    where = "plot_rank_histogram"
    columns = _rank_columns(ranks, layers, where)
    w = None
    if weights is not None:
        if not isinstance(ranks, pd.DataFrame) or weights not in ranks.columns:
            raise ValueError(f"{where}: weights={weights!r} is not a column of the table.")
        w = ranks[weights].to_numpy(float)
    values = {}
    for layer, col in columns.items():
        v = pd.to_numeric(col, errors="coerce").to_numpy(float)
        if np.isnan(v).any():
            raise ValueError(f"{where}: the ranks of layer {layer!r} contain missing or "
                             f"non-numeric values.")
        values[layer] = v
    everything = np.concatenate(list(values.values())) if values else np.empty(0)
    if full_rank is not None:
        everything = np.append(everything, full_rank)
    if everything.size == 0:
        lo, hi = 0, 1
    else:
        lo, hi = int(np.floor(everything.min())), int(np.ceil(everything.max()))
    bins = np.arange(lo - 0.5, hi + 1.5)

    ax = _axes(ax)
    for layer, v in values.items():
        ax.hist(v, bins=bins, weights=w, density=density, histtype=histtype, lw=1.5,
                label=str(layer), **kwargs)
    if full_rank is not None:
        ax.axvline(full_rank, color="0.3", ls=":", lw=1)
    ax.set_xlabel("cumulative rank")
    ax.set_ylabel("fraction" if density else (_column_words(weights) if weights else "count"))
    if hi - lo <= 20:
        ax.set_xticks(np.arange(lo, hi + 1))
    if title is not None:
        ax.set_title(title)
    _legend(ax, "upper left" if legend is True else legend)
    return ax


def plot_cycle(X, diagram, *, q=1, bar=None, ax=None, images=None, image_shape=None,
               n_images=12, color=None):
    """Draw the inputs behind a bar: its representative in a 2-D projection of the cloud.

    Needs a diagram made with ``PersistenceDiagram(representatives=True)``.
    The cloud is projected on its first two principal axes (as it is when it
    has two coordinates); the representative's points are joined in order
    (closed for an H1 loop, one segment for an H0 bar). With ``images``, a
    strip of the loop's inputs (e.g. digit images around the loop) is drawn
    under the projection.

    Parameters
    ----------
    X : array-like of shape (n_points, n_features)
        The cloud the diagram was computed from (its rows are the indices of
        the representatives, also with landmarks).
    diagram : Diagram
        A diagram with ``representatives``.
    q : int, default=1
        Homology dimension of the bar.
    bar : int, optional
        Index of the bar in ``diagram[q]``; default: the longest finite bar.
    ax : matplotlib Axes, optional
        Where to draw the projection; a new figure when None.
    images : array-like of shape (n_points, ...), optional
        One image per input (``(h, w)`` or ``(h, w, channels)``, or flat with
        ``image_shape``): a strip of up to ``n_images`` of the loop's inputs,
        evenly spaced along it, is added below ``ax``.
    image_shape : tuple of int, optional
        Shape of one image when ``images`` rows are flat.
    n_images : int, default=12
        Most images drawn in the strip.
    color : str, optional
        Colour of the representative; default: the colour of dimension ``q``.

    Returns
    -------
    ax : matplotlib Axes
        The Axes of the projection.

    Examples
    --------
    >>> import sktopo
    >>> from sktopo.datasets import make_circle
    >>> from sktopo.plotting import plot_cycle
    >>> X = make_circle(60, random_state=0)
    >>> d = sktopo.persistence(X, representatives=True)
    >>> ax = plot_cycle(X, d)
    """
    diagram = _as_diagram(diagram, "plot_cycle")
    if diagram.representatives is None or q not in diagram.representatives:
        raise ValueError(
            f"plot_cycle: the diagram has no representatives of dimension {q}; compute it with "
            f"PersistenceDiagram(..., representatives=True) (H0 and H1 have them)."
        )
    bars = diagram[q]
    if not len(bars):
        raise ValueError(f"plot_cycle: the diagram has no bars of dimension {q}.")
    if bar is None:
        life = np.where(np.isfinite(bars[:, 1]), bars[:, 1] - bars[:, 0], -np.inf)
        bar = int(np.argmax(life)) if np.isfinite(life).any() else 0
    members = np.asarray(diagram.representatives[q][bar], dtype=int)
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or (len(members) and members.max() >= len(X)):
        raise ValueError(
            f"plot_cycle: X must be the (n_points, n_features) cloud of the diagram; got shape "
            f"{X.shape} for representatives that index up to {members.max() if len(members) else 0}."
        )
    if X.shape[1] > 2:  # first two principal axes
        centred = X - X.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        P = centred @ vt[:2].T
    else:
        P = np.column_stack([X[:, 0], X[:, 1] if X.shape[1] > 1 else np.zeros(len(X))])
    ax = _axes(ax)
    color = color or _color(q)
    ax.scatter(P[:, 0], P[:, 1], s=8, color="0.7", zorder=1)
    path = np.append(members, members[0]) if q >= 1 and len(members) > 2 else members
    ax.plot(P[path, 0], P[path, 1], "-o", color=color, markersize=4, zorder=2)
    birth, death = bars[bar]
    ax.set_title(f"H{q} bar [{birth:.3g}, {death:.3g}): {len(members)} inputs")
    ax.set_xlabel("principal axis 1" if X.shape[1] > 2 else "x")
    ax.set_ylabel("principal axis 2" if X.shape[1] > 2 else "y")
    if images is not None and len(members):
        images = np.asarray(images)
        picks = members[np.linspace(0, len(members) - 1, min(n_images, len(members))).round().astype(int)]
        fig = ax.figure
        box = ax.get_position()
        height = box.height * 0.18
        width = box.width / len(picks)
        # the strip goes under the tick labels and the x-axis label, not over them: the
        # axes move up (and shrink) until the strip and its titles fit inside the figure
        points = 1 / (72 * fig.get_figheight())  # one point, in figure fractions
        under = box.y0 - ax.get_tightbbox(fig.canvas.get_renderer()).transformed(
            fig.transFigure.inverted()).y0  # the axis decorations below the axes
        above_strip = under + 4 * points + 10 * points  # a gap, then the images' titles
        short = above_strip + height + 4 * points - box.y0
        if short > 0:
            ax.set_position([box.x0, box.y0 + short, box.width, box.height - short])
            box = ax.get_position()
        bottom = box.y0 - above_strip - height
        for i, k in enumerate(picks):
            image = images[k].reshape(image_shape) if image_shape is not None else images[k]
            inset = fig.add_axes([box.x0 + i * width, bottom, width * 0.95, height])
            inset.imshow(image, cmap="gray_r" if image.ndim == 2 else None)
            inset.set_axis_off()
            inset.set_title(str(k), fontsize=6)
    return ax


# ----------------------------------------------------------------------------- similarity
# measures that are distances (0 = the same) rather than similarities (1 = the same)
_DISTANCE_MEASURES = ("procrustes", "rtd")


def _similarity_panel(table, name, ax, cmap, annotate, vmin, vmax, colorbar):
    values = table.to_numpy(dtype=float)
    distance = name is not None and str(name).startswith(_DISTANCE_MEASURES)
    similarity = name is not None and not distance
    finite = values[np.isfinite(values)]
    if vmin is None:
        vmin = 0.0 if (distance or similarity) else (float(finite.min()) if finite.size else 0.0)
    if vmax is None:
        if similarity and (finite.size == 0 or finite.max() <= 1 + 1e-9):
            vmax = 1.0
        else:
            vmax = float(finite.max()) if finite.size else 1.0
        if vmax <= vmin:
            vmax = vmin + 1.0
    if cmap is None:
        cmap = "magma_r" if distance else "viridis"
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                      interpolation="nearest")
    rows, cols = values.shape
    ax.set_xticks(range(cols))
    ax.set_xticklabels([str(c) for c in table.columns], rotation=45, ha="right")
    ax.set_yticks(range(rows))
    ax.set_yticklabels([str(r) for r in table.index])
    if table.columns.name is not None:
        ax.set_xlabel(str(table.columns.name))
    if table.index.name is not None:
        ax.set_ylabel(str(table.index.name))
    if annotate == "auto":
        annotate = rows * cols <= 144
    if annotate:
        middle = (vmin + vmax) / 2
        for i in range(rows):
            for j in range(cols):
                if np.isfinite(values[i, j]):
                    dark = (values[i, j] < middle) != distance
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
    if name is not None:
        ax.set_title(str(name))
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.8)
    return ax


def plot_similarity(table, *, measure=None, ax=None, cmap=None, annotate="auto", vmin=None,
                    vmax=None, colorbar=True):
    """Heatmap of a layer-by-layer similarity table, one panel per measure.

    Parameters
    ----------
    table : DataFrame
        What :func:`sktopo.similarity_table` (or :func:`sktopo.rtd_table`)
        returns: a square-ish table of one measure (rows: the layers of ``X``,
        columns: those of ``Y``), or, for several measures, a table whose
        columns are a MultiIndex ``(measure, layer)``.
    measure : str, optional
        For a table of several measures, draw this one only. Also names the
        measure of a one-measure table (the title, and the colour scale:
        similarities such as ``"cka"`` run from 0 to 1 on ``viridis``, distances
        such as ``"procrustes"`` and ``"rtd"`` from 0 up on ``magma_r``, dark
        meaning far apart).
    ax : matplotlib Axes or sequence of Axes, optional
        Where to draw: one Axes per measure drawn. None makes a new figure with
        one panel per measure, side by side.
    cmap : str or Colormap, optional
        Colour map (the default depends on the measure, see ``measure``).
    annotate : bool or "auto", default="auto"
        Write each value in its cell; ``"auto"`` does when the panel has at
        most 144 cells.
    vmin, vmax : float, optional
        Colour scale limits (defaults as under ``measure``).
    colorbar : bool, default=True
        Draw a colour bar beside each panel.

    Returns
    -------
    ax : Axes, or ndarray of Axes
        The Axes drawn on: one for a single measure, an array for several.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import sktopo
    >>> from sktopo.plotting import plot_similarity
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 5))
    >>> layers = pd.Series({"a": X, "b": np.tanh(X), "c": rng.normal(size=(100, 3))})
    >>> table = sktopo.similarity_table(layers, measures=["cka", "procrustes"])
    >>> axes = plot_similarity(table)
    >>> [a.get_title() for a in axes]
    ['cka', 'procrustes']
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"plot_similarity draws a DataFrame such as sktopo.similarity_table returns; got "
            f"{type(table).__name__}."
        )
    if isinstance(table.columns, pd.MultiIndex):
        names = list(dict.fromkeys(table.columns.get_level_values(0)))
        if measure is not None:
            if measure not in names:
                raise ValueError(f"plot_similarity: the table has no measure {measure!r}; it has "
                                 f"{names}.")
            names = [measure]
        panels = [(name, table[name]) for name in names]
    else:
        panels = [(measure, table)]
    if ax is None:
        import matplotlib.pyplot as plt

        side = max(3.0, 0.45 * max(p.shape[1] for _, p in panels) + 1.5)
        _, axes = plt.subplots(1, len(panels), figsize=(side * 1.15 * len(panels), side),
                               squeeze=False, layout="constrained")
        axes = axes[0]
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object))
        if len(axes) != len(panels):
            raise ValueError(
                f"plot_similarity: {len(panels)} measure(s) to draw but {len(axes)} Axes given; "
                f"pass one Axes per measure, or choose one with measure=..."
            )
    for (name, panel), axis in zip(panels, axes):
        _similarity_panel(panel, name, axis, cmap, annotate, vmin, vmax, colorbar)
    return axes[0] if len(panels) == 1 else np.asarray(axes)


__all__.append("plot_similarity")
