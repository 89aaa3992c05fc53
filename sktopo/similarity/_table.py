"""Every similarity measure between every pair of layers, as one table.

:func:`similarity_table` takes the layers of one model (or two) as
:class:`~sktopo.LayerEmbedder` returns them with ``unit="dataset"`` and fills a
layer-by-layer table per measure. The part of each measure that belongs to one
layer (CKA's centred Gram matrix or centred features, CCA's orthonormal basis,
Procrustes's normalised shape) is computed once per layer and reused for every
pair; a table of a model with itself computes each unordered pair once for the
symmetric measures. RTD goes through :func:`~sktopo.rtd_table`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._collections import label_text
from .._progress import progress
from ._cca import PWCCA, SVCCA
from ._cka import CKA
from ._pairs import PairSimilarity, check_layers
from ._procrustes import ProcrustesDistance

__all__ = ["MEASURES", "similarity_table"]

# name -> (class, parameters): the measures a table can name by a string
MEASURES = {
    "cka": ("CKA", {}),
    "cka_unbiased": ("CKA", {"unbiased": True}),
    "cka_rbf": ("CKA", {"kernel": "rbf"}),
    "cka_rbf_unbiased": ("CKA", {"kernel": "rbf", "unbiased": True}),
    "svcca": ("SVCCA", {}),
    "pwcca": ("PWCCA", {}),
    "procrustes": ("ProcrustesDistance", {}),
    "rtd": ("RTD", {}),
}


def _classes():
    from ..topology.divergence import RTD

    return {"CKA": CKA, "SVCCA": SVCCA, "PWCCA": PWCCA, "ProcrustesDistance": ProcrustesDistance,
            "RTD": RTD}


def _is_rtd(estimator) -> bool:
    return type(estimator).__name__ == "RTD" and type(estimator).__module__.startswith("sktopo")


def _measure(spec, random_state):
    """``(name, estimator)`` of a string or an estimator."""
    if isinstance(spec, str):
        if spec not in MEASURES:
            raise ValueError(
                f"similarity_table: unknown measure {spec!r}; choose among {sorted(MEASURES)}, "
                f"or pass an estimator such as sktopo.CKA(kernel='rbf', bandwidth=0.5)."
            )
        cls_name, params = MEASURES[spec]
        estimator = _classes()[cls_name](**params)
        if "random_state" in estimator.get_params(deep=False):
            estimator.set_params(random_state=random_state)
        return spec, estimator
    if isinstance(spec, PairSimilarity):
        return spec._measure_name(), spec
    if _is_rtd(spec):
        return "rtd", spec
    raise TypeError(
        f"similarity_table: a measure is a name ({sorted(MEASURES)}) or an estimator (sktopo.CKA, "
        f"SVCCA, PWCCA, ProcrustesDistance or RTD); got {type(spec).__name__}."
    )


def _measures(measures, random_state):
    if isinstance(measures, dict):
        out = [(str(name), _measure(spec, random_state)[1]) for name, spec in measures.items()]
    elif isinstance(measures, (list, tuple)):
        out = [_measure(spec, random_state) for spec in measures]
    else:
        raise TypeError(
            f"similarity_table: measures must be a name, an estimator, a list of them or a dict "
            f"{{name: measure}}; got {type(measures).__name__}."
        )
    if not out:
        raise ValueError("similarity_table: measures is empty; name at least one, e.g. 'cka'.")
    names = [name for name, _ in out]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"similarity_table: two measures are both named {repeated}; give a dict "
            f"{{name: estimator}} to name them apart."
        )
    return out


def _layer_table(estimator, x_labels, x_clouds, y_labels, y_clouds, same, verbose):
    """One measure's table from per-layer forms computed once each."""
    estimator._validate_params()
    estimator._check_settings()
    n = x_clouds[0].shape[0]
    plan = estimator._plan(n, estimator._entropy())
    x_forms = [estimator._form(c, f"layer {label_text(label)!r} of X", plan)
               for label, c in zip(x_labels, x_clouds)]
    y_forms = x_forms if same else [estimator._form(c, f"layer {label_text(label)!r} of Y", plan)
                                    for label, c in zip(y_labels, y_clouds)]
    symmetric = same and estimator._is_symmetric()
    positions = [(i, j) for i in range(len(x_forms)) for j in range(len(y_forms))
                 if not (symmetric and j < i)]
    values = np.full((len(x_forms), len(y_forms)), np.nan)
    for i, j in progress(positions, verbose=verbose, desc=type(estimator).__name__, unit="pair"):
        where = f"layers {label_text(x_labels[i])!r} and {label_text(y_labels[j])!r}"
        if same and i == j:  # a layer with itself: what its form already knows
            values[i, j] = estimator._self_value(x_forms[i], where)
            continue
        values[i, j] = estimator._compare(x_forms[i], y_forms[j], where)
        if symmetric:
            values[j, i] = values[i, j]
    return pd.DataFrame(values, index=x_labels, columns=y_labels)


def similarity_table(X, Y=None, *, measures="cka", random_state=None, verbose=0):
    """Similarity (or distance) between every pair of layers, for one or several measures.

    Parameters
    ----------
    X : Series, dict or list of clouds
        Representations of the same inputs, one per layer (as
        :class:`~sktopo.LayerEmbedder` with ``unit="dataset"`` returns them):
        every cloud has one row per input, in the same order; widths may differ.
    Y : Series, dict or list of clouds, optional
        A second set (another model, or another training stage). None compares
        ``X`` with itself, computing each pair once for the symmetric measures.
    measures : str, estimator, list or dict, default="cka"
        Which measures: names among ``"cka"``, ``"cka_unbiased"``,
        ``"cka_rbf"``, ``"cka_rbf_unbiased"``, ``"svcca"``, ``"pwcca"``,
        ``"procrustes"`` and ``"rtd"``, or estimators with the settings you
        want (:class:`~sktopo.CKA`, :class:`~sktopo.SVCCA`,
        :class:`~sktopo.PWCCA`, :class:`~sktopo.ProcrustesDistance`,
        :class:`~sktopo.RTD`); a dict names them.
    random_state : int, RandomState instance or None, default=None
        Given to the measures named by a string that draw at random (RTD's
        subsets, minibatch CKA); estimators keep their own.
    verbose : int, default=0
        Show a progress bar over pairs when positive.

    Returns
    -------
    table : DataFrame
        For one measure (a string or an estimator), ``table.loc[a, b]`` is the
        measure between ``X[a]`` and ``Y[b]``. For a list or dict, the columns
        are a MultiIndex ``(measure, layer)``: ``table["cka"]`` is the CKA
        table. Similarities (CKA, SVCCA, PWCCA) are 1 for identical layers;
        distances (Procrustes, RTD) are 0.

    See Also
    --------
    sktopo.plotting.plot_similarity : heatmaps of these tables.
    rtd_table : RTD alone, with its spread over subsets.

    Notes
    -----
    Memory: the forms of every layer are held at once: for linear CKA a
    centred copy of a layer narrower than the inputs, else its ``n x n`` Gram
    matrix (RBF CKA always); for CCA and Procrustes a basis of at most
    ``min(n, width)`` columns. For inputs whose Gram matrices do not fit, use
    ``sktopo.CKA(unbiased=True, batch_size=...)`` as the measure.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import sktopo
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(100, 8))
    >>> layers = pd.Series({"a": a, "a_rotated": a[:, ::-1] * 2, "b": rng.normal(size=(100, 8))})
    >>> table = sktopo.similarity_table(layers, measures=["cka", "procrustes"])
    >>> round(float(table["cka"].loc["a", "a_rotated"]), 6), bool(table["procrustes"].loc["a", "b"] > 1)
    (1.0, True)
    """
    single = isinstance(measures, str) or not isinstance(measures, (list, tuple, dict))
    chosen = _measures([measures] if single else measures, random_state)
    min_points = max(3 if _is_rtd(est) else est._min_inputs() for _, est in chosen)
    x_labels, x_clouds = check_layers(X, "X", function="similarity_table", min_points=min_points)
    same = Y is None
    y_labels, y_clouds = ((x_labels, x_clouds) if same else
                          check_layers(Y, "Y", function="similarity_table", min_points=min_points))
    n = x_clouds[0].shape[0]
    for name, labels, clouds in (("X", x_labels, x_clouds), ("Y", y_labels, y_clouds)):
        for label, cloud in zip(labels, clouds):
            if cloud.shape[0] != n:
                raise ValueError(
                    f"similarity_table: layer {label_text(label)!r} of {name} has "
                    f"{cloud.shape[0]} inputs, but layer {label_text(x_labels[0])!r} of X has "
                    f"{n}. Every layer must hold the SAME inputs in the same order (row i is "
                    f"input i); embed the same inputs everywhere."
                )
    tables = {}
    for name, estimator in chosen:
        if _is_rtd(estimator):
            from ..topology.divergence import rtd_table

            params = estimator.get_params(deep=False)
            params["verbose"] = params.get("verbose") or verbose
            series_x = pd.Series(x_clouds, index=x_labels, dtype=object)
            series_y = None if same else pd.Series(y_clouds, index=y_labels, dtype=object)
            table = rtd_table(series_x, series_y, **params)
        else:
            table = _layer_table(estimator, x_labels, x_clouds, y_labels, y_clouds, same, verbose)
        tables[name] = table
    if single:
        return next(iter(tables.values()))
    return pd.concat(tables, axis=1, names=["measure", y_labels.name])
