"""The intrinsic-dimension family: Levina-Bickel MLE (MacKay-Ghahramani averaging), TwoNN's
maximum-likelihood form with decimation error bars, local estimates; against hand-written
formulas, scikit-dimension, dadapy's definitions and manifolds of known dimension."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from sklearn.base import clone

import sktopo
from sktopo import MLEDimension, TwoNN, TwoNNLikelihood, local_dimension, mle_dimension, twonn_likelihood
from sktopo.datasets import make_closed_curve, make_sphere, make_torus
from sktopo.dimension import mle as mle_module
from sktopo.tidy import parse_feature_name


def _neighbours(X, k):
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    return np.sort(D, axis=1)[:, :k]


def _levina_bickel_by_hand(X, k, unbiased=False):
    T = _neighbours(X, k)
    local = np.array([(k - 2 if unbiased else k - 1) / np.sum(np.log(t[-1] / t[:-1])) for t in T])
    return local, 1 / np.mean(1 / local)


def _dadapy_ml_by_hand(X):
    """dadapy's compute_id_2NN(algorithm="ml", data_fraction=1): (N - 1) / sum log(mu)."""
    T = _neighbours(X, 2)
    return (len(X) - 1) / np.sum(np.log(T[:, 1] / T[:, 0]))


@pytest.mark.parametrize("k, unbiased", [(5, False), (20, False), (10, True)])
def test_mle_matches_the_formula(rng, k, unbiased):
    X = rng.normal(size=(150, 4))
    local, estimate = _levina_bickel_by_hand(X, k, unbiased)
    result = mle_dimension(X, n_neighbors=k, unbiased=unbiased)
    assert result["mle"] == pytest.approx(estimate, rel=1e-10)
    assert result["mle_local_mean"] == pytest.approx(local.mean(), rel=1e-10)
    for q in (0.1, 0.5, 0.9):
        assert result[f"mle_local_q{100 * q:g}"] == pytest.approx(np.quantile(local, q), rel=1e-10)
    assert result["mle_k"] == k and np.isnan(result["mle_std"])
    np.testing.assert_allclose(local_dimension(X, k, unbiased=unbiased), local, rtol=1e-10)


def test_mle_and_local_estimates_equal_scikit_dimension(rng):
    skdim = pytest.importorskip("skdim")
    X = make_sphere(800, 3, ambient_dim=12, random_state=0)
    reference = skdim.id.MLE().fit(X, n_neighbors=20)
    assert mle_dimension(X)["mle"] == pytest.approx(reference.dimension_, rel=1e-10)
    np.testing.assert_allclose(local_dimension(X), reference.dimension_pw_, rtol=1e-10)
    unbiased = skdim.id.MLE(unbiased=True).fit(X, n_neighbors=10)
    assert mle_dimension(X, n_neighbors=10, unbiased=True)["mle"] == pytest.approx(
        unbiased.dimension_, rel=1e-10)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # inside skdim's TwoNN
def test_twonn_family_equals_scikit_dimension(rng):
    skdim = pytest.importorskip("skdim")
    X = make_torus(1500, random_state=2)
    ml = skdim.id.TwoNN(method="mle", discard_fraction=0.0).fit(X).dimension_
    assert twonn_likelihood(X)["twonn_ml"] == pytest.approx(ml, rel=1e-10)
    linear = skdim.id.TwoNN().fit(X).dimension_  # Facco's fit, 10% discarded
    assert sktopo.twonn(X)["twonn"] == pytest.approx(linear, rel=1e-8)


def test_twonn_likelihood_is_dadapys_ml_estimate(rng):
    X = rng.normal(size=(300, 3))
    assert twonn_likelihood(X)["twonn_ml"] == pytest.approx(_dadapy_ml_by_hand(X), rel=1e-10)
    result = twonn_likelihood(X)
    assert np.isnan(result["twonn_ml_std"])
    assert (result["twonn_ml_n_subset"], result["twonn_ml_n_iter"]) == (300, 1)


@pytest.mark.parametrize("estimator, name", [
    (TwoNNLikelihood(data_fraction=0.25, random_state=4), "twonn_ml"),
    (MLEDimension(10, data_fraction=0.3, n_iter=5, random_state=4), "mle"),
])
def test_decimation_is_dadapys(estimator, name):
    """n_subset = rint(f N), n_iter = rint(1 / f), mean of the subsets' estimates, error
    std / sqrt(n_iter), neighbours found within each subset; the subsets come from the seed."""
    from sktopo._seeding import cloud_seeds

    X = make_sphere(401, 2, random_state=3)
    row = estimator.fit_transform([X])[0]
    seed = cloud_seeds(estimator.random_state, [X])[0]
    _, subsets = mle_module._draws(seed, len(X), None, estimator.data_fraction, estimator.n_iter)
    f = estimator.data_fraction
    assert subsets.shape == (estimator.n_iter or round(1 / f), round(f * len(X)))
    if name == "twonn_ml":
        estimates = [_dadapy_ml_by_hand(X[s]) for s in subsets]
    else:
        estimates = [_levina_bickel_by_hand(X[s], 10)[1] for s in subsets]
    assert row[0] == pytest.approx(np.mean(estimates), rel=1e-10)
    assert row[1] == pytest.approx(np.std(estimates) / np.sqrt(len(estimates)), rel=1e-8)


@pytest.mark.parametrize("make, truth", [
    (lambda s: make_sphere(2000, 2, random_state=s), 2),
    (lambda s: make_torus(2000, random_state=s), 2),
    (lambda s: make_closed_curve(2000, ambient_dim=30, random_state=s), 1),
    (lambda s: make_sphere(2000, 3, ambient_dim=20, random_state=s), 3),
    (lambda s: make_sphere(3000, 5, ambient_dim=20, random_state=s), 5),
])
def test_known_dimension_manifolds(make, truth):
    clouds = [make(seed) for seed in range(3)]
    mle = MLEDimension().fit_transform(clouds)[:, 0]
    ml = TwoNNLikelihood(data_fraction=0.5, n_iter=6, random_state=0).fit_transform(clouds)
    tol = 0.1 * truth + 0.05  # neighbour estimators on 2,000 points: within 10% (5-sphere: -7%)
    assert np.all(np.abs(mle - truth) < tol), mle
    assert np.all(np.abs(ml[:, 0] - truth) < tol), ml[:, 0]
    # the error bar is of the size of the scatter between independent clouds
    assert 0.2 < ml[:, 1].mean() / ml[:, 0].std() < 20


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # inside skdim's TwoNN
def test_within_the_spread_of_scikit_dimension_estimators():
    skdim = pytest.importorskip("skdim")
    for seed in range(2):
        X = make_sphere(2000, 4, ambient_dim=16, random_state=seed)
        theirs = [skdim.id.MLE().fit(X).dimension_, skdim.id.TwoNN().fit(X).dimension_,
                  skdim.id.TwoNN(method="mle", discard_fraction=0).fit(X).dimension_]
        ours = [mle_dimension(X)["mle"], twonn_likelihood(X)["twonn_ml"],
                twonn_likelihood(X, data_fraction=0.5, random_state=0)["twonn_ml"]]
        assert min(theirs) - 0.2 < min(ours) and max(ours) < max(theirs) + 0.2, (theirs, ours)


# ------------------------------------------------------------------------- batches, seeds
@pytest.mark.parametrize("params", [dict(), dict(data_fraction=0.4, n_iter=3)])
def test_batched_path_equals_the_general_path(params):
    clouds = [make_sphere(90, 2, ambient_dim=6, random_state=i) for i in range(5)]
    for estimator in (MLEDimension(8, **params), TwoNNLikelihood(**params)):
        settings = estimator._settings()
        seeds = list(range(5))
        batched = mle_module._batch_values(clouds, seeds, ["row"] * 5, **settings)
        for cloud, seed, got in zip(clouds, seeds, batched):
            want = mle_module._one_cloud_values(cloud, seed, "row", **settings)
            np.testing.assert_allclose(list(got[0].values()), list(want[0].values()), rtol=1e-9)


def test_same_cloud_same_numbers_in_any_batch_order_and_n_jobs():
    clouds = [make_torus(60 + 10 * (i % 3), random_state=i) for i in range(12)]
    for estimator in (MLEDimension(data_fraction=0.5, random_state=1),
                      TwoNNLikelihood(data_fraction=0.5, random_state=1)):
        table = estimator.fit_transform(clouds)
        np.testing.assert_array_equal(estimator.fit_transform(clouds[::-1])[::-1], table)
        np.testing.assert_array_equal(estimator.fit_transform(clouds[4:5])[0], table[4])
        np.testing.assert_array_equal(clone(estimator).set_params(n_jobs=2).fit_transform(clouds),
                                      table)


def test_other_metrics_precomputed_and_max_points(rng):
    X = make_sphere(400, 2, ambient_dim=5, random_state=0)
    D = cdist(X, X)
    np.testing.assert_allclose(mle_dimension(D, metric="precomputed").to_numpy(),
                               mle_dimension(X).to_numpy(), rtol=1e-8)
    assert mle_dimension(X, metric="cosine")["mle"] > 0
    big = make_sphere(2500, 2, random_state=1)  # beyond the dense batch: scikit-learn's search
    assert twonn_likelihood(big, max_points=600, random_state=0)["twonn_ml_n_subset"] == 600
    assert mle_dimension(big)["mle"] == pytest.approx(2, abs=0.15)


def test_duplicates_are_kept_once_with_a_warning():
    X = make_sphere(300, 2, random_state=0)
    with pytest.warns(UserWarning, match=r"row 'a' has 20 duplicated point\(s\) out of 320"):
        table = MLEDimension().fit_transform(pd.Series([np.vstack([X, X[:20]])], index=["a"]))
    assert table[0, 0] == pytest.approx(mle_dimension(X)["mle"], rel=1e-10)
    with pytest.raises(ValueError, match="duplicated points"):
        local_dimension(np.vstack([X, X[:1]]))


def test_tiny_clouds_give_nan_and_one_summary_warning():
    clouds = [np.arange(4.0).reshape(2, 2) + i for i in range(5)]
    with pytest.warns(UserWarning) as record:
        table = TwoNNLikelihood().fit_transform(clouds)
    assert np.isnan(table[:, 0]).all()
    assert len(record) == 1 and "5 of 5 clouds" in str(record[0].message)


def test_parameters_are_checked_in_fit():
    X = [make_sphere(50, 2, random_state=0)]
    with pytest.raises(ValueError, match="n_neighbors >= 3"):
        MLEDimension(2, unbiased=True).fit(X)
    with pytest.raises(ValueError, match=r"quantiles must be"):
        MLEDimension(quantiles=(0.5, 1.5)).fit(X)
    with pytest.raises(ValueError, match="data_fraction"):
        TwoNNLikelihood(data_fraction=0).fit(X)
    with pytest.raises(ValueError, match="wrap it"):
        MLEDimension().fit(X[0])


def test_names_parse_and_join_with_the_other_estimators():
    frame = pd.DataFrame({"fc1": [make_sphere(200, 2, random_state=i) for i in range(3)]})
    tables = [estimator.set_output(transform="pandas").fit_transform(frame)
              for estimator in (MLEDimension(quantiles=(0.25, 0.75)), TwoNNLikelihood(), TwoNN())]
    joined = pd.concat(tables, axis=1)
    assert joined.columns.is_unique
    assert list(tables[0].columns) == ["fc1__mle", "fc1__mle_std", "fc1__mle_local_mean",
                                       "fc1__mle_local_q25", "fc1__mle_local_q75", "fc1__mle_k"]
    for name in joined.columns:
        source, dim, feature = parse_feature_name(name)
        assert source == "fc1" and dim is None and feature == name.split("__")[1]


def test_extreme_scales(rng):
    X = make_sphere(300, 2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for factor in (1e200, 1e-300):
            np.testing.assert_allclose(mle_dimension(X * factor).to_numpy(),
                                       mle_dimension(X).to_numpy(), rtol=1e-8)
            np.testing.assert_allclose(local_dimension(X * factor), local_dimension(X), rtol=1e-8)


@pytest.mark.slow
def test_example_runs_in_quick_mode(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "intrinsic_dimension_family.py"
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "3-sphere (3)" in result.stdout and "ms per cloud" in result.stdout
    assert (tmp_path / "intrinsic_dimension_family.png").stat().st_size > 0


def test_local_dimension_says_when_n_neighbors_is_capped(rng):
    # k >= n_points used all the other points without a sign (MLEDimension has mle_k)
    X = rng.normal(size=(12, 3))
    with pytest.warns(UserWarning, match=r"local_dimension: n_neighbors=20 but the cloud has "
                                         r"12 points: each point used its 11 other points "
                                         r"\(k=11\).*n_neighbors=11"):
        capped = local_dimension(X, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(local_dimension(X, 11), capped)
