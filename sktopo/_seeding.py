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

Scale. The estimators of :mod:`sktopo.dimension` are scale-invariant and compute a
cloud far from unit scale (1e200, 1e-310) on a copy multiplied by a power of two;
its key must not depend on the scale either. A cloud whose distances from the first
point peak at ``R`` outside ``[2**-60, 2**60]`` (where their squares overflow,
underflow or lose bits: the total was inf for every cloud times 1e160, 0 for every
cloud times 1e-170) is keyed by ``total / R``, computed at unit scale (the cloud,
its differences and the distance row each multiplied by exact powers of two): the
key of its copy scaled to ``R = 1``. So every extreme copy ``c X`` of a cloud
(1e-310, 1e-300, 1e200, 2**900, ...) draws the same stream, that of the copy of
``X`` with ``R = 1``. Clouds with ``R`` in ``[2**-60, 2**60]`` keep the key of
their own total: the seeds drawn so far stay (the fixed table of
``tests/test_seeding.py``), at the price that two such clouds differing only by a
factor (``X`` and ``2 X``) still draw different streams. A cloud without a scale
(one point, all points equal) keeps the key of its total, 0.

The seed of a cloud is ``SeedSequence([entropy % 2**64, key]).generate_state(1)[0]``;
its stream ``numpy.random.default_rng(seed)``. Thousands of small clouds make
these per-cloud steps count (0.14 ms per 64 x 384 cloud once, serial, before any
parallel work), so they are computed in bulk with the same bits: the keys of
equal-shaped clouds a few at a time (:func:`content_keys`), SeedSequence's hash
vectorised over the keys (:func:`seeds_of_keys`) and over the streams
(:func:`seeded_generators`), and a :class:`CloudSeeder` lets each batch of a
parallel run seed its own clouds in its own thread. ``tests/test_seeding.py``
holds a fixed table of seeds and checks every shortcut against the plain formula.
"""

from __future__ import annotations

import hashlib
from numbers import Integral

import numpy as np

from sktopo._distance import power_of_two_scale

__all__ = ["CloudSeeder", "as_seeder", "cloud_seeds", "content_key", "content_keys",
           "root_entropy", "seeded_generators", "seeds_of_keys"]


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
    # a cloud near the largest float overflows here (inf: content_key then rescales it; and
    # scikit-learn's finiteness check sums the cloud: inf - inf)
    with np.errstate(over="ignore", invalid="ignore"):
        if metric == "euclidean" and not metric_params:
            # differences, not the dot-product expansion: exact for near points
            diff = X - X[0]
            return np.sqrt(np.einsum("ij,ij->i", diff, diff))
        from sklearn.metrics import pairwise_distances

        return pairwise_distances(X, X[:1], metric=metric, **(metric_params or {}))[:, 0]


# Clouds whose largest distance from the first point lies in this range keep the key of their
# own total (the keys every seed of the package was drawn from); outside it, the key of the
# total divided by that largest distance (see _radius_ratio)
_KEY_LOW, _KEY_HIGH = 2.0 ** -60, 2.0 ** 60


def _keeps_its_total(radius: float) -> bool:
    """Whether a cloud whose first-row distances peak at ``radius`` is keyed by its own total.

    Within ``[2**-60, 2**60]`` the squares of the differences neither overflow nor
    underflow, so the total is exact to rounding; outside (or 0, inf, NaN: squares
    that overflowed or underflowed), :func:`_radius_ratio` decides.
    """
    return _KEY_LOW <= radius <= _KEY_HIGH


def _to_unit(values: np.ndarray, peak: float) -> np.ndarray:
    """``values`` times the powers of two that bring ``peak`` (their largest |entry|, > 0 and
    finite) into ``[0.5, 1]``: exact, twice for a subnormal peak (the factor caps at 2**1023)."""
    for _ in range(2):
        scale = power_of_two_scale(peak, low=0.5, high=1.0)
        if scale == 1.0:
            break
        values, peak = values * scale, peak * scale
    return values


def _radius_ratio(data, metric, metric_params) -> float | None:
    """The first-row distances' sum over their maximum, computed at unit scale; None for a
    cloud without a scale (a constant cloud, one point) or with infinite entries.

    The ratio does not depend on the cloud's scale: the cloud (or its distance row) is
    brought near 1 by exact powers of two before the distances (and their squares) are
    formed, so a cloud times 1e200, 1e-310 or 2**900 gives the same ratio (exactly for a
    power of two, to rounding otherwise).
    """
    if metric == "precomputed":
        row = _first_row_distances(data, metric, metric_params)
    else:
        X = np.asarray(data, dtype=np.float64)
        if not np.isfinite(X).all():
            return None
        peak = float(np.abs(X).max())
        if peak == 0.0:
            return None
        X = _to_unit(X, peak)  # the differences below cannot overflow
        if metric == "euclidean" and not metric_params:
            diff = X - X[0]
            spread = float(np.abs(diff).max())
            if spread == 0.0:
                return None
            diff = _to_unit(diff, spread)  # nor their squares underflow
            row = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        else:
            row = _first_row_distances(X, metric, metric_params)
    if not np.isfinite(row).all():
        return None
    radius = float(row.max())
    if radius == 0.0:
        return None
    row = _to_unit(row, radius)
    return float(np.sum(row)) / float(row.max())


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
    row = _first_row_distances(data, metric, metric_params)
    total = float(np.sum(row))
    if _keeps_its_total(float(row.max())):
        return _key_of_total(n_points, total)
    return _scale_free_key(data, n_points, total, metric, metric_params)


def _scale_free_key(data, n_points, total, metric, metric_params) -> int:
    """The key of a cloud whose first-row distances peak outside ``[2**-60, 2**60]``: that
    of the total over the peak (:func:`_radius_ratio`), the total of the cloud scaled to a
    peak of 1; the key of ``total`` when the cloud has no scale."""
    ratio = _radius_ratio(data, metric, metric_params)
    return _key_of_total(n_points, total if ratio is None else ratio)


def _key_of_total(n_points: int, total: float) -> int:
    """The key of a cloud of ``n_points`` whose first-row distances sum to ``total``."""
    if not np.isfinite(total):
        total_text = repr(total)
    else:
        total_text = f"{total:.8e}"
    return int.from_bytes(
        hashlib.blake2b(f"{n_points}|{total_text}".encode(), digest_size=8).digest(), "little")


# Clouds of this many float64 numbers at a time in content_keys' differences buffer (1 MiB,
# five clouds of 64 x 384; measured beside PHDimension's centring of the same clouds: 85-97 us
# per cloud, 99-111 with a quarter of it, per-call overheads then dominate).
_KEY_ENTRIES = 1 << 17
# dtypes whose conversion to float64 inside np.subtract(..., dtype=float64) is the
# np.asarray(data, dtype=float64) of _first_row_distances (exact, or one rounding)
_KEY_KINDS = "fiu"


def _batchable(cloud) -> bool:
    # C-contiguous only: the per-cloud differences of another layout keep it, and einsum
    # could then sum a row in another order
    return (type(cloud) is np.ndarray and cloud.ndim == 2 and cloud.shape[0] > 0
            and cloud.flags.c_contiguous and cloud.dtype.kind in _KEY_KINDS
            and cloud.dtype.itemsize <= 8)


def content_keys(clouds, *, metric="euclidean", metric_params=None) -> list[int]:
    """:func:`content_key` of every cloud (the same integers), Euclidean clouds in batches.

    For the Euclidean metric, clouds of one shape are handled a few at a time:
    each cloud's differences to its first point go into one float64 buffer
    (``np.subtract(X, X[0], dtype=float64)``: the same numbers as
    ``np.asarray(X, float64) - X[0]``, without the copy), and the row norms
    and their sums of the buffer are computed by one ``einsum`` and one
    ``sum`` (each row is reduced alone, in the order of the per-cloud call).
    ``tests/test_seeding.py`` checks the identity on many clouds.
    """
    if metric != "euclidean" or metric_params:
        return [content_key(cloud, metric=metric, metric_params=metric_params)
                for cloud in clouds]
    keys: list = [None] * len(clouds)
    groups: dict = {}
    for i, cloud in enumerate(clouds):
        if _batchable(cloud):
            groups.setdefault(cloud.shape, []).append(i)
        else:
            keys[i] = content_key(cloud)
    for shape, members in groups.items():
        n_points = shape[0]
        step = max(1, _KEY_ENTRIES // (n_points * max(1, shape[1])))
        buffer = np.empty((min(step, len(members)), *shape))
        for start in range(0, len(members), step):
            part = members[start:start + step]
            diff = buffer[:len(part)]
            with np.errstate(over="ignore"):  # inf: rescaled by _scale_free_key
                for row, i in zip(diff, part):
                    X = clouds[i]
                    np.subtract(X, X[0], out=row, dtype=np.float64)
            norms = np.einsum("cij,cij->ci", diff, diff)
            totals = np.sqrt(norms, out=norms).sum(axis=1)
            radii = norms.max(axis=1)
            for i, total, radius in zip(part, totals.tolist(), radii.tolist()):
                if _keeps_its_total(radius):
                    keys[i] = _key_of_total(n_points, total)
                else:  # far from unit scale (rare): the scale-free key
                    keys[i] = _scale_free_key(clouds[i], n_points, total, metric, metric_params)
    return keys


# numpy's SeedSequence (O'Neill's seed_seq hash, numpy/random/bit_generator.pyx), for the
# entropy [root, key] with a pool of 4 words: see _sequence_states
_MASK32 = 0xFFFFFFFF
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = 0xCA01F9DD, 0x4973F715
_XSHIFT = 16


def _int_words(value: int) -> list[int]:
    """numpy's ``_int_to_uint32_array``: the 32-bit words of ``value >= 0``, low first."""
    words = []
    while value > 0:
        words.append(value & _MASK32)
        value >>= 32
    return words or [0]


def _hash_constants(init: int, mult: int, count: int) -> list:
    """The multipliers ``hashmix`` uses in turn: ``init * mult ** k`` modulo 2**32."""
    constants = [init]
    for _ in range(count):
        constants.append((constants[-1] * mult) & _MASK32)
    return [np.uint32(c) for c in constants]


# hashmix is called 4 times to fill the pool, then 12 times to mix it
_HASH_A = _hash_constants(_INIT_A, _MULT_A, 16)
_HASH_B = _hash_constants(_INIT_B, _MULT_B, 1)
_U32 = {name: np.uint32(value) for name, value in
        (("left", _MIX_MULT_L), ("right", _MIX_MULT_R), ("shift", _XSHIFT))}


def _mixed_pool(words: np.ndarray) -> list:
    """SeedSequence's pool from entropy ``words`` ``(4, n)`` uint32 (one column per sequence).

    At most four entropy words, padded with zeros: the pool of four is filled by
    ``hashmix`` of the words (what SeedSequence does for a short entropy), then
    every pool word is mixed into every other. Unsigned array arithmetic wraps
    modulo 2**32, as the C code's.
    """
    shift = _U32["shift"]
    calls = iter(range(16))

    def hashmix(value):  # call k xors the k-th constant, multiplies by the next
        k = next(calls)
        value = value ^ _HASH_A[k]
        value *= _HASH_A[k + 1]
        value ^= value >> shift
        return value

    pool = [hashmix(w) for w in words]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                mixed = _U32["left"] * pool[dst]
                mixed -= _U32["right"] * hashmix(pool[src])
                mixed ^= mixed >> shift
                pool[dst] = mixed
    return pool


def _generated(pool: list, n_words: int) -> list:
    """SeedSequence's ``generate_state(n_words)`` (uint32) from a :func:`_mixed_pool`."""
    shift = _U32["shift"]
    hash_b = _HASH_B if n_words < len(_HASH_B) else _hash_constants(_INIT_B, _MULT_B, n_words)
    state = []
    for i in range(n_words):
        value = pool[i % 4] ^ hash_b[i]
        value *= hash_b[i + 1]
        value ^= value >> shift
        state.append(value)
    return state


def _entropy_words(prefix: list, keys: np.ndarray) -> np.ndarray:
    """``(4, n)`` uint32: the words of ``prefix`` then each key's two words, then zeros.

    A key below 2**32 has one word in SeedSequence's entropy; the padding gives it
    a high word 0 either way, which is why this is exact while the total is at
    most four words.
    """
    words = np.zeros((4, *keys.shape), dtype=np.uint32)
    if prefix:
        words[:len(prefix)] = np.array(prefix, dtype=np.uint32)[:, None]
    words[len(prefix)] = keys  # the low words (the cast drops the high bits)
    words[len(prefix) + 1] = keys >> np.uint64(32)
    return words


def _sequence_states(root: int, keys) -> np.ndarray:
    """``SeedSequence([root, key]).generate_state(1)[0]`` for every key, vectorised.

    ``root`` below 2**64 takes one or two 32-bit words, each key one or two: at
    most four entropy words (see :func:`_mixed_pool`). ``tests/test_seeding.py``
    checks it against SeedSequence on many inputs.
    """
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
    return _generated(_mixed_pool(_entropy_words(_int_words(root), keys)), 1)[0]


# PCG64's 128-bit LCG multiplier (numpy/random/src/pcg64: PCG_DEFAULT_MULTIPLIER_128)
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_MASK128 = (1 << 128) - 1


def _pcg64_states(seeds) -> list[dict]:
    """``default_rng(seed).bit_generator.state`` for every seed below 2**64, vectorised.

    ``default_rng(seed)`` is ``PCG64(SeedSequence(seed))``: four uint64 words of
    ``generate_state(4, uint64)`` (eight uint32 words, low first), the first two
    the 128-bit initial state, the last two the stream (``pcg64_set_seed``:
    ``inc = 2 * stream + 1``; the state steps once from 0, adds the initial state,
    steps again).
    """
    seeds = np.asarray(seeds, dtype=np.uint64).reshape(-1)
    words = _generated(_mixed_pool(_entropy_words([], seeds)), 8)
    w = [word.astype(np.uint64) for word in words]
    halves = [(w[2 * k] | (w[2 * k + 1] << np.uint64(32))).tolist() for k in range(4)]
    states = []
    for s_high, s_low, i_high, i_low in zip(*halves):
        inc = ((((i_high << 64) | i_low) << 1) | 1) & _MASK128
        state = ((inc + ((s_high << 64) | s_low)) * _PCG_MULT + inc) & _MASK128
        states.append({"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
                       "has_uint32": 0, "uinteger": 0})
    return states


_FAST_GENERATORS: list = []  # [bool], once known: whether _pcg64_states is this numpy's


def _fast_generators_ok() -> bool:
    if not _FAST_GENERATORS:
        probe = [0, 1, 2**31 + 5, 2**32 - 1, 2**32, 123456789, 2**64 - 1]
        _FAST_GENERATORS.append(
            type(np.random.default_rng(0).bit_generator) is np.random.PCG64
            and _pcg64_states(probe) == [np.random.default_rng(s).bit_generator.state
                                         for s in probe])
    return _FAST_GENERATORS[0]


def seeded_generators(seeds):
    """``numpy.random.default_rng(seed)`` for each seed, in turn: the same streams, cheaper.

    ``default_rng`` costs a SeedSequence per call (about 20 us); here the
    SeedSequence hash of all the seeds is one vectorised pass and each generator
    is a state set on one PCG64 (checked once against ``default_rng``; if this
    numpy seeds differently, ``default_rng`` itself is used). The generators are
    ONE object whose state moves on: use each before taking the next.

    Parameters
    ----------
    seeds : sequence of int
        Seeds below 2**64 (those of :func:`cloud_seeds`).

    Yields
    ------
    rng : numpy.random.Generator
    """
    seeds = list(seeds)
    if not seeds:
        return
    if not _fast_generators_ok():
        for seed in seeds:
            yield np.random.default_rng(seed)
        return
    bit_generator = np.random.PCG64(0)
    rng = np.random.Generator(bit_generator)
    for state in _pcg64_states(seeds):
        bit_generator.state = state
        yield rng


def seeds_of_keys(entropy: int, keys) -> list[int]:
    """The seed of each content key under the root ``entropy`` (see :func:`cloud_seeds`)."""
    return _sequence_states(entropy % 2**64, keys).tolist()


class CloudSeeder:
    """The seeds of one call's clouds: the one type a per-cloud computation is handed.

    ``random_state`` is read once, here (one draw of a ``RandomState``, fresh
    entropy for ``None``); ``seeder(clouds)`` then gives the seeds of any
    clouds of the call, the same as :func:`cloud_seeds` would, so a batch can
    compute its own clouds' seeds in its own thread (a cloud's seed depends on
    that cloud alone). :meth:`keys` and :meth:`seeds_of` are its two steps: the
    keys read the clouds (best while they are in cache), the seeds are cheapest
    for many keys at once.

    Seeds given by position (a list, one per cloud: ``None`` where an estimator
    draws nothing, or a caller's own seeds) are a seeder too,
    :meth:`CloudSeeder.given` (:func:`as_seeder` converts a list at the boundary),
    so the code that runs the clouds handles one type: it calls the seeder on its
    clouds, and :meth:`take` the positions of a chunk before handing it on.

    Parameters
    ----------
    random_state : int, RandomState instance or None
        The estimator's ``random_state``.
    metric, metric_params
        As in :func:`content_key`.
    """

    def __init__(self, random_state, *, metric="euclidean", metric_params=None):
        self.entropy = root_entropy(random_state)
        self.metric = metric
        self.metric_params = metric_params

    @staticmethod
    def given(seeds) -> CloudSeeder:
        """The seeder of clouds whose seeds are given, one per cloud in order."""
        return _GivenSeeds(seeds)

    def __call__(self, clouds) -> list:
        """The seeds of ``clouds`` (for given seeds: all of its clouds, in order)."""
        return self.seeds_of(self.keys(clouds))

    def keys(self, clouds) -> list:
        """The content keys of ``clouds`` (:func:`content_keys`)."""
        return content_keys(clouds, metric=self.metric, metric_params=self.metric_params)

    def seeds_of(self, keys) -> list:
        """The seeds of these content keys (vectorised: call it on many keys at once)."""
        return seeds_of_keys(self.entropy, keys)

    def take(self, positions) -> CloudSeeder:
        """The seeder of the clouds at ``positions`` (a chunk): this one, as a cloud's seed
        depends on its content alone."""
        return self

    def __repr__(self):
        return f"CloudSeeder(entropy={self.entropy}, metric={self.metric!r})"


class _GivenSeeds(CloudSeeder):
    """Seeds given by position: ``seeder(clouds)`` is the list, for exactly its clouds."""

    def __init__(self, seeds):
        self.seeds = list(seeds)

    def keys(self, clouds) -> list:
        return [None] * len(clouds)  # nothing to read from the clouds

    def seeds_of(self, keys) -> list:
        if len(keys) != len(self.seeds):
            raise ValueError(f"{len(self.seeds)} seeds given for {len(keys)} clouds.")
        return list(self.seeds)

    def take(self, positions) -> CloudSeeder:
        return _GivenSeeds([self.seeds[i] for i in positions])

    def __repr__(self):
        return f"CloudSeeder.given({self.seeds!r})"


def as_seeder(seeds) -> CloudSeeder:
    """``seeds`` as a :class:`CloudSeeder`: a seeder as it is, a list of seeds (one per
    cloud, in order) as :meth:`CloudSeeder.given` (for callers that hold the seeds)."""
    return seeds if isinstance(seeds, CloudSeeder) else _GivenSeeds(seeds)


def cloud_seeds(random_state, clouds, *, metric="euclidean", metric_params=None) -> list[int]:
    """One seed per cloud, from ``random_state`` (read once) and each cloud's content key.

    The seed of a cloud is ``SeedSequence([entropy % 2**64, key]).generate_state(1)[0]``
    (``entropy`` from :func:`root_entropy`, ``key`` from :func:`content_key`),
    computed for all clouds at once (:func:`content_keys`, :func:`seeds_of_keys`).

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
    return CloudSeeder(random_state, metric=metric, metric_params=metric_params)(clouds)
