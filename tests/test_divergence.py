"""Representation Topology Divergence: CrossBarcode, RTD, rtd, rtd_table.

References: a direct implementation of the paper's 2N x 2N construction (the
reference code's full-w_P variant, not the w_P+ our kernel uses) run through
ripser.py here; the paper's sanity cases (identical clouds give 0, splitting a
cloud into more clusters, or merging two clusters, raises the score).
"""

import pickle

import numpy as np
import pandas as pd
import pytest
from ripser import ripser
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import sktopo
from sktopo import RTD, CrossBarcode, cross_barcode, rtd, rtd_table
from sktopo.topology.engines import giotto_available

BACKENDS = ["ripser"] + (["giotto"] if giotto_available() else [])


def _direct_h1(P, Q):
    """H1 bars of R-Cross-Barcode(P, Q), built as the reference code does (full w_P blocks)."""
    r1 = np.sqrt(((P[:, None] - P[None]) ** 2).sum(-1))
    r2 = np.sqrt(((Q[:, None] - Q[None]) ** 2).sum(-1))
    r1 = r1 / np.quantile(r1, 0.9)
    r2 = r2 / np.quantile(r2, 0.9)
    n = len(P)
    d = np.zeros((2 * n, 2 * n))
    d[n:, :n] = r1
    d[:n, n:] = r1.T
    d[n:, n:] = np.minimum(r1, r2)
    d[d < r1.mean() * 1e-6] = 0
    bars = ripser(d, distance_matrix=True, maxdim=1)["dgms"][1]
    bars = bars[bars[:, 1] > bars[:, 0]]
    return bars[np.lexsort((bars[:, 1], bars[:, 0]))]


def _cases():
    rng = np.random.default_rng(3)
    blobs = np.concatenate([rng.normal(size=(15, 3)) + c for c in ([0, 0, 0], [6, 0, 0], [0, 6, 0])])
    return [
        (rng.random((40, 2)), rng.random((40, 2))),
        (blobs, blobs[:, :2] + 0.3 * rng.normal(size=(45, 2))),  # different dimensions
        (blobs, np.tanh(blobs) @ rng.normal(size=(3, 5))),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", range(3))
def test_cross_barcode_matches_direct_construction(case, backend):
    P, Q = _cases()[case]
    for a, b in ((P, Q), (Q, P)):
        expected = _direct_h1(a, b)
        got = cross_barcode(a, b, backend=backend)[1]
        assert len(expected) > 0
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_rtd_is_the_mean_of_both_directions_total_length():
    P, Q = _cases()[1]
    forward = np.sum(np.diff(_direct_h1(P, Q), axis=1))
    backward = np.sum(np.diff(_direct_h1(Q, P), axis=1))
    assert rtd(P, Q, batch_size=None) == pytest.approx((forward + backward) / 2, rel=1e-5)
    assert rtd(P, Q, batch_size=None, symmetric=False) == pytest.approx(forward, rel=1e-5)
    assert rtd(Q, P, batch_size=None, symmetric=False) == pytest.approx(backward, rel=1e-5)


def test_identical_and_isometric_clouds_give_zero():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(80, 4))
    rotation, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    assert rtd(P, P) == 0.0
    assert len(cross_barcode(P, P)[1]) == 0
    # an isometry and a global scale change nothing (distances are normalised)
    assert rtd(P, 3 * P @ rotation + 1) == pytest.approx(0.0, abs=1e-6)
    # but a non-isometric change does
    assert rtd(P, P ** 3) > 0.5


def _paper_clusters(k, groups):
    """The paper's 'Clusters' experiment: the groups of one blob moved to k places on a circle."""
    if k == 1:
        return np.concatenate(groups)
    return np.concatenate([
        g + 10 * np.array([np.cos(2 * np.pi * (i % k) / k), np.sin(2 * np.pi * (i % k) / k)])
        for i, g in enumerate(groups)
    ])


def test_more_clusters_give_a_larger_rtd():
    rng = np.random.default_rng(7)
    groups = [rng.normal(size=(5, 2)) for _ in range(30)]
    base = _paper_clusters(1, groups)
    scores = [rtd(base, _paper_clusters(k, groups)) for k in (1, 2, 3, 5, 10)]
    assert scores[0] == 0.0
    assert np.all(np.diff(scores) > 0), scores


def test_merging_two_clusters_raises_rtd_with_the_merge():
    rng = np.random.default_rng(1)
    P = np.concatenate([rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + [10, 0]])
    scores = []
    for gap in (10, 6, 3, 0):
        Q = P.copy()
        Q[50:] -= [10 - gap, 0]
        scores.append(rtd(P, Q))
    assert scores[0] == 0.0
    assert np.all(np.diff(scores) > 0), scores
    # the merge is one long H1 bar of R-Cross-Barcode(P, Q): P's two clusters, joined
    # almost at once in min(w_P, w_Q) (by Q), and only at P's normalised gap by P
    bars = cross_barcode(P, Q)[1]
    birth, death = bars[np.argmax(bars[:, 1] - bars[:, 0])]
    assert birth < 0.05 and death > 0.45


def test_subsets_are_seeded_by_random_state_and_content():
    rng = np.random.default_rng(2)
    P, Q = rng.normal(size=(120, 3)), rng.normal(size=(120, 3))
    params = dict(batch_size=40, n_trials=3)
    first = rtd(P, Q, random_state=0, return_std=True, **params)
    assert first == rtd(P, Q, random_state=0, return_std=True, **params)
    assert first == rtd(Q, P, random_state=0, return_std=True, **params)  # order-free
    assert first[0] != rtd(P, Q, random_state=1, **params)
    assert first[1] > 0
    # a pair gets the same score in any row and beside any other pair
    other = (rng.normal(size=(120, 2)), rng.normal(size=(120, 2)))
    table = RTD(random_state=0, **params).fit_transform([other, (P, Q)])
    assert tuple(table[1]) == first
    # the same subsets whether the clouds come as points or as distance matrices
    D = [np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1)) for X in (P, Q)]
    pre = rtd(*D, metric="precomputed", random_state=0, return_std=True, **params)
    np.testing.assert_allclose(pre, first, rtol=1e-6)


def test_spread_conventions():
    rng = np.random.default_rng(4)
    P, Q = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    # every input in the one subset: exact, no spread
    assert rtd(P, Q, batch_size=None, return_std=True)[1] == 0.0
    assert rtd(P, Q, batch_size=60, return_std=True)[1] == 0.0
    # one random subset: spread unknown
    assert np.isnan(rtd(P, Q, batch_size=20, n_trials=1, random_state=0, return_std=True)[1])


def test_n_jobs_gives_the_same_numbers():
    rng = np.random.default_rng(5)
    pairs = [(rng.normal(size=(60, 2)), rng.normal(size=(60, 2))) for _ in range(2)]
    est = RTD(batch_size=25, n_trials=2, random_state=0)
    np.testing.assert_array_equal(est.fit_transform(pairs),
                                  clone(est).set_params(n_jobs=2).fit_transform(pairs))


def test_pandas_output_names_and_tidy():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(40, 3))
    pairs = pd.DataFrame({"before": [a, a], "after": [a, np.abs(a)]},
                         index=pd.Index(["conv1", "fc"], name="layer"))
    est = RTD(homology_dimensions=(0, 1), batch_size=None).set_output(transform="pandas")
    table = est.fit_transform(pairs)
    assert list(table.columns) == ["H0__rtd", "H0__rtd_std", "H1__rtd", "H1__rtd_std"]
    assert table.index.equals(pairs.index)
    assert table.loc["conv1", "H1__rtd"] == 0.0 and table.loc["fc", "H1__rtd"] > 0
    # H0 of a cross-barcode is one infinite bar: its finite total is 0
    assert (table["H0__rtd"] == 0).all()
    long = sktopo.tidy(table)
    assert set(long["feature"]) == {"rtd", "rtd_std"}
    assert set(long["homology_dimension"]) == {0, 1}
    barcodes = CrossBarcode().fit_transform(pairs)
    assert isinstance(barcodes, pd.Series) and barcodes.index.equals(pairs.index)
    assert barcodes["fc"].n_points == 40


def test_rtd_table_labels_symmetry_and_values():
    rng = np.random.default_rng(8)
    a = rng.normal(size=(50, 3))
    layers = pd.Series({"in": a, "relu": np.maximum(a, 0), "cube": a ** 3},
                       name="clouds").rename_axis("layer")
    params = dict(batch_size=30, n_trials=2, random_state=0)
    mean, std = rtd_table(layers, return_std=True, **params)
    assert list(mean.index) == ["in", "relu", "cube"] == list(mean.columns)
    assert mean.index.name == "layer"
    np.testing.assert_array_equal(mean.values, mean.values.T)
    assert (np.diag(mean.values) == 0).all()
    # each entry is the one-pair score (content seeding: the same subsets)
    assert mean.loc["relu", "cube"] == rtd(layers["relu"], layers["cube"], **params)
    assert std.loc["in", "cube"] == rtd(a, a ** 3, return_std=True, **params)[1]
    # two models: rows from X, columns from Y
    other = {"fc1": rng.normal(size=(50, 2)), "fc2": a[:, :2]}
    cross = rtd_table(layers, other, **params)
    assert cross.shape == (3, 2) and list(cross.columns) == ["fc1", "fc2"]
    assert cross.loc["in", "fc2"] == rtd(a, a[:, :2], **params)
    # one-directional scores: the table is no longer symmetric
    one_way = rtd_table(layers, symmetric=False, batch_size=None)
    assert not np.allclose(one_way.values, one_way.values.T)


def test_rtd_table_matched_pairs_answer_before_vs_after():
    """pairs="matched" (issue 23, item 9): each layer against the same layer of Y, one number
    per layer, equal to the diagonal of the all-pairs table and to rtd of the pair alone."""
    rng = np.random.default_rng(10)
    a = rng.normal(size=(50, 3))
    before = pd.Series({"relu1": a, "relu2": np.maximum(a, 0), "relu3": a ** 3},
                       name="before").rename_axis("layer")
    after = {"relu3": a ** 3, "relu2": rng.normal(size=(50, 2)), "relu1": 2 * a}  # other order
    params = dict(batch_size=30, n_trials=2, random_state=0)
    mean, std = rtd_table(before, after, pairs="matched", return_std=True, **params)
    assert isinstance(mean, pd.Series) and mean.name == "rtd" and std.name == "rtd_std"
    assert list(mean.index) == ["relu1", "relu2", "relu3"] and mean.index.name == "layer"
    assert mean["relu1"] == 0.0 and mean["relu3"] == 0.0 and mean["relu2"] > 1
    assert mean["relu2"] == rtd(before["relu2"], after["relu2"], **params)
    assert std["relu2"] == rtd(before["relu2"], after["relu2"], return_std=True, **params)[1]
    full = rtd_table(before, after, **params)
    np.testing.assert_array_equal(mean.values, [full.loc[k, k] for k in mean.index])
    # lists pair by position
    by_position = rtd_table(list(before), [after[k] for k in before.index], pairs="matched",
                            **params)
    np.testing.assert_array_equal(by_position.values, mean.values)
    with pytest.raises(ValueError, match="same layers in X and Y.*only in Y: \\['fc'\\]"):
        rtd_table(before, {"relu1": a, "relu2": a, "fc": a}, pairs="matched")
    with pytest.raises(ValueError, match="give Y"):
        rtd_table(before, pairs="matched")
    with pytest.raises(ValueError, match="pairs must be 'all' or 'matched'"):
        rtd_table(before, after, pairs="diagonal")


def test_estimator_contract():
    rng = np.random.default_rng(9)
    pairs = [(rng.normal(size=(30, 2)), rng.normal(size=(30, 3))) for _ in range(3)]
    for est in (RTD(batch_size=20, n_trials=2, random_state=0), CrossBarcode()):
        with pytest.raises(NotFittedError):
            clone(est).transform(pairs)
        fitted = clone(est)
        assert fitted.fit(pairs) is fitted
        first = fitted.transform(pairs)
        again = pickle.loads(pickle.dumps(fitted)).transform(pairs)
        reordered = fitted.transform([pairs[2], pairs[0], pairs[1]])
        if isinstance(est, RTD):
            np.testing.assert_array_equal(first, again)
            np.testing.assert_array_equal(first[[2, 0, 1]], reordered)
        else:
            assert first == again
            assert [first[2], first[0], first[1]] == reordered


def test_bad_input_messages():
    rng = np.random.default_rng(10)
    P = rng.normal(size=(30, 2))
    with pytest.raises(ValueError, match=r"RTD: the pair at row 'b' has 30 points .* 20"):
        RTD().fit(pd.DataFrame({"x": [P, P], "y": [P, P[:20]]}, index=["a", "b"]))
    with pytest.raises(ValueError, match="exactly 2 columns"):
        RTD().fit(pd.DataFrame({"x": [P], "y": [P], "z": [P]}))
    with pytest.raises(ValueError, match="item 1 is not a pair"):
        RTD().fit([(P, P), P])
    with pytest.raises(TypeError, match="pairs of clouds"):
        RTD().fit(P)
    with pytest.raises(ValueError, match="NaN"):
        rtd(P, np.full_like(P, np.nan))
    with pytest.raises(ValueError, match="one homology dimension"):
        rtd(P, P, homology_dimensions=(0, 1))
    with pytest.raises(ValueError, match="normalize"):
        rtd(P, np.zeros_like(P))
    with pytest.raises(TypeError, match="Series, dict or list"):
        rtd_table(P)


def test_memory_limit_names_batch_size():
    rng = np.random.default_rng(11)
    P = rng.normal(size=(200, 2))
    with pytest.raises(MemoryError, match=r"lower batch_size \(the cross matrix has 2 \* 200"):
        rtd(P, P[::-1], batch_size=None, memory_limit="1MiB")
    with pytest.raises(MemoryError, match="lower batch_size"):
        CrossBarcode(memory_limit="1MiB").fit_transform([(P, P)])


@pytest.mark.parametrize("estimator", [RTD, CrossBarcode])
def test_n_jobs_zero_is_refused_in_fit(estimator):
    # n_jobs=0 passed fit and failed later, in transform, inside joblib
    from sklearn.utils._param_validation import InvalidParameterError

    rng = np.random.default_rng(0)
    pairs = [(rng.normal(size=(12, 2)), rng.normal(size=(12, 2)))]
    with pytest.raises(InvalidParameterError, match=rf"'n_jobs' parameter of {estimator.__name__}"):
        estimator(n_jobs=0).fit(pairs)


def test_cross_barcode_is_a_mapper_and_rtd_a_table():
    """CrossBarcode returns diagrams: it sits on the collection -> collection base, RTD on the
    table base (issue 23, item 14); its outputs stay a list for a list of pairs and a Series
    indexed like a DataFrame, and it has no feature names."""
    from sktopo._base import CollectionMapper, CollectionTransformer

    assert issubclass(CrossBarcode, CollectionMapper)
    assert not issubclass(CrossBarcode, CollectionTransformer)
    assert issubclass(RTD, CollectionTransformer) and not issubclass(RTD, CollectionMapper)
    rng = np.random.default_rng(12)
    a = rng.normal(size=(30, 2))
    est = CrossBarcode()
    listed = est.fit_transform([(a, a), (a, a ** 3)])
    assert isinstance(listed, list) and est.n_features_in_ == 1
    assert len(listed[0][1]) == 0 and len(listed[1][1]) > 0
    frame = pd.DataFrame({"before": [a, a], "after": [a, a ** 3]}, index=["x", "y"])
    for output in (None, "pandas", "default"):
        est = CrossBarcode().set_output(transform=output)
        series = est.fit_transform(frame)
        assert isinstance(series, pd.Series) and list(series.index) == ["x", "y"]
        assert series.tolist() == listed
        assert est.n_features_in_ == 2 and list(est.feature_names_in_) == ["before", "after"]
        assert isinstance(est.transform([(a, a)]), list)
    with pytest.raises(AttributeError, match="returns diagrams, not a feature table"):
        est.get_feature_names_out()
