"""The one rule for extreme scales: multiply by a power of two, divide the bars by it.

Squared distances overflow float64 above about 1e154 and underflow below about
1e-154; the float32 engines store 1e38 to 1e-38. A cloud (or a distance
matrix) far outside ``[2**-60, 2**60]`` is multiplied by a power of two
before the computation, which is exact in floating point, and its bars are
divided by the same power after. For scale-invariant metrics the distances do
not change at all: only their computation is safer, and the bars are kept.
"""

from __future__ import annotations

import numpy as np

from ..._distance import power_of_two_scale

__all__ = ["HOMOGENEOUS", "SCALE_INVARIANT", "bar_divisor", "finite_range", "rescale",
           "scale_of"]

# d(s x, s y) = s d(x, y): a cloud scaled by a power of two gives exactly scaled bars
HOMOGENEOUS = frozenset({"euclidean", "l2", "manhattan", "cityblock", "l1", "chebyshev",
                         "minkowski", "infinity", "p"})
# d(s x, s y) = d(x, y): the same bars
SCALE_INVARIANT = frozenset({"cosine", "correlation", "braycurtis", "canberra"})


def scale_of(data, settings) -> float:
    """Power of two that brings a cloud's values (or a matrix's distances) near 1; 1 if fine."""
    if settings.precomputed:
        if hasattr(data, "tocsr"):  # scipy.sparse: the stored entries are the distances
            return power_of_two_scale(float(data.data.max())) if data.nnz else 1.0
        _, low, high = finite_range(data)
        if not np.isfinite(high) or high <= 0:
            return 1.0
        s = power_of_two_scale(high)
        if s == 1.0 and low < 2.0**-60:
            s = power_of_two_scale(high, low=2.0**60)  # bring the largest near 1 anyway
            if high * s > 2.0**60:  # pragma: no cover - both ends far apart: leave it
                return 1.0
        return s
    if not isinstance(settings.metric, str) or settings.metric not in (HOMOGENEOUS | SCALE_INVARIANT):
        return 1.0
    # no |data| temporary: a wide cloud's copy would dodge memory_limit
    max_abs = max(float(data.max()), -float(data.min())) if data.size else 0.0
    return power_of_two_scale(max_abs)


def bar_divisor(scale: float, settings) -> float:
    """What the bars of a cloud multiplied by ``scale`` must be divided by (1: scale-invariant)."""
    if isinstance(settings.metric, str) and settings.metric in SCALE_INVARIANT:
        return 1.0
    return scale


def rescale(data, settings):
    """``(data * s, divisor)``: the cloud to compute with, and what its bars are divided by."""
    s = scale_of(data, settings)
    if s == 1.0:
        return data, 1.0
    if hasattr(data, "tocsr"):
        import scipy.sparse as sp

        return sp.csr_matrix(data * s), s
    return data * s, bar_divisor(s, settings)


def finite_range(D, block_entries=1 << 20):
    """``(has_inf, smallest positive finite entry, largest finite entry)`` of a matrix.

    Row block by row block: no ``n x n`` mask or copy (memory_limit counts the
    computation, and this runs before it).
    """
    n = D.shape[0]
    block = max(1, block_entries // max(D.shape[1] if D.ndim == 2 else 1, 1))
    has_inf, low, high = False, np.inf, 0.0
    for start in range(0, n, block):
        rows = D[start:start + block]
        finite = np.isfinite(rows)
        if not finite.all():
            has_inf = True
        high = max(high, float(np.max(rows, where=finite, initial=0.0)))
        low = min(low, float(np.min(rows, where=finite & (rows > 0), initial=np.inf)))
    return has_inf, low, high
