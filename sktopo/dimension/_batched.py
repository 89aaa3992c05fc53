"""Many small clouds at once: PH dimension and TwoNN of equally sized clouds as one batch.

A per-input study (one cloud of tokens or patches per input) has thousands of
clouds of tens of points. Cloud by cloud, each estimate is a handful of tiny
numpy / scipy calls and the Python overhead dominates. Here clouds of the same
shape are handled together:

- their distance matrices are one batched matrix product
  (:func:`sktopo._distance.batched_squared_euclidean_distances`);
- PHDimension's subsamples are sub-matrices of those, gathered for every
  (cloud, rerun, draw) of a size by one ``np.take``, and their minimum spanning
  trees are one vectorised Prim pass per size (:func:`sktopo._mst.batched_mst_edge_lengths`);
- TwoNN's two nearest neighbours are two row minima
  (:func:`sktopo.dimension._neighbors.batched_knn_distances`), its fit one
  vectorised least-squares through the origin.

Nothing changes in the results: subsamples are drawn cloud by cloud from the
cloud's own seed exactly as the per-cloud functions draw them, and every
arithmetic step of a cloud depends on that cloud alone, so a cloud gets the same
numbers in any batch (of one or of thousands). The seeds too are computed in the
batch, in its thread (a :class:`sktopo._seeding.CloudSeeder`: the same seeds as
:func:`sktopo._seeding.cloud_seeds`; PHDimension reads each cloud's content key while
the cloud is in cache for its distances). Clouds the batch does not handle
(duplicated points, other metrics, large clouds, pooled subsampling, a torch
device) go to the per-cloud functions, which warn as before.

:func:`compute_cells` groups the clouds by shape, cuts the groups into chunks of
bounded memory and runs chunks and single clouds through
:func:`sktopo._parallel.run_parallel` (``n_jobs``, ``verbose``). Chunks run in
threads unless a ``joblib.parallel_config`` backend says otherwise: their numpy
and BLAS calls release the GIL, and threads share the clouds where processes would
pickle every cloud through a pipe (measured on 2 cores, 2,000 clouds of 64 x 384:
the pickling took more CPU in the parent than TwoNN's whole computation). Each chunk's
matrix products are small (64 x 384 by 384 x 64), too small for BLAS threads to pay
for their hand-offs, so BLAS runs one thread meanwhile (OpenBLAS's default two threads
made TwoNN 3-6x slower per cloud on a busy 2-core machine).
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from sktopo._parallel import effective_jobs, one_blas_thread, run_parallel
from sktopo._seeding import CloudSeeder, resolve_seeds, seeded_generators
from sktopo.dimension._neighbors import DENSE_MAX_POINTS, batched_knn_distances, to_unit_scale

__all__ = ["compute_cells", "phdim_batch", "phdim_batch_cost", "phdim_batch_key", "twonn_batch",
           "twonn_batch_key", "twonn_fit"]

# A chunk holds about this many float64 numbers (16 MiB: distance matrices, sub-matrices;
# see the ``cost`` of compute_cells), whatever the number of clouds.
_CHUNK_ENTRIES = 1 << 21
# Chunks per worker, so that joblib can balance uneven chunks.
_CHUNKS_PER_WORKER = 4
# PHDimension computes the distances of clouds of this many float64 numbers at a time
# (2 MiB, ten token clouds of 64 x 384): their centred copies, float64 distances and gather
# indices stay in cache (measured: 0.44-0.47 ms per cloud from 10 to 20 clouds, 0.57 at 2).
_CENTRED_ENTRIES = 1 << 18
# PHDimension batches clouds up to this many points. Measured (2 cores, d = 64): batched
# 0.7 vs 1.9 ms per cloud at 128 points, 1.9 vs 2.7 at 256, 4.0 vs 4.8 at 400; above
# that scipy's compiled single linkage, cloud by cloud, catches up with the numpy Prim.
PHDIM_BATCH_MAX_POINTS = 384


# --------------------------------------------------------------------------- driver
def compute_cells(clouds, seeds, labels, *, key: Callable, batch: Callable, single: Callable,
                  settings: dict, n_jobs=None, verbose=0, desc=None,
                  cost: Callable | None = None) -> list:
    """``(values, messages)`` of every cloud, in order, batching clouds of one shape.

    Parameters
    ----------
    clouds, labels : sequence
        The validated clouds and their labels.
    seeds : list or CloudSeeder
        The clouds' seeds (:func:`sktopo._seeding.cloud_seeds`), or the
        :class:`~sktopo._seeding.CloudSeeder` that gives them: each chunk's batch
        then computes its clouds' seeds in its own thread (the same seeds, in
        parallel), the clouds computed on their own get theirs here.
    key : callable
        ``key(cloud, **settings)``: a hashable batch key (clouds with equal keys are
        stacked together), or None for a cloud computed on its own.
    batch : callable
        ``batch(clouds, seeds, labels, **settings)`` for clouds of one key: a list of
        ``(values, messages)``; ``seeds`` a list or the CloudSeeder (see
        :func:`sktopo._seeding.resolve_seeds`).
    single : callable
        ``single(cloud, seed, label, **settings)``: ``(values, messages)`` of one cloud.
    settings : dict
        Keyword arguments of the three callables.
    cost : callable, optional
        ``cost(cloud, **settings)``: the float64 numbers a batch holds per cloud (its
        stacked points, distance matrices and sub-matrices), which sizes the chunks.
        Default: the points and two ``n x n`` matrices.
    n_jobs, verbose, desc
        As in :func:`sktopo._parallel.run_parallel`; a progress step is a chunk
        (in threads, see the module docstring) or a cloud computed on its own.

    Returns
    -------
    results : list of (dict, list)
    """
    groups: dict = {}
    alone = []
    for i, cloud in enumerate(clouds):
        k = key(cloud, **settings)
        if k is None:
            alone.append(i)
        else:
            groups.setdefault(k, []).append(i)
    workers = effective_jobs(n_jobs)
    cost = cost or _default_cost
    chunks = []
    for members in groups.values():
        size = max(1, _CHUNK_ENTRIES // max(1, int(cost(clouds[members[0]], **settings))))
        if workers > 1:
            size = min(size, -(-len(members) // (workers * _CHUNKS_PER_WORKER)))
        chunks.extend(members[start:start + size] for start in range(0, len(members), size))
    results = [None] * len(clouds)
    if chunks:
        from joblib import parallel_config

        with one_blas_thread(), parallel_config(prefer="threads"):
            outputs = run_parallel(
                functools.partial(batch, **settings),
                [([clouds[i] for i in idx], _chunk_seeds(seeds, idx), [labels[i] for i in idx])
                 for idx in chunks],
                n_jobs=n_jobs, verbose=verbose, desc=desc, unit="chunk",
            )
        for idx, output in zip(chunks, outputs):
            for i, result in zip(idx, output):
                results[i] = result
    if alone:
        # large clouds, other metrics, torch devices: their compiled kernels (scipy's single
        # linkage, scikit-learn's neighbours) hold the GIL, so joblib's default backend
        alone_seeds = resolve_seeds(_chunk_seeds(seeds, alone), [clouds[i] for i in alone])
        outputs = run_parallel(functools.partial(single, **settings),
                               [(clouds[i], seed, labels[i])
                                for i, seed in zip(alone, alone_seeds)],
                               n_jobs=n_jobs, verbose=verbose, desc=desc, unit="cloud")
        for i, result in zip(alone, outputs):
            results[i] = result
    return results


def _chunk_seeds(seeds, idx):
    """A chunk's seeds: the seeder itself (the batch computes them), or the chunk's part."""
    return seeds if isinstance(seeds, CloudSeeder) else [seeds[i] for i in idx]


def _default_cost(cloud, **settings):
    return cloud.size + 2 * cloud.shape[0] ** 2


def _unit_scaled(clouds) -> list:
    """The clouds in float64, each brought near unit scale by :func:`to_unit_scale` (exact
    powers of two; the cloud itself in the safe range). A list: the batched distances read
    the clouds where they are."""
    scaled = []
    for cloud in clouds:
        cloud = np.asarray(cloud, dtype=np.float64)
        scaled.append(to_unit_scale(cloud, max(cloud.max(), -cloud.min())))  # no |cloud| temporary
    return scaled


# ----------------------------------------------------------------------- PH dimension
@functools.lru_cache(maxsize=256)
def _phdim_plan(n_points, *, protocol, min_points, max_points, n_sizes, n_draws, n_reruns):
    """The plan of a cloud of ``n_points`` (cached: the batch keys ask once per cloud)."""
    from sktopo.dimension._protocols import make_plan

    return make_plan(n_points, protocol=protocol, min_points=min_points, max_points=max_points,
                     n_sizes=n_sizes, n_draws=n_draws, n_reruns=n_reruns)


def phdim_batch_key(cloud, *, alpha, protocol, min_points, max_points, n_sizes, n_draws,
                    n_reruns, metric, device):
    """The shape of a cloud PHDimension can batch, or None (computed on its own).

    Clouds too small for the plan's sizes are batched too: the batch hands them to the
    per-cloud function, which gives NaN at once (no process to start for them).
    """
    n_points = cloud.shape[0]
    if device != "cpu" or metric != "euclidean" or n_points > PHDIM_BATCH_MAX_POINTS:
        return None
    plan = _phdim_plan(n_points, protocol=protocol, min_points=min_points,
                       max_points=max_points, n_sizes=n_sizes, n_draws=n_draws,
                       n_reruns=n_reruns)
    if not plan.nested or plan.pool_size != n_points or plan.dropped_sizes:
        return None
    return cloud.shape


def phdim_batch_cost(cloud, *, protocol, min_points, max_points, n_sizes, n_draws, n_reruns,
                     **settings):
    """Numbers a PHDimension chunk holds per cloud: its distances and the largest size's
    sub-matrices of every (rerun, draw) (points, float64 distances and gather indices are
    held a few clouds at a time, see ``_CENTRED_ENTRIES``)."""
    n_points = cloud.shape[0]
    plan = _phdim_plan(n_points, protocol=protocol, min_points=min_points,
                       max_points=max_points, n_sizes=n_sizes, n_draws=n_draws,
                       n_reruns=n_reruns)
    below = plan.sizes[plan.sizes < n_points]
    longest = int(below[-1]) if len(below) else 0
    return (n_points ** 2 + plan.n_reruns * plan.n_draws * longest ** 2) // 2  # float32: half


def phdim_batch(clouds, seeds, labels, *, alpha, protocol, min_points, max_points, n_sizes,
                n_draws, n_reruns, metric, device):
    """PH dimension of equally shaped Euclidean clouds (a :func:`phdim_batch_key` group).

    The same numbers as :func:`sktopo.dimension.phdim._estimate_cloud` on each
    cloud (same subsamples, float32 squared distances, the same MST edge
    lengths summed in the same ascending order).
    """
    from sktopo.dimension._protocols import MIN_N_SIZES
    from sktopo.dimension.phdim import (_estimate_cloud, _fit_results,
                                        _infinite_length_message, _nan_result, _shuffled_orders)

    settings = dict(alpha=alpha, protocol=protocol, min_points=min_points,
                    max_points=max_points, n_sizes=n_sizes, n_draws=n_draws,
                    n_reruns=n_reruns, metric=metric, device=device)
    c, n_points = len(clouds), clouds[0].shape[0]
    plan = _phdim_plan(n_points, protocol=protocol, min_points=min_points,
                       max_points=max_points, n_sizes=n_sizes, n_draws=n_draws,
                       n_reruns=n_reruns)
    if len(plan.sizes) < MIN_N_SIZES:  # too few points: NaN and the per-cloud message
        return [_estimate_cloud(cloud, seed, label, **settings)
                for cloud, seed, label in zip(clouds, resolve_seeds(seeds, clouds), labels)]
    below = plan.sizes[plan.sizes < plan.pool_size]
    longest = int(below[-1]) if len(below) else 0
    n_orders = plan.n_reruns * plan.n_draws
    D = np.empty((c, n_points, n_points), dtype=np.float32)
    # (cloud, rerun * n_draws + draw): the sub-matrix of the largest size below the pool;
    # the smaller sizes are its leading blocks (nested prefixes of one order)
    blocks = np.empty((c, n_orders, longest, longest), dtype=np.float32)
    duplicated = np.empty(c, dtype=bool)
    # a few clouds at a time: their points, distances and gather indices stay in cache
    step = max(1, _CENTRED_ENTRIES // clouds[0].size)
    centred = np.empty((min(step, c), *clouds[0].shape))
    keys = []
    for start in range(0, c, step):
        stop = min(start + step, c)
        if isinstance(seeds, CloudSeeder):  # the content keys while the clouds are in cache
            keys += seeds.keys(clouds[start:stop])
        duplicated[start:stop] = _pool_distances(clouds[start:stop], centred[:stop - start],
                                                 out=D[start:stop])
    if isinstance(seeds, CloudSeeder):
        seeds = seeds.seeds_of(keys)  # all at once: the hash is vectorised over the keys
    if longest:
        orders = np.empty((min(step, c), n_orders, n_points), dtype=np.intp)
        generators = seeded_generators(seeds)  # default_rng(seed) of each cloud, in turn
        for start in range(0, c, step):
            stop = min(start + step, c)
            drawn = orders[:stop - start]
            for cloud_orders, rng in zip(drawn, generators):
                _shuffled_orders(rng, cloud_orders)
            _sub_matrices(D[start:stop], drawn[:, :, :longest], out=blocks[start:stop])
    power = alpha * 0.5  # squared distances: E = sum(edge2 ** (alpha / 2))
    E = np.empty((c, plan.n_reruns, len(plan.sizes), plan.n_draws))
    if plan.sizes[-1] >= plan.pool_size:
        E[:, :, -1, :] = _mst_length_sums(D, power)[:, None, None]
    blocks = blocks.reshape(c * n_orders, longest, longest)
    for s, m in enumerate(below):
        sums = _mst_length_sums(blocks[:, :m, :m], power)
        E[:, :, s, :] = sums.reshape(c, plan.n_reruns, plan.n_draws)
    with np.errstate(divide="ignore", invalid="ignore"):
        logE = np.log(E)
    finite = np.isfinite(logE).all(axis=(1, 2, 3))
    fit = np.flatnonzero(finite & ~duplicated)
    fitted = dict(zip(fit, _fit_results(plan, logE[fit], alpha, [labels[i] for i in fit],
                                        ambient=clouds[0].shape[1])))  # Euclidean clouds
    results = []
    for i in range(c):
        if duplicated[i]:  # the per-cloud path counts them, warns and decides
            results.append(_estimate_cloud(clouds[i], seeds[i], labels[i], **settings))
        elif not finite[i]:
            results.append((_nan_result(), [_infinite_length_message(labels[i])]))
        else:
            values, message = fitted[i]
            results.append((values, [message] if message else []))
    return results


def _pool_distances(clouds, centred, out):
    """Squared distances of the centred clouds into ``out`` (float32, ``(c, n, n)``).

    ``centred`` is a ``(c, n, d)`` float64 buffer for the centred points. Returns, per
    cloud, whether a point has a duplicate (a zero off the diagonal of the float64
    distances).
    """
    from sktopo._distance import batched_squared_euclidean_distances

    for x, buffer in zip(_unit_scaled(clouds), centred):
        # as the per-cloud path: smaller norms, less cancellation in |x|^2 + |y|^2 - 2 x.y
        np.subtract(x, x.mean(axis=0), out=buffer)
    D2 = batched_squared_euclidean_distances(centred)
    idx = np.arange(D2.shape[1])
    D2[:, idx, idx] = np.inf
    duplicated = (D2.min(axis=2) == 0).any(axis=1)
    D2[:, idx, idx] = 0.0
    out[...] = D2  # rounded to float32: what the per-cloud path feeds its MSTs
    return duplicated


def _sub_matrices(D, orders, out):
    """``out[i, j] = D[i][orders[i, j]][:, orders[i, j]]``, by one flat ``np.take``."""
    c, n, _ = D.shape
    starts = orders * n + (np.arange(c) * n * n)[:, None, None]  # rows, as flat offsets
    index = starts[:, :, :, None] + orders[:, :, None, :]
    np.take(D.reshape(-1), index, out=out, mode="clip")  # valid indices: no checks, no buffer


def _mst_length_sums(D, power):
    """``sum(edge ** power)`` of the minimum spanning tree of every matrix of ``D``."""
    from sktopo._mst import batched_mst_edge_lengths

    lengths = batched_mst_edge_lengths(D).astype(np.float64)
    return np.sum(lengths ** power, axis=1)


# ------------------------------------------------------------------------------ TwoNN
def twonn_batch_key(cloud, *, discard_fraction, metric, max_points):
    """The shape (after ``max_points``) of a cloud TwoNN can batch, or None."""
    n_points = cloud.shape[0]
    if max_points is not None:
        n_points = min(n_points, max_points)
    if metric != "euclidean" or not 3 <= n_points <= DENSE_MAX_POINTS:
        return None
    return n_points, cloud.shape[1]


def twonn_batch(clouds, seeds, labels, *, discard_fraction, metric, max_points):
    """TwoNN of Euclidean clouds of one :func:`twonn_batch_key` (dense two nearest neighbours).

    Clouds with duplicated points, or whose fit is undefined, go to
    :func:`sktopo.dimension.twonn._twonn_cloud`, which removes the duplicates and warns.
    """
    from sktopo.dimension.twonn import _twonn_cloud

    settings = dict(discard_fraction=discard_fraction, metric=metric, max_points=max_points)
    seeds = resolve_seeds(seeds, clouds)
    sampled = []
    for cloud, seed in zip(clouds, seeds):
        n_points = cloud.shape[0]
        if max_points is not None and n_points > max_points:
            keep = np.sort(np.random.default_rng(seed).choice(n_points, max_points, replace=False))
            cloud = cloud[keep]
        sampled.append(cloud)
    d2 = batched_knn_distances(_unit_scaled(sampled), 2)
    dimension, r2_fit, n_used, ok = twonn_fit(np.sqrt(d2), discard_fraction)
    results = []
    for i in range(len(clouds)):
        if not ok[i]:
            results.append(_twonn_cloud(clouds[i], seeds[i], labels[i], **settings))
        else:
            results.append(({"twonn": float(dimension[i]), "r2": float(r2_fit[i]),
                             "n_used": float(n_used)}, []))
    return results


def twonn_fit(r, discard_fraction):
    """Facco et al.'s fit through the origin for clouds of one size.

    Parameters
    ----------
    r : ndarray of shape (b, n, 2)
        Distances of every point to its first and second nearest neighbours.
    discard_fraction : float
        Fraction of the largest ratios left out.

    Returns
    -------
    dimension, r2 : ndarray of shape (b,)
    n_used : int
    ok : ndarray of bool, shape (b,)
        False where the fit is undefined (a duplicate, too few ratios, all ratios 1).
    """
    b, n, _ = r.shape
    ok = (r[:, :, 0] > 0).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.sort(r[:, :, 1] / r[:, :, 0], axis=1)
    # the largest ratio has F = 1 and log(1 - F) = -inf: it never enters the fit
    n_used = min(int(np.floor(n * (1 - discard_fraction))), n - 1)
    if n_used < 2:
        return np.full(b, np.nan), np.full(b, np.nan), n_used, np.zeros(b, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log(mu[:, :n_used])
    y = -np.log(1 - np.arange(1, n_used + 1) / n)  # empirical F(mu_i) = i / n
    xx = (x * x).sum(axis=1)
    ok &= xx > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dimension = (x * y).sum(axis=1) / xx
        residuals = y - dimension[:, None] * x
        total = ((y - y.mean()) ** 2).sum()
        r2 = 1 - (residuals ** 2).sum(axis=1) / total if total > 0 else np.full(b, np.nan)
    return dimension, r2, n_used, ok
