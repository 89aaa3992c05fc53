"""Peak memory of the Vietoris-Rips engines, per homology dimension, before the matrix exists.

:func:`engine_peak_bytes` gives the bytes ripser.py, redzed-tda or giotto-ph
allocate for ``maxdim = 0..3``; :func:`clique_counts` estimates, from the points
and before any ``n x n`` matrix exists, the numbers it reads; and
:func:`estimate_peak_bytes` chains the two.

Why counts, not ``n``
---------------------
For ``maxdim = q >= 1`` the engines cut the filtration at
``t = min(threshold, enclosing radius)`` and store, at their peak, some of the
simplices of diameter ``<= t``: ripser.py keeps every q-simplex twice (the
simplices it enumerates cofacets from, and the columns to reduce, 16 bytes each
with ``std::vector`` growth) plus a pivot hash map, about 75 bytes per
q-simplex; redzed-tda keeps the live classes of the dimension below; giotto-ph
skips apparent pairs and keeps the (q-1)-simplices. Those are the cliques of
``q + 1`` vertices of a geometric graph, whose number depends on the intrinsic
dimension of the data, not on ``n`` alone: 500 points give 1.3e7 triangles in
R^3 and 9.9e6 in R^64, and H2 of 700 points in R^3 takes 3 GB in ripser.py,
where ``n^2 x 20`` bytes said 9 MiB.

A second, topological term: on a cloud with a real hole (a circle, a torus, a
sphere) the reduction of the column that kills the hole adds the coboundaries
of a whole cocycle (a band of simplices across the hole, a fixed share of all
of them) into one heap of 16-byte entries: ripser.py on a noisy circle of 1,000
points peaks at 317 MiB for H1 where the storage terms give 60 MiB, and it grows
like ``n^3``. :func:`clique_counts` estimates that cocycle by running ripser.py
with cocycles on two subsamples of 128 points (H1) and two of 44 (H2), keeping
only classes whose ``death / birth`` marks a real hole.

The estimate
------------
``clique_counts`` draws ``n_rows`` random rows of distances (one float32 matrix
product on the centred points, ``O(n_rows n d)``), takes the enclosing radius
from the exact eccentricities of those rows and of the points nearest the
centroid (an upper bound, so counts err high), counts edges from the rows'
degrees, and cliques through each sampled vertex exactly among ``n_neighbors``
random neighbours (``A @ A`` for triangles), scaled by ``C(deg, m) / C(L, m)``:
``count_k = n / k * mean_i (m-cliques among the neighbours of i)``, an
unbiased estimator. Measured against exact counts: within 10% on every family
below (5 seeds). Where a row has fewer neighbours than ``n_neighbors`` its
cliques are exact. A sparse threshold where few rows have neighbours is the weak
spot: the variance grows, the bias does not.

What the bytes include
----------------------
What the engine allocates on top of the input the caller holds: the float32
condensed matrix for ripser.py and giotto-ph, the float64 condensed (or square)
matrix for redzed-tda (``redzed_tda.rips`` on either measured the same). Not
included: the caller's own float64 ``n x n`` matrix, the condensed copy it makes
for the engine, the Python objects of the returned diagrams (small). giotto-ph is
modelled for ``gph.python.ripser_interface._compute_ph_vr_dense`` with one
thread; its public ``ripser_parallel`` makes further copies.

Model and coefficients
----------------------
``peak(q) = max over 1 <= p <= q of [const + a n^2 + sum_k b_k count_k
+ ties-weighted terms + hole terms]`` with the per-engine, per-dimension
coefficients ``RIPSER_COEFFICIENTS``, ``REDZED_COEFFICIENTS`` and
``GIOTTO_COEFFICIENTS`` (the engines pass through every lower dimension on the
way). They were fitted (minimising the largest ``|log(estimate / measured)|``)
on 394 runs: ``benchmarks/engine_memory.py``'s families (Gaussian in R^3, R^5,
R^64, R^384, noisy circle and torus in R^3, sphere S^2, integer grid) for
n = 60 to 5,000, each run in a fresh process (VmHWM after the call minus the
RSS before it, the input built first), at the enclosing radius and at finite
thresholds; ripser.py 0.6.x (pip wheel), redzed-tda 0.1.1, giotto-ph 0.2.4.
Other versions may allocate differently: rerun the benchmark.

Estimate / measured, ``benchmarks/engine_memory.py`` on a 2-core machine (runs of
2 MiB and more; every family above; sizes grown while a run took under a minute):

========  ===  ==============  ===========  ===============
engine    q    points          runs         estimate / peak
========  ===  ==============  ===========  ===============
ripser    0    1,000-2,500     16           0.85-1.03
ripser    1    300-4,000       22           0.59-1.75
ripser    2    100-500         30           0.85-1.18
ripser    3    60-150          21           0.82-1.07
redzed    0    1,000-2,500     16           0.88-1.09
redzed    1    1,000-5,000     28           0.88-1.15
redzed    2    200-700         27           0.52-1.28
redzed    3    60-200          27           0.86-1.65
========  ===  ==============  ===========  ===============

The extremes are the holes: ripser.py on a noisy circle of 1,000 points (1.75)
and a torus of 300 (0.59), redzed-tda in H2 on a sphere of 350 (0.52; 0.73 at
500). giotto-ph (``--engines giotto``, 2 threads free): H1 0.50-1.58 over 16
runs, H3 0.65-1.55 over 18; H2 does not follow the counts (0.30-3.2 over 18 runs
for the fit), so its coefficients are scaled to bound every measured peak
(1.0-11x): an upper bound, not an estimate.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ENGINES",
    "GIOTTO_COEFFICIENTS",
    "REDZED_COEFFICIENTS",
    "RIPSER_COEFFICIENTS",
    "clique_counts",
    "engine_peak_bytes",
    "estimate_peak_bytes",
]

ENGINES = ("ripser", "redzed", "giotto")

_EUCLIDEAN = ("euclidean", "l2")

# ---------------------------------------------------------------- coefficients
# Bytes per unit of each term, per maxdim. Terms: "const" (bytes), "n2" (per n^2),
# an int k (per clique of k vertices of diameter <= t: 2 edges, 3 triangles, 4
# tetrahedra), "ties*k" (per clique, times the share of tied edge lengths),
# "reduce<d>" (times 16 bytes x the simplices of the largest dimension-d hole
# cocycle x their mean number of cofacets: the reduction heap of ripser.py and
# giotto-ph) and "live<d>" (per simplex of that cocycle: redzed-tda's live sets).
# Fitted by benchmarks/engine_memory.py's measurements (see the module docstring).
RIPSER_COEFFICIENTS = {
    # t = inf: the dense path; 16-byte (diameter, index) per edge in `edges` and in
    # the columns, the float32 triangle copied twice on entry
    0: {"n2": 5.8, 2: 64.0},
    # the lower triangle (2 n^2), neighbour lists (2 x 16 bytes per edge with vector
    # growth), edges and columns (16 + 16), the pivot hash map (~56 per column)
    1: {"n2": 3.5, 2: 139.0, "reduce1": 1.2},
    # triangles twice (simplices and columns, 16 bytes each, growth) + hash map
    2: {"n2": 3.4, 3: 76.0, "reduce2": 1.4},
    # the same per tetrahedron
    3: {"n2": 4.6, 4: 70.5},
}
REDZED_COEFFICIENTS = {
    # its neighbour-order cache and edge list (the wheel's internals are not the
    # published reference source: these are measured, not derived)
    0: {"n2": 2.9, 2: 9.7},
    1: {"const": 2.4e5, "n2": 1.9, 2: 11.2, "live1": 262.0},
    # live edges in hash sets; tied lengths (grids) keep more of them alive at once
    2: {"n2": 11.2, 2: 238.0, "ties*2": 161.0, "live2": 264.0},
    3: {"const": 9.3e4, "n2": 4.2, 3: 396.0},
}
GIOTTO_COEFFICIENTS = {
    # dense matrix (no neighbour lists), edges and columns; apparent pairs are skipped
    0: {"n2": 2.8, 2: 36.8},
    1: {"const": 8.0e5, "n2": 4.4, 2: 60.0, "reduce1": 1.0},
    # the top dimension's simplices are not stored; what is left is erratic (its
    # lock-free hash maps take 2 x next_pow2(columns) cells): the fit is 0.30-3.2x of
    # the peak (gauss384 and gauss3 of 350 points have the same counts and peaks 10x
    # apart), so it is scaled to bound every measured peak (1.0-11x): too much is
    # refused rather than an abort
    2: {term: 3.4 * c for term, c in
        {"n2": 9.2, 2: 149.0, "reduce1": 1.0, "reduce2": 1.6}.items()},
    3: {"const": 3.3e5, "n2": 84.0, 3: 47.0, "ties*3": 58.0, "reduce1": 1.0, "reduce2": 0.72},
}
_COEFFICIENTS = {"ripser": RIPSER_COEFFICIENTS, "redzed": REDZED_COEFFICIENTS,
                 "giotto": GIOTTO_COEFFICIENTS}

# the hole probe (see _largest_cocycles)
_WEIGHT_RAMP = {1: (2.4, 2.9), 2: (1.15, 1.3)}
_PROBE_POINTS = {1: 128, 2: 44}
_PROBE = {1: 2, 2: 2}
_PROBE_AGG = {1: min, 2: max}


# ------------------------------------------------------------------- distances
class _Rows:
    """Distances from a few rows of a cloud (or of a given matrix) to all points."""

    def __init__(self, points, distances, metric, params=None):
        if (points is None) == (distances is None):
            raise ValueError("give exactly one of points and distances")
        self.squared = False
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
        self.params = dict(params or {})
        if isinstance(metric, str) and metric in _EUCLIDEAN and not self.params:
            # centred float32 copy, squared distances from one product |x|^2 + |y|^2 - 2 x.y
            self.kind, self.squared = "gram", True
            Xc = np.empty(X.shape, dtype=np.float32)
            if self.n:
                np.subtract(X, X.mean(axis=0), out=Xc, casting="same_kind")
            self.X, self.points = Xc, X
            self.sq = np.einsum("ij,ij->i", Xc, Xc, dtype=np.float64)
        else:
            self.kind, self.X, self.metric = "metric", np.asarray(X, dtype=np.float64), metric

    def central(self, k):
        """``k`` points nearest the centroid (candidates for the enclosing radius), or None."""
        if self.kind != "gram" or self.n == 0:
            return None
        k = min(k, self.n)
        return np.argpartition(self.sq, k - 1)[:k]

    def slack(self, sq_sum):
        # float32 products: allow 1e-5 of |x|^2 + |y|^2 on squared distances (errs high)
        return 1e-5 * sq_sum

    def rows(self, idx):
        """``(len(idx), n)`` distances (squared for the Euclidean product) and their slack."""
        idx = np.asarray(idx, dtype=np.intp)
        if self.kind == "gram":
            d2 = self.sq[idx, None] + self.sq[None, :] - 2.0 * (self.X[idx] @ self.X.T)
            np.maximum(d2, 0.0, out=d2)
            d2[np.arange(len(idx)), idx] = 0.0
            return d2, self.slack(self.sq[idx, None] + self.sq[None, :])
        if self.kind == "metric":
            return self._metric(self.X[idx], self.X), 0.0
        if self.kind == "square":
            return np.asarray(self.D[idx], dtype=np.float64), 0.0
        return self._condensed(idx[:, None], np.arange(self.n)[None, :]), 0.0

    def blocks(self, S):
        """``(r, L, L)`` distances among the points ``S[a]`` of each row ``a``, like :meth:`rows`."""
        if self.kind == "gram":
            P = self.X[S]
            sq = self.sq[S]
            total = sq[:, :, None] + sq[:, None, :]
            d2 = total - 2.0 * np.matmul(P, np.ascontiguousarray(P.transpose(0, 2, 1)))
            np.maximum(d2, 0.0, out=d2)
            return d2, self.slack(total)
        if self.kind == "metric":
            return np.stack([self._metric(self.X[s], self.X[s]) for s in S]), 0.0
        if self.kind == "square":
            return np.asarray(self.D[S[:, :, None], S[:, None, :]], dtype=np.float64), 0.0
        return self._condensed(S[:, :, None], S[:, None, :]), 0.0

    def _metric(self, A, B):
        # scikit-learn's names and scipy's, and callables, as PersistenceDiagram takes them
        from sklearn.metrics import pairwise_distances

        return np.asarray(pairwise_distances(A, B, metric=self.metric, **self.params),
                          dtype=np.float64)

    def _condensed(self, i, j):
        a, b = np.broadcast_arrays(np.minimum(i, j), np.maximum(i, j))
        k = self.n * a - a * (a + 1) // 2 + (b - a - 1)
        out = np.asarray(self.D[np.where(a == b, 0, k)], dtype=np.float64)
        out[a == b] = 0.0
        return out

    def exact_pairs(self, i, j):
        """Exact (float64) distances of the pairs ``(i[a], j[a])`` (Euclidean product only)."""
        diff = np.asarray(self.points[i], dtype=np.float64) - self.points[j]
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))

    def within(self, d, slack, t):
        """``d <= t`` on what :meth:`rows` / :meth:`blocks` return."""
        if not math.isfinite(t):
            # every edge, but a missing one (inf in a given matrix) never enters
            return np.isfinite(d) if not self.squared else np.ones(np.shape(d), dtype=bool)
        return d <= t * t + slack if self.squared else d <= t


# ---------------------------------------------------------------------- counts
def _block_cliques(A, sizes, max_m, rng, n_tuples):
    """Cliques of ``m`` vertices (2 <= m <= max_m) in each 0/1 block ``A[a]`` (float32).

    Exact for m = 2 and 3 (sums of ``A`` and ``A @ A``); for m >= 4 estimated from
    ``n_tuples`` random m-subsets of the block's first ``sizes[a]`` vertices.
    """
    r, L, _ = A.shape
    out = {}
    if max_m >= 2:
        out[2] = A.sum(axis=(1, 2), dtype=np.float64) / 2
    if max_m >= 3:
        out[3] = (np.matmul(A, A) * A).sum(axis=(1, 2), dtype=np.float64) / 6
    for m in range(4, max_m + 1):
        T = (rng.random((r, n_tuples, m)) * sizes[:, None, None]).astype(np.intp)
        T.sort(axis=2)
        distinct = (np.diff(T, axis=2) > 0).all(axis=2)
        rows = np.arange(r)[:, None]
        clique = distinct.copy()
        for u in range(m):
            for v in range(u + 1, m):
                clique &= A[rows, T[:, :, u], T[:, :, v]] > 0
        tried = np.maximum(distinct.sum(axis=1), 1)
        possible = np.array([math.comb(int(s), m) for s in sizes], dtype=np.float64)
        out[m] = possible * clique.sum(axis=1) / tried
    return out


def clique_counts(points=None, distances=None, *, threshold=math.inf, max_size=3,
                  metric="euclidean", metric_params=None, enclosing=True, cocycles=None,
                  random_state=0, n_rows=96, n_neighbors=40, n_central=32,
                  n_tuples=256) -> dict:
    """Estimated numbers of cliques of diameter ``<= t`` (the simplices of the filtration).

    Computed from the points (or from a given matrix) before any ``n x n``
    matrix exists: ``n_rows`` random rows of distances (one matrix product), the
    neighbours of those rows, and exact clique counts among ``n_neighbors``
    random neighbours of each (see the module docstring). Deterministic for a
    given ``random_state``.

    Parameters
    ----------
    points : ndarray of shape (n_points, n_features), optional
        The cloud. Give it or ``distances``.
    distances : ndarray of shape (n_points, n_points) or (n_points * (n_points - 1) / 2,), optional
        A square or condensed (``scipy.spatial.distance.pdist`` order) distance
        matrix; only the entries the estimate needs are read.
    threshold : float, default=inf
        Largest edge length of the filtration.
    max_size : int, default=3
        Largest clique size counted (``q + 1`` vertices are the q-simplices;
        the engines' memory for ``maxdim=q`` reads sizes up to ``q + 2``). At most 6.
    metric : str or callable, default="euclidean"
        ``"euclidean"`` (one float32 matrix product on centred points) or any
        metric of :func:`sklearn.metrics.pairwise_distances`. Ignored with
        ``distances``.
    metric_params : dict, optional
        Extra keyword arguments of the metric.
    enclosing : bool, default=True
        Cut the filtration at the enclosing radius ``min_i max_j d(i, j)``, as
        the engines do for ``maxdim >= 1``: ``t = min(threshold, radius)``, with
        an upper bound of the radius (the exact eccentricities of the sampled rows
        and of the ``n_central`` points nearest the centroid), so counts err high.
    cocycles : bool, optional
        Also estimate the size of the largest cocycle of a real hole in H1 (and in
        H2 when ``max_size >= 4``), which drives the engines' reduction memory
        on clouds with holes (circles, tori, spheres). Default: when
        ``max_size >= 3``. Needs ripser.py (without it: no hole term); two
        subsamples of 128 points (H1), two of 44 points (H2).
    random_state : int, default=0
        Seed of every random choice.
    n_rows, n_neighbors, n_central, n_tuples : int
        Sampled rows, neighbours per sampled row, central rows for the
        enclosing radius, random tuples per row for cliques of 5 and more vertices.

    Returns
    -------
    counts : dict
        ``counts[k]`` for ``k = 1 .. max_size``: the estimated number of cliques
        of ``k`` vertices of diameter ``<= t`` (``counts[1]`` is ``n``,
        ``counts[2]`` the edges, ...; floats). String keys: ``"n_points"``,
        ``"threshold"`` (the ``t`` used), ``"enclosing_radius"`` and
        ``"enclosing_radius_lower"`` (bounds of the radius; None without
        ``enclosing``), ``"max_distance_lower"`` (largest distance seen) and
        ``"cocycles"`` (``{dim: simplices}`` of the largest cocycle of a
        real hole; empty when not estimated).
    """
    if not 2 <= max_size <= 6:
        raise ValueError(f"max_size must be between 2 and 6; got {max_size}")
    rows = _Rows(points, distances, metric, metric_params)
    n = rows.n
    rng = np.random.default_rng(random_state)
    t = float(threshold)
    result = {k: 0.0 for k in range(1, max_size + 1)}
    result.update({1: float(n), "n_points": n, "threshold": t, "enclosing_radius": None,
                   "enclosing_radius_lower": None, "max_distance_lower": 0.0, "ties": 0.0,
                   "cocycles": {}})
    if n < 2:
        return result
    r = min(n, n_rows)
    sample = np.sort(rng.choice(n, r, replace=False)) if r < n else np.arange(n)
    central = rows.central(n_central) if enclosing else None
    evaluated = sample if central is None else np.union1d(sample, central)
    d, slack = rows.rows(evaluated)
    row_max = d.max(axis=1)
    top = float(row_max.max())
    result["max_distance_lower"] = math.sqrt(top) if rows.squared else top
    if enclosing:
        ecc, lower = row_max, d.max(axis=0)
        if central is None and r < n:
            # no centroid to go by: a second pass on the points the first one found most central
            k = min(n_central, n)
            extra = np.setdiff1d(np.argpartition(lower, k - 1)[:k], evaluated)
            if len(extra):
                d_extra, _ = rows.rows(extra)
                ecc = np.concatenate([ecc, d_extra.max(axis=1)])
                lower = np.maximum(lower, d_extra.max(axis=0))
        up, low = float(ecc.min()), float(lower.min())
        if rows.squared:
            up, low = math.sqrt(up), math.sqrt(low)
        result["enclosing_radius"], result["enclosing_radius_lower"] = up, low
        t = min(t, up)
    result["threshold"] = t
    if len(evaluated) != r:
        keep = np.searchsorted(evaluated, sample)
        d = d[keep]
        slack = slack[keep] if np.ndim(slack) else slack
    adj = rows.within(d, slack, t)
    adj[np.arange(r), sample] = False
    deg = adj.sum(axis=1)
    result[2] = n / 2 * float(deg.mean())
    result["ties"] = _tie_share(rows, d, adj, sample, rng)
    L = int(min(n_neighbors, deg.max()))
    if max_size >= 3 and L >= 2:
        S = np.zeros((r, L), dtype=np.intp)
        sizes = np.minimum(deg, L)
        for a in range(r):
            nbrs = np.flatnonzero(adj[a])
            if len(nbrs) > L:
                nbrs = nbrs[rng.choice(len(nbrs), L, replace=False)]
            S[a, :len(nbrs)] = nbrs
        valid = np.arange(L)[None, :] < sizes[:, None]
        bd, bslack = rows.blocks(S)
        A = rows.within(bd, bslack, t)
        A &= valid[:, :, None] & valid[:, None, :]
        A[:, np.arange(L), np.arange(L)] = False
        numbers = _block_cliques(A.astype(np.float32), sizes, max_size - 1, rng, n_tuples)
        for k in range(3, max_size + 1):
            m = k - 1  # a k-clique through a vertex is an m-clique among its neighbours
            scale = np.array([math.comb(int(g), m) / math.comb(int(s), m) if s >= m else 0.0
                              for g, s in zip(deg, sizes)])
            result[k] = n / k * float((numbers[m] * scale).mean())
    if cocycles is None:
        cocycles = max_size >= 3
    if cocycles:
        dims = [k for k in (1, 2) if k + 2 <= max(max_size, 3)]
        result["cocycles"] = _largest_cocycles(rows, dims, threshold, enclosing, result, rng)
    return result


def _tie_share(rows, d, adj, sample, rng, n_pairs=2000):
    """Share of the edges whose length another sampled edge has too (grids: near 1)."""
    r, n = adj.shape
    a = rng.integers(0, r, 4 * n_pairs)
    j = rng.integers(0, n, 4 * n_pairs)
    keep = adj[a, j] & (j != sample[a])
    a, j = a[keep][:n_pairs], j[keep][:n_pairs]
    if len(a) < 2:
        return 0.0
    # each unordered pair once (a pair of two sampled rows can come up twice)
    key = np.unique(np.minimum(sample[a], j) * n + np.maximum(sample[a], j), return_index=True)[1]
    a, j = a[key], j[key]
    values = rows.exact_pairs(sample[a], j) if rows.squared else d[a, j]
    values = np.sort(values[np.isfinite(values)])  # a missing edge (inf) ties nothing
    if len(values) < 2:
        return 0.0
    close = np.diff(values) <= 1e-9 * np.maximum(values[1:], 1e-300)
    tied = np.zeros(len(values), dtype=bool)
    tied[1:] |= close
    tied[:-1] |= close
    return float(tied.mean())


def _persistence_weight(dim, birth, death):
    """How surely a class of a subsample is a real hole: 0 to 1 from ``death / birth``.

    Noise classes of Rips complexes have a multiplicative persistence close to 1
    (measured on 100-point subsamples: at most 2.1 in H1 and 1.12 in H2 on the
    Gaussian, grid and sphere families); a hole of the data is well above
    (circle 2.8-6.7, torus 2.4-3.1 in H1; sphere 1.2-1.6 in H2).
    """
    low, high = _WEIGHT_RAMP[dim]
    ratio = death / birth if birth > 0 else math.inf
    return float(np.clip((ratio - low) / (high - low), 0.0, 1.0))


def _largest_cocycles(rows, dims, threshold, enclosing, counts, rng):
    """Simplices in the largest cocycle of a real hole, per dimension, at full size.

    For each dimension ``k`` in ``dims``, ``_PROBE[k]`` subsamples of
    ``_PROBE_POINTS[k]`` points go through ripser.py with cocycles; the largest
    cocycle of a class, weighted by :func:`_persistence_weight`, is scaled by the
    number of k-simplices of the cloud over that of the subsample (a cocycle
    around a real hole is a fixed share of the simplices, whatever the
    sampling density). The smallest estimate over the subsamples is kept, so
    that a noise class that looks long-lived in one subsample does not count.
    """
    out = {}
    try:
        from pyRipser import doRipsFiltrationDM
    except ImportError:  # pragma: no cover - ripser.py missing or reorganised
        return out
    n = rows.n
    for k in dims:
        m = min(_PROBE_POINTS[k], n)
        full = counts.get(k + 1, 0.0)
        if m < k + 3 or full <= 0:
            continue
        estimates = []
        for _ in range(_PROBE[k] if m < n else 1):
            idx = np.sort(rng.choice(n, m, replace=False)) if m < n else np.arange(n)
            D, _ = rows.blocks(idx[None, :])
            D = np.sqrt(D[0]) if rows.squared else D[0]
            D = np.maximum(D, D.T)
            np.fill_diagonal(D, 0.0)
            t = float(threshold)
            if enclosing:
                t = min(t, float(D.max(axis=1).min()))
            finite = np.isfinite(D)
            if not finite.all():  # missing edges: above the threshold, as the engines get them
                top = float(D[finite].max())
                t = min(t, top)
                D = np.where(finite, D, 2.0 * top + 1.0)
            A = (D <= t).astype(np.float32)
            np.fill_diagonal(A, 0.0)
            simplices = A.sum() / 2 if k == 1 else float((np.matmul(A, A) * A).sum()) / 6
            if simplices == 0:
                estimates.append(0.0)
                continue
            upper = D[np.triu_indices(m, 1)].astype(np.float32)
            res = doRipsFiltrationDM(upper, k, thresh=t, coeff=2, do_cocycles=1)
            pairs = np.reshape(np.asarray(res["births_and_deaths_by_dim"][k], dtype=np.float64),
                               (-1, 2))
            best = 0.0
            # a class still alive at the threshold: its persistence so far, not inf
            pairs[:, 1] = np.minimum(pairs[:, 1], t)
            for (birth, death), cocycle in zip(pairs, res["cocycles_by_dim"][k]):
                size = len(cocycle) // (k + 2)  # k + 1 vertices and a coefficient per simplex
                best = max(best, _persistence_weight(k, birth, death) * size)
            estimates.append(best * full / simplices)
        out[k] = float(_PROBE_AGG[k](estimates))
    return out


# ---------------------------------------------------------------------- model
def engine_peak_bytes(engine, n_points, maxdim, counts=None) -> int:
    """Peak bytes one engine allocates for Vietoris-Rips persistence up to ``maxdim``.

    Parameters
    ----------
    engine : {"ripser", "redzed", "giotto"}
        ripser.py's ``doRipsFiltrationDM``, ``redzed_tda.rips`` or giotto-ph's
        ``_compute_ph_vr_dense`` (one thread).
    n_points : int
        Points of the cloud.
    maxdim : int
        Highest homology dimension (fitted for 0 to 3; above, the H3 terms one
        simplex size up).
    counts : dict, optional
        What :func:`clique_counts` returns, with ``max_size >= maxdim + 2``
        (cliques of ``k`` vertices of diameter ``<= t`` under the integer keys,
        ``"ties"`` and ``"cocycles"``). Without it (or without a key the model
        reads) the worst case: every clique of the complete graph, tied lengths.

    Returns
    -------
    bytes : int
        The engine's own allocations at its peak (see the module docstring for
        what is and is not included).
    """
    if engine not in _COEFFICIENTS:
        raise ValueError(f"engine must be one of {ENGINES}; got {engine!r}")
    maxdim = int(maxdim)
    if maxdim < 0:
        raise ValueError(f"maxdim must be 0 or more; got {maxdim}")
    n = int(n_points)
    if n < 2:
        return 0
    counts = {} if counts is None else counts
    table = _COEFFICIENTS[engine]
    # every dimension from 1 up is a phase of the same run (H0 alone is another path)
    phases = range(1, maxdim + 1) if maxdim >= 1 else (0,)
    return int(max(_phase_bytes(_phase_coefficients(table, q), n, counts) for q in phases))


def _phase_coefficients(table, q):
    """The fitted terms of dimension ``q``; above 3 (not measured), those of 3 one size up.

    Each engine's storage in dimension ``q`` grows with the simplices of one
    dimension (``q`` or ``q - 1``), at a per-simplex cost that changes little
    from H2 to H3; the hole terms, fitted on circles and spheres, are dropped.
    """
    if q <= 3:
        return table[q]
    shift = q - 3
    return {(term + shift if isinstance(term, int) else
             f"ties*{int(term[5:]) + shift}" if str(term).startswith("ties*") else term): c
            for term, c in table[3].items()
            if not str(term).startswith(("reduce", "live"))}


def _phase_bytes(coefficients, n, counts):
    def count(k):
        value = counts.get(k)
        return float(math.comb(n, k)) if value is None else float(value)

    ties = float(counts.get("ties", 1.0))
    holes = counts.get("cocycles") or {}
    total = 0.0
    for term, c in coefficients.items():
        if term == "const":
            total += c
        elif term == "n2":
            total += c * n * n
        elif isinstance(term, int):
            total += c * count(term)
        elif term.startswith("ties*"):
            total += c * ties * count(int(term[5:]))
        elif term.startswith("reduce"):
            d = int(term[6:])
            total += c * 16.0 * float(holes.get(d, 0.0)) * _cofacets(n, d, counts, count)
        elif term.startswith("live"):
            total += c * float(holes.get(int(term[4:]), 0.0))
    return total


def _cofacets(n, d, counts, count):
    """Mean number of cofacets of diameter <= t of a d-simplex."""
    if counts.get(d + 2) is not None and counts.get(d + 1):
        return (d + 2) * count(d + 2) / count(d + 1)
    # no count of (d + 1)-simplices: a vertex next to one vertex of the simplex (errs high)
    return (n - d - 1) * min(1.0, count(2) / math.comb(n, 2))


def estimate_peak_bytes(engine, points=None, distances=None, *, maxdim=1, threshold=math.inf,
                        metric="euclidean", metric_params=None, random_state=0) -> int:
    """:func:`engine_peak_bytes` of a cloud, from :func:`clique_counts` of its points.

    ``maxdim >= 1`` cuts at the enclosing radius (as the engines are called);
    ``maxdim = 0`` counts the edges of length ``<= threshold`` (all of them at
    ``inf``). Parameters as in :func:`clique_counts` and
    :func:`engine_peak_bytes`.
    """
    counts = clique_counts(points, distances, threshold=threshold, max_size=int(maxdim) + 2,
                           metric=metric, metric_params=metric_params,
                           enclosing=int(maxdim) >= 1, random_state=random_state)
    return engine_peak_bytes(engine, counts["n_points"], maxdim, counts)
