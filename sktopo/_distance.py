"""Pairwise distances on the CPU (numpy) and on torch devices, with memory estimates.

Euclidean distances come from one matrix product, ``|x|^2 + |y|^2 - 2 x.y``.
That formula loses the digits of distances far below the points' norms
(duplicate points come out at ~1e-8 instead of 0), so every Euclidean path of
the package (dense, batched, sparse edge lists, landmarks, torch) applies the
one refinement rule here: a squared distance below ``_REFINE_RELATIVE * (|x|^2 +
|y|^2)`` is recomputed from the difference ``|x - y|^2`` (:func:`unresolved`
finds them, :func:`exact_squared` recomputes them).

Many small clouds of the same size are handled as a batch ``(b, n, d)``: one
batched matrix product (:func:`batched_squared_euclidean_distances`) instead of
``b`` Python-level calls.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "pairwise_distances",
    "squared_euclidean_distances",
    "batched_squared_euclidean_distances",
    "batched_pairwise_distances",
    "unresolved",
    "exact_squared",
    "power_of_two_scale",
    "torch_pairwise_distances",
    "distance_matrix_bytes",
    "check_memory",
    "format_bytes",
]


def pairwise_distances(X: np.ndarray, metric="euclidean", *, n_jobs=None, **kwds) -> np.ndarray:
    """Dense float64 distance matrix of the rows of ``X``.

    Euclidean distances use one matrix product (``|x|^2 + |y|^2 - 2 x.y``) in
    float64, which keeps absolute errors near 1e-8 for unit-scale data; other
    metrics go through :func:`sklearn.metrics.pairwise_distances`.
    """
    X = np.asarray(X, dtype=np.float64)
    if metric == "euclidean" and not kwds:
        D = squared_euclidean_distances(X)
        np.maximum(D, 0.0, out=D)
        np.sqrt(D, out=D)
        np.fill_diagonal(D, 0.0)
        # Symmetric up to rounding (~1e-15); enforcing it exactly would cost a
        # transposed pass over n^2 entries, more than the product itself.
        return D
    from sklearn.metrics import pairwise_distances as sk_pairwise_distances

    D = sk_pairwise_distances(X, metric=metric, n_jobs=n_jobs, **kwds)
    return np.asarray(D, dtype=np.float64)


def squared_euclidean_distances(X: np.ndarray) -> np.ndarray:
    """Dense float64 matrix of squared Euclidean distances; the diagonal is left ``inf``.

    What :func:`pairwise_distances` takes the square root of. Minimum
    spanning trees only compare distances, so they can run on this matrix and
    take the root of the ``n - 1`` tree edges alone. Entries may be slightly
    negative (rounding) where not refined: clip before taking roots.
    """
    X = np.asarray(X, dtype=np.float64)
    sq = np.einsum("ij,ij->i", X, X)
    # [x, |x|^2, 1] . [-2y, 1, |y|^2] = |x|^2 + |y|^2 - 2 x.y: the norms ride
    # along in the product, saving two passes over the n^2 result
    n, d = X.shape
    A = np.empty((n, d + 2))
    A[:, :d] = X
    A[:, d] = sq
    A[:, d + 1] = 1.0
    B = np.empty((n, d + 2))
    np.multiply(X, -2.0, out=B[:, :d])
    B[:, d] = 1.0
    B[:, d + 1] = sq
    D = A @ B.T
    del A, B
    _refine_small(D, X, sq)
    return D


# Squared distances below this fraction of |x|^2 + |y|^2 are recomputed from
# the differences: there the matrix-product formula has lost most digits.
_REFINE_RELATIVE = 1e-4


def unresolved(d2, norm_sums, relative=_REFINE_RELATIVE):
    """Mask of squared distances the product formula cannot resolve.

    ``|x|^2 + |y|^2 - 2 x.y`` has an absolute error of about ``eps * (|x|^2 +
    |y|^2)``: below ``relative`` times that sum most digits are noise. Works on
    numpy arrays and torch tensors alike (the one rule of the package).
    """
    return d2 < relative * norm_sums


def exact_squared(X, i, j):
    """``|X[i] - X[j]|^2`` for index arrays ``i``, ``j`` (exact 0 for duplicates).

    ``X`` is ``(n, d)`` with integer arrays ``i``, ``j``, or ``(b, n, d)`` with
    ``i = (batch, row)`` and ``j = (batch, col)`` tuples; numpy or torch.
    """
    diff = X[i] - X[j]
    return (diff * diff).sum(-1)


def _refine_small(D2, X, sq):
    """Recompute, in place, the squared distances the product formula cannot resolve.

    Identical points (common in ReLU activations) come out at ``~1e-8``
    instead of 0 and near-duplicates get mostly noise; those few pairs are
    recomputed as ``|x - y|^2``. Works row block by row block to keep the mask
    small. Sets the diagonal to ``inf``: the caller zeroes it.
    """
    n = D2.shape[0]
    if n == 0:
        return
    sq_max = sq.max()
    np.fill_diagonal(D2, np.inf)  # not a candidate; the caller zeroes the diagonal
    block = max(1, min(n, (1 << 22) // n))
    for start in range(0, n, block):
        stop = min(start + block, n)
        # one cheap pass with a scalar bound finds candidates; the exact
        # per-pair bound is then checked on those only
        mask = unresolved(D2[start:stop], sq[start:stop].max() + sq_max)
        if not mask.any():
            continue
        i, j = np.nonzero(mask)
        i += start
        keep = unresolved(D2[i, j], sq[i] + sq[j])
        i, j = i[keep], j[keep]
        D2[i, j] = exact_squared(X, i, j)


def batched_squared_euclidean_distances(X, *, dtype=np.float64, return_norms=False):
    """Squared Euclidean distance matrices of a batch of equally sized clouds.

    One Gram product per cloud (BLAS, which releases the GIL, so callers can
    run chunks in threads), written straight into the output: the clouds are
    never stacked into a ``(b, n, d)`` copy. The squared norms are the Gram
    diagonal, so the clouds are read once. Then the refinement rule of
    :func:`unresolved` on the few pairs that need it (every entry that rounding
    made negative is among them, so all entries are non-negative), and the
    diagonal is exactly 0.

    Parameters
    ----------
    X : ndarray of shape (b, n, d), or a sequence of b arrays of shape (n, d)
        The clouds.
    dtype : numpy dtype, default=float64
        Precision of the computation.
    return_norms : bool, default=False
        Also return the squared norms of the points.

    Returns
    -------
    D2 : ndarray of shape (b, n, n)
    sq : ndarray of shape (b, n)
        ``|x|^2`` of every point; only with ``return_norms=True``.
    """
    if isinstance(X, np.ndarray) and X.ndim != 3:
        raise ValueError(f"expected a batch of clouds (b, n, d), got shape {X.shape}")
    b = len(X)
    shape = np.shape(X[0]) if b else (0, 0)
    n = shape[0]
    out = np.empty((b, n, n), dtype=dtype)
    sq = np.empty((b, n), dtype=dtype)
    # a few hundred kB at a time: the passes after the products stay in cache
    chunk = max(1, (1 << 16) // max(n * n, 1))
    for start in range(0, b, chunk):
        stop = start + chunk
        _squared_block(X[start:stop], out[start:stop], sq[start:stop], shape)
    return (out, sq) if return_norms else out


def _squared_block(X, D2, sq, shape):
    b, n, _ = D2.shape
    clouds = [np.ascontiguousarray(x, dtype=D2.dtype) for x in X]
    for k, x in enumerate(clouds):
        if x.shape != shape:
            raise ValueError(f"the clouds of a batch must have one shape {shape}; got {x.shape}")
        # numpy calls BLAS syrk for a contiguous x @ x.T: half the flops of a general
        # product, and an exactly symmetric result (it mirrors one triangle)
        np.matmul(x, x.T, out=D2[k])
    idx = np.arange(n)
    sq[...] = D2[:, idx, idx]  # |x|^2: the Gram diagonal
    norm_sums = sq[:, :, None] + sq[:, None, :]  # exactly symmetric (a + b == b + a)
    D2 *= -2.0
    D2 += norm_sums  # so D2 is exactly symmetric too
    D2[:, idx, idx] = np.inf  # never a candidate for refinement
    # a scalar bound per cloud finds candidates; the per-pair rule decides. Every
    # negative entry (rounding) is a candidate, so none is left after refinement
    candidates = unresolved(D2, 2.0 * sq.max(axis=1)[:, None, None])
    if candidates.any():
        c, i, j = np.nonzero(candidates)
        keep = unresolved(D2[c, i, j], norm_sums[c, i, j])
        c, i, j = c[keep], i[keep], j[keep]
        for k in np.unique(c):  # few clouds have such pairs (duplicates)
            at = c == k
            D2[k, i[at], j[at]] = exact_squared(clouds[k], i[at], j[at])
    D2[:, idx, idx] = 0.0


def batched_pairwise_distances(X: np.ndarray, metric="euclidean", *, dtype=np.float64,
                               **kwds) -> np.ndarray:
    """Distance matrices ``(b, n, n)`` of a batch of equally sized clouds ``(b, n, d)``.

    Euclidean distances are one batched product
    (:func:`batched_squared_euclidean_distances`); other metrics go cloud by
    cloud through :func:`pairwise_distances`.
    """
    X = np.asarray(X)
    if metric == "euclidean" and not kwds:
        D = batched_squared_euclidean_distances(X, dtype=dtype)
        return np.sqrt(D, out=D)
    return np.stack([pairwise_distances(x, metric, **kwds) for x in X]).astype(dtype, copy=False)


def power_of_two_scale(max_abs: float, *, low: float = 2.0**-60, high: float = 2.0**60) -> float:
    """A power of two ``s`` that brings ``max_abs * s`` near 1, or 1 when already in range.

    Distances are scale-equivariant; multiplying by a power of two is exact in
    floating point, so a cloud scaled by ``s`` gives bit-identical bars divided
    by ``s`` while its squared distances (and float32 copies) neither overflow
    nor underflow. Clouds whose largest absolute value is in ``[low, high]``
    are left as they are.
    """
    max_abs = float(max_abs)
    if not np.isfinite(max_abs) or max_abs == 0.0 or low <= max_abs <= high:
        return 1.0
    # capped at 2**1023: a subnormal maximum (1e-320) would ask for 2**1063, i.e. inf
    return float(np.ldexp(1.0, min(-int(np.frexp(max_abs)[1]), 1023)))


def torch_pairwise_distances(X, *, dtype=None):
    """Euclidean distance matrix of the rows of a torch tensor, on its device.

    Computed as a matrix product in float32 (TF32 where the backend allows it),
    never in half precision: ``|x|^2 + |y|^2 - 2 x.y`` cancels badly in bf16.
    Works on batches ``(B, n, d) -> (B, n, n)`` too.
    """
    import torch

    if dtype is None:
        dtype = torch.float64 if X.dtype == torch.float64 else torch.float32
    X = X.to(dtype)
    sq = (X * X).sum(-1)
    D = sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * (X @ X.transpose(-1, -2))
    # as in the numpy path: recompute pairs the product formula cannot resolve
    # (duplicate points must come out at exactly 0)
    tol = _REFINE_RELATIVE if dtype == torch.float64 else 10 * _REFINE_RELATIVE
    mask = unresolved(D, sq.unsqueeze(-1) + sq.unsqueeze(-2), tol)
    mask.diagonal(dim1=-2, dim2=-1).fill_(False)
    idx = mask.nonzero(as_tuple=True)
    del mask
    if idx[0].numel():
        *batch, i, j = idx
        D[idx] = exact_squared(X, (*batch, i), (*batch, j))
    D = D.clamp_min_(0.0).sqrt_()
    D.diagonal(dim1=-2, dim2=-1).zero_()
    return torch.minimum(D, D.transpose(-1, -2))


def distance_matrix_bytes(n_points: int, itemsize: int = 8, copies: int = 1) -> int:
    """Memory taken by ``copies`` dense ``n_points x n_points`` matrices."""
    return int(n_points) * int(n_points) * int(itemsize) * int(copies)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_memory(estimated_bytes: int, limit_bytes, where: str, advice: str) -> None:
    """Raise a MemoryError before allocating more than ``limit_bytes``.

    ``limit_bytes=None`` switches the check off.
    """
    if limit_bytes is None or estimated_bytes <= limit_bytes:
        return
    raise MemoryError(
        f"{where} would need about {format_bytes(estimated_bytes)}, above the memory limit of "
        f"{format_bytes(limit_bytes)}. {advice}"
    )
