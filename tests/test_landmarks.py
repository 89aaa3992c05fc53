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
