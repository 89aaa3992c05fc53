"""Sliced Wasserstein distance and kernel between persistence diagrams (issue 13.4)."""

import numpy as np
import pandas as pd
import pytest

import sktopo
from sktopo import Diagram, DiagramDistance, diagram_distance
from sktopo.tidy import parse_feature_name
from sktopo.topology.distances import _wasserstein

INF = np.inf


def _brute_sliced(a, b, n_directions):
    """The definition, one direction at a time (no padding, no batching)."""
    a, b = np.asarray(a, float).reshape(-1, 2), np.asarray(b, float).reshape(-1, 2)
    total = 0.0
    for l in range(n_directions):
        theta = -np.pi / 2 + l * np.pi / n_directions
        line = np.array([np.cos(theta), np.sin(theta)])
        diag_a = np.repeat(a.mean(axis=1, keepdims=True), 2, axis=1)  # ((b+d)/2, (b+d)/2)
        diag_b = np.repeat(b.mean(axis=1, keepdims=True), 2, axis=1)
        first = sorted([p @ line for p in a] + [p @ line for p in diag_b])
        second = sorted([p @ line for p in b] + [p @ line for p in diag_a])
        total += sum(abs(x - y) for x, y in zip(first, second))
    return total / n_directions


def _random_bars(rng, n, scale=1.0):
    birth = rng.uniform(0, scale, n)
    return np.c_[birth, birth + rng.exponential(scale, n)]


@pytest.mark.parametrize("n_directions", [1, 7, 50])
def test_matches_the_definition(n_directions):
    rng = np.random.default_rng(0)
    for m, n in [(0, 0), (0, 4), (5, 0), (1, 1), (6, 9), (20, 3)]:
        a, b = _random_bars(rng, m), _random_bars(rng, n)
        got = diagram_distance(a, b, metric="sliced_wasserstein", n_directions=n_directions)
        assert got == pytest.approx(_brute_sliced(a, b, n_directions), rel=1e-12, abs=1e-12)


def test_known_value_single_point_to_empty():
    # a point at distance s = 1/sqrt(2) from the diagonal: per direction |<x - pi(x), theta>|,
    # whose mean over many evenly spaced directions tends to s * 2 / pi
    got = diagram_distance([[0.0, 1.0]], np.empty((0, 2)), metric="sliced_wasserstein",
                           n_directions=20000)
    assert got == pytest.approx(np.sqrt(0.5) * 2 / np.pi, rel=1e-6)


def test_symmetric_zero_and_bounded_by_wasserstein():
    rng = np.random.default_rng(1)
    for _ in range(40):
        a, b = _random_bars(rng, rng.integers(0, 12)), _random_bars(rng, rng.integers(0, 12))
        ab = diagram_distance(a, b, metric="sliced_wasserstein")
        assert ab == pytest.approx(diagram_distance(b, a, metric="sliced_wasserstein"), abs=1e-12)
        assert diagram_distance(a, a, metric="sliced_wasserstein") == pytest.approx(0.0, abs=1e-12)
        # Carriere et al.: SW <= sqrt(2) * W1 (Euclidean ground metric); here in fact <= 4/pi * W1
        assert ab <= np.sqrt(2) * _wasserstein(a, b) + 1e-12


def test_kernel_and_combination_of_dimensions():
    a = Diagram({0: [[0, 1], [0, INF]], 1: [[0.2, 0.9]]}, threshold=2.0)
    b = Diagram({0: [[0, 3], [0, INF]], 1: []}, threshold=2.0)
    per_dim = [_brute_sliced(a.finite(q), b.finite(q), 50) for q in (0, 1)]  # infinite -> threshold
    assert diagram_distance(a, b, metric="sliced_wasserstein") == pytest.approx(sum(per_dim))
    assert diagram_distance(a, b, metric="sliced_wasserstein", combine="max") == pytest.approx(max(per_dim))
    kernel = diagram_distance(a, b, metric="sliced_wasserstein_kernel", bandwidth=0.7)
    assert kernel == pytest.approx(np.exp(-sum(per_dim) / (2 * 0.7 ** 2)))
    assert diagram_distance(a, a, metric="sliced_wasserstein_kernel") == 1.0
    with pytest.raises(ValueError, match="n_directions"):
        diagram_distance(a, b, metric="sliced_wasserstein", n_directions=0)
    with pytest.raises(ValueError, match="bandwidth"):
        diagram_distance(a, b, metric="sliced_wasserstein_kernel", bandwidth=0)


def _collection(n=7, seed=2):
    rng = np.random.default_rng(seed)
    sizes = [0, 1, 3, 8, 2, 15, 5, 0, 4][:n]
    return pd.Series({f"d{i}": Diagram({0: _random_bars(rng, k + 1), 1: _random_bars(rng, k)},
                                       threshold=5.0)
                      for i, k in enumerate(sizes)})


@pytest.mark.parametrize("combine", ["sum", "max"])
def test_estimator_matches_the_function_pair_by_pair(combine):
    diagrams = _collection()
    table = DiagramDistance("sliced_wasserstein", n_directions=13, combine=combine).fit_transform(diagrams)
    expected = np.array([[diagram_distance(x, y, metric="sliced_wasserstein", n_directions=13,
                                           combine=combine) for y in diagrams] for x in diagrams])
    np.testing.assert_allclose(table, expected, atol=1e-12)
    np.testing.assert_allclose(table, table.T, atol=1e-12)
    # transform of other rows against the fitted ones (no symmetric shortcut)
    est = DiagramDistance("sliced_wasserstein", n_directions=13, combine=combine).fit(diagrams[:4])
    np.testing.assert_allclose(est.transform(diagrams[4:]), expected[4:, :4], atol=1e-12)


def test_estimator_kernel_joblib_and_empty_diagrams():
    diagrams = _collection()
    empty = pd.Series({"e0": Diagram({0: [], 1: []}), "e1": Diagram({0: [], 1: []})})
    both = pd.concat([diagrams, empty])
    distances = DiagramDistance("sliced_wasserstein").fit_transform(both)
    kernel = DiagramDistance("sliced_wasserstein_kernel", bandwidth=2.0, n_jobs=2).fit_transform(both)
    np.testing.assert_allclose(kernel, np.exp(-distances / 8.0), atol=1e-12)
    np.testing.assert_allclose(np.diag(kernel), 1.0)
    assert distances[-1, -2] == 0.0  # two empty diagrams
    # the distance to an empty diagram is the diagonal-only cost
    for i, d in enumerate(both):
        assert distances[i, -1] == pytest.approx(
            sum(_brute_sliced(d.finite(q), np.empty((0, 2)), 50) for q in (0, 1)))


def test_pandas_output_names_parse_with_tidy():
    diagrams = _collection(4)
    frame = pd.DataFrame({"H1": diagrams.values, "conv1": diagrams.values[::-1]}, index=diagrams.index)
    for metric, prefix in [("sliced_wasserstein", "sliced_wasserstein_distance_to_"),
                           ("sliced_wasserstein_kernel", "sliced_wasserstein_kernel_to_")]:
        wide = DiagramDistance(metric).set_output(transform="pandas").fit_transform(frame)
        assert list(wide.columns[:2]) == [f"H1__{prefix}d0", f"H1__{prefix}d1"]
        long = sktopo.tidy(wide)
        assert len(long) == wide.size
        assert set(long["source"]) == {"H1", "conv1"}  # the layer named H1 stays a source
        assert long["homology_dimension"].isna().all()
        assert parse_feature_name(wide.columns[0]) == ("H1", None, f"{prefix}d0")
