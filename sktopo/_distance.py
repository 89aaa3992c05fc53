"""Pairwise distances on the CPU (numpy) and on torch devices, with memory estimates."""

from __future__ import annotations

import numpy as np

__all__ = [
    "pairwise_distances",
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


def _refine_small(D2, X, sq):
    """Recompute, in place, the squared distances the product formula cannot resolve.

    ``|x|^2 + |y|^2 - 2 x.y`` has an absolute error of about ``eps * (|x|^2 +
    |y|^2)``, so identical points (common in ReLU activations) come out at
    ``~1e-8`` instead of 0 and near-duplicates get mostly noise. Those few
    pairs are recomputed as ``|x - y|^2``, which is exact for duplicates.
    Works row block by row block to keep the mask small. Sets the diagonal
    to ``inf``: the caller zeroes it.
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
        bound = _REFINE_RELATIVE * (sq[start:stop].max() + sq_max)
        mask = D2[start:stop] < bound
        if not mask.any():
            continue
        i, j = np.nonzero(mask)
        i += start
        keep = D2[i, j] < _REFINE_RELATIVE * (sq[i] + sq[j])
        i, j = i[keep], j[keep]
        diff = X[i] - X[j]
        D2[i, j] = np.einsum("ij,ij->i", diff, diff)


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
    mask = D < tol * (sq.unsqueeze(-1) + sq.unsqueeze(-2))
    mask.diagonal(dim1=-2, dim2=-1).fill_(False)
    idx = mask.nonzero(as_tuple=True)
    del mask
    if idx[0].numel():
        *batch, i, j = idx
        diff = X[(*batch, i)] - X[(*batch, j)]
        D[idx] = (diff * diff).sum(-1)
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
