"""The many-cloud scheduler: thousands of small clouds without a per-cloud loop.

``LayerEmbedder(unit="sample")`` makes one small cloud per input. Clouds of
up to :data:`BATCH_MAX_POINTS` points whose dense computation fits
``memory_limit`` are bucketed by shape (never padded: a cloud's bars do not
depend on the other clouds), and each bucket is cut into chunks that get one
batched distance product (:func:`sktopo._distance.batched_squared_euclidean_distances`)
and, for H0, one batched minimum-spanning-tree pass
(:func:`sktopo._mst.batched_mst_edge_lengths`). For H1 and above each cloud's
float32 condensed matrix goes to the engine's compiled core
(:meth:`~sktopo.topology.engines.Engine.condensed`), with no Python-level
checks per cloud.

Where the work runs follows the engine's declared capabilities: chunks run in
``n_jobs`` threads when the engine's core releases the GIL and is thread-safe
(the MST kernels, redzed-tda: distances and persistence both in the thread,
nothing copied), else in worker processes that receive only the condensed
matrices (ripser.py's core holds the GIL; giotto-ph's deadlocked once with two
threads). The products of small clouds use one BLAS thread each
(:func:`sktopo._parallel.one_blas_thread`).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ..._collections import require_finite
from ..._parallel import effective_jobs, lazy_parallel, one_blas_thread
from ..._progress import progress
from ._compute import canonical, check_metric_values, clean, dense_bytes_of
from ._registry import get_engine
from ._scale import bar_divisor, scale_of
from .mst import h0_bars_batch

__all__ = ["BATCH_MAX_POINTS", "batchable", "batched_bars"]

# Clouds of at most this many points go through the batched path.
BATCH_MAX_POINTS = 512
# Entries of the (b, n, max(n, d)) arrays one chunk of the batched path may hold.
_CHUNK_ENTRIES = 1 << 20  # 8 MiB of float64: freed and reused by malloc, no page faults per chunk
# H1+ clouds of at most this many points cost less in the engine than their trip to a
# worker process: they stay in this process
_SMALL_FOR_PROCESSES = 32


def batchable(data, settings, fits) -> bool:
    """Whether a cloud takes the batched path; ``fits`` caches the size checks by shape.

    The memory check is made once per shape with the engine's worst case (no
    estimate of the simplices: every clique of the cloud), so that no cloud of
    the shape can exceed ``memory_limit``; a shape that might goes cloud by cloud.
    """
    if hasattr(data, "tocsr"):
        return False  # scipy.sparse: the engines' edge-list path
    if data.shape not in fits:
        limit = settings.memory_limit
        fits[data.shape] = (
            data.shape[0] <= BATCH_MAX_POINTS
            and not settings.representatives  # per cloud
            and (settings.device is None or settings.engine == "mst")
            and (limit is None or dense_bytes_of(data, settings, counts=_all_cliques(
                data.shape[0], settings.maxdim)) <= limit))
    if settings.precomputed and fits[data.shape] and not np.isfinite(data).all():
        return False  # missing edges: the one-cloud path
    return fits[data.shape]


def _all_cliques(n, maxdim) -> dict:
    """Every clique of ``n`` points, by size: the worst case of the engines' memory models."""
    from math import comb

    return {k: comb(n, k) for k in range(2, maxdim + 3)}


def _chunks(data, indices, settings, workers=1):
    """Lists of cloud indices of the same shape, each small enough for one batched pass.

    Euclidean clouds are never stacked (one Gram product per cloud into the
    chunk's ``(b, n, n)`` matrices), so their chunks are sized by ``n^2``;
    other metrics stack the chunk's clouds, ``(b, n, d)``. A bucket is cut
    into at least ``workers`` chunks, so that every worker gets one.
    """
    buckets = {}
    for k in indices:
        buckets.setdefault(data[k].shape, []).append(k)
    stacked = settings.precomputed or not settings.plain_euclidean
    for shape, members in buckets.items():
        n = shape[0]
        width = max(n, shape[1]) if stacked else n
        size = max(1, min(_CHUNK_ENTRIES // (n * width), -(-len(members) // workers)))
        for start in range(0, len(members), size):
            yield members[start:start + size]


def batched_bars(data, labels, indices, bars, settings, *, n_jobs, verbose):
    """Fill ``bars[k]`` (dicts of bars) for the small clouds ``indices``."""
    workers = min(effective_jobs(n_jobs), len(indices))
    chunks = list(_chunks(data, indices, settings, workers))
    caps = get_engine(settings.engine).capabilities
    with one_blas_thread():
        if settings.device is not None or caps.max_dimension == 0:
            _in_threads(_chunk_h0, data, labels, chunks, bars, settings, workers=workers,
                        verbose=verbose, threads=settings.device is None)
        elif caps.releases_gil and caps.thread_safe:
            _in_threads(_chunk_engine, data, labels, chunks, bars, settings, workers=workers,
                        verbose=verbose, threads=True)
        else:
            _in_processes(data, labels, indices, chunks, bars, settings, workers=workers,
                          verbose=verbose)


def _in_threads(work, data, labels, chunks, bars, settings, *, workers, verbose, threads):
    """Each chunk whole (distances and engine) in a thread: the kernels release the GIL."""
    tasks = (([data[k] for k in chunk], [labels[k] for k in chunk]) for chunk in chunks)
    work = partial(work, settings=settings)
    if threads and workers > 1 and len(chunks) > 1:
        from joblib import delayed

        # nothing is copied to a worker; a backend the user configured still wins
        results = lazy_parallel(workers, "threads")(delayed(work)(*task) for task in tasks)
    else:
        results = (work(*task) for task in tasks)
    _collect(chunks, progress(results, verbose=verbose, total=len(chunks),
                              desc=settings.estimator or "persistence", unit="chunk"), bars)


def _in_processes(data, labels, indices, chunks, bars, settings, *, workers, verbose):
    """Distances here, chunk by chunk; the condensed matrices to worker processes."""
    # tasks of consecutive clouds, a few per worker so that unequal clouds balance
    # out; made lazily, so the distances of the next chunk are computed here while
    # the workers run the engine on the previous ones
    size = max(1, min(128, -(-len(indices) // (4 * workers))))
    order = [k for chunk in chunks for k in chunk]
    owners = [order[start:start + size] for start in range(0, len(order), size)]

    def tasks():
        pending = ([], [], [])
        for chunk in chunks:
            for store, values in zip(pending, _chunk_condensed(data, chunk, labels, settings)):
                store.extend(values)
            while len(pending[0]) >= size:
                yield tuple(store[:size] for store in pending)
                for store in pending:
                    del store[:size]
        if pending[0]:
            yield pending

    core = partial(_engine_task, settings=settings)
    big_enough = np.mean([data[k].shape[0] for k in indices]) > _SMALL_FOR_PROCESSES
    if workers > 1 and len(owners) > 1 and big_enough:
        from joblib import delayed

        results = lazy_parallel(workers, "processes")(delayed(core)(*task) for task in tasks())
    else:
        results = (core(*task) for task in tasks())
    _collect(owners, progress(results, verbose=verbose, total=len(owners),
                              desc=settings.estimator or "persistence", unit="task"), bars)


def _collect(owners, results, bars):
    # strict: ``results`` is asked once more after the last owner, so a progress bar
    # wrapping it counts its last item and closes (a plain zip stopped it at n-1 of n)
    for owner, result in zip(owners, results, strict=True):
        for k, b in zip(owner, result):
            bars[k] = b


# --------------------------------------------------------------- one chunk
def _chunk_h0(clouds, labels, *, settings):
    """H0 bars of one chunk of clouds: one batched MST pass (numpy, or torch on a device)."""
    chunk = range(len(clouds))
    if settings.device is not None:
        return _chunk_h0_torch(clouds, chunk, settings)
    from ..._mst import batched_mst_edge_lengths

    D, squared, scales = _chunk_distances(clouds, chunk, labels, settings)
    lengths = batched_mst_edge_lengths(D)
    if squared:
        np.sqrt(lengths, out=lengths)
    lengths /= scales[:, None]
    return [{0: pairs} for pairs in h0_bars_batch(lengths, settings.threshold)]


def _chunk_engine(clouds, labels, *, settings):
    """Bars of one chunk of clouds, distances and engine both here (a thread)."""
    return _engine_task(*_chunk_condensed(clouds, range(len(clouds)), labels, settings),
                        settings=settings)


def _chunk_distances(data, chunk, labels, settings):
    """``(D, squared, scales)``: the chunk's distance matrices ``(b, n, n)``.

    Each cloud is rescaled by its own power of two when its values are
    extreme (exact), so a cloud's bars do not depend on its chunk-mates;
    ``scales`` are the factors its bars must be divided by (1 for
    scale-invariant metrics). Euclidean chunks give squared distances
    (``squared=True``).
    """
    from ..._distance import batched_pairwise_distances

    if settings.plain_euclidean and not settings.precomputed:
        return _chunk_squared_euclidean([data[k] for k in chunk], [labels[k] for k in chunk],
                                        settings)
    stack = np.stack([data[k] for k in chunk])
    if settings.precomputed:
        peak = stack.max(axis=(1, 2))  # non-negative: the largest entry
    else:
        peak = np.maximum(stack.max(axis=(1, 2)), -stack.min(axis=(1, 2)))
    scales = np.ones(len(chunk))
    for b, value in enumerate(peak):
        if not 2.0**-60 <= value <= 2.0**60:
            scales[b] = scale_of(stack[b], settings)
    if (scales != 1.0).any():
        stack = stack * scales[:, None, None]
        scales = np.array([bar_divisor(s, settings) for s in scales])
    if settings.precomputed:
        return stack, False, scales
    D = batched_pairwise_distances(stack, settings.metric, **settings.params)
    for b, k in enumerate(chunk):  # overflow or underflow of the metric: a clear error
        check_metric_values(D[b], stack[b], settings, labels[k])
    return D, False, scales


def _chunk_squared_euclidean(clouds, labels, settings):
    """``(D2, True, scales)`` of equally shaped clouds: one Gram product each, no stacked copy.

    The clouds' finiteness is checked here: a NaN or infinite value makes its
    point's squared norm NaN or infinite. A cloud is rescaled when its largest
    absolute value is outside ``[2^-60, 2^60]``, as :func:`_chunk_distances`
    decides for other metrics. The squared norms bound that value
    (``max |x|^2 / d <= peak^2 <= max |x|^2``), so only clouds near those
    limits are read again to decide.
    """
    from ..._distance import batched_squared_euclidean_distances

    with np.errstate(over="ignore", invalid="ignore"):  # overflowing clouds are redone below
        D2, sq = batched_squared_euclidean_distances(clouds, return_norms=True)
    d = clouds[0].shape[1]
    top = sq.max(axis=1)
    scales = np.ones(len(clouds))
    for b in np.flatnonzero(~((top <= 2.0**120) & (top >= d * 2.0**-120))):
        if not np.isfinite(top[b]):  # NaN or inf in the cloud, or squares that overflow
            require_finite(clouds[b], labels[b], prefix=settings.lead())
        scales[b] = scale_of(clouds[b], settings)
        if scales[b] != 1.0:
            scaled = np.asarray(clouds[b], dtype=np.float64) * scales[b]
            D2[b] = batched_squared_euclidean_distances([scaled])[0]
    return D2, True, scales


def _chunk_condensed(data, chunk, labels, settings):
    """Float32 condensed matrices, filtration thresholds and scales of one chunk."""
    D, squared, scales = _chunk_distances(data, chunk, labels, settings)
    if squared:
        np.sqrt(D, out=D)
    n = D.shape[1]
    upper, lower = np.triu_indices(n, 1)
    # C order: advanced indexing after a slice may hand back a transposed layout
    condensed = np.ascontiguousarray(D[:, upper, lower], dtype=np.float32)
    thresholds = settings.threshold * scales
    if settings.maxdim > 0:
        # the enclosing radius: exact and much faster (see engines._base.enclosing_radius)
        thresholds = np.minimum(thresholds, D.max(axis=2).min(axis=1))
    return list(condensed), thresholds, scales


def _engine_task(condensed, thresholds, scales, *, settings):
    """Bars of a few clouds from their condensed matrices, through the engine's compiled core."""
    engine = get_engine(settings.engine)
    out = []
    for c, threshold, scale in zip(condensed, thresholds, scales):
        n = int(round((1 + np.sqrt(1 + 8 * len(c))) / 2))
        dgms = engine.condensed(c, n, settings.maxdim, float(threshold), settings.coeff)
        out.append({q: canonical(clean(dgms[q]) / scale) if q < len(dgms) else np.empty((0, 2))
                    for q in settings.homology_dimensions})
    return out


def _chunk_h0_torch(data, chunk, settings):
    """The batched H0 path on a torch device: distances and Prim as a few batched kernels."""
    import torch

    from ..._distance import torch_pairwise_distances
    from ..._mst import torch_batched_mst_edge_lengths

    stack = np.stack([data[k] for k in chunk])
    scales = np.array([scale_of(c, settings) for c in stack])
    if (scales != 1.0).any():
        stack = stack * scales[:, None, None]
    scales = np.array([bar_divisor(s, settings) for s in scales])
    X = torch.as_tensor(stack, dtype=torch.float32, device=settings.device)
    if settings.precomputed:
        D = X
    elif settings.plain_euclidean:
        D = torch_pairwise_distances(X)
    else:
        from ..._distance import batched_pairwise_distances

        D = torch.as_tensor(batched_pairwise_distances(stack, settings.metric, **settings.params),
                            dtype=torch.float32, device=settings.device)
    lengths = torch_batched_mst_edge_lengths(D).double().cpu().numpy()
    lengths.sort(axis=1)
    lengths /= scales[:, None]
    return [{0: pairs} for pairs in h0_bars_batch(lengths, settings.threshold)]
