"""The one seeding rule: per-cloud random streams from ``random_state`` and the cloud's content.

Every random step done per cloud (landmarks, PHDimension and TwoNN subsamples,
anything later) takes its stream from :func:`cloud_seeds`. The stream depends on

- the estimator's ``random_state`` (read once per call: an int is used as it is, a
  ``RandomState`` gives one draw, ``None`` gives fresh entropy for the call), and
- a *content key* of the cloud that does not depend on how the cloud is given:
  the number of points and the sum of the distances from the first point to every
  point, rounded to 9 significant digits. A cloud and its distance matrix
  (``metric="precomputed"``) have the same key, so they pick the same landmarks
  and subsamples; a cloud has the same key in any row, any order, any subset of
  the collection and on any ``n_jobs``.

The key is invariant under isometries that keep the point order (a rotated or
translated copy of a cloud draws the same stream, and gives the same numbers,
which is what a metric-only method should do). Rounding makes the key robust to
the last bits of how the distances were computed (float64 differences, the
``|x|^2 + |y|^2 - 2 x.y`` expansion, a distance matrix made elsewhere in float64).
"""

from __future__ import annotations

import hashlib
from numbers import Integral

import numpy as np

__all__ = ["cloud_seeds", "content_key", "root_entropy"]


def root_entropy(random_state) -> int:
    """One integer of entropy for this call, from ``random_state``.

    ``None`` gives fresh OS entropy (different numbers each call, the same cloud
    twice in one call still gets one stream); an int is used as it is; a
    ``numpy.random.RandomState`` or ``Generator`` gives one draw (so successive
    calls with one instance differ, as in scikit-learn).
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0])
    if isinstance(random_state, (Integral, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    raise ValueError(
        f"random_state must be an int, a numpy RandomState or None; got {random_state!r}."
    )


def _first_row_distances(data, metric, metric_params) -> np.ndarray:
    if metric == "precomputed":
        row = data[0]
        if hasattr(row, "toarray"):  # a scipy.sparse row
            row = row.toarray().ravel()
        return np.asarray(row, dtype=np.float64)
    X = np.asarray(data, dtype=np.float64)
    if metric == "euclidean" and not metric_params:
        # differences, not the dot-product expansion: exact for near points
        diff = X - X[0]
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))
    from sklearn.metrics import pairwise_distances

    return pairwise_distances(X, X[:1], metric=metric, **(metric_params or {}))[:, 0]


def content_key(data, *, metric="euclidean", metric_params=None) -> int:
    """A 64-bit key of a cloud's content, the same for the cloud and its distance matrix.

    Parameters
    ----------
    data : ndarray of shape (n_points, n_features), or (n_points, n_points)
        The cloud, or its distance matrix with ``metric="precomputed"``.
    metric : str or callable, default="euclidean"
        The metric the estimator uses (``"precomputed"`` for a distance matrix).
    metric_params : dict, optional
        Extra arguments of the metric.

    Returns
    -------
    key : int
    """
    n_points = int(data.shape[0])
    if n_points == 0:
        return 0
    total = float(np.sum(_first_row_distances(data, metric, metric_params)))
    if not np.isfinite(total):
        total_text = repr(total)
    else:
        total_text = f"{total:.8e}"
    digest = np.frombuffer(
        hashlib.blake2b(f"{n_points}|{total_text}".encode(), digest_size=8).digest(),
        dtype="<u8",
    )[0]
    return int(digest)


def cloud_seeds(random_state, clouds, *, metric="euclidean", metric_params=None) -> list[int]:
    """One seed per cloud, from ``random_state`` (read once) and each cloud's content key.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        The estimator's ``random_state``.
    clouds : sequence of ndarray
        The validated clouds (or distance matrices with ``metric="precomputed"``).
    metric, metric_params
        As in :func:`content_key`.

    Returns
    -------
    seeds : list of int
        Seeds for :func:`numpy.random.default_rng` / ``RandomState`` (below 2**32).
    """
    entropy = root_entropy(random_state)
    seeds = []
    for cloud in clouds:
        key = content_key(cloud, metric=metric, metric_params=metric_params)
        sequence = np.random.SeedSequence([entropy % 2**64, key])
        seeds.append(int(sequence.generate_state(1)[0]))
    return seeds
