"""Hardening round 2 of the dimension estimators (issue 22): subnormal and extreme scales
(item 7), untrustworthy PH dimension fits (item 8), scale-invariant content seeds (item 11)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from sktopo import (MLEDimension, PHDimension, TwoNN, TwoNNLikelihood, local_dimension,
                    mle_dimension, twonn, twonn_likelihood)
from sktopo.datasets import make_sphere
from sktopo.dimension._neighbors import rescaled, to_unit_scale, unit_scale
from sktopo.dimension.phdim import _estimate_cloud, phdim_batch

PHDIM = dict(alpha=1.0, protocol=None, min_points=None, max_points=None, n_sizes=None,
             n_draws=None, n_reruns=None, metric="euclidean", device="cpu")
# a subnormal cloud (1e-310: below 2**-1022), tiny, huge and near the largest float
FACTORS = [1e-310, 1e-300, 1e200, 1e300]


# ------------------------------------------------------------ item 7: subnormal clouds
def test_unit_scale_is_capped_and_to_unit_scale_reaches_unit_scale():
    # 1e-310 asked for 2**1029 = inf: a NaN cloud
    assert unit_scale(1e-310) == 2.0 ** 1023
    for peak in (1e-310, 1e-320, 5e-324, 1e-300, 1e200, 1.7e308):
        cloud = np.array([[peak, 0.0], [0.0, -peak]])
        scaled = to_unit_scale(cloud, peak)
        assert 0.5 <= np.abs(scaled).max() < 1
        assert np.frexp(scaled[0, 0])[0] == np.frexp(peak)[0]  # exact: powers of two
    X = np.array([[1.0, 2.0]])
    assert to_unit_scale(X, 2.0) is X and rescaled(X, "euclidean") is X


def _deterministic(factor):
    """Every estimator of sktopo.dimension without a random step on ``_BASE * factor``, as
    one flat array: batched and per-cloud paths, points and distance matrices."""
    X, D = _BASE * factor, cdist(_BASE, _BASE) * factor
    parts = [
        twonn(X), twonn(X, metric="manhattan"), twonn(D, metric="precomputed"),
        mle_dimension(X), mle_dimension(X, metric="manhattan"),
        mle_dimension(D, metric="precomputed"),
        mle_dimension(X, unbiased=True, n_neighbors=8),
        twonn_likelihood(X), twonn_likelihood(D, metric="precomputed"),
        TwoNN().fit_transform([X, X[:100]])[1], MLEDimension().fit_transform([X[:50], X])[0],
        TwoNNLikelihood().fit_transform([X, X])[0],
    ]
    return np.concatenate([np.ravel(p) for p in parts] + [local_dimension(X)])


_BASE = make_sphere(300, 2, random_state=0)


@pytest.mark.parametrize("factor", FACTORS)
def test_every_deterministic_estimator_at_extreme_scales_gives_its_unit_value(factor):
    # x1e-310 gave NaN (MLE, TwoNNLikelihood), a raw scikit-learn "contains infinity" error
    # (TwoNN) or "duplicated points" (local_dimension): the power of two was inf
    unit = _deterministic(1.0)
    assert np.isfinite(unit[~np.isnan(unit)]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / underflow RuntimeWarning, no message
        got = _deterministic(factor)
    np.testing.assert_allclose(got, unit, rtol=1e-6)


@pytest.mark.parametrize("factor", FACTORS)
def test_ph_dimension_at_extreme_scales_with_one_seed_gives_the_unit_numbers(factor):
    # the same subsamples (the same seed): the same numbers, every path
    X = make_sphere(400, 2, random_state=1)  # above the batch limit: cloud by cloud
    D = cdist(X, X)
    for cloud, settings in ((X, PHDIM), (X[:200], PHDIM),
                            (D, {**PHDIM, "metric": "precomputed"}),
                            (X, {**PHDIM, "min_points": 100, "max_points": 200,
                                 "homology_dimension": 1})):
        unit = _estimate_cloud(cloud, 7, "row 0", **settings)[0]
        assert np.isfinite(unit["phdim"])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = [_estimate_cloud(cloud * factor, 7, "row 0", **settings)[0]]
            if cloud is X[:200] or cloud.shape == (200, 2):
                got.append(phdim_batch([cloud * factor], [7], ["row 0"], **PHDIM)[0][0])
        # x factor rounds the coordinates (a subnormal cloud keeps about 44 bits of them)
        for values in got:
            np.testing.assert_allclose(list(values.values()), list(unit.values()), rtol=1e-5)


@pytest.mark.parametrize("factor", FACTORS)
def test_random_estimators_at_extreme_scales_are_finite(factor):
    X = make_sphere(400, 2, random_state=2) * factor
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tables = [PHDimension(random_state=0).fit_transform([X, X[:200]]),
                  TwoNN(max_points=300, random_state=0).fit_transform([X]),
                  MLEDimension(data_fraction=0.5, random_state=0).fit_transform([X]),
                  TwoNNLikelihood(data_fraction=0.5, random_state=0).fit_transform([X])]
    for table in tables:
        assert np.isfinite(table[:, 0]).all()
        assert table[:, 0] == pytest.approx(2, abs=0.3)


# ---------------------------------------------- item 11: scale-invariant content seeds
def _unit_radius(X):
    """``X`` translated to its first point and divided by its largest distance from it
    (1.0 exactly, checked): the copy whose content key every extreme copy shares."""
    X = X - X[0]
    X = X / np.sqrt(np.einsum("ij,ij->i", X, X)).max()
    assert np.sqrt(np.einsum("ij,ij->i", X, X)).max() == 1.0
    return X


@pytest.mark.parametrize("estimator", [
    PHDimension(random_state=0), TwoNN(max_points=150, random_state=0),
    MLEDimension(data_fraction=0.5, random_state=0),
    TwoNNLikelihood(data_fraction=0.25, random_state=0)], ids=lambda e: type(e).__name__)
def test_extreme_copies_of_a_cloud_draw_the_same_subsamples(estimator):
    # a sphere of 800 points times 1e200 gave another PH dimension (2.038 vs 1.992): the
    # content seed depended on the scale. Far from unit scale, the seed is now that of the
    # cloud's unit-radius copy, whatever the factor (cloud by cloud: 800 points; batched: 200)
    clouds = [_unit_radius(make_sphere(800, 2, random_state=0)),
              _unit_radius(make_sphere(200, 3, random_state=1))]
    unit = estimator.fit_transform(clouds)
    assert np.isfinite(unit[:, 0]).all()
    for factor in FACTORS:
        got = estimator.fit_transform([cloud * factor for cloud in clouds])
        np.testing.assert_allclose(got, unit, rtol=1e-5, err_msg=str(factor))


# ------------------------------------------------ item 8: fits that cannot be trusted
def _flag_warnings(record):
    return [str(w.message) for w in record if "phdim_reliable" in str(w.message)]


def test_untrustworthy_fits_are_flagged_by_a_column_and_one_warning():
    # 40 x 2 clouds: in a few, one rerun's slope was >= 1, so phdim_std (and sometimes
    # phdim_ci_high) came out NaN with no warning, and a GridSearchCV into LogisticRegression
    # broke on them
    rng = np.random.default_rng(0)
    clouds = [rng.normal(size=(40, 2)) for _ in range(200)]
    est = PHDimension(random_state=0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        table = est.fit_transform(clouds)
    names = list(est.get_feature_names_out())
    assert names[-1] == "phdim_reliable" and table.shape == (200, len(names))
    reliable = table[:, names.index("phdim_reliable")]
    phdim, std, high = (table[:, names.index(n)] for n in ("phdim", "phdim_std", "phdim_ci_high"))
    assert np.isfinite(phdim).all() and set(np.unique(reliable)) == {0.0, 1.0}
    unbounded = np.isnan(std) | np.isnan(high)
    assert unbounded.sum() >= 5
    # no NaN without the flag; the reliable rows are finite through and through
    assert (reliable[unbounded] == 0).all()
    assert np.isfinite(table[reliable == 1]).all()
    flagged = np.flatnonzero(reliable == 0)
    # one warning for the whole transform: how many, which rows, why
    messages = _flag_warnings(record)
    assert len(messages) == 1 and len(record) == 1, [str(w.message) for w in record]
    assert messages[0].startswith(f"PHDimension: {len(flagged)} of 200 clouds ")
    assert f"row {flagged[0]};" in messages[0] and "reruns" in messages[0]
    # the same flags through pandas, with names sktopo.tidy parses
    import pandas as pd

    from sktopo import tidy
    from sktopo.tidy import parse_feature_name

    with pytest.warns(UserWarning, match="of 60 clouds gave PH dimensions whose fit"):
        frame = est.set_output(transform="pandas").fit_transform(pd.Series(clouds[:60]))
    assert list(frame.columns) == names
    np.testing.assert_array_equal(frame.to_numpy(), table[:60])
    assert parse_feature_name("fc1__phdim_reliable") == ("fc1", None, "phdim_reliable")
    assert "phdim_reliable" in set(tidy(frame)["feature"])


def test_a_wild_h1_estimate_is_flagged():
    # a torus of 400 points, H1 on 200: phdim 318.8 with phdim_r2 0.97, NaN std and no warning
    from sktopo.datasets import make_torus

    est = PHDimension(homology_dimension=1, max_points=200, random_state=0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        row = est.fit_transform([make_torus(400, random_state=0)])[0]
    assert row[0] > 100 and row[-1] == 0.0
    messages = _flag_warnings(record)
    assert len(messages) == 1 and "the cloud at row 0 " in messages[0], messages
    for reason in ("reruns", "phdim_ci_high", "1.5 times the ambient dimension 3"):
        assert reason in messages[0]


def test_an_interval_above_the_ambient_dimension_is_flagged():
    # every rerun finite, a tight interval, but all of it far above the cloud's ambient
    # dimension (1.5 times: small full-dimensional clouds are biased up)
    from sktopo.dimension._protocols import make_plan
    from sktopo.dimension.phdim import _fit_results

    plan = make_plan(800, protocol=None, min_points=None, max_points=None, n_sizes=None,
                     n_draws=None, n_reruns=None)
    x = np.log(plan.sizes.astype(float))
    slopes = 0.8 + 0.001 * np.arange(plan.n_reruns)  # phdim about 5
    logE = (slopes[:, None] * x[None, :])[None, :, :, None]
    (low_d,), (high_d,), (none,) = (_fit_results(plan, logE, 1.0, ["row 0"], ambient=d)
                                    for d in (3, 4, None))
    assert low_d[0]["reliable"] == 0.0 and "ambient dimension 3" in low_d[1].text
    assert high_d[0]["reliable"] == 1.0 and high_d[1] is None
    assert none[0]["reliable"] == 1.0 and none[1] is None
    assert low_d[0]["phdim"] == high_d[0]["phdim"] == pytest.approx(5, abs=0.1)


def test_a_good_fit_is_reliable_and_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = PHDimension(random_state=0).fit_transform([make_sphere(800, 2, random_state=0)])
    assert table[0, -1] == 1.0 and np.isfinite(table).all()
    # a cloud whose estimate fails is NaN in every column, the flag included
    with pytest.warns(UserWarning, match="constant"):
        failed = PHDimension(random_state=0).fit_transform([np.ones((40, 3))])
    assert np.isnan(failed).all()
