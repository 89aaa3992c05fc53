"""Many small clouds at once: the driver that batches equally shaped clouds.

The batch functions live beside their estimators (``phdim_batch`` in
:mod:`sktopo.dimension.phdim`, ``twonn_batch`` in :mod:`sktopo.dimension.twonn`,
``_batch_values`` in :mod:`sktopo.dimension.mle`); this module is the helper below
all of them and imports none of them.

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
from sktopo.dimension._neighbors import to_unit_scale

__all__ = ["compute_cells"]

# A chunk holds about this many float64 numbers (16 MiB: distance matrices, sub-matrices;
# see the ``cost`` of compute_cells), whatever the number of clouds.
_CHUNK_ENTRIES = 1 << 21
# Chunks per worker, so that joblib can balance uneven chunks.
_CHUNKS_PER_WORKER = 4


def compute_cells(clouds, seeds, labels, *, key: Callable, batch: Callable, single: Callable,
                  settings: dict, n_jobs=None, verbose=0, desc=None,
                  cost: Callable | None = None) -> list:
    """``(values, messages)`` of every cloud, in order, batching clouds of one shape.

    Parameters
    ----------
    clouds, labels : sequence
        The validated clouds and their labels.
    seeds : CloudSeeder
        The :class:`~sktopo._seeding.CloudSeeder` of the clouds: each chunk's batch
        gets ``seeds.take(chunk)`` and computes its clouds' seeds in its own thread
        (the same seeds, in parallel); the clouds computed on their own get theirs
        here.
    key : callable
        ``key(cloud, **settings)``: a hashable batch key (clouds with equal keys are
        stacked together), or None for a cloud computed on its own.
    batch : callable
        ``batch(clouds, seeds, labels, **settings)`` for clouds of one key: a list of
        ``(values, messages)``; ``seeds`` the chunk's CloudSeeder (a list of seeds,
        for a direct call, goes through :func:`sktopo._seeding.as_seeder`).
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
                [([clouds[i] for i in idx], seeds.take(idx), [labels[i] for i in idx])
                 for idx in chunks],
                n_jobs=n_jobs, verbose=verbose, desc=desc, unit="chunk",
            )
        for idx, output in zip(chunks, outputs):
            for i, result in zip(idx, output):
                results[i] = result
    if alone:
        # large clouds, other metrics, torch devices: their compiled kernels (scipy's single
        # linkage, scikit-learn's neighbours) hold the GIL, so joblib's default backend
        alone_seeds = seeds.take(alone)([clouds[i] for i in alone])
        outputs = run_parallel(functools.partial(single, **settings),
                               [(clouds[i], seed, labels[i])
                                for i, seed in zip(alone, alone_seeds)],
                               n_jobs=n_jobs, verbose=verbose, desc=desc, unit="cloud")
        for i, result in zip(alone, outputs):
            results[i] = result
    return results


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
