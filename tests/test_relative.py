"""Quotient (relative) persistence: the metric construction, ripser equality, the circle."""

import numpy as np
import pytest
from ripser import ripser

from sktopo.datasets import make_circle
from sktopo.nn.random_networks import random_relu_mlp
from sktopo.topology.relative import (
    QuotientPersistence,
    quotient_distances,
    quotient_persistence,
    relative_homology_table,
)


def line_distances(x):
    x = np.asarray(x, dtype=float)
    return np.abs(x[:, None] - x[None, :])


def test_quotient_distances_by_hand():
    D = line_distances([0, 1, 2, 3, 10])
    # Points 0 and 3 collapse: 1 -> {0, 3} is 1, 2 -> {0, 3} is 1, 10 -> {0, 3} is 7.
    Q, nodes = quotient_distances(D, [0, -1, -1, 0, -1])
    np.testing.assert_array_equal(nodes, [0, 1, 2, 0, 3])
    np.testing.assert_allclose(Q, [[0, 1, 1, 7], [1, 0, 1, 8], [1, 1, 0, 8], [7, 8, 8, 0]])
    # Two separate regions vs everything collapsed together.
    Q2, nodes2 = quotient_distances(D, [0, 0, -1, 1, 1], collapse="region")
    np.testing.assert_allclose(Q2, [[0, 1, 2], [1, 0, 1], [2, 1, 0]])
    Q3, _ = quotient_distances(D, [0, 0, -1, 1, 1], collapse="all")
    np.testing.assert_allclose(Q3, [[0, 1], [1, 0]])
    # No labels: the metric is unchanged; duplicate points (zero distances) stay at 0.
    D4 = line_distances([0, 0, 1])
    np.testing.assert_allclose(quotient_distances(D4, [-1, -1, -1])[0], D4)


def test_shortest_paths_restore_the_triangle_inequality():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    labels = np.where(rng.random(40) < 0.5, rng.integers(0, 4, 40), -1)
    Q, _ = quotient_distances(D, labels)
    assert (Q[:, :, None] <= Q[:, None, :] + Q.T[None, :, :] + 1e-12).all()
    assert np.allclose(Q, Q.T) and (np.diag(Q) == 0).all()


def test_quotient_persistence_equals_ripser_on_quotient_metric():
    X = 2 * make_circle(50, random_state=1)
    labels = np.full(50, -1)
    labels[:10] = 0
    Q, _ = quotient_distances(np.linalg.norm(X[:, None] - X[None], axis=-1), labels)
    want = ripser(Q, distance_matrix=True, maxdim=1)["dgms"]
    got = quotient_persistence(X, labels)
    for q in (0, 1):
        np.testing.assert_allclose(got[q], want[q][np.lexsort((want[q][:, 1], want[q][:, 0]))])


def test_bad_quotient_inputs():
    with pytest.raises(ValueError, match="square"):
        quotient_distances(np.ones((2, 3)), [0, 0])
    with pytest.raises(ValueError, match="one entry per point"):
        quotient_distances(np.zeros((2, 2)), [0])
    with pytest.raises(ValueError, match="collapse"):
        quotient_distances(np.zeros((2, 2)), [0, 0], collapse="some")


def test_circle_h1_survives_a_wide_net_and_dies_in_a_rank_one_net():
    X = 3 * make_circle(80, random_state=0)
    wide = QuotientPersistence(random_relu_mlp(2, [100, 100], 2, random_state=0)).fit(X)
    table = wide.table_
    assert list(table.index) == ["M", "M/A", "f(M)"]
    assert table.loc["M/A", "frac_low_rank"] == 0.0
    assert table.loc["M/A", "H1_bars"] == 1 and table.loc["M/A", "H1_max_persistence"] > 3.5
    assert table.loc["M/A", "H1_bottleneck_to_M"] == 0.0

    narrow = QuotientPersistence(random_relu_mlp(2, [1], 2, random_state=0)).fit(X)
    table = narrow.table_
    assert table.loc["M/A", "frac_low_rank"] == 1.0
    assert table.loc["M/A", "H1_bars"] == 0
    # The lost circle is at bottleneck distance half its persistence from M.
    assert table.loc["M/A", "H1_bottleneck_to_M"] == pytest.approx(
        table.loc["M", "H1_max_persistence"] / 2)
    assert table.loc["f(M)", "H1_bars"] == 0  # a 1-D image cannot carry the circle
    assert narrow.in_low_rank_.all() and narrow.quotient_nodes_.max() <= 1


def test_layer_and_collapse_options():
    X = 3 * make_circle(60, random_state=0)
    model = random_relu_mlp(2, [3, 3], 1, random_state=2)
    a = QuotientPersistence(model, layer=0, collapse="all").fit(X)
    b = QuotientPersistence(model, layer="3").fit(X)
    assert a.table_.loc["M/A", "n_points"] <= 60 - a.in_low_rank_.sum() + 1
    assert b.ranks_.layer_names_ == ["1", "3"]
    with pytest.raises(ValueError, match="not a ReLU layer"):
        QuotientPersistence(model, layer="4").fit(X)
    with pytest.raises(ValueError, match="out of range"):
        QuotientPersistence(model, layer=5).fit(X)
    table = relative_homology_table(model, X, homology_dimensions=(1,))
    assert "H1_wasserstein_to_M" in table.columns and "H0_bars" not in table.columns


def test_everything_collapsed_to_one_point():
    X = 3 * make_circle(30, random_state=0)
    qp = QuotientPersistence(random_relu_mlp(2, [1], random_state=0), collapse="all").fit(X)
    assert qp.table_.loc["M/A", "n_points"] == 1
    assert qp.table_.loc["M/A", "H0_bars"] == 1 and qp.table_.loc["M/A", "H1_bars"] == 0


def test_duplicate_points_add_no_bars():
    # many features: sklearn's matrix-product distances leave ~1e-7 between
    # identical points, which would be tiny H0 bars
    rng = np.random.default_rng(0)
    X = 3 * rng.normal(size=(40, 30)) + 5
    X_dup = np.vstack([X, X[:10]])
    diagram = quotient_persistence(X_dup, -np.ones(len(X_dup)), homology_dimensions=(0,))
    assert len(diagram[0]) == len(X)
