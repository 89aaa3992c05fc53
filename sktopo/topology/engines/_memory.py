"""WIP: peak-memory model of the Vietoris-Rips engines."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["clique_counts"]

_EUCLIDEAN = {"euclidean", "l2"}


class _Rows:
    """Distances between rows of a cloud (or of a given matrix), computed on demand."""

    def __init__(self, points, distances, metric):
        if (points is None) == (distances is None):
            raise ValueError("give exactly one of points and distances")
        self.kind = None
        if distances is not None:
            D = np.asarray(distances)
            if D.ndim == 2:
                if D.shape[0] != D.shape[1]:
                    raise ValueError(f"distances must be square or condensed; got shape {D.shape}")
                self.kind, self.D, self.n = "square", D, D.shape[0]
            elif D.ndim == 1:
                n = int(round((1 + math.sqrt(1 + 8 * D.size)) / 2))
                if n * (n - 1) // 2 != D.size:
                    raise ValueError(f"a condensed matrix has n(n-1)/2 entries; got {D.size}")
                self.kind, self.D, self.n = "condensed", D, n
            else:
                raise ValueError("distances must be a square or a condensed matrix")
            return
        X = np.asarray(points)
        if X.ndim != 2:
            raise ValueError(f"points must be a 2-D array; got shape {X.shape}")
        self.n = X.shape[0]
        if metric in _EUCLIDEAN:
            # centred float32 copy: the Gram form |x|^2 + |y|^2 - 2 x.y in one BLAS call
            self.kind = "gram"
            Xc = np.empty(X.shape, dtype=np.float32)
            if self.n:
                np.subtract(X, X.mean(axis=0), out=Xc, casting="same_kind")
            self.X = Xc
            self.sq = np.einsum("ij,ij->i", Xc, Xc, dtype=np.float64)
        else:
            self.kind, self.X, self.metric = "metric", np.asarray(X, dtype=np.float64), metric

    def central(self, k):
        """Indices of ``k`` points nearest the centroid (``None`` where that means nothing)."""
        if self.kind != "gram":
            return None
        k = min(k, self.n)
        return np.argpartition(self.sq, k - 1)[:k] if k else np.zeros(0, np.intp)

    def rows(self, idx):
        """``(len(idx), n)`` float64 distances; ``slack`` of the same shape (rounding allowance)."""
        idx = np.asarray(idx, dtype=np.intp)
        if self.kind == "gram":
            G = self.X[idx] @ self.X.T
            d2 = self.sq[idx, None] + self.sq[None, :] - 2.0 * G
            np.maximum(d2, 0.0, out=d2)
            slack = 1e-5 * (self.sq[idx, None] + self.sq[None, :])
            d2[np.arange(len(idx)), idx] = 0.0
            return d2, slack, True
        if self.kind == "metric":
            from scipy.spatial.distance import cdist

            return cdist(self.X[idx], self.X, metric=self.metric), 0.0, False
        if self.kind == "square":
            return np.asarray(self.D[idx], dtype=np.float64), 0.0, False
        j = np.arange(self.n)
        a = np.minimum(idx[:, None], j[None, :])
        b = np.maximum(idx[:, None], j[None, :])
        k = self.n * a - a * (a + 1) // 2 + (b - a - 1)
        out = np.asarray(self.D[np.clip(k, 0, max(self.D.size - 1, 0))], dtype=np.float64)
        out[a == b] = 0.0
        return out, 0.0, False

    def blocks(self, S):
        """``(r, L, L)`` distances among the points ``S`` (``(r, L)`` indices), like :meth:`rows`."""
        if self.kind == "gram":
            P = self.X[S]
            G = np.matmul(P, P.transpose(0, 2, 1))
            sq = self.sq[S]
            d2 = sq[:, :, None] + sq[:, None, :] - 2.0 * G
            np.maximum(d2, 0.0, out=d2)
            return d2, 1e-5 * (sq[:, :, None] + sq[:, None, :]), True
        if self.kind == "metric":
            from scipy.spatial.distance import cdist

            return np.stack([cdist(self.X[s], self.X[s], metric=self.metric) for s in S]), 0.0, False
        if self.kind == "square":
            return np.asarray(self.D[S[:, :, None], S[:, None, :]], dtype=np.float64), 0.0, False
        a = np.minimum(S[:, :, None], S[:, None, :])
        b = np.maximum(S[:, :, None], S[:, None, :])
        k = self.n * a - a * (a + 1) // 2 + (b - a - 1)
        out = np.asarray(self.D[np.clip(k, 0, max(self.D.size - 1, 0))], dtype=np.float64)
        out[a == b] = 0.0
        return out, 0.0, False


def _within(d, slack, squared, t):
    """``d <= t`` (with the rounding allowance ``slack`` on squared distances)."""
    if squared:
        return d <= t * t + slack if math.isfinite(t) else np.ones(d.shape, bool)
    return d <= t


def _clique_numbers(A, max_size):
    """Cliques of 1..max_size vertices in each ``(L, L)`` 0/1 block of ``A`` (float32)."""
    r, L, _ = A.shape
    out = {}
    if max_size >= 2:
        out[2] = A.sum(axis=(1, 2), dtype=np.float64) / 2
    if max_size >= 3:
        A2 = np.matmul(A, A)
        out[3] = (A2 * A).sum(axis=(1, 2), dtype=np.float64) / 6
    if max_size >= 4:
        # 4-cliques: over ordered adjacent (u, v), the edges among their common neighbours
        total = np.zeros(r)
        for u in range(L):
            C = A[:, u, None, :] * A  # (r, v, w): common neighbours of u and v
            C *= A[:, u, :, None]
            q = np.einsum("rvw,rwx,rvx->rv", C, A, C, optimize=True)
            total += (q * A[:, u, :]).sum(axis=1)
        out[4] = total / 24
    return out


def clique_counts(points=None, distances=None, *, threshold=math.inf, max_size=3, metric="euclidean",
                  enclosing=True, random_state=0, n_rows=96, n_neighbors=40, n_central=32):
    """WIP."""
    if max_size > 5:
        raise ValueError("max_size is at most 5")
    rows = _Rows(points, distances, metric)
    n = rows.n
    rng = np.random.default_rng(random_state)
    result = {"n_points": n, "threshold": float(threshold), "enclosing_radius": None,
              "enclosing_radius_lower": None, "counts": {1: float(n)}}
    for k in range(2, max_size + 1):
        result["counts"][k] = 0.0
    if n < 2:
        return result
    r = min(n, n_rows)
    sample = np.sort(rng.choice(n, r, replace=False)) if r < n else np.arange(n)
    central = rows.central(n_central)
    evaluated = sample if central is None else np.union1d(sample, central)
    d, slack, squared = rows.rows(evaluated)
    t = float(threshold)
    if enclosing:
        ecc = d.max(axis=1)
        lower = d.max(axis=0)
        if central is None and r < n:
            # a second pass on the points the first one found most central
            extra = np.setdiff1d(np.argpartition(lower, min(n_central, n) - 1)[:n_central], evaluated)
            if len(extra):
                d2, _, _ = rows.rows(extra)
                ecc = np.concatenate([ecc, d2.max(axis=1)])
                lower = np.maximum(lower, d2.max(axis=0))
        up, low = float(ecc.min()), float(lower.min())
        if squared:
            up, low = math.sqrt(up), math.sqrt(low)
        result["enclosing_radius"], result["enclosing_radius_lower"] = up, low
        t = min(t, up)
    result["threshold"] = t
    pos = np.searchsorted(evaluated, sample)
    d = d[pos]
    slack = slack[pos] if np.ndim(slack) else slack
    adj = _within(d, slack, squared, t)
    adj[np.arange(r), sample] = False
    deg = adj.sum(axis=1)
    result["counts"][2] = n / 2 * deg.mean()
    if max_size < 3:
        return result
    L = int(min(n_neighbors, deg.max()))
    if L < 2:
        return result
    S = np.zeros((r, L), dtype=np.intp)
    size = np.minimum(deg, L)
    for a in range(r):
        nbrs = np.flatnonzero(adj[a])
        if len(nbrs) > L:
            nbrs = nbrs[rng.permutation(len(nbrs))[:L]]
        S[a, :len(nbrs)] = nbrs
    valid = np.arange(L)[None, :] < size[:, None]
    bd, bslack, _ = rows.blocks(S)
    A = _within(bd, bslack, squared, t)
    A &= valid[:, :, None] & valid[:, None, :]
    A[:, np.arange(L), np.arange(L)] = False
    numbers = _clique_numbers(A.astype(np.float32), max_size - 1)
    for k in range(3, max_size + 1):
        m = k - 1  # cliques of m vertices among the neighbours of a vertex
        scale = np.array([math.comb(int(g), m) / math.comb(int(s), m) if s >= m else 0.0
                          for g, s in zip(deg, size)])
        result["counts"][k] = n / k * float((numbers[m] * scale).mean())
    return result
