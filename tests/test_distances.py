"""Bottleneck and Wasserstein distances: hand cases, brute force, persim, DiagramDistance."""

import itertools
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from sktopo import Diagram, DiagramDistance, diagram_distance

INF = np.inf


def _ripser_diagram(X, maxdim=1):
    import ripser

    return Diagram(ripser.ripser(X, maxdim=maxdim)["dgms"], n_points=len(X))


def _brute_force(a, b, metric, order=1):
    """Best matching by enumerating every bijection of the diagonal-augmented diagrams."""
    a, b = np.asarray(a, float).reshape(-1, 2), np.asarray(b, float).reshape(-1, 2)
    m, n = len(a), len(b)
    # slots 0..n-1: points of b; n..n+m-1: the diagonal copies of a's points
    # rows 0..m-1: points of a; m..m+n-1: the diagonal copies of b's points
    def cost(i, j):
        if i < m and j < n:
            diff = np.abs(a[i] - b[j])
            return diff.max() if metric == "bottleneck" else np.sqrt((diff ** 2).sum())
        if i < m and j == n + i:
            return (a[i, 1] - a[i, 0]) / (2 if metric == "bottleneck" else np.sqrt(2))
        if i >= m and j == i - m:
            return (b[j, 1] - b[j, 0]) / (2 if metric == "bottleneck" else np.sqrt(2))
        if i >= m and j >= n:
            return 0.0
        return INF

    best = INF
    for perm in itertools.permutations(range(m + n)):
        costs = [cost(i, j) for i, j in enumerate(perm)]
        if metric == "bottleneck":
            value = max(costs) if costs else 0.0
        else:
            value = sum(c ** order for c in costs) ** (1 / order)
        best = min(best, value)
    return best


def test_hand_cases():
    a, b = Diagram({1: [[0, 2]]}), Diagram({1: [[0, 3]]})
    assert diagram_distance(a, b, metric="bottleneck") == pytest.approx(1.0)
    assert diagram_distance(a, b, metric="wasserstein") == pytest.approx(1.0)
    empty = Diagram({1: []})
    assert diagram_distance(a, empty, metric="bottleneck") == pytest.approx(1.0)
    assert diagram_distance(a, empty, metric="wasserstein") == pytest.approx(2 / np.sqrt(2))
    assert diagram_distance(empty, empty) == 0.0
    # far-apart short bars: both go to the diagonal rather than to each other
    c, d = Diagram({1: [[0, 0.2]]}), Diagram({1: [[5, 5.4]]})
    assert diagram_distance(c, d, metric="bottleneck") == pytest.approx(0.2)
    assert diagram_distance(c, d, metric="wasserstein") == pytest.approx(0.6 / np.sqrt(2))
    assert diagram_distance(c, d, metric="wasserstein", order=2) == pytest.approx(
        np.sqrt(0.02 + 0.08))
    # arrays are accepted as bars of one dimension
    assert diagram_distance([[0, 2]], [[0, 3]], metric="bottleneck") == pytest.approx(1.0)


@pytest.mark.parametrize("metric,order", [("bottleneck", 1), ("wasserstein", 1), ("wasserstein", 2),
                                          ("wasserstein", 3.5)])
def test_exact_against_brute_force(rng, metric, order):
    for _ in range(15):
        m, n = rng.integers(0, 4, size=2)
        a = np.sort(rng.uniform(0, 2, size=(m, 2)), axis=1)
        b = np.sort(rng.uniform(0, 2, size=(n, 2)), axis=1)
        expected = _brute_force(a, b, metric, order)
        got = diagram_distance(a if m else np.empty((0, 2)), b if n else np.empty((0, 2)),
                               metric=metric, order=order)
        assert got == pytest.approx(expected, abs=1e-12)


def test_matches_persim(rng):
    import persim

    diagrams = [_ripser_diagram(rng.normal(size=(40, 2))) for _ in range(3)]
    for a, b in itertools.combinations(diagrams, 2):
        for q in (0, 1):
            x, y = a.finite(q), b.finite(q)
            assert diagram_distance(a, b, metric="bottleneck", homology_dimensions=q) == pytest.approx(persim.bottleneck(x, y))
            assert diagram_distance(a, b, metric="wasserstein", homology_dimensions=q) == pytest.approx(persim.wasserstein(x, y))


def test_infinite_bar_policy():
    a = Diagram({0: [[0, 1], [0, INF]]})
    b = Diagram({0: [[0, 1]]})
    # threshold inf: the infinite bar is left out, so the diagrams agree
    assert diagram_distance(a, b, metric="bottleneck", homology_dimensions=0) == 0.0
    # a finite threshold clips it: (0, 3) vs diagonal costs 1.5
    a3 = Diagram({0: [[0, 1], [0, INF]]}, threshold=3.0)
    assert diagram_distance(a3, b, metric="bottleneck", homology_dimensions=0) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="non-finite"):
        diagram_distance([[0, INF]], [[0, 1]])


def test_distance_table(rng):
    diagrams = pd.Series(
        [_ripser_diagram(rng.normal(size=(25, 2))) for _ in range(4)],
        index=pd.Index(["l1", "l2", "l3", "l4"], name="layer"),
    )
    est = DiagramDistance(metric="wasserstein")
    square = est.fit_transform(diagrams)
    assert square.shape == (4, 4)
    np.testing.assert_allclose(square, square.T)
    np.testing.assert_allclose(np.diag(square), 0)
    np.testing.assert_allclose(est.transform(diagrams), square, atol=1e-10)
    assert list(est.get_feature_names_out()) == [f"wasserstein_distance_to_l{k}" for k in range(1, 5)]
    assert est.homology_dimensions_ == (0, 1)
    for i, j in [(0, 1), (2, 3)]:
        expected = sum(diagram_distance(diagrams.iloc[i], diagrams.iloc[j], metric="wasserstein", homology_dimensions=q)
                       for q in (0, 1))
        assert square[i, j] == pytest.approx(expected)
    # max over dimensions, and one dimension only
    worst = DiagramDistance(combine="max").fit_transform(diagrams)
    h1 = DiagramDistance(homology_dimensions=1).fit_transform(diagrams)
    h0 = DiagramDistance(homology_dimensions=[0]).fit_transform(diagrams)
    np.testing.assert_allclose(worst, np.maximum(h0, h1))
    # transform of new rows: distances to the fitted rows
    new = [_ripser_diagram(rng.normal(size=(25, 2)))]
    row = est.transform(new)
    assert row.shape == (1, 4)
    assert row[0, 2] == pytest.approx(sum(
        diagram_distance(new[0], diagrams.iloc[2], metric="wasserstein", homology_dimensions=q) for q in (0, 1)))


def test_n_jobs_gives_same_numbers(rng):
    diagrams = [_ripser_diagram(rng.normal(size=(20, 2))) for _ in range(5)]
    one = DiagramDistance(n_jobs=1).fit_transform(diagrams)
    # threads: the same batching as processes without their start-up cost
    with joblib.parallel_config(backend="threading"):
        two = DiagramDistance(n_jobs=2, verbose=1).fit_transform(diagrams)
    np.testing.assert_array_equal(one, two)


@pytest.mark.slow
def test_n_jobs_processes(rng):
    diagrams = [_ripser_diagram(rng.normal(size=(20, 2))) for _ in range(4)]
    np.testing.assert_array_equal(DiagramDistance(n_jobs=1).fit_transform(diagrams),
                                  DiagramDistance(n_jobs=2).fit_transform(diagrams))


def test_frame_and_multiindex_names(rng):
    d = [_ripser_diagram(rng.normal(size=(15, 2))) for _ in range(4)]
    index = pd.MultiIndex.from_tuples([("mlp", "fc1"), ("cnn", "conv1")], names=["model", "layer"])
    frame = pd.DataFrame({"train": d[:2], "test": d[2:]}, index=index)
    est = DiagramDistance().fit(frame)
    assert list(est.get_feature_names_out()) == [
        "train__bottleneck_distance_to_mlp/fc1", "train__bottleneck_distance_to_cnn/conv1",
        "test__bottleneck_distance_to_mlp/fc1", "test__bottleneck_distance_to_cnn/conv1"]
    table = est.transform(frame)
    assert table.shape == (2, 4)
    # each column is compared with the same column of the fitted rows
    assert table[0, 1] == pytest.approx(
        sum(diagram_distance(d[0], d[1], metric="bottleneck", homology_dimensions=q) for q in (0, 1)))
    assert table[1, 2] == pytest.approx(
        sum(diagram_distance(d[3], d[2], metric="bottleneck", homology_dimensions=q) for q in (0, 1)))
    np.testing.assert_allclose(clone(est).fit_transform(frame), table)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DiagramDistance().fit([d[0], d[1]])  # list labels 0, 1: unique, no warning
    with pytest.warns(UserWarning, match="not unique"):
        DiagramDistance().fit(pd.Series(d[:2], index=["x", "x"]))


def test_bad_inputs():
    d = Diagram({0: [[0, 1]], 1: []})
    with pytest.raises(ValueError):
        DiagramDistance(metric="euclidean").fit([d])
    with pytest.raises(ValueError):
        DiagramDistance(order=0.5).fit([d])
    with pytest.raises(ValueError):
        DiagramDistance(combine="mean").fit([d])
    with pytest.raises(ValueError, match="metric"):
        diagram_distance(d, d, metric="euclidean")
    with pytest.raises(ValueError, match="order"):
        diagram_distance(d, d, order=0)
    with pytest.raises(TypeError, match=r"row 'b'.*not a Diagram"):
        DiagramDistance().fit(pd.Series({"a": d, "b": np.eye(3)}))
    est = DiagramDistance(homology_dimensions=(0, 1)).fit([d])
    with pytest.raises(ValueError, match="no bars of dimension"):
        est.transform([Diagram({0: [[0, 1]]})])


def test_bottleneck_with_ties_matches_persim(rng):
    """Rounded bars (many equal costs) and equal births (H0-like), against persim."""
    import persim

    for trial in range(60):
        m, n = rng.integers(1, 10, size=2)
        a = np.round(np.sort(rng.uniform(0, 2, size=(m, 2)), axis=1), 1)
        b = np.round(np.sort(rng.uniform(0, 2, size=(n, 2)), axis=1), 1)
        if trial % 2:
            a[:, 0] = b[:, 0] = 0.0
        assert diagram_distance(a, b, metric="bottleneck") == pytest.approx(persim.bottleneck(a, b))


@pytest.mark.parametrize("metric, order", [("wasserstein", 1), ("wasserstein", 1.5), ("bottleneck", 1)])
def test_raw_bars_below_the_diagonal_are_refused(metric, order):
    # was -0.354 (order 1) and NaN (order 1.5): a negative cost to the diagonal
    with pytest.raises(ValueError, match=r"the bars of a include a bar that dies before it is born"):
        diagram_distance([[1.0, 0.5]], np.empty((0, 2)), metric=metric, order=order)
    with pytest.raises(ValueError, match=r"the bars of b include a bar born at -inf"):
        diagram_distance([[0.0, 1.0]], [[-np.inf, 1.0]], metric=metric, order=order)


def test_function_and_estimator_share_names_and_defaults(rng):
    import inspect

    function = inspect.signature(diagram_distance).parameters
    estimator = DiagramDistance().get_params()
    for name in ("metric", "homology_dimensions", "order", "combine"):
        assert function[name].default == estimator[name], name
    d = [_ripser_diagram(rng.normal(size=(20, 2))) for _ in range(2)]
    table = DiagramDistance().fit_transform(d)
    assert table[0, 1] == pytest.approx(diagram_distance(d[0], d[1]))  # H0 + H1, bottleneck
    worst = DiagramDistance(metric="wasserstein", order=2, combine="max").fit_transform(d)
    assert worst[0, 1] == pytest.approx(
        diagram_distance(d[0], d[1], metric="wasserstein", order=2, combine="max"))
    # the older spelling q still works
    assert diagram_distance(d[0], d[1], q=1) == diagram_distance(d[0], d[1], homology_dimensions=1)
    with pytest.raises(ValueError, match="no bars of dimension 2"):
        diagram_distance(d[0], d[1], homology_dimensions=2)


def test_memory_limit_refuses_huge_pairs_with_the_figure():
    big = Diagram({0: np.column_stack([np.zeros(3000), np.linspace(1, 2, 3000)])})
    small = Diagram({0: [[0.0, 1.0]]})
    est = DiagramDistance(metric="wasserstein", memory_limit="10MiB")
    with pytest.raises(MemoryError, match=r"3000 and 3000 H0 bars would need about .* above the memory limit of 10"):
        est.fit_transform([big, big])
    # the check counts the pair actually compared: small pairs pass
    assert est.fit_transform([small, small]).shape == (2, 2)
    assert DiagramDistance(memory_limit=None).fit([big]).memory_limit_ is None


@pytest.mark.parametrize("metric, order", [("bottleneck", 1), ("wasserstein", 1),
                                           ("wasserstein", 2), ("sliced_wasserstein", 1),
                                           ("sliced_wasserstein_kernel", 1)])
@pytest.mark.parametrize("factor", [1e-200, 1e200, 1.7e308 / 4])
def test_extreme_scales_give_scaled_distances(metric, order, factor):
    # squared costs underflowed (Wasserstein 0 at 1e-200) or overflowed (4.24 for 2.18 at
    # 1e200; inf for deaths near 1.7e308): the bars are multiplied by a power of two first
    a = Diagram({0: [[0, 1.0], [0.5, 3.0]], 1: [[0.25, 0.75]]})
    b = Diagram({0: [[0, 2.0], [1.0, 1.5]], 1: []})
    big_a, big_b = (Diagram({q: d.finite(q) * factor for q in d.dims}) for d in (a, b))
    kernel = metric == "sliced_wasserstein_kernel"
    params = dict(metric=metric, order=order, bandwidth=np.sqrt(factor) if kernel else 1.0)
    unit = diagram_distance(a, b, **{**params, "bandwidth": 1.0})
    got = diagram_distance(big_a, big_b, **params)
    assert got == pytest.approx(unit if kernel else unit * factor, rel=1e-12, abs=0)
    table = DiagramDistance(**params).fit_transform([big_a, big_b])
    assert table[0, 1] == pytest.approx(got, rel=1e-12, abs=0)
    assert DiagramDistance(**params).fit([big_b]).transform([big_a])[0, 0] == pytest.approx(
        got, rel=1e-12, abs=0)
