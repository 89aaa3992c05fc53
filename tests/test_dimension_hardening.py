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
from sktopo.dimension._batched import phdim_batch
from sktopo.dimension._neighbors import rescaled, to_unit_scale, unit_scale
from sktopo.dimension.phdim import _estimate_cloud

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
        mle_dimension(X), mle_dimension(X, metric="manhattan"), mle_dimension(D, metric="precomputed"),
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
