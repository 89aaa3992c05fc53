"""Relative (quotient) persistence of the data by a ReLU network's low-rank set.

Let M be a sample of the data manifold and A the inputs that lie in linear regions where the
network's map has low rank (below a chosen level, by default the input dimension). By the long
exact sequence of the pair (M, A), the relative homology H(M, A) ~ reduced H(M/A) tells which
classes of M survive once the low-rank part, where the network can glue or collapse the data, is
quotiented out (study B of the research notes).

:class:`QuotientPersistence` needs a torch model, so it lives here, next to
:class:`~sktopo.ReLURankRegions` whose public methods give it the per-input ranks and
regions and the network's output. The metric construction itself (no torch) is
:func:`sktopo.topology.relative.quotient_distances`.
"""

from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from sktopo._base import NoBoolNumbers
from sktopo._device import resolve_device, torch_dtype
from sktopo.nn.relu_rank import ReLURankRegions
from sktopo.topology._base import check_homology_dimensions
from sktopo.topology.relative import _as_points, _distances, _rips, quotient_distances

__all__ = ["QuotientPersistence", "relative_homology_table"]

_NAME = "QuotientPersistence"
# Parameters handed to ReLURankRegions: validated here, under this estimator's name.
_RANK_PARAMS = ("rank_tol", "dtype", "low_rank", "batch_size", "verbose")
_CONSTRAINED_RANK_PARAMS = ("rank_tol", "low_rank", "batch_size", "verbose")


class QuotientPersistence(NoBoolNumbers, BaseEstimator):
    """Persistence of M, of the quotient M/A by the low-rank set A, and of the output f(M).

    A is the set of inputs whose linear region has cumulative rank below ``low_rank`` at
    ``layer`` (computed by :class:`~sktopo.ReLURankRegions`). The quotient metric
    (:func:`sktopo.topology.relative.quotient_distances`): distances inside a collapsed set
    become 0, every other point is at its minimum distance to the set, one node is kept per
    set, and all-pairs shortest paths restore the triangle inequality; then Vietoris-Rips
    persistence.

    Parameters
    ----------
    model : torch.nn.Module
        A ReLU network (see :class:`~sktopo.ReLURankRegions` for what is supported).
    low_rank : int or None, default=None
        Regions with rank below this level form A; None means below the input dimension (the
        map is not injective there). Study B's notebooks use the data manifold's dimension
        instead: for a circle embedded in R^200 every region of a narrow network can be low
        rank at our default level (200) and none at the paper's.
    layer : str, int or None, default=None
        ReLU layer whose cumulative rank (and region) decides A: a name of
        ``ranks_.layer_names_`` or a position; None is the last ReLU layer (the smallest
        cumulative rank: ranks never grow with depth). With ``output_relu=True`` the extra
        output layer is named ``"output"`` and is the last one.
    output_relu : bool, default=False
        Treat the model's output as one more ReLU layer when choosing A: its pattern is
        ``output > 0`` and its cumulative rank that of ``D_out W_out ... D_1 W_1``. Study B's
        knot notebook does this with its output Linear layer (a 2-unit output then has rank
        below 2 wherever an output coordinate is negative). The model itself is unchanged and
        f(M) is its plain output.
    collapse : {"region", "all"}, default="region"
        "region" collapses each low-rank region to its own point; "all" collapses the whole
        of A to one point, the topological quotient M/A, as study B's Fig. 2 notebook does
        (its equivalence-class code merges every low-rank point into one class).
    homology_dimensions : tuple of int, default=(0, 1)
    metric : str, default="euclidean"
        Metric on the inputs and on the outputs.
    normalize : bool, default=False
        Divide each diagram by its largest finite birth or death (over all its dimensions)
        before the distances of ``table_`` are computed, as study B's code does; the
        diagrams become scale-free. ``diagrams_`` holds the normalised diagrams then.
    n_landmarks : int or None, default=None
        When a space (M, M/A or f(M)) has more points, its persistence is computed on this
        many greedy max-min landmarks of its metric (study B's code falls back to ripser's
        ``n_perm=250`` greedy subsample); None uses every point.
    random_state : int, RandomState instance or None, default=None
        Chooses the first landmark (per space, seeded from the space's content; see
        :mod:`sktopo._seeding`). Unused without ``n_landmarks``.
    rank_tol, dtype, device, batch_size, verbose
        Passed to :class:`~sktopo.ReLURankRegions` (and validated here); ``verbose`` shows
        its progress bars.

    Attributes
    ----------
    diagrams_ : pandas.Series of Diagram
        Indexed ``["M", "M/A", "f(M)"]``.
    in_low_rank_ : ndarray of bool, shape (n_inputs,)
        Which inputs are in A.
    quotient_nodes_ : ndarray of int, shape (n_inputs,)
        Node of the quotient each input maps to.
    layer_ : str
        Name of the ReLU layer that decided A.
    ranks_ : ReLURankRegions
        The fitted rank estimator (of the model, or of the model with its output treated as a
        ReLU layer when ``output_relu=True``).
    table_ : pandas.DataFrame
        One row per space (M, M/A, f(M)), indexed by ``space``: ``n_points``,
        ``frac_low_rank``, and per homology dimension q (names that :func:`sktopo.tidy`
        parses, as :class:`~sktopo.DiagramFeatures` names them) ``H{q}__n_bars``,
        ``H{q}__max_lifetime`` (longest finite bar) and the bottleneck and Wasserstein
        (order 1) distances to the diagram of M, ``H{q}__bottleneck_to_M`` and
        ``H{q}__wasserstein_to_M``.

    See Also
    --------
    relative_homology_table : the table in one call.

    Examples
    --------
    >>> from sktopo import QuotientPersistence
    >>> from sktopo.datasets import make_circle
    >>> from sktopo.nn.random_networks import random_relu_mlp
    >>> X = 3 * make_circle(60, random_state=0)
    >>> qp = QuotientPersistence(random_relu_mlp(2, [1], random_state=0)).fit(X)
    >>> int(qp.table_.loc["M/A", "H1__n_bars"])
    0
    """

    _parameter_constraints = {
        "model": "no_validation",
        "layer": [str, Integral, None],
        "output_relu": ["boolean"],
        "collapse": [StrOptions({"region", "all"})],
        "homology_dimensions": ["array-like", Interval(Integral, 0, None, closed="left")],
        "metric": [str],
        "normalize": ["boolean"],
        "n_landmarks": [Interval(Integral, 2, None, closed="left"), None],
        "random_state": ["random_state"],
        # resolve_device and torch_dtype check these in fit, naming this estimator
        "device": "no_validation",
        "dtype": "no_validation",
        **{name: ReLURankRegions._parameter_constraints[name]
           for name in _CONSTRAINED_RANK_PARAMS},
    }

    def __init__(self, model, *, low_rank=None, layer=None, output_relu=False,
                 collapse="region", homology_dimensions=(0, 1), metric="euclidean",
                 normalize=False, n_landmarks=None, random_state=None, rank_tol=None,
                 dtype="float64", device="auto", batch_size=4096, verbose=0):
        self.model = model
        self.low_rank = low_rank
        self.layer = layer
        self.output_relu = output_relu
        self.collapse = collapse
        self.homology_dimensions = homology_dimensions
        self.metric = metric
        self.normalize = normalize
        self.n_landmarks = n_landmarks
        self.random_state = random_state
        self.rank_tol = rank_tol
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Compute the three diagrams and the comparison table for the inputs X.

        Parameters
        ----------
        X : array-like of shape (n_inputs, n_features)
            The sample of M, as the model takes it.
        y : None
            Ignored.

        Returns
        -------
        self : QuotientPersistence
        """
        if not isinstance(self.model, nn.Module):
            raise TypeError(f"{_NAME}: model must be a torch.nn.Module, got "
                            f"{type(self.model).__name__}.")
        dims = check_homology_dimensions(self.homology_dimensions, _NAME)
        device = resolve_device(self.device, owner=_NAME)
        torch_dtype(self.dtype, owner=_NAME)
        rank_model = _OutputAsReLU(self.model) if self.output_relu else self.model
        ranks = ReLURankRegions(rank_model, device=device,
                                **{name: getattr(self, name) for name in _RANK_PARAMS})
        ranks.fit(X)
        try:
            layer = ranks.resolve_layer(self._rank_layer())
        except ValueError as exc:
            raise ValueError(str(exc).replace("ReLURankRegions", _NAME)) from None
        per_input = ranks.input_table(layer=layer)
        self.in_low_rank_ = per_input["low_rank"].to_numpy()
        # Region ids are 64-bit hashes: renumber the low-rank ones as small labels.
        _, labels = np.unique(per_input["region"].to_numpy(), return_inverse=True)
        labels = np.where(self.in_low_rank_, labels.reshape(-1), -1)
        D = _distances(_as_points(X), self.metric)
        Q, self.quotient_nodes_ = quotient_distances(D, labels, collapse=self.collapse)
        outputs = ranks.network_output(X)  # the wrapper returns the model's own output
        diagrams = {}
        for space, distances in (("M", D), ("M/A", Q),
                                 ("f(M)", _distances(outputs, self.metric))):
            diagram = _rips(distances, dims, n_landmarks=self.n_landmarks,
                            random_state=self.random_state)
            diagrams[space] = _normalized(diagram) if self.normalize else diagram
        self.diagrams_ = pd.Series(diagrams, name="diagram")
        self.layer_ = layer
        self.ranks_ = ranks
        self.table_ = self._table(dims, {"M": D.shape[0], "M/A": Q.shape[0],
                                         "f(M)": outputs.shape[0]})
        return self

    def _rank_layer(self):
        """``layer`` as named in the rank model (the wrapper prefixes the model's names)."""
        if self.output_relu and isinstance(self.layer, str) and self.layer != "output":
            return f"model.{self.layer}"
        return self.layer

    def _table(self, dims, n_points):
        from sktopo.topology.distances import diagram_distance

        rows = {}
        reference = self.diagrams_["M"]
        for space, diagram in self.diagrams_.items():
            row = {"n_points": n_points[space],
                   "frac_low_rank": float(self.in_low_rank_.mean())}
            for q in dims:
                finite = diagram.finite(q)
                row[f"H{q}__n_bars"] = len(diagram[q])
                row[f"H{q}__max_lifetime"] = float(
                    (finite[:, 1] - finite[:, 0]).max()) if len(finite) else 0.0
                for kind in ("bottleneck", "wasserstein"):
                    row[f"H{q}__{kind}_to_M"] = float(
                        diagram_distance(diagram, reference, metric=kind, q=q))
            rows[space] = row
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("space")


def relative_homology_table(model, X, **params):
    """Convenience: ``QuotientPersistence(model, **params).fit(X).table_``.

    Parameters
    ----------
    model : torch.nn.Module
    X : array-like of shape (n_inputs, n_features)
    **params
        Parameters of :class:`QuotientPersistence`.

    Returns
    -------
    table : pandas.DataFrame
        Rows M, M/A and f(M); see :class:`QuotientPersistence`.
    """
    return QuotientPersistence(model, **params).fit(X).table_


def _normalized(diagram):
    """The diagram divided by its largest finite birth or death (study B's ``normalize``)."""
    from sktopo.diagram import Diagram

    values = np.concatenate([diagram[q].ravel() for q in diagram.dims])
    values = values[np.isfinite(values)]
    scale = values.max() if values.size and values.max() > 0 else 1.0
    return Diagram({q: diagram[q] / scale for q in diagram.dims}, n_points=diagram.n_points,
                   n_landmarks=diagram.n_landmarks,
                   covering_radius=diagram.covering_radius / scale,
                   threshold=diagram.threshold / scale, coeff=diagram.coeff,
                   metric=diagram.metric, engine=diagram.engine)


class _OutputAsReLU(nn.Module):
    """``model`` with an ``nn.ReLU`` applied to its output on the side.

    The ReLU's result is discarded: the forward pass returns the model's own output, but
    ReLURankRegions sees one more ReLU layer, ``"output"``, whose pattern is ``output > 0``
    (study B's knot notebook treats the output Linear layer as a ReLU).
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.output = nn.ReLU()

    def forward(self, x):
        y = self.model(x)
        self.output(y)
        return y
