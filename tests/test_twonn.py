"""TwoNN: Facco et al.'s fit checked by hand, accuracy on manifolds, duplicates, pandas output."""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from scipy.spatial.distance import cdist

import sktopo
from sktopo import TwoNN, twonn
from sktopo.datasets import make_closed_curve, make_sphere, make_torus
from sktopo.dimension.twonn import FEATURES


def _brute_force_twonn(X, discard_fraction):
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    two = np.sort(D, axis=1)[:, :2]
    mu = np.sort(two[:, 1] / two[:, 0])
    n = len(mu)
    keep = int(np.floor(n * (1 - discard_fraction)))
    F = np.arange(1, n + 1) / n
    x, y = np.log(mu[:keep]), -np.log(1 - F[:keep])
    return np.sum(x * y) / np.sum(x * x)


@pytest.mark.parametrize("discard", [0.1, 0.3])
def test_matches_brute_force(rng, discard):
    X = rng.normal(size=(200, 4))
    assert twonn(X, discard_fraction=discard)["twonn"] == pytest.approx(_brute_force_twonn(X, discard))


@pytest.mark.parametrize("make, truth, tol", [
    (lambda: make_sphere(2000, 2, random_state=0), 2, 0.15),
    (lambda: make_torus(2000, random_state=0), 2, 0.15),
    (lambda: make_closed_curve(2000, ambient_dim=30, random_state=0), 1, 0.1),
    (lambda: make_sphere(2000, 3, ambient_dim=20, random_state=0), 3, 0.3),
])
def test_accuracy_on_manifolds(make, truth, tol):
    result = twonn(make())
    assert result["twonn"] == pytest.approx(truth, abs=tol)
    assert result["twonn_r2"] > 0.98 and result["twonn_n_used"] == 1800


def test_discard_zero_never_gives_inf(rng):
    result = twonn(rng.normal(size=(100, 2)), discard_fraction=0.0)
    assert np.isfinite(result).all() and result["twonn_n_used"] == 99


def test_duplicates_are_removed_with_a_count():
    X = make_sphere(500, 2, random_state=0)
    X = np.vstack([X, X[:25]])
    with pytest.warns(UserWarning, match=r"row 'conv1' has 25 duplicated point\(s\) out of 525"):
        table = TwoNN().fit_transform(pd.Series([X], index=["conv1"]))
    assert table[0, 0] == pytest.approx(twonn(X[:500])["twonn"])


def test_points_at_distance_zero_under_the_metric_are_duplicates(rng):
    # A pseudo-metric: distinct points at distance 0 gave r1 = 0 and an infinite ratio.
    def first_two(a, b):
        return float(np.hypot(a[0] - b[0], a[1] - b[1]))

    X = np.column_stack([rng.uniform(size=(200, 2)), rng.normal(size=200)])
    twins = X[:20] + [0.0, 0.0, 1.0]
    with pytest.warns(UserWarning, match=r"row 0 has 20 duplicated point\(s\) out of 220"):
        result = twonn(np.vstack([X, twins]), metric=first_two)
    assert result["twonn"] == pytest.approx(twonn(X[:, :2])["twonn"])
    # cosine, the usual case: x and 2x
    sphere = make_sphere(300, 2, random_state=0)
    with pytest.warns(UserWarning, match="duplicated point"):
        result = twonn(np.vstack([sphere, 2 * sphere[:30]]), metric="cosine")
    assert np.isfinite(result).all()


def test_constant_and_tiny_clouds_give_nan_naming_the_row():
    clouds = pd.Series([make_sphere(100, 1, random_state=0), np.zeros((20, 3)), np.eye(2)],
                       index=["ok", "flat", "two"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = TwoNN().fit_transform(clouds)
    messages = [str(w.message) for w in caught]
    assert np.isfinite(table[0]).all() and np.isnan(table[1:, 0]).all()
    assert any("row 'flat'" in m and "1 distinct point" in m for m in messages)
    assert any("row 'two'" in m for m in messages)
    assert not np.isinf(table).any()


def test_precomputed_equals_euclidean(rng):
    X = rng.normal(size=(150, 3))
    X = np.vstack([X, X[:3]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = twonn(X)
        b = twonn(cdist(X, X), metric="precomputed")
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy())


def test_set_output_names_and_index():
    clouds = [make_sphere(150, 1, random_state=i) for i in range(4)]
    frame = pd.DataFrame({"l1": clouds[:2], "l2": clouds[2:]}, index=pd.Index([7, 8], name="sample"))
    out = TwoNN().set_output(transform="pandas").fit_transform(frame)
    assert list(out.columns) == [f"{c}__{f}" for c in ("l1", "l2") for f in ("twonn", "twonn_r2", "twonn_n_used")]
    assert out.index.equals(frame.index)


def test_max_points_is_seeded():
    clouds = [make_sphere(800, 2, random_state=i) for i in range(3)]
    a = TwoNN(max_points=300, random_state=0).fit_transform(clouds)
    b = TwoNN(max_points=300, random_state=0).fit_transform(clouds)
    np.testing.assert_array_equal(a, b)
    assert (a[:, 2] == 270).all()
    assert not np.array_equal(a, TwoNN(max_points=300, random_state=1).fit_transform(clouds))


@pytest.mark.slow
def test_n_jobs_gives_the_same_numbers():
    clouds = [make_sphere(800, 2, random_state=i) for i in range(3)]
    a = TwoNN(max_points=300, random_state=0, n_jobs=1).fit_transform(clouds)
    b = TwoNN(max_points=300, random_state=0, n_jobs=2).fit_transform(clouds)
    np.testing.assert_array_equal(a, b)


def test_bare_array_and_public_names():
    with pytest.raises(ValueError, match=r"sktopo\.twonn\(X\)"):
        TwoNN().fit(make_sphere(50, 1))
    assert sktopo.TwoNN is TwoNN and sktopo.twonn is twonn
    with pytest.raises(ValueError):
        TwoNN(discard_fraction=1.0).fit([make_sphere(50, 1)])


def test_one_cloud_function_under_global_pandas_output(rng):
    X = rng.normal(size=(200, 3))
    expected = twonn(X)
    with sklearn.config_context(transform_output="pandas"):
        result = twonn(X)
    pd.testing.assert_series_equal(result, expected)


def test_same_cloud_same_numbers_in_any_row_and_as_distances():
    from sktopo._distance import pairwise_distances

    clouds = [make_sphere(500, 2, random_state=s) for s in range(3)]
    est = TwoNN(max_points=200, random_state=0)
    table = est.fit_transform(clouds)
    np.testing.assert_array_equal(est.fit_transform(clouds[::-1]), table[::-1])
    np.testing.assert_array_equal(est.fit_transform([clouds[0], clouds[0]])[1], table[0])
    pre = TwoNN(max_points=200, metric="precomputed", random_state=0).fit_transform(
        [pairwise_distances(c) for c in clouds])
    np.testing.assert_allclose(pre, table, rtol=1e-6)


def test_many_too_small_clouds_give_one_summary_warning():
    clouds = [np.arange(4.0).reshape(2, 2) + i for i in range(12)] + [make_sphere(200, 2, random_state=0)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = TwoNN().fit_transform(clouds)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "12 of 13 clouds have fewer than 3 distinct points" in messages[0]
    assert "row 0; row 1" in messages[0] and "and 2 more" in messages[0]
    assert np.isnan(table[:12]).all() and np.isfinite(table[12]).all()
