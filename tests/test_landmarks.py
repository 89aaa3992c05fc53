"""Greedy max-min landmarks: covering radius, seeding, edge cases."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from sktopo.datasets import make_circle
from sktopo.topology.landmarks import greedy_landmarks


def brute_covering_radius(X, idx, metric="euclidean"):
    return cdist(X, X[idx], metric=metric).min(axis=1).max()


@pytest.mark.parametrize("m", [1, 5, 40])
def test_covering_radius_matches_brute_force(m):
    X = np.random.default_rng(0).normal(size=(300, 4))
    idx, eps = greedy_landmarks(X, m, random_state=0)
    assert len(idx) == m == len(set(idx.tolist()))
    assert eps == pytest.approx(brute_covering_radius(X, idx), rel=1e-9, abs=1e-12)


def test_greedy_is_max_min():
    X = np.random.default_rng(1).normal(size=(200, 3))
    idx, _ = greedy_landmarks(X, 20, random_state=3)
    D = cdist(X, X)
    for k in range(1, 20):
        nearest = D[:, idx[:k]].min(axis=1)
        assert nearest[idx[k]] == pytest.approx(nearest.max())


def test_seeded():
    X = make_circle(300, noise=0.05, random_state=0)
    a = greedy_landmarks(X, 30, random_state=7)
    b = greedy_landmarks(X, 30, random_state=7)
    c = greedy_landmarks(X, 30, random_state=8)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    assert not np.array_equal(a[0], c[0])


def test_all_points_when_enough_landmarks():
    X = np.random.default_rng(2).normal(size=(50, 2))
    idx, eps = greedy_landmarks(X, 80, random_state=0)
    assert sorted(idx.tolist()) == list(range(50))
    assert eps == 0.0


def test_duplicates_never_pick_a_landmark_twice():
    X = np.vstack([np.zeros((20, 3)), np.ones((20, 3))])
    idx, eps = greedy_landmarks(X, 5, random_state=0)
    assert len(set(idx.tolist())) == 5
    assert eps == 0.0


def test_precomputed_and_metric_agree():
    X = np.random.default_rng(4).normal(size=(120, 5))
    a = greedy_landmarks(X, 15, random_state=1)
    b = greedy_landmarks(cdist(X, X), 15, metric="precomputed", random_state=1)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == pytest.approx(b[1])
    idx, eps = greedy_landmarks(X, 15, metric="manhattan", random_state=1)
    assert eps == pytest.approx(brute_covering_radius(X, idx, "cityblock"))


def test_near_points_far_from_the_origin_use_the_refinement():
    # |x|^2 + |y|^2 - 2 x.y leaves ~1e-4 of noise at norms ~1e6: once every distinct
    # point is a landmark the covering radius must be exactly 0 (duplicates at 0)
    grid = np.array([[i, j, 0.0] for i in range(4) for j in range(4)]) * 1e-3
    X = np.vstack([grid, grid[:5]]) + 1e6
    idx, eps = greedy_landmarks(X, 16, random_state=0)
    assert eps == 0.0
    assert len(set(map(tuple, X[idx]))) == 16  # no duplicate picked before every distinct point
    # fewer landmarks: the radius is the true one (was 0.0 for a true 0.003)
    idx, eps = greedy_landmarks(X, 6, random_state=0)
    assert eps == pytest.approx(cdist(X, X[idx]).min(axis=1).max(), rel=1e-6)
    assert eps > 5e-4


def test_precomputed_matrix_is_not_modified():
    X = np.random.default_rng(0).normal(size=(50, 3))
    D = cdist(X, X)
    before = D.copy()
    greedy_landmarks(D, 10, metric="precomputed", random_state=0)
    np.testing.assert_array_equal(D, before)


@pytest.mark.parametrize("factor", [1e200, 1e-300])
def test_extreme_scales(factor):
    X = np.random.default_rng(0).normal(size=(60, 3))
    idx, eps = greedy_landmarks(X, 10, random_state=0)
    idx_s, eps_s = greedy_landmarks(X * factor, 10, random_state=0)
    np.testing.assert_array_equal(idx, idx_s)
    assert eps_s / factor == pytest.approx(eps, rel=1e-9)
