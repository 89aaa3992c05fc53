"""A permutation test for the long bars of a persistence diagram.

Is a loop real, or would a cloud without structure give a bar as long? The null
clouds here keep every coordinate's distribution (its values, exactly) and
destroy the dependence between coordinates: each column of ``X`` is permuted
independently. A noisy circle becomes a filled square-ish blob with only short
H1 bars; a Gaussian blob stays a blob.

The statistic of every null cloud is its *longest* bar, and a bar of ``X`` of
length ``l`` gets the p-value ``(1 + #{null longest >= l}) / (1 + n_permutations)``:
the max statistic controls the family-wise error over all bars of the diagram
(no further multiple-testing correction is needed), and the ``+ 1`` keeps the
test exact (never p = 0).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd

from sktopo._seeding import cloud_seeds
from sktopo.topology.persistence import persistence

__all__ = ["bar_significance"]


def bar_significance(X, homology_dimension=1, *, n_permutations=99, n_bars=5,
                     random_state=None, verbose=0):
    """P-values of the longest bars of ``X`` against coordinate-permuted clouds.

    Parameters
    ----------
    X : array-like of shape (n_points, n_features)
        The cloud (Euclidean Vietoris-Rips persistence).
    homology_dimension : int, default=1
        Dimension of the bars tested (1: loops).
    n_permutations : int, default=99
        Null clouds, each with every column of ``X`` permuted independently.
        The smallest p-value possible is ``1 / (n_permutations + 1)``.
    n_bars : int, default=5
        Test the ``n_bars`` longest finite bars of ``X`` (fewer if it has fewer).
    random_state : int, RandomState instance or None, default=None
        Seeds the permutations, together with the cloud's content (the same
        cloud and seed give the same p-values).
    verbose : int, default=0
        Print progress every 10 null clouds when positive.

    Returns
    -------
    bars : DataFrame
        One row per tested bar, longest first, with columns ``birth``,
        ``death``, ``lifetime`` and ``p_value``. The null distribution (the
        longest bar of every null cloud) is in ``bars.attrs["null_longest"]``.

    Raises
    ------
    ValueError
        If ``X`` is not a 2-D cloud of at least 3 points and 2 coordinates
        (with one coordinate, permuting it keeps the cloud's set of points).

    Examples
    --------
    >>> from sktopo import bar_significance
    >>> from sktopo.datasets import make_circle
    >>> bars = bar_significance(make_circle(80, noise=0.1, random_state=0), n_permutations=19,
    ...                         random_state=0)
    >>> float(bars["p_value"].iloc[0])
    0.05
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] < 3 or X.shape[1] < 2:
        raise ValueError(
            f"bar_significance: X must be a 2-D cloud of at least 3 points and 2 coordinates "
            f"(permuting a single coordinate leaves the set of points unchanged); got shape "
            f"{X.shape}.")
    if not np.all(np.isfinite(X)):
        raise ValueError("bar_significance: X has NaN or infinite values.")
    for name, value, low in (("homology_dimension", homology_dimension, 0),
                             ("n_permutations", n_permutations, 1), ("n_bars", n_bars, 1)):
        if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
            raise ValueError(f"bar_significance: {name} must be an integer >= {low}; "
                             f"got {value!r}.")
    q = int(homology_dimension)
    observed = _finite_bars(X, q)
    order = np.argsort(observed[:, 0] - observed[:, 1], kind="stable")[:n_bars]
    observed = observed[order]
    lifetimes = observed[:, 1] - observed[:, 0]

    rng = np.random.default_rng(cloud_seeds(random_state, [X])[0])
    null = np.empty(n_permutations)
    for i in range(n_permutations):
        shuffled = np.column_stack([rng.permutation(column) for column in X.T])
        bars = _finite_bars(shuffled, q)
        null[i] = (bars[:, 1] - bars[:, 0]).max() if len(bars) else 0.0
        if verbose and (i + 1) % 10 == 0:
            print(f"bar_significance: {i + 1}/{n_permutations} null clouds", flush=True)
    p_values = (1 + (null[None, :] >= lifetimes[:, None]).sum(axis=1)) / (1 + n_permutations)
    table = pd.DataFrame({"birth": observed[:, 0], "death": observed[:, 1],
                          "lifetime": lifetimes, "p_value": p_values})
    table.attrs["null_longest"] = null
    return table


def _finite_bars(X, q):
    return np.asarray(persistence(X, (q,)).finite(q), dtype=float).reshape(-1, 2)
