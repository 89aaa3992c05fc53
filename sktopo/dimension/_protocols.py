"""Subsampling protocols of the PH dimension: sktopo's default and the published ones.

A protocol says which subsample sizes are drawn from a cloud of ``n`` points, how
many draws are taken per size (their median is fitted), how many independent
reruns are made (their slopes are averaged) and which points the subsamples
come from. The published presets reproduce the papers' code:

=================  ===========================  =====  ======  ==================
preset             sizes                        draws  reruns  points drawn from
=================  ===========================  =====  ======  ==================
``"study_a"``      500, 850, ... while < n       1      1      the whole cloud
``"birdal"``       200, 250, ..., 950            1      1      the whole cloud
``"tulchinskii"``  50, 90, ..., 490 (< 512)      7 (3)  3      the whole cloud
=================  ===========================  =====  ======  ==================

(3): Tulchinskii et al.'s code (``IntrinsicDim.PHD``: ``n_points=7``,
``n_points_min=3``) takes 3 draws instead of 7 at every size ``n`` where the
cloud has at most ``2 n`` points (``W.shape[0] <= 2 * n``).

All three fit ``log E`` against ``log n`` by least squares and used ``alpha = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Default cap on the points one cloud contributes: the pool whose distance
# matrix is computed. 2,000 points keep a cloud under ~0.3 s on two CPU cores
# even in 512 dimensions, and are well past the sizes the published protocols
# use (at most 950), so the default is also the less biased one.
DEFAULT_MAX_POINTS = 2000
# Four sizes a factor 2 apart (the pool / 8 to the pool): nested prefixes make
# more sizes nearly redundant, and the MST cost is dominated by the large ones.
DEFAULT_N_SIZES = 4
# Five reruns of one nested draw each: as accurate as 3 draws x 3 reruns on the
# test manifolds at 5/9 of the cost, and five slopes give a usable spread.
DEFAULT_N_DRAWS = 1
DEFAULT_N_RERUNS = 5
# smallest subsample: an eighth of the largest, but never below this many points.
# Smaller subsamples see the curvature of the manifold (chords shorter than
# arcs), which inflates the estimate: on a flat 5-torus in R^64 (2,500 points)
# pool / 8 gives 5.42 where pool / 16 gives 5.50, on a 3-sphere 3.02 vs 3.04.
DEFAULT_MIN_FRACTION = 1 / 8
SMALLEST_MIN_POINTS = 20
# fewer sizes than this cannot give a slope and a fit quality
MIN_N_SIZES = 3


@dataclass(frozen=True)
class Plan:
    """What to compute for one cloud of ``n`` points."""

    sizes: np.ndarray  # increasing subsample sizes
    n_draws: int  # draws per size (the most, when sizes differ: see draws)
    n_reruns: int
    pool_size: int  # points whose distance matrix is computed
    dropped_sizes: tuple = ()  # preset sizes larger than the cloud
    # nested: the sizes of one (rerun, draw) are prefixes of one random order of
    # the pool, so one sub-matrix serves every size (the default); otherwise each
    # size gets its own independent subsample (the published protocols)
    nested: bool = True
    # draws at each size when they differ (independent plans only); None: n_draws everywhere
    draws: tuple | None = None

    def draws_at(self, s: int) -> int:
        """Number of draws at the size of position ``s``."""
        return self.n_draws if self.draws is None else self.draws[s]

    def pad_draws(self, E: np.ndarray) -> np.ndarray:
        """Fill the unused draw slots of ``E`` (..., sizes, n_draws) so that the median over the
        last axis is the median of the used draws: as many copies of their smallest as of
        their largest value (``n_draws - draws_at(s)`` is even, checked in :func:`make_plan`)."""
        if self.draws is None:
            return E
        for s, k in enumerate(self.draws):
            if k < self.n_draws:
                used = E[..., s, :k]
                half = (self.n_draws - k) // 2
                E[..., s, k:k + half] = used.min(axis=-1, keepdims=True)
                E[..., s, k + half:] = used.max(axis=-1, keepdims=True)
        return E


@dataclass(frozen=True)
class Preset:
    """A published protocol: sizes ``start, start + step, ...`` below ``stop``."""

    name: str
    reference: str
    start: int
    step: int
    stop: int | None  # None: below the number of points of the cloud
    n_draws: int
    n_reruns: int
    # draws at the sizes n where the cloud has at most 2 n points (None: n_draws)
    n_draws_large: int | None = None

    def sizes(self, n_points: int) -> np.ndarray:
        return np.arange(self.start, n_points if self.stop is None else self.stop, self.step)

    def draws(self, sizes: np.ndarray, n_points: int) -> tuple | None:
        """Draws per size for a cloud of ``n_points``, or None when they are all ``n_draws``."""
        if self.n_draws_large is None:
            return None
        return tuple(self.n_draws_large if n_points <= 2 * int(n) else self.n_draws for n in sizes)


PRESETS = {
    "study_a": Preset(
        "study_a",
        "Magai & Ayzenberg, 'Topology and geometry of data manifold in deep learning' (2022) "
        "and its 2023 follow-up: ripser H0, one subsample per size",
        start=500, step=350, stop=None, n_draws=1, n_reruns=1,
    ),
    "birdal": Preset(
        "birdal",
        "Birdal et al., 'Intrinsic dimension, persistent homology and generalization in "
        "neural networks', NeurIPS 2021 (estimate_ph_dim: range(200, 1000, 50))",
        start=200, step=50, stop=1000, n_draws=1, n_reruns=1,
    ),
    "tulchinskii": Preset(
        "tulchinskii",
        "Tulchinskii et al., 'Intrinsic dimension estimation for robust detection of "
        "AI-generated texts', NeurIPS 2023 (range(50, 512, 40), median of 7 draws, or of 3 "
        "at sizes n with n_points <= 2 n, mean slope of 3 reruns)",
        start=50, step=40, stop=512, n_draws=7, n_reruns=3, n_draws_large=3,
    ),
}

# parameters a preset fixes: setting them too is an error
PRESET_FIXED = ("min_points", "max_points", "n_sizes", "n_draws", "n_reruns")


def default_sizes(n_points: int, min_points, max_points, n_sizes) -> tuple[np.ndarray, int]:
    """Geometric grid of subsample sizes for a cloud of ``n_points``; also the pool size."""
    pool = int(min(n_points, DEFAULT_MAX_POINTS if max_points is None else max_points))
    if min_points is None:
        low = max(SMALLEST_MIN_POINTS, int(round(DEFAULT_MIN_FRACTION * pool)))
        low = min(low, pool)
    else:
        low = int(min_points)
    count = DEFAULT_N_SIZES if n_sizes is None else int(n_sizes)
    if low >= pool:
        return np.array([pool] if low == pool else [], dtype=int), pool
    sizes = np.unique(np.round(np.geomspace(low, pool, count)).astype(int))
    return sizes, pool


def make_plan(n_points: int, *, protocol, min_points, max_points, n_sizes, n_draws,
              n_reruns) -> Plan:
    """The sizes, draws, reruns and pool for one cloud."""
    if protocol is None:
        sizes, pool = default_sizes(n_points, min_points, max_points, n_sizes)
        return Plan(
            sizes=sizes,
            n_draws=DEFAULT_N_DRAWS if n_draws is None else int(n_draws),
            n_reruns=DEFAULT_N_RERUNS if n_reruns is None else int(n_reruns),
            pool_size=pool,
        )
    preset = PRESETS[protocol]
    sizes = preset.sizes(n_points)
    dropped = tuple(int(s) for s in sizes[sizes > n_points])
    sizes = sizes[sizes <= n_points]
    draws = preset.draws(sizes, n_points)
    # pad_draws keeps the median only when the unused slots split evenly
    assert draws is None or all((preset.n_draws - k) % 2 == 0 for k in draws)
    return Plan(
        sizes=sizes,
        n_draws=preset.n_draws,
        n_reruns=preset.n_reruns,
        pool_size=n_points,
        dropped_sizes=dropped,
        nested=False,
        draws=draws,
    )
