"""Relative (quotient) persistence: what a ReLU network can destroy.

Let M be a sample of the data manifold and A the inputs that lie in linear regions where the
network's map has low rank (below a chosen level, by default the input dimension). By the long
exact sequence of the pair (M, A), the relative homology H(M, A) ~ reduced H(M/A) tells which
classes of M survive once the low-rank part, where the network can glue or collapse the data, is
quotiented out (study B of the research notes).

The quotient metric is built from the distance matrix of M as in study B:

1. inside each low-rank region (points sharing an activation pattern) distances are set to 0;
2. every other point's distance to a region is its minimum distance to the region's points, and
   two regions are at the minimum distance between their points;
3. one representative node per region is kept;
4. all-pairs shortest paths (scipy.sparse.csgraph) restore the triangle inequality.

Vietoris-Rips persistence of that metric gives the diagram of M/A. With ``collapse="all"`` the
whole of A becomes a single point (the topological quotient M/A, whose reduced homology is
H(M, A)); ``collapse="region"`` (study B's computation) collapses each region separately.
"""

from numbers import Integral

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import csgraph_from_dense, shortest_path
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

__all__ = ["quotient_distances", "quotient_persistence", "QuotientPersistence",
           "relative_homology_table"]


def quotient_distances(D, labels, *, collapse="region"):
    """Distance matrix of the quotient of a finite metric space by labelled subsets.

    Parameters
    ----------
    D : ndarray of shape (n, n)
        Symmetric distance matrix of the points.
    labels : array-like of shape (n,)
        Integer per point: points with the same label ``>= 0`` are collapsed together (with
        ``collapse="region"``); a negative label marks a point outside A, kept as it is.
    collapse : {"region", "all"}, default="region"
        "all" collapses every point with a label ``>= 0`` into one point.

    Returns
    -------
    Q : ndarray of shape (m, m)
        Shortest-path metric on the m nodes of the quotient.
    nodes : ndarray of shape (n,)
        Node of each point (points of one collapsed set share a node; nodes are numbered in
        order of first appearance).

    Examples
    --------
    >>> import numpy as np
    >>> from sktopo.topology.relative import quotient_distances
    >>> x = np.array([0.0, 1.0, 2.0, 3.0])
    >>> D = np.abs(x[:, None] - x[None, :])
    >>> Q, nodes = quotient_distances(D, [0, -1, -1, 0], collapse="region")
    >>> Q
    array([[0., 1., 1.],
           [1., 0., 1.],
           [1., 1., 0.]])
    """
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"D must be a square distance matrix, got shape {D.shape}.")
    if not np.isfinite(D).all() or (D < 0).any():
        raise ValueError("D must contain finite, non-negative distances.")
    labels = np.asarray(labels)
    if labels.shape != (D.shape[0],):
        raise ValueError(f"labels must have one entry per point ({D.shape[0]}), got shape "
                         f"{labels.shape}.")
    if collapse not in ("region", "all"):
        raise ValueError(f"collapse must be 'region' or 'all', got {collapse!r}.")
    labels = labels.astype(np.int64)
    if collapse == "all":
        labels = np.where(labels >= 0, 0, -1)
    # Every point outside A gets its own key; collapsed sets share one.
    keys = np.where(labels >= 0, labels, -1 - np.arange(labels.size, dtype=np.int64))
    _, first, nodes = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    renumber = np.empty_like(order)
    renumber[order] = np.arange(order.size)
    nodes = renumber[nodes.reshape(-1)]
    m = order.size
    # Minimum over members, rows then columns, with reduceat on points sorted by node.
    by_node = np.argsort(nodes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(nodes[by_node]) != 0])
    Q = np.minimum.reduceat(D[by_node], starts, axis=0)
    Q = np.minimum.reduceat(Q[:, by_node], starts, axis=1)
    Q = np.minimum(Q, Q.T)
    np.fill_diagonal(Q, 0.0)
    # Dense zeros would read as "no edge": build the graph with inf as the null value.
    graph = csgraph_from_dense(Q, null_value=np.inf)
    Q = shortest_path(graph, method="D", directed=False)
    assert Q.shape == (m, m)
    return Q, nodes


def quotient_persistence(X, labels, *, collapse="region", homology_dimensions=(0, 1),
                         metric="euclidean"):
    """Vietoris-Rips persistence of the quotient of a point cloud by labelled subsets.

    Parameters
    ----------
    X : ndarray of shape (n, n_features), or (n, n) distances with ``metric="precomputed"``
    labels : array-like of shape (n,)
        See :func:`quotient_distances`.
    collapse : {"region", "all"}, default="region"
    homology_dimensions : tuple of int, default=(0, 1)
    metric : str, default="euclidean"
        Any metric of :func:`sklearn.metrics.pairwise_distances`, or "precomputed".

    Returns
    -------
    diagram : sktopo.diagram.Diagram
    """
    D = _distances(X, metric)
    Q, _ = quotient_distances(D, labels, collapse=collapse)
    return _rips(Q, homology_dimensions)


class QuotientPersistence(BaseEstimator):
    """Persistence of M, of the quotient M/A by the low-rank set A, and of the output f(M).

    A is the set of inputs whose linear region has cumulative rank below ``low_rank`` at
    ``layer`` (computed by :class:`sktopo.nn.relu_rank.ReLURankRegions`); the quotient metric is
    described in the module docstring.

    Parameters
    ----------
    model : torch.nn.Module
        A ReLU network (see ReLURankRegions for what is supported).
    low_rank : int or None, default=None
        Regions with rank below this level form A; None means below the input dimension.
    layer : str, int or None, default=None
        ReLU layer whose cumulative rank (and region) decides A: a name of
        ``ReLURankRegions.layer_names_`` or a position; None is the last ReLU layer (the
        smallest cumulative rank: ranks never grow with depth).
    collapse : {"region", "all"}, default="region"
        "region" collapses each low-rank region to its own point (study B); "all" collapses A
        to one point (the topological quotient M/A).
    homology_dimensions : tuple of int, default=(0, 1)
    metric : str, default="euclidean"
        Metric on the inputs and on the outputs.
    rank_tol, dtype, device : see ReLURankRegions.

    Attributes
    ----------
    diagrams_ : pandas.Series of Diagram
        Indexed ``["M", "M/A", "f(M)"]``.
    in_low_rank_ : ndarray of bool, shape (n_inputs,)
        Which inputs are in A.
    quotient_nodes_ : ndarray of int, shape (n_inputs,)
        Node of the quotient each input maps to.
    ranks_ : ReLURankRegions
        The fitted rank estimator.
    table_ : pandas.DataFrame
        One row per space (M, M/A, f(M)): number of points, fraction in A, per homology
        dimension q the number of bars ``H{q}_bars``, the longest finite bar
        ``H{q}_max_persistence``, and the bottleneck and Wasserstein (order 1) distances to the
        diagram of M, ``H{q}_bottleneck_to_M`` and ``H{q}_wasserstein_to_M``.

    Examples
    --------
    >>> from sktopo.datasets import make_circle
    >>> from sktopo.nn.random_networks import random_relu_mlp
    >>> from sktopo.topology.relative import QuotientPersistence
    >>> X = 3 * make_circle(60, random_state=0)
    >>> qp = QuotientPersistence(random_relu_mlp(2, [1], random_state=0)).fit(X)
    >>> int(qp.table_.loc["M/A", "H1_bars"])
    0
    """

    _parameter_constraints = {
        "model": "no_validation",
        "low_rank": [Interval(Integral, 0, None, closed="left"), None],
        "layer": [str, Integral, None],
        "collapse": [StrOptions({"region", "all"})],
        "homology_dimensions": ["array-like"],
        "metric": [str],
        "rank_tol": "no_validation",
        "dtype": [StrOptions({"float64", "float32"})],
        "device": "no_validation",
    }

    def __init__(self, model, *, low_rank=None, layer=None, collapse="region",
                 homology_dimensions=(0, 1), metric="euclidean", rank_tol=None,
                 dtype="float64", device="auto"):
        self.model = model
        self.low_rank = low_rank
        self.layer = layer
        self.collapse = collapse
        self.homology_dimensions = homology_dimensions
        self.metric = metric
        self.rank_tol = rank_tol
        self.dtype = dtype
        self.device = device

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
        from sktopo.nn.relu_rank import ReLURankRegions

        ranks = ReLURankRegions(self.model, rank_tol=self.rank_tol, dtype=self.dtype,
                                low_rank=self.low_rank, device=self.device)
        features = ranks.fit_transform(X)
        names = ranks.layer_names_
        if self.layer is None:
            position = len(names) - 1
        elif isinstance(self.layer, str):
            if self.layer not in names:
                raise ValueError(f"layer={self.layer!r} is not a ReLU layer of the model; "
                                 f"its ReLU layers are {names}.")
            position = names.index(self.layer)
        else:
            if not -len(names) <= self.layer < len(names):
                raise ValueError(f"layer={self.layer} is out of range for the {len(names)} "
                                 f"ReLU layers {names}.")
            position = self.layer % len(names)
        rank = features[:, 4 * position]
        region = features[:, 4 * position + 3]
        self.in_low_rank_ = rank < ranks.low_rank_
        # Region ids are 64-bit hashes: renumber the low-rank ones as small labels.
        _, labels = np.unique(region, return_inverse=True)
        labels = np.where(self.in_low_rank_, labels.reshape(-1), -1)
        points = _as_points(X)
        dims = tuple(int(q) for q in self.homology_dimensions)
        D = _distances(points, self.metric)
        Q, self.quotient_nodes_ = quotient_distances(D, labels, collapse=self.collapse)
        outputs = _network_outputs(self.model, X, ranks)
        self.diagrams_ = pd.Series({
            "M": _rips(D, dims),
            "M/A": _rips(Q, dims),
            "f(M)": _rips(_distances(outputs, self.metric), dims),
        }, name="diagram")
        self.ranks_ = ranks
        self.table_ = self._table(dims, {"M": D.shape[0], "M/A": Q.shape[0],
                                         "f(M)": outputs.shape[0]})
        return self

    def _table(self, dims, n_points):
        rows = {}
        reference = self.diagrams_["M"]
        for space, diagram in self.diagrams_.items():
            row = {"n_points": n_points[space],
                   "frac_low_rank": float(self.in_low_rank_.mean())}
            for q in dims:
                finite = diagram.finite(q)
                row[f"H{q}_bars"] = len(diagram[q])
                row[f"H{q}_max_persistence"] = float(
                    (finite[:, 1] - finite[:, 0]).max()) if len(finite) else 0.0
                row[f"H{q}_bottleneck_to_M"] = _diagram_distance(
                    diagram, reference, q, "bottleneck")
                row[f"H{q}_wasserstein_to_M"] = _diagram_distance(
                    diagram, reference, q, "wasserstein")
            rows[space] = row
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("space")


def relative_homology_table(model, X, **params):
    """Convenience: ``QuotientPersistence(model, **params).fit(X).table_``.

    Returns
    -------
    table : pandas.DataFrame
        Rows M, M/A and f(M); see :class:`QuotientPersistence`.
    """
    return QuotientPersistence(model, **params).fit(X).table_


# ---------------------------------------------------------------------- helpers
def _as_points(X):
    if isinstance(X, pd.DataFrame):
        X = X.to_numpy()
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(X.shape[0], -1)


def _distances(X, metric):
    if metric == "precomputed":
        D = np.asarray(X, dtype=np.float64)
        if D.ndim != 2 or D.shape[0] != D.shape[1]:
            raise ValueError(f"metric='precomputed' needs a square distance matrix, got shape "
                             f"{D.shape}.")
        return D
    from sktopo._distance import pairwise_distances

    # sktopo's distances, not sklearn's: identical points (inputs a network
    # collapses) come out at exactly 0 rather than ~1e-7, a spurious tiny H0 bar
    D = pairwise_distances(_as_points(X), metric=metric)
    return np.maximum(D, D.T)


def _network_outputs(model, X, ranks):
    """f(X): the model's output on the inputs, in the analysis dtype, as (n, k) points."""
    import torch

    _, x = ranks._check_X(X, reset=False)
    with ranks._prepared_model() as prepared, torch.no_grad():
        out = torch.cat([prepared(x[i:i + ranks.batch_size])
                         for i in range(0, x.shape[0], ranks.batch_size)])
    return out.reshape(out.shape[0], -1).cpu().numpy().astype(np.float64)


def _rips(D, homology_dimensions):
    """Vietoris-Rips diagram of a distance matrix (through PersistenceDiagram)."""
    from sktopo.diagram import Diagram
    from sktopo.topology.persistence import persistence

    dims = tuple(homology_dimensions)
    if D.shape[0] == 1:  # everything collapsed to one point: one H0 class, nothing else
        return Diagram({q: [[0.0, np.inf]] if q == 0 else [] for q in dims}, n_points=1,
                       metric="precomputed")
    return persistence(D, homology_dimensions=dims, metric="precomputed")


def _diagram_distance(a, b, q, kind):
    """Bottleneck or Wasserstein-1 distance between the dimension-q bars of two diagrams."""
    from sktopo.topology.distances import diagram_distance

    return float(diagram_distance(a, b, metric=kind, q=q))
