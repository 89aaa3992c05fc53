"""The seeding rule must never change: a fixed table, and identity with the per-cloud formula.

``cloud_seeds`` computes the content keys of equal-shaped clouds in batches and
SeedSequence's hash vectorised; both must give, bit for bit, the seeds of the
original per-cloud formula (transcribed in ``_reference_seed``), or every
PHDimension / TwoNN / landmark number of every user would move.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from sktopo import _seeding
from sktopo._seeding import (CloudSeeder, as_seeder, cloud_seeds, content_key, content_keys,
                             root_entropy, seeds_of_keys)


def _hashed(n_points, total):
    total_text = repr(total) if not np.isfinite(total) else f"{total:.8e}"
    digest = hashlib.blake2b(f"{n_points}|{total_text}".encode(), digest_size=8).digest()
    return int(np.frombuffer(digest, dtype="<u8")[0])


def _euclidean_row(X):
    diff = X - X[0]
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def _original_key(data, metric="euclidean"):
    """The per-cloud content key as first written (before batching)."""
    n_points = int(data.shape[0])
    if n_points == 0:
        return 0
    if metric == "precomputed":
        row = np.asarray(data[0], dtype=np.float64)
    else:
        with np.errstate(over="ignore"):
            row = _euclidean_row(np.asarray(data, dtype=np.float64))
    return _hashed(n_points, float(np.sum(row)))


def _at_unit_scale(values):
    """``values`` times the power of two (np.ldexp: exact, even past 2**1023) that brings the
    largest |entry| into [0.5, 1)."""
    return np.ldexp(values, -int(np.frexp(np.abs(values).max())[1]))


def _reference_key(data, metric="euclidean"):
    """The per-cloud content key: the original one while the distances from the first point
    peak in [2**-60, 2**60]; outside, the key of their sum over their peak, computed at unit
    scale (issue 22, item 11), unless the cloud has no scale (all its points equal)."""
    n_points = int(data.shape[0])
    if n_points == 0:
        return 0
    if metric == "precomputed":
        row = np.asarray(data[0], dtype=np.float64)
    else:
        with np.errstate(over="ignore"):
            row = _euclidean_row(np.asarray(data, dtype=np.float64))
    if 2.0 ** -60 <= row.max() <= 2.0 ** 60:
        return _original_key(data, metric)
    if metric != "precomputed":
        diff = np.asarray(data, dtype=np.float64)
        diff = _at_unit_scale(diff) if diff.any() else diff
        diff = diff - diff[0]
        if not diff.any():
            return _original_key(data, metric)
        row = np.sqrt(np.einsum("ij,ij->i", *2 * [_at_unit_scale(diff)]))
    elif not row.any():
        return _original_key(data, metric)
    row = _at_unit_scale(row)
    return _hashed(n_points, float(np.sum(row)) / float(row.max()))


def _reference_seed(entropy, cloud, metric="euclidean"):
    sequence = np.random.SeedSequence([entropy % 2**64, _reference_key(cloud, metric)])
    return int(sequence.generate_state(1)[0])


def _fixed_clouds():
    rng = np.random.default_rng(20240611)
    base = rng.normal(size=(64, 384))
    return [
        base,
        base.astype(np.float32),
        base + 3.0,                                   # translated: the same key
        rng.normal(size=(64, 384)),
        rng.normal(size=(20, 3)),
        rng.normal(size=(1, 5)),
        rng.normal(size=(2, 2)),
        rng.integers(-50, 50, size=(9, 4)).astype(np.float64),
        np.repeat(rng.normal(size=(4, 6)), 3, axis=0),  # duplicated points
        rng.normal(size=(130, 7)) * 1e160,            # huge: the squares overflow (was: key of inf)
        rng.normal(size=(33, 2)) * 1e-170,            # tiny: the squares underflow (was: key of 0)
        rng.normal(size=(17, 3)) * 1e-160,            # subnormal squares
        np.zeros((5, 3)),
        rng.normal(size=(300, 16)).astype(np.float32),
    ]


# computed by the per-cloud code of sktopo/_seeding.py before the batched keys (commit 90b142d);
# clouds 9-11 (distances from the first point peaking outside [2**-60, 2**60]) re-keyed
# by issue 22, item 11: their old keys were those of inf (the squares overflowed, the same
# for every cloud of 130 points), of 0 (underflowed) and of a few subnormal bits; they are
# now the keys of their unit-radius copies. The other eleven clouds keep their seeds.
_FIXED_SEEDS = {
    0: [1476818339, 946438607, 1476818339, 4158571546, 3559261643, 2300119462, 919927136,
        2876928163, 2251115087, 1586548815, 614120549, 3211216951, 1430683695, 3548730189],
    11: [3175096555, 516514622, 3175096555, 3540445542, 3606264486, 4260826656, 147772747,
         751382446, 2298563134, 2280291636, 2193249912, 2254214769, 3789678484, 474623547],
    2**33 + 5: [3989499602, 2488350795, 3989499602, 3317879489, 314431548, 3477020961,
                3135601128, 3359704031, 303717372, 4213585338, 4002143166, 3851371655,
                1381587575, 1951846421],
    -7: [3910444507, 1905028229, 3910444507, 2014413943, 4266715549, 3533430299, 2824319444,
         4004455140, 3636376457, 2979717012, 1024565950, 928334559, 1421166263, 3833302845],
    2**64 + 9: [2011628461, 2140602653, 2011628461, 623248513, 3620023974, 2660351313,
                2994358645, 2685548450, 4046558209, 3614311180, 4034657052, 2694288116,
                1105919573, 2918356940],
}
_FIXED_RANDOM_STATE_3 = [400032482, 2425330965, 400032482, 654582387, 3473606053, 2579327934,
                         2377791250, 3728074629, 1801934796, 2609317392, 2723426721,
                         3754120038, 3271910746, 3079869953]


@pytest.mark.parametrize("random_state", list(_FIXED_SEEDS))
def test_the_seeds_of_fixed_clouds_never_change(random_state):
    clouds = _fixed_clouds()
    assert cloud_seeds(random_state, clouds) == _FIXED_SEEDS[random_state]
    # one at a time, reversed, through a seeder: the same seed per cloud
    assert [cloud_seeds(random_state, [c])[0] for c in clouds] == _FIXED_SEEDS[random_state]
    assert CloudSeeder(random_state)(clouds[::-1]) == _FIXED_SEEDS[random_state][::-1]


def test_the_seeds_of_a_random_state_instance_and_other_metrics_never_change():
    clouds = _fixed_clouds()
    assert cloud_seeds(np.random.RandomState(3), clouds) == _FIXED_RANDOM_STATE_3
    X = clouds[4]
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    assert cloud_seeds(5, [D], metric="precomputed") == cloud_seeds(5, [X]) == [126463474]
    assert cloud_seeds(5, clouds[3:5], metric="manhattan") == [3070891191, 2695468299]


def _many_clouds(rng):
    clouds = []
    for n_points, n_features in [(1, 1), (1, 7), (2, 1), (3, 2), (7, 3), (8, 5), (9, 1),
                                 (16, 16), (17, 33), (64, 384), (127, 9), (128, 4), (129, 3),
                                 (300, 2), (1000, 3)]:
        for _ in range(4):
            scale = 10.0 ** rng.integers(-8, 9)
            clouds.append(rng.normal(size=(n_points, n_features)) * scale + rng.normal())
    # many of one shape: several buffers of content_keys' batches, and a partial last one
    step = _seeding._KEY_ENTRIES // (40 * 24)
    clouds += [rng.normal(size=(40, 24)) for _ in range(2 * step + 3)]
    clouds += [rng.normal(size=(64, 48)).astype(np.float32) for _ in range(30)]
    clouds += [rng.integers(-1000, 1000, size=(30, 6)) for _ in range(10)]            # int64
    clouds += [rng.integers(0, 2**62, size=(10, 3), dtype=np.uint64) for _ in range(5)]
    clouds += [rng.integers(-2**62, 2**62, size=(10, 3)) for _ in range(5)]            # > 2**53
    clouds += [np.repeat(rng.normal(size=(5, 4)), 4, axis=0) for _ in range(5)]       # duplicates
    clouds += [rng.normal(size=(20, 3)) * 1e160, rng.normal(size=(20, 3)) * 1e-160,
               rng.normal(size=(20, 3)) * 1e-170, np.zeros((6, 2)), np.full((6, 2), 1e300)]
    # not C-contiguous: the per-cloud path (its einsum sums in another order)
    clouds += [np.asfortranarray(rng.normal(size=(50, 20))), rng.normal(size=(30, 40))[:, ::2],
               rng.normal(size=(40, 30)).T, rng.normal(size=(12, 5)).astype(np.float16)]
    stacked = rng.normal(size=(25, 32, 10))  # the cells of a 3-D array collection are views
    clouds += list(stacked)
    return clouds


@pytest.mark.parametrize("seed", [0, 1])
def test_batched_keys_and_seeds_are_the_per_cloud_formula(seed):
    rng = np.random.default_rng(seed)
    clouds = _many_clouds(rng)
    order = rng.permutation(len(clouds))
    clouds = [clouds[i] for i in order]
    expected_keys = [_reference_key(c) for c in clouds]
    assert content_keys(clouds) == expected_keys
    assert [content_key(c) for c in clouds] == expected_keys
    for random_state in (0, 12345, 2**40 + 1, -1, 2**64 - 1):
        assert cloud_seeds(random_state, clouds) == [_reference_seed(random_state, c)
                                                     for c in clouds]


def test_keys_of_distance_matrices_and_other_metrics_are_the_per_cloud_formula():
    rng = np.random.default_rng(3)
    clouds = [rng.normal(size=(n, 4)) for n in (1, 5, 30, 30)]
    matrices = [np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1)) for X in clouds]
    assert content_keys(matrices, metric="precomputed") == [
        _reference_key(D, "precomputed") for D in matrices]
    assert cloud_seeds(7, matrices, metric="precomputed") == [
        _reference_seed(7, D, "precomputed") for D in matrices]


def test_the_vectorised_seed_sequence_is_numpys():
    rng = np.random.default_rng(0)
    specials = [0, 1, 2, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**53 + 1, 2**63, 2**64 - 1]
    roots = specials + [int(r) for r in rng.integers(0, 2**63, size=20, dtype=np.int64)] + [
        int(r) for r in rng.integers(0, 2**32, size=10, dtype=np.int64)]
    keys = specials + [int(k) for k in rng.integers(0, 2**64 - 1, size=300, dtype=np.uint64)] + [
        int(k) for k in rng.integers(0, 2**32, size=100, dtype=np.int64)]
    for root in roots:
        expected = [int(np.random.SeedSequence([root, key]).generate_state(1)[0]) for key in keys]
        assert seeds_of_keys(root, keys) == expected
    # the root is taken modulo 2**64, as cloud_seeds always did
    assert seeds_of_keys(-5, keys[:20]) == seeds_of_keys(2**64 - 5, keys[:20])
    assert seeds_of_keys(3, []) == []


def test_a_seeder_reads_the_random_state_once():
    clouds = _fixed_clouds()
    seeder = CloudSeeder(np.random.RandomState(3))
    assert seeder(clouds) == _FIXED_RANDOM_STATE_3
    assert seeder(clouds[2:]) == _FIXED_RANDOM_STATE_3[2:]  # no second draw
    fresh = CloudSeeder(None)
    assert fresh(clouds[:2]) == fresh(clouds[:2])
    assert as_seeder(seeder) is seeder and seeder.take([0, 2]) is seeder
    assert as_seeder(seeder)(clouds[:1]) == _FIXED_RANDOM_STATE_3[:1]
    assert as_seeder([4, 5])(clouds[:2]) == [4, 5]
    assert root_entropy(7) == 7


def test_seeded_generators_are_default_rng():
    rng = np.random.default_rng(5)
    seeds = [0, 1, 2**31, 2**32 - 1, 2**32, 2**63 + 11, 2**64 - 1] + [
        int(s) for s in rng.integers(0, 2**32, size=500)]
    assert _seeding._pcg64_states(seeds) == [np.random.default_rng(s).bit_generator.state
                                             for s in seeds]
    rows = np.tile(np.arange(64), (6, 1))
    for seed, generator in zip(seeds, _seeding.seeded_generators(seeds)):
        expected = np.random.default_rng(seed)
        np.testing.assert_array_equal(generator.permuted(rows, axis=1),
                                      expected.permuted(rows, axis=1))
        assert generator.random() == expected.random()
    assert list(_seeding.seeded_generators([])) == []


def test_seeded_generators_fall_back_to_default_rng(monkeypatch):
    monkeypatch.setattr(_seeding, "_FAST_GENERATORS", [False])
    generators = list(_seeding.seeded_generators([3, 4]))
    assert generators[0] is not generators[1]
    assert generators[0].random() == np.random.default_rng(3).random()


# ---------------------------------------------- scale-invariant keys (issue 22, item 11)
def _unit_radius(X):
    """A cloud whose largest distance from its first point is 1.0 exactly: ``X`` shrunk into
    the ball of radius 0.9 around its first point, its second point put at distance 1."""
    X = np.array(X, dtype=np.float64)
    X[0] = 0.0
    X *= 0.9 / np.sqrt(np.einsum("ij,ij->i", X, X)).max()
    X[1] = 0.0
    X[1, 0] = 1.0
    return X


# (a cloud times 1e-320 keeps about 11 bits: another key, of its own)
_FAR = [1e-310, 1e-300, 1e-170, 1e-100, 1e-25, 1e25, 1e100, 1e160, 1e200, 1e300,
        2.0 ** -1000, 2.0 ** 900]


def test_a_cloud_far_from_unit_scale_has_the_key_of_its_unit_radius_copy():
    # the key of a cloud times 1e200 depended on the scale (so PHDimension drew other
    # subsamples: 2.038 vs 1.992 on a sphere); times 1e160 every cloud of a size had the key
    # of inf, times 1e-170 the key of 0
    rng = np.random.default_rng(4)
    X = _unit_radius(rng.normal(size=(50, 3)) + 5.0)
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    unit = content_key(X)
    assert content_key(D, metric="precomputed") == unit
    for factor in _FAR:
        clouds = [X * factor, (X + 7.0) * factor, X[:, ::-1] * factor]  # translated, rotated
        assert content_keys(clouds) == [content_key(c) for c in clouds] == [unit] * 3, factor
        assert content_key(D * factor, metric="precomputed") == unit, factor
        assert (content_key(X * factor, metric="manhattan")
                == content_key(X * 1e-100, metric="manhattan")), factor
    # clouds of one size at one extreme scale no longer share a key
    others = [rng.normal(size=(33, 2)) for _ in range(3)]
    for factor in (1e-170, 1e160, 1e-310, 1e-320):
        assert len(set(content_keys([c * factor for c in others]))) == 3
    # no scale: constant clouds and single points keep their keys
    for cloud in (np.zeros((5, 3)), np.full((6, 2), 1e300), np.full((1, 4), 1e-310)):
        assert content_key(cloud) == _reference_key(cloud)


def test_clouds_near_unit_scale_keep_their_keys():
    # the keys of clouds whose distances from the first point peak in [2**-60, 2**60] are
    # those of the original formula (every seed drawn so far)
    rng = np.random.default_rng(8)
    for exponent in (-59, -30, 0, 30, 59):
        X = _unit_radius(rng.normal(size=(20, 3))) * 2.0 ** exponent
        assert content_key(X) == _original_key(X)
        assert content_key(X * 4.0) != content_key(X)  # scale-dependent, as always


# ------------------------------------------------ one type of per-cloud seeds (issue 23, item 13)
@pytest.mark.parametrize("name,params", [("TwoNN", {}), ("TwoNN", dict(max_points=20,
                                                                                random_state=1)),
                                         ("PHDimension", dict(random_state=2)),
                                         ("MLEDimension", dict(random_state=3))])
def test_every_cell_computation_is_handed_a_cloud_seeder(name, params, monkeypatch):
    """The per-cloud seeds are one type wherever they travel: the estimator's seeder (also when
    nothing is drawn: TwoNN without max_points) and each chunk's; the numbers stay."""
    import sktopo
    from sktopo.dimension import _batched

    est = getattr(sktopo, name)(**params)
    rng = np.random.default_rng(0)
    clouds = [rng.normal(size=(30, 4)) for _ in range(6)] + [rng.normal(size=(2500, 2))]
    expected = est.fit_transform(clouds)
    seen = []
    original = _batched.compute_cells

    def spy(clouds, seeds, labels, *, batch, single, **kwargs):
        seen.append(("call", type(seeds)))

        def spy_batch(clouds, seeds, labels, **settings):
            seen.append(("chunk", type(seeds)))
            return batch(clouds, seeds, labels, **settings)

        return original(clouds, seeds, labels, batch=batch and spy_batch, single=single,
                        **kwargs)

    monkeypatch.setattr(_batched, "compute_cells", spy)
    np.testing.assert_array_equal(est.fit_transform(clouds), expected)
    assert {where for where, _ in seen} == {"call", "chunk"}
    assert all(issubclass(kind, CloudSeeder) for _, kind in seen), seen


def test_seeds_given_by_position_are_a_seeder():
    clouds = _fixed_clouds()[:4]
    given = CloudSeeder.given([4, 5, None, 7])
    assert as_seeder([4, 5, None, 7])(clouds) == given(clouds) == [4, 5, None, 7]
    assert given.take([3, 1])(clouds[:2]) == [7, 5]
    assert given.seeds_of(given.keys(clouds[:2]) + given.keys(clouds[2:])) == [4, 5, None, 7]
    with pytest.raises(ValueError, match="4 seeds given for 2 clouds"):
        given(clouds[:2])
    seeder = CloudSeeder(3)
    assert seeder.take([1, 2])(clouds[1:3]) == seeder(clouds)[1:3]
