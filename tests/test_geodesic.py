"""Geodesic kNN distances: against arc lengths and a brute-force Floyd-Warshall."""

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline

from sktopo import GeodesicDistances, PersistenceDiagram, geodesic_distances


def _floyd_warshall(X, k):
    """Independent reference: dense kNN graph (loops, no scipy.sparse), then O(n^3) relaxation."""
    n = len(X)
    full = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    W = np.full((n, n), np.inf)
    for i in range(n):
        order = sorted((full[i, j], j) for j in range(n) if j != i)
        for dist, j in order[:k]:
            W[i, j] = W[j, i] = dist
    np.fill_diagonal(W, 0.0)
    for m in range(n):
        W = np.minimum(W, W[:, m:m + 1] + W[m:m + 1, :])
    return W


@pytest.mark.parametrize("k", [3, 6])
def test_equals_floyd_warshall(k):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    D = geodesic_distances(X, n_neighbors=k)
    np.testing.assert_allclose(D, _floyd_warshall(X, k), rtol=1e-12, atol=1e-12)
    assert np.allclose(D, D.T) and np.all(np.diag(D) == 0)


def test_circle_approaches_arc_length():
    # unit circle: the geodesic distance between angles s and t is the shorter arc
    rng = np.random.default_rng(1)
    # jittered even angles: a uniform draw leaves gaps the kNN graph does not bridge
    t = (np.arange(400) + rng.uniform(-0.3, 0.3, 400)) * 2 * np.pi / 400
    X = np.c_[np.cos(t), np.sin(t)]
    D = geodesic_distances(X, n_neighbors=6)
    gap = np.abs(t[:, None] - t[None, :])
    arc = np.minimum(gap, 2 * np.pi - gap)
    # chords under-estimate the arc by at most arc * (1 - sinc) for short steps: < 0.1% here
    assert np.max(np.abs(D - arc)) < 2e-3 * np.pi
    # and the Euclidean chord is far off for opposite points (2 against pi)
    assert D.max() == pytest.approx(np.pi, rel=2e-3)


def test_disconnected_graph_is_an_error_naming_the_cloud():
    two_blobs = np.r_[np.zeros((5, 2)) + np.arange(5)[:, None] * 0.01,
                      10 + np.arange(5)[:, None] * 0.01 * np.ones((5, 2))]
    with pytest.raises(ValueError, match=r"geodesic_distances: .* 2 connected components.*"
                                         r"larger n_neighbors"):
        geodesic_distances(two_blobs, n_neighbors=3)
    series = pd.Series([np.random.default_rng(0).normal(size=(20, 2)), two_blobs],
                       index=["ok", "split"])
    with pytest.raises(ValueError, match=r"GeodesicDistances: .*row 'split'.*larger n_neighbors"):
        GeodesicDistances(n_neighbors=3).fit_transform(series)
    assert np.isfinite(geodesic_distances(two_blobs, n_neighbors=5)).all()


def test_duplicates_and_tiny_clouds():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    D = geodesic_distances(X, n_neighbors=1 + 1)
    assert D[0, 1] == 0.0 and D[0, 3] == pytest.approx(2.0)
    assert geodesic_distances(np.ones((1, 3))).shape == (1, 1)
    with pytest.raises(ValueError, match="n_neighbors must be an integer"):
        geodesic_distances(X, n_neighbors=0)


def test_transformer_keeps_the_container_and_feeds_precomputed_persistence():
    t = np.linspace(0, 2 * np.pi, 80, endpoint=False)
    circle = np.c_[np.cos(t), np.sin(t)]
    series = pd.Series([circle, 2 * circle], index=pd.Index(["a", "b"], name="layer"))
    out = GeodesicDistances(n_neighbors=4).fit_transform(series)
    assert isinstance(out, pd.Series) and list(out.index) == ["a", "b"]
    np.testing.assert_allclose(out["b"], 2 * out["a"])
    np.testing.assert_allclose(out["a"], geodesic_distances(circle, n_neighbors=4))
    diagrams = make_pipeline(GeodesicDistances(n_neighbors=4),
                             PersistenceDiagram((1,), metric="precomputed")).fit_transform([circle])
    bar = diagrams[0].finite(1)
    assert len(bar) == 1
    # the loop dies when the geodesic triangle's edges (a third of the perimeter) appear
    assert bar[0, 1] == pytest.approx(2 * np.pi / 3, rel=0.05)


@pytest.mark.parametrize("scale", [2.0**-990, 1e-299, 1e200, 1e300])
def test_extreme_scales_give_the_scaled_distances(scale):
    # squared distances underflow to 0 (every distance 0) or overflow to inf without the
    # power-of-two rescaling; with it the matrix is the unit one times the scale
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    circle = np.c_[np.cos(t), np.sin(t)]
    unit = geodesic_distances(circle, n_neighbors=4)
    D = GeodesicDistances(n_neighbors=4).fit_transform([circle * scale])[0]
    np.testing.assert_allclose(D / scale, unit, rtol=1e-12)
    bars = PersistenceDiagram((0, 1), metric="precomputed").fit_transform([D])[0]
    assert len(bars.finite(0)) == 59 and len(bars.finite(1)) == 1


def test_geodesic_distances_beyond_float64_are_refused():
    # a path along the cloud is longer than the largest float: refused, naming the cloud
    X = np.c_[np.array([-1.5, -0.5, 0.5, 1.5]) * 1e308, np.zeros(4)]
    with pytest.raises(ValueError, match=r"GeodesicDistances: .*row 1.*larger than the "
                                         r"largest float64.*Scale the cloud down"):
        GeodesicDistances(n_neighbors=2).fit_transform([np.eye(3), X])
