"""Study A's "local" mode: one cloud per (layer, class), then an average over classes.

Study A ("Deep neural networks architectures from the perspective of manifold
learning") measures a layer's lifespans sum not on the whole cloud of inputs
but class by class: up to 250 inputs of each class form one cloud, the summary
is computed on each, and the layer's value is the mean over classes. The
topology of a class manifold is then not mixed with the gaps between classes.

:func:`split_by_label` turns a collection of dataset-unit clouds (a Series
indexed by layer, as :class:`~sktopo.LayerEmbedder` gives) into one cloud per
(row, class): the index gains a last level named ``label``. Any sktopo
estimator then runs on it unchanged, and :func:`mean_over_labels` is the
aggregation rule: the plain (unweighted) mean over the classes of each row,
as study A takes it, so every class counts the same whatever its size.

Study A's recipe, reproduced exactly (its code scales every coordinate to
[0, 1] over the whole layer first, then takes the *first* 250 inputs of the
classes 0-8 in input order, and its lifespans sum is half the total length of
the finite bars)::

    scaled = clouds.map(sklearn.preprocessing.minmax_scale)
    local = split_by_label(scaled, y, classes=range(9), max_points=250, sample="first")
    diagrams = PersistenceDiagram(homology_dimensions=(0, 1)).fit_transform(local)
    table = DiagramFeatures(features=["total_persistence"], p=(1,)) \\
        .set_output(transform="pandas").fit_transform(diagrams)
    lifespans_sum = 0.5 * mean_over_labels(table)   # one row per layer
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd

from ._collections import _plain, check_collection
from ._seeding import cloud_seeds

__all__ = ["split_by_label", "mean_over_labels"]


def split_by_label(X, labels, *, classes=None, max_points=None, sample="random",
                   min_points=2, random_state=None):
    """One cloud per (row, class): the points of each cloud grouped by the inputs' labels.

    Parameters
    ----------
    X : Series, DataFrame or list of clouds
        Dataset-unit clouds: every cloud has one point per input, in the same
        order (``LayerEmbedder(unit="dataset")`` output).
    labels : array-like of shape (n_inputs,)
        The label (class) of each input.
    classes : sequence, optional
        The classes to keep, in this order. None keeps every label present,
        sorted. Study A's code keeps classes 0-8 (``range(9)``).
    max_points : int, optional
        At most this many points per class (study A: 250). None keeps all.
    sample : {"random", "first"}, default="random"
        Which points when a class has more than ``max_points``: a random
        subset (seeded by ``random_state`` and the cloud's content, kept in
        input order), or the first ones in input order (study A's code).
    min_points : int, default=2
        A class with fewer points in the data raises a ValueError naming it.
    random_state : int, RandomState instance or None, default=None
        Seeds the random subsets (``sample="random"``), together with the
        labels' content (:mod:`sktopo._seeding`). The subsets depend on the
        labels and ``random_state`` only, so every cloud (every layer, every
        model embedding the same inputs) keeps the same inputs.

    Returns
    -------
    local : Series or DataFrame of clouds
        Indexed by the input's row labels plus a last level ``"label"``
        (0, 1, ... for a list input); a DataFrame keeps its columns.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sktopo.local import split_by_label
    >>> clouds = pd.Series({"fc1": np.arange(12.0).reshape(6, 2)}).rename_axis("layer")
    >>> local = split_by_label(clouds, [0, 1, 0, 1, 0, 1])
    >>> local.index.tolist()
    [('fc1', 0), ('fc1', 1)]
    >>> local[("fc1", 1)][:, 0]
    array([ 2.,  6., 10.])
    """
    name = "split_by_label"
    if sample not in ("random", "first"):
        raise ValueError(f"{name}: sample must be 'random' or 'first'; got {sample!r}.")
    if max_points is not None and (not isinstance(max_points, Integral) or max_points < 1):
        raise ValueError(f"{name}: max_points must be a positive integer or None; got {max_points!r}.")
    collection = check_collection(X, estimator=name)
    labels, present = _check_labels(labels, name)
    for (i, j), cloud in zip(collection.positions(), collection.flat()):
        if cloud.shape[0] != len(labels):
            raise ValueError(
                f"{name}: the cloud at {collection.cell_label(i, j)} has {cloud.shape[0]} points "
                f"but there are {len(labels)} labels. Give one label per input, in the order of "
                f"the cloud's rows (with LayerEmbedder(max_inputs=...), the kept inputs are in "
                f"result.attrs['inputs'])."
            )
    if classes is None:
        classes = present
    classes = list(classes)
    if not classes:
        raise ValueError(f"{name}: no classes to keep.")
    repeated = pd.Index(classes).duplicated()
    if repeated.any():
        raise ValueError(f"{name}: classes lists {_plain(classes[int(np.argmax(repeated))])!r} "
                         f"more than once; give each class once.")
    seed = None
    if sample == "random" and max_points is not None:
        # one stream for the whole call, from random_state and the labels' content
        codes = pd.factorize(labels, sort=True)[0].astype(np.float64)[:, None]
        seed = cloud_seeds(random_state, [codes])[0]
    # which inputs each class keeps: the same in every cloud, so the layers of one
    # model (and two models on the same inputs) see the same inputs
    members = {}
    for label in classes:
        rows = np.flatnonzero(labels == label)
        if len(rows) < min_points:
            raise ValueError(
                f"{name}: class {_plain(label)!r} has {len(rows)} input(s); at least "
                f"{min_points} are needed for a cloud. Leave it out with classes=..."
            )
        if max_points is not None and len(rows) > max_points:
            if sample == "first":
                rows = rows[:max_points]
            else:
                # per-class stream: keeping fewer classes does not change a class's points
                rng = np.random.default_rng([seed, present.index(label)])
                rows = np.sort(rng.choice(rows, max_points, replace=False))
        members[label] = rows

    index_tuples, cells = [], []
    for i in range(collection.n_rows):
        row_label = collection.row_index[i]
        prefix = row_label if isinstance(row_label, tuple) else (row_label,)
        for label, rows in members.items():
            index_tuples.append(prefix + (label,))
            cells.append([cloud[rows] for cloud in collection.cells[i]])
    base_names = list(collection.row_index.names) if collection.index is not None else [None]
    index = pd.MultiIndex.from_tuples(index_tuples, names=base_names + ["label"])
    if collection.kind == "frame":
        out = pd.DataFrame(index=index, columns=collection.columns, dtype=object)
        for k, row in enumerate(cells):
            for j, cloud in enumerate(row):
                out.iat[k, j] = cloud
        return out
    out = pd.Series(index=index, dtype=object, name=collection.name)
    for k, row in enumerate(cells):
        out.iloc[k] = row[0]
    return out


def _check_labels(labels, name):
    """``(labels as an array, the distinct labels sorted)``, or a ValueError naming the problem."""
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ValueError(f"{name}: labels must be 1-D, one per input; got shape {values.shape}.")
    # each label as given: numpy turns a list mixing numbers and text into text
    objects = np.asarray(labels, dtype=object)
    missing = pd.isna(objects)
    if missing.any():
        raise ValueError(
            f"{name}: {int(missing.sum())} label(s) are missing (NaN or None), first at input "
            f"{int(np.argmax(missing))}. Give every input a class, or drop those inputs from "
            f"the clouds and the labels first.")
    try:
        sorted(pd.unique(objects).tolist())
    except TypeError:
        types = ", ".join(sorted({type(_plain(v)).__name__ for v in objects}))
        raise ValueError(
            f"{name}: the labels mix types ({types}), which have no order. Give labels of "
            f"one type, e.g. [str(label) for label in labels].") from None
    return values, sorted(pd.unique(values).tolist())


def mean_over_labels(table, level="label"):
    """Study A's aggregation: the unweighted mean over the classes of each row.

    Parameters
    ----------
    table : DataFrame or Series
        A feature table indexed like the output of :func:`split_by_label`
        (its last index level is ``level``).
    level : str, default="label"
        The index level to average over.

    Returns
    -------
    mean : DataFrame or Series
        One row per remaining index value (per layer), in first-seen order.
        A NaN in any class gives NaN (the classes would otherwise not count
        the same): drop or fill those rows first if that is what you mean.

    Examples
    --------
    >>> import pandas as pd
    >>> from sktopo.local import mean_over_labels
    >>> index = pd.MultiIndex.from_tuples([("fc1", 0), ("fc1", 1), ("fc2", 0), ("fc2", 1)],
    ...                                   names=["layer", "label"])
    >>> table = pd.DataFrame({"H0__n_bars": [1.0, 3.0, 5.0, 7.0]}, index=index)
    >>> mean_over_labels(table)["H0__n_bars"].to_dict()
    {'fc1': 2.0, 'fc2': 6.0}
    """
    if level not in table.index.names:
        raise ValueError(
            f"mean_over_labels: the table has no index level {level!r} (its levels are "
            f"{list(table.index.names)}); give a table computed on split_by_label's output."
        )
    keep = [name for name in table.index.names if name != level]
    if not keep:
        return table.mean(skipna=False)
    # a class without a value (NaN) makes the mean NaN, as numpy's mean: pandas would
    # skip it and average the other classes ([2, NaN, 4] -> 3.0)
    mean = table.groupby(level=keep, sort=False).mean()
    return mean.mask(table.isna().groupby(level=keep, sort=False).any())
