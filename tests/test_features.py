"""DiagramFeatures and BettiCurve: hand-computed values, naming, fitted scales, bad inputs."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktopo import BettiCurve, Diagram, DiagramFeatures

INF = np.inf


def _ripser_diagram(X, maxdim=1, thresh=INF):
    import ripser

    dgms = ripser.ripser(X, maxdim=maxdim, thresh=thresh)["dgms"]
    return Diagram(dgms, n_points=len(X), threshold=thresh)


@pytest.fixture
def tiny():
    # H0: lifetimes 1 and 3, one infinite bar; H1: one bar of length 1; H2 empty.
    return Diagram({0: [[0, 1], [0, 3], [0, INF]], 1: [[1, 2]], 2: []})


def _table(est, X):
    est = clone(est).set_output(transform="pandas")
    return est.fit_transform(X)


def test_hand_computed_features_no_threshold(tiny):
    out = _table(DiagramFeatures(betti_scales=[0.5, 2.5], features=[
        "n_bars", "n_infinite", "total_persistence", "max_lifetime", "mean_lifetime",
        "std_lifetime", "persistence_entropy", "betti"]), [tiny]).iloc[0]
    # counts use every bar, lifetimes only the finite ones (threshold is inf)
    assert out["H0__n_bars"] == 3
    assert out["H0__n_infinite"] == 1
    assert out["H0__total_persistence_p1"] == pytest.approx(4.0)
    assert out["H0__total_persistence_p2"] == pytest.approx(np.sqrt(10.0))
    assert out["H0__max_lifetime"] == pytest.approx(3.0)
    assert out["H0__mean_lifetime"] == pytest.approx(2.0)
    assert out["H0__std_lifetime"] == pytest.approx(1.0)
    p = np.array([0.25, 0.75])
    assert out["H0__persistence_entropy"] == pytest.approx(-(p * np.log(p)).sum())
    # Betti numbers count the infinite bar: at 0.5 all three alive, at 2.5 two
    assert out["H0__betti_at_0.5"] == 3
    assert out["H0__betti_at_2.5"] == 2
    assert out["H1__betti_at_0.5"] == 0
    assert out["H1__n_bars"] == 1
    assert out["H1__persistence_entropy"] == 0.0  # one bar: no uncertainty
    # an empty dimension is zeros, never NaN
    h2 = out[[c for c in out.index if c.startswith("H2__")]]
    assert (h2 == 0).all() and not h2.isna().any()


def test_infinite_bars_clipped_at_finite_threshold():
    d = Diagram({0: [[0, 1], [0, INF]]}, threshold=2.5)
    out = _table(DiagramFeatures(p=1), [d]).iloc[0]
    assert out["H0__n_bars"] == 2 and out["H0__n_infinite"] == 1
    # the infinite bar lives to the threshold: lifetimes 1 and 2.5
    assert out["H0__total_persistence_p1"] == pytest.approx(3.5)
    assert out["H0__max_lifetime"] == pytest.approx(2.5)
    assert out["H0__mean_lifetime"] == pytest.approx(1.75)


def test_lifespans_sum_equals_mst_length(rng):
    """Study A's H0 "lifespans sum" = total persistence p=1 = MST length."""
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial.distance import cdist

    X = rng.normal(size=(40, 3))
    out = _table(DiagramFeatures(homology_dimensions=0, p=1), [_ripser_diagram(X, maxdim=0)])
    mst = minimum_spanning_tree(cdist(X, X)).sum()
    assert out["H0__total_persistence_p1"].iloc[0] == pytest.approx(mst, rel=1e-6)


def test_entropy_matches_persim(rng):
    from persim.persistent_entropy import persistent_entropy

    X = rng.normal(size=(60, 2))
    d = _ripser_diagram(X)
    for normalize in (False, True):
        out = _table(DiagramFeatures(features=["persistence_entropy"], normalize_entropy=normalize), [d])
        for q in (0, 1):
            expected = persistent_entropy(d.finite(q), normalize=normalize)[0]
            assert out[f"H{q}__persistence_entropy"].iloc[0] == pytest.approx(expected)


def test_default_feature_names(tiny):
    est = DiagramFeatures().fit([tiny])
    assert est.homology_dimensions_ == (0, 1, 2)
    assert list(est.get_feature_names_out())[:7] == [
        "H0__n_bars", "H0__n_infinite", "H0__total_persistence_p1", "H0__total_persistence_p2",
        "H0__max_lifetime", "H0__mean_lifetime", "H0__persistence_entropy",
    ]
    assert est.transform([tiny]).shape == (1, 21)
    est = DiagramFeatures(homology_dimensions=[1], betti_scales=[0.1, 1]).fit([tiny])
    assert list(est.get_feature_names_out())[-2:] == ["H1__betti_at_0.1", "H1__betti_at_1"]


def test_series_and_frame_naming(tiny):
    other = Diagram({0: [[0, 2], [0, INF]], 1: [], 2: []})
    series = pd.Series([tiny, other], index=pd.Index(["a", "b"], name="unit"))
    est = DiagramFeatures(features=["n_bars"], homology_dimensions=(0, 1))
    assert list(est.fit(series).get_feature_names_out()) == ["H0__n_bars", "H1__n_bars"]
    frame = pd.DataFrame({"conv1": [tiny, other], "fc": [other, tiny]}, index=series.index)
    names = list(clone(est).fit(frame).get_feature_names_out())
    assert names == ["conv1__H0__n_bars", "conv1__H1__n_bars", "fc__H0__n_bars", "fc__H1__n_bars"]
    table = clone(est).fit_transform(frame)
    np.testing.assert_array_equal(table, [[3, 1, 2, 0], [2, 0, 3, 1]])


def test_betti_curve_grid_and_values():
    d1 = Diagram({0: [[0, 1], [0, 2], [0, INF]], 1: [[0.5, 1.5]]})
    d2 = Diagram({0: [[0, 4], [0, INF]], 1: []})
    curve = BettiCurve(n_bins=5).fit([d1, d2])
    # grid from the smallest birth to the largest finite death, per dimension
    np.testing.assert_allclose(curve.grids_[0], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(curve.grids_[1], [0.5, 0.75, 1.0, 1.25, 1.5])
    out = curve.transform([d1, d2])
    # birth <= t < death, infinite bars counted
    np.testing.assert_array_equal(out[0, :5], [3, 2, 1, 1, 1])
    np.testing.assert_array_equal(out[0, 5:], [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(out[1, :5], [2, 2, 2, 2, 1])
    np.testing.assert_array_equal(out[1, 5:], [0, 0, 0, 0, 0])
    assert curve.get_feature_names_out()[6] == "H1__betti_1"
    # the width is fixed by fit: a diagram with wider bars gives as many columns
    wide = Diagram({0: [[0, 100]], 1: [[0, 50]]})
    assert curve.transform([wide]).shape == (1, 10)


def test_betti_curve_threshold_and_fixed_range():
    d = Diagram({0: [[0, 1], [0, INF]]}, threshold=3.0)
    curve = BettiCurve(n_bins=4).fit([d])
    np.testing.assert_allclose(curve.grids_[0], [0, 1, 2, 3])  # ends at the threshold
    np.testing.assert_array_equal(curve.transform([d]), [[2, 1, 1, 1]])
    curve = BettiCurve(n_bins=3, scale_range=(0, 10)).fit([d])
    np.testing.assert_allclose(curve.grids_[0], [0, 5, 10])


def test_betti_curve_matches_diagram_betti(rng):
    diagrams = [_ripser_diagram(rng.normal(size=(30, 2))) for _ in range(3)]
    curve = BettiCurve(n_bins=17).fit(diagrams)
    out = curve.transform(diagrams)
    for i, d in enumerate(diagrams):
        np.testing.assert_array_equal(out[i, 17:], d.betti(1, curve.grids_[1]))


def test_homology_dimensions_missing_in_transform(tiny):
    est = DiagramFeatures(homology_dimensions=(0, 1)).fit([tiny])
    only0 = Diagram({0: [[0, 1]]})
    with pytest.raises(ValueError, match=r"row 1.*no bars of dimension \[1\]"):
        est.transform([tiny, only0])
    with pytest.raises(ValueError, match="dimension"):
        DiagramFeatures(homology_dimensions=3).fit([tiny])
    # None = union of what fit saw; a diagram lacking one of them is named
    with pytest.raises(ValueError, match="row 1"):
        DiagramFeatures().fit([tiny, only0])


def test_not_a_diagram_names_the_row(tiny):
    cloud = np.zeros((5, 2))
    series = pd.Series([tiny, cloud], index=["ok", "bad"])
    for est in (DiagramFeatures(), BettiCurve()):
        with pytest.raises(TypeError, match=r"row 'bad'.*not a Diagram.*PersistenceDiagram"):
            est.fit(series)
    frame = pd.DataFrame({"l1": [tiny, tiny], "l2": [tiny, None]})
    with pytest.raises(TypeError, match=r"row 1, column 'l2'"):
        DiagramFeatures().fit(frame)
    with pytest.raises(ValueError, match="single 2-D array"):
        DiagramFeatures().fit(cloud)


def test_bad_parameters(tiny):
    with pytest.raises(ValueError, match="unknown feature"):
        DiagramFeatures(features=["n_bars", "volume"]).fit([tiny])
    with pytest.raises(ValueError, match="betti_scales"):
        DiagramFeatures(features=["betti"]).fit([tiny])
    with pytest.raises(ValueError):
        DiagramFeatures(p=0.5).fit([tiny])
    with pytest.raises(ValueError):
        DiagramFeatures(features="all").fit([tiny])
    with pytest.raises(ValueError, match="non-negative"):
        DiagramFeatures(homology_dimensions=[0, -1]).fit([tiny])
    with pytest.raises(ValueError):
        BettiCurve(n_bins=0).fit([tiny])
    with pytest.raises(ValueError, match="scale_range"):
        BettiCurve(scale_range=(2, 1)).fit([tiny])


def test_transform_requires_fit_and_same_columns(tiny):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        DiagramFeatures().transform([tiny])
    frame = pd.DataFrame({"a": [tiny], "b": [tiny]})
    est = DiagramFeatures().fit(frame)
    with pytest.raises(ValueError, match="columns"):
        est.transform(frame[["b", "a"]])
    with pytest.raises(ValueError, match="DataFrame"):
        est.transform([tiny])


def test_clone_and_grid_search(rng):
    # two classes: circles (a long H1 bar) and blobs
    diagrams, y = [], []
    for i in range(12):
        theta = rng.uniform(0, 2 * np.pi, 25)
        if i % 2:
            X = np.c_[np.cos(theta), np.sin(theta)] + rng.normal(scale=0.05, size=(25, 2))
        else:
            X = rng.normal(scale=0.5, size=(25, 2))
        diagrams.append(_ripser_diagram(X))
        y.append(i % 2)
    pipe = make_pipeline(DiagramFeatures(), StandardScaler(), LogisticRegression())
    search = GridSearchCV(pipe, {"diagramfeatures__p": [1, (1, 2)]}, cv=3).fit(diagrams, y)
    assert search.best_score_ > 0.8
    est = DiagramFeatures(p=(1, 3), betti_scales=[0.1])
    assert clone(est).get_params() == est.get_params()


@pytest.mark.parametrize("p", [1, 2, 200, 250, 1000])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_total_persistence_is_stable_for_large_p(p, scale):
    from scipy.special import logsumexp

    lifetimes = scale * np.array([0.02, 0.015, 0.01, 0.001])
    d = Diagram({1: np.column_stack([np.zeros(4), lifetimes])})
    got = DiagramFeatures(features=["total_persistence"], p=p).fit_transform([d])[0, 0]
    expected = np.exp(logsumexp(p * np.log(lifetimes)) / p)  # in log space: no overflow
    assert got == pytest.approx(expected, rel=1e-12)
    assert 0 < got < np.inf  # was 0.0 at p=200 and inf at p=250 (scale 1)
