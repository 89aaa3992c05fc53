"""What every similarity measure shares: paired clouds in, one number per pair.

A *pair* is two representations ``(P, Q)`` of the same ``n`` inputs (row ``i``
of both is input ``i``), of any widths. The estimators take a DataFrame with
two columns of clouds or a list of ``(P, Q)`` tuples, as :class:`~sktopo.RTD`
does, and return one column.

Every measure is written as two steps so that a layer-by-layer table
(:func:`~sktopo.similarity_table`) computes each layer's part once:

- ``_form(cloud, where, plan)``: what the measure keeps of one cloud (its
  centred Gram matrix or centred features, an orthonormal basis, ...), with the
  checks that belong to one cloud (a constant representation is refused here);
- ``_compare(form_P, form_Q, where)``: the number for one pair of forms.

``plan`` is what a call shares between its pairs: the partition of the inputs
into minibatches (for :class:`~sktopo.CKA` with ``batch_size``), drawn once per
call from ``random_state`` and the number of inputs.

A measure with a ``device`` parameter has it resolved into ``device_`` in ``fit``
(:func:`sktopo._device.resolve_device`); ``_torch_device()`` is then None for
numpy (``device_ == "cpu"``), else the device its ``_form`` moves each cloud to
(:func:`on_device`: a float64 tensor) so that every later step runs there with
torch. :func:`svd` and :func:`to_float` work on arrays and tensors alike.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from .._base import PairTableTransformer
from .._collections import Collection, check_cloud, label_text
from .._device import resolve_device
from .._parallel import run_parallel
from .._seeding import root_entropy

__all__ = ["PairSimilarity", "check_layers", "check_pairs", "on_device", "pair_labels", "svd",
           "to_float", "to_numpy"]


# ------------------------------------------------ numpy or torch (the ``device`` path)
def on_device(X, device):
    """``X`` as a float64 torch tensor on ``device``, or unchanged when ``device`` is None."""
    if device is None:
        return X
    import torch

    return torch.as_tensor(X, dtype=torch.float64, device=device)


def svd(A, *, full_matrices=False, compute_uv=True):
    """The SVD ``(U, s, Vt)`` (thin unless ``full_matrices``), or only ``s``, of an array (numpy)
    or a tensor (torch.linalg, on its device)."""
    if isinstance(A, np.ndarray):
        if compute_uv:
            return np.linalg.svd(A, full_matrices=full_matrices)
        return np.linalg.svd(A, compute_uv=False)
    import torch

    if compute_uv:
        return torch.linalg.svd(A, full_matrices=full_matrices)
    return torch.linalg.svdvals(A)


def to_numpy(a) -> np.ndarray:
    """An array, or a tensor brought back to the host as a numpy array."""
    return a if isinstance(a, np.ndarray) else a.detach().cpu().numpy()


def to_float(a) -> float:
    """A 0-d array or tensor (or a number) as a Python float."""
    return float(a.item()) if hasattr(a, "item") else float(a)


def _check_pair(P, Q, label, *, prefix, min_points):
    P = check_cloud(P, f"{label} (first cloud)", prefix=prefix, min_points=min_points)
    Q = check_cloud(Q, f"{label} (second cloud)", prefix=prefix, min_points=min_points)
    if P.shape[0] != Q.shape[0]:
        raise ValueError(
            f"{prefix}the pair at {label} has {P.shape[0]} inputs in its first cloud and "
            f"{Q.shape[0]} in its second. A similarity compares two representations of the SAME "
            f"inputs: row i of both clouds must be input i. Embed the same inputs in both."
        )
    return P, Q


def check_pairs(X, *, estimator: str, min_points: int = 2, why: str = "") -> Collection:
    """A DataFrame with two columns of clouds, or a sequence of ``(P, Q)`` pairs.

    Parameters
    ----------
    X : DataFrame or list of tuple
        The pairs.
    estimator : str
        Name at the start of every message.
    min_points : int, default=2
        Fewest inputs a pair may have.
    why : str, default=""
        Why ``min_points`` are needed, added to the message of a pair with fewer.

    Returns
    -------
    collection : Collection
        ``cells[i] == [P, Q]``, both float64 arrays.
    """
    prefix = f"{estimator}: "
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 2:
            raise ValueError(
                f"{prefix}a DataFrame of pairs must have exactly 2 columns (the two "
                f"representations of the same inputs); got {X.shape[1]}: {list(X.columns)}. "
                f"To compare every layer with every other, use sktopo.similarity_table."
            )
        rows = [list(row) for row in X.itertuples(index=False, name=None)]
        kind, index, columns = "frame", X.index, X.columns
    elif isinstance(X, (list, tuple)):
        rows = []
        for i, pair in enumerate(X):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(
                    f"{prefix}item {i} is not a pair: give a list of (P, Q) tuples of clouds of "
                    f"the same inputs, or a DataFrame with two columns of clouds. (A bare cloud "
                    f"or a list of clouds is not a pair; for one pair use the function, e.g. "
                    f"sktopo.cka(P, Q).)"
                )
            rows.append(list(pair))
        kind, index, columns = "list", None, None
    else:
        raise TypeError(
            f"{prefix}expected pairs of clouds: a DataFrame with two columns of clouds, or a "
            f"list of (P, Q) tuples; got {type(X).__name__}. For one pair use the function, "
            f"e.g. sktopo.cka(P, Q)."
        )
    if not rows:
        raise ValueError(f"{prefix}there are no pairs: give at least one (P, Q) pair.")
    collection = Collection(cells=[], kind=kind, index=index, columns=columns)
    labels = pair_labels(collection, len(rows))
    cells = []
    for (P, Q), label in zip(rows, labels):
        try:
            cells.append(list(_check_pair(P, Q, label, prefix=prefix, min_points=min_points)))
        except ValueError as error:
            if why and "at least" in str(error):
                raise ValueError(f"{error} ({why})") from None
            raise
    return Collection(cells=cells, kind=kind, index=index, columns=columns)


def pair_labels(collection: Collection, n_rows: int | None = None) -> list:
    """``"row 'a'"`` (DataFrame) or ``"row 3"`` (list) for each pair."""
    n = collection.n_rows if n_rows is None else n_rows
    if collection.kind == "frame":
        return [f"row {label_text(label)!r}" for label in collection.index[:n]]
    return [f"row {i}" for i in range(n)]


def check_layers(X, name: str, *, function: str, min_points: int = 2, why: str = ""):
    """Labels and float64 clouds of a Series, dict or list of clouds (one per layer)."""
    if isinstance(X, pd.Series):
        labels, clouds = X.index, list(X.values)
    elif isinstance(X, dict):
        labels, clouds = pd.Index(list(X)), list(X.values())
    elif isinstance(X, (list, tuple)):
        labels, clouds = pd.RangeIndex(len(X)), list(X)
    else:
        raise TypeError(
            f"{function}: {name} must be a Series, dict or list of clouds (one per layer), as "
            f"LayerEmbedder(unit='dataset') returns; got {type(X).__name__}."
        )
    if not clouds:
        raise ValueError(f"{function}: {name} holds no layer.")
    prefix = f"{function}: "
    checked = []
    for label, cloud in zip(labels, clouds):
        where = f"layer {label_text(label)!r} of {name}"
        try:
            checked.append(check_cloud(cloud, where, prefix=prefix, min_points=min_points))
        except ValueError as error:
            if why and "at least" in str(error):
                raise ValueError(f"{error} ({why})") from None
            raise
    return labels, checked


def _pair_value(P, Q, label, *, estimator, plans):
    plan = plans[P.shape[0]]
    first = estimator._form(P, f"the first cloud of the pair at {label}", plan)
    second = estimator._form(Q, f"the second cloud of the pair at {label}", plan)
    return estimator._compare(first, second, f"the pair at {label}")


class PairSimilarity(PairTableTransformer):
    """Base: pairs of clouds of the same inputs -> one column, ``_column``.

    A subclass sets ``_column`` (the output name, which is also its
    :func:`sktopo.tidy` prefix), and implements ``_form`` and ``_compare``
    (see the module docstring); optionally ``_min_inputs()`` (with the reason,
    ``_min_inputs_reason()``), ``_plan(n_inputs)`` and ``_measure_name()``
    (its name in :func:`~sktopo.similarity_table`).
    """

    _column: str = ""
    # whether value(P, Q) == value(Q, P): a table of X with itself computes half the pairs
    _symmetric: bool = True

    def _min_inputs(self) -> int:
        return 2

    def _check_settings(self):
        """Resolve ``device`` into ``device_`` (the measures that have one), in ``fit``."""
        if "device" in self.get_params(deep=False):
            self.device_ = resolve_device(self.device, owner=type(self).__name__)

    def _torch_device(self):
        """The torch device of the torch path, or None for numpy (``device_ == "cpu"``)."""
        device = getattr(self, "device_", "cpu")
        return None if device == "cpu" else device

    def _min_inputs_reason(self) -> str:
        return ""

    def _plan(self, n_inputs: int, entropy=None):
        """What every pair of ``n_inputs`` inputs shares in one call (None: nothing)."""
        return None

    def _entropy(self):
        """``random_state`` read once per call (None for the measures that draw nothing)."""
        if "random_state" not in self.get_params(deep=False):
            return None
        return root_entropy(self.random_state)

    def _measure_name(self) -> str:
        return self._column

    def _self_value(self, form, where):
        """The value of a layer with itself (a subclass may know it without the pair's work)."""
        return self._compare(form, form, where)

    def _is_symmetric(self) -> bool:
        return self._symmetric

    def _check_cells(self, X) -> Collection:
        return check_pairs(X, estimator=type(self).__name__, min_points=self._min_inputs(),
                           why=self._min_inputs_reason())

    def _cell_names(self):
        return [self._column]

    def transform(self, X):
        """Compute the measure for every pair.

        Parameters
        ----------
        X : DataFrame with two columns of clouds, or list of (P, Q) tuples
            Two representations of the same inputs per row (row ``i`` of both
            clouds is input ``i``); the clouds of a pair may differ in width.

        Returns
        -------
        table : ndarray of shape (n_pairs, 1)
            One value per pair. A DataFrame indexed like ``X`` with
            ``set_output(transform="pandas")``.
        """
        check_is_fitted(self, "n_features_in_")
        collection = self._validate_collection(X, reset=False)
        entropy = self._entropy()
        plans = {}
        for P, _ in collection.cells:  # one plan per number of inputs, drawn once per call
            if P.shape[0] not in plans:
                plans[P.shape[0]] = self._plan(P.shape[0], entropy)
        labels = pair_labels(collection)
        tasks = [(P, Q, label) for (P, Q), label in zip(collection.cells, labels)]

        values = run_parallel(partial(_pair_value, estimator=self, plans=plans), tasks,
                              n_jobs=getattr(self, "n_jobs", None),
                              verbose=getattr(self, "verbose", 0), desc=type(self).__name__,
                              unit="pair")
        return np.asarray(values, dtype=np.float64).reshape(-1, 1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
