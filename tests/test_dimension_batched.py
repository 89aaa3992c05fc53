"""Many small clouds as one batch: PHDimension and TwoNN give the per-cloud numbers, the same
number for a cloud in any batch, with unequal sizes, duplicates and extreme scales."""

import warnings

import joblib
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from sktopo import PHDimension, TwoNN, ph_dimension, twonn
from sktopo.datasets import make_sphere, make_torus
from sktopo.dimension import _batched
from sktopo.dimension import twonn as twonn_module
from sktopo.dimension._neighbors import batched_knn_distances, rescaled, smallest, unit_scale
from sktopo.dimension.phdim import _estimate_cloud, _shuffled_orders, phdim_batch, phdim_batch_key
from sktopo.dimension.twonn import _twonn_cloud, twonn_batch, twonn_batch_key

PHDIM = dict(alpha=1.0, protocol=None, min_points=None, max_points=None, n_sizes=None,
             n_draws=None, n_reruns=None, metric="euclidean", device="cpu")
TWONN = dict(discard_fraction=0.1, metric="euclidean", max_points=None)


def _token_clouds(count, n, d, seed=0):
    """Clouds like a transformer's token states: a low-dimensional manifold in R^d plus noise."""
    rng = np.random.default_rng(seed)
    return [make_sphere(n, 2 + i % 3, ambient_dim=d, random_state=seed + i)
            + 0.01 * rng.normal(size=(n, d)) for i in range(count)]


def _values(result, names):
    return np.array([result[0][name] for name in names])


@pytest.mark.parametrize("n, d", [(30, 384), (64, 48), (120, 5)])
def test_phdim_batch_equals_the_per_cloud_path(n, d):
    clouds = _token_clouds(12, n, d)
    seeds = list(range(100, 112))
    labels = [f"row {i}" for i in range(12)]
    assert phdim_batch_key(clouds[0], **PHDIM) == (n, d)
    batched = phdim_batch(clouds, seeds, labels, **PHDIM)
    names = list(batched[0][0])
    for cloud, seed, label, got in zip(clouds, seeds, labels, batched):
        want = _estimate_cloud(cloud, seed, label, **PHDIM)
        assert [str(m) for m in got[1]] == [str(m) for m in want[1]]
        # bit-identical: the same float operations in the same order, cloud by cloud
        np.testing.assert_array_equal(_values(got, names), _values(want, names))


@pytest.mark.parametrize("discard", [0.0, 0.1, 0.3])
def test_twonn_batch_equals_brute_force_and_the_per_cloud_path(rng, discard):
    clouds = [rng.normal(size=(40, 6)) for _ in range(8)]
    settings = {**TWONN, "discard_fraction": discard}
    batched = twonn_batch(clouds, list(range(8)), ["row"] * 8, **settings)
    for cloud, got in zip(clouds, batched):
        want = _twonn_cloud(cloud, 0, "row", **settings)  # scikit-learn's kneighbors
        for name in ("twonn", "r2", "n_used"):
            assert got[0][name] == pytest.approx(want[0][name], rel=1e-9)
        D = cdist(cloud, cloud)
        np.fill_diagonal(D, np.inf)
        two = np.sort(D, axis=1)[:, :2]
        mu = np.sort(two[:, 1] / two[:, 0])
        keep = min(int(np.floor(len(mu) * (1 - discard))), len(mu) - 1)
        x, y = np.log(mu[:keep]), -np.log(1 - np.arange(1, keep + 1) / len(mu))
        assert got[0]["twonn"] == pytest.approx(x @ y / (x @ x), rel=1e-9)


@pytest.mark.parametrize("k", [1, 2, 5])  # row minima up to 3 neighbours, a partial sort above
def test_knn_distances_match_cdist(rng, k):
    X = rng.normal(size=(3, 25, 4))
    got = batched_knn_distances(X, k)
    for b in range(3):
        D = cdist(X[b], X[b], "sqeuclidean")
        np.fill_diagonal(D, np.inf)
        np.testing.assert_allclose(got[b], np.sort(D, axis=1)[:, :k], rtol=1e-10)


def test_smallest_entries_with_ties_and_infinities_leave_the_matrix_as_it_was(rng):
    D = np.round(rng.random((4, 12, 12)), 1)  # ties
    D[rng.random(D.shape) < 0.3] = np.inf
    D[:, np.arange(12), np.arange(12)] = np.inf
    before = D.copy()
    for k in range(1, 13):
        np.testing.assert_array_equal(smallest(D, k), np.sort(D, axis=-1)[..., :k])
    np.testing.assert_array_equal(D, before)


def test_subsample_orders_are_one_permutation_per_row():
    # the per-cloud path and the batches draw with one call per cloud: the stream must be
    # that of one rng.permutation per (rerun, draw), as the seeded numbers were computed
    rows = _shuffled_orders(np.random.default_rng(5), np.empty((6, 40), dtype=np.intp))
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(rows, [rng.permutation(40) for _ in range(6)])


def test_batches_run_in_threads_with_one_blas_thread_and_restore_it(monkeypatch):
    import threading

    from threadpoolctl import threadpool_info

    seen = []

    def spy(*args, **kwargs):
        blas = {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}
        seen.append((threading.current_thread() is threading.main_thread(), blas))
        return twonn_batch(*args, **kwargs)

    clouds = _token_clouds(24, 30, 8)
    before = [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()]
    monkeypatch.setattr(twonn_module, "twonn_batch", spy)
    threads = TwoNN(n_jobs=2).fit_transform(clouds)
    assert seen and all(not main and blas == {1} for main, blas in seen)
    assert [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()] == before
    monkeypatch.undo()
    # an explicit joblib backend still wins, with the same numbers
    with joblib.parallel_config(backend="loky"):
        np.testing.assert_array_equal(TwoNN(n_jobs=2).fit_transform(clouds), threads)


@pytest.mark.parametrize("estimator", [PHDimension(random_state=3), TwoNN(max_points=50,
                                                                          random_state=3)])
def test_a_cloud_gets_the_same_numbers_in_any_batch(estimator, monkeypatch):
    clouds = _token_clouds(40, 64, 32, seed=1)
    alone = np.vstack([estimator.fit_transform([cloud]) for cloud in clouds[:3]])
    together = estimator.fit_transform(clouds)
    np.testing.assert_array_equal(together[:3], alone)
    shuffled = estimator.fit_transform(clouds[::-1])
    np.testing.assert_array_equal(shuffled[::-1], together)
    # chunks of a few clouds, and two workers: still the same numbers
    monkeypatch.setattr(_batched, "_CHUNK_ENTRIES", 50_000)
    np.testing.assert_array_equal(estimator.fit_transform(clouds), together)
    two_jobs = estimator.set_params(n_jobs=2).fit_transform(clouds)
    np.testing.assert_array_equal(two_jobs, together)


@pytest.mark.parametrize("estimator", [
    PHDimension(random_state=5), TwoNN(max_points=40, random_state=5),
    PHDimension(random_state=np.random.RandomState(2)),  # read once per call, in the main thread
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_seeds_computed_in_the_batches_give_the_n_jobs_1_table(estimator, dtype, monkeypatch):
    from sklearn.base import clone

    from sktopo._seeding import CloudSeeder, cloud_seeds

    clouds = [c.astype(dtype) for c in _token_clouds(30, 48, 24, seed=4)] + [
        make_torus(500, random_state=9).astype(dtype)]  # one computed on its own
    seen = []
    original = _batched.compute_cells

    def spy(clouds, seeds, labels, **kwargs):
        seen.append(type(seeds))
        return original(clouds, seeds, labels, **kwargs)

    monkeypatch.setattr(_batched, "compute_cells", spy)
    monkeypatch.setattr(_batched, "_CHUNK_ENTRIES", 40_000)  # several chunks per worker
    one_job = clone(estimator).set_params(n_jobs=1).fit_transform(clouds)
    assert seen == [CloudSeeder]
    two_jobs = clone(estimator).set_params(n_jobs=2).fit_transform(clouds)
    np.testing.assert_array_equal(two_jobs, one_job)
    with joblib.parallel_config(backend="loky"):  # processes: the seeder travels pickled
        np.testing.assert_array_equal(
            clone(estimator).set_params(n_jobs=2).fit_transform(clouds), one_job)
    # and the per-cloud function with the seeds of cloud_seeds gives the same numbers
    if (isinstance(estimator, PHDimension) and isinstance(estimator.random_state, int)
            and dtype == np.float64):
        function, settings = estimator._cell_task()
        seeds = cloud_seeds(estimator.random_state, clouds)
        for k in (0, 7, 30):
            values, _ = function(clouds[k], seeds[k], f"row {k}", **settings)
            assert one_job[k, 0] == pytest.approx(values["phdim"], rel=1e-12)


def test_a_batch_given_the_seeder_equals_the_batch_given_the_seeds():
    from sktopo._seeding import CloudSeeder

    clouds = _token_clouds(13, 40, 30, seed=2)
    labels = [f"row {i}" for i in range(13)]
    seeder = CloudSeeder(3)
    assert phdim_batch(clouds, seeder, labels, **PHDIM) == phdim_batch(clouds, seeder(clouds),
                                                                       labels, **PHDIM)
    settings = dict(TWONN, max_points=30)
    assert twonn_batch(clouds, seeder, labels, **settings) == twonn_batch(
        clouds, seeder(clouds), labels, **settings)


def test_unequal_sizes_are_bucketed_without_changing_a_result():
    sizes = [30, 64, 64, 500, 30, 45, 64]
    clouds = [make_torus(n, random_state=i) for i, n in enumerate(sizes)]
    for estimator in (PHDimension(random_state=0), TwoNN()):
        table = estimator.fit_transform(clouds)
        for row, cloud in zip(table, clouds):
            np.testing.assert_array_equal(row, estimator.fit_transform([cloud])[0])
    # the 500-point cloud is beyond the PHDimension batch: computed on its own
    assert phdim_batch_key(clouds[3], **PHDIM) is None
    assert twonn_batch_key(clouds[3], **TWONN) == (500, 3)


def test_duplicates_in_a_batch_take_the_per_cloud_path_and_warn():
    clouds = _token_clouds(6, 64, 16)
    clouds[2] = np.vstack([clouds[2][:60], clouds[2][:4]])  # four duplicated points
    with pytest.warns(UserWarning, match=r"row 2.*4 duplicated point"):
        twonn_table = TwoNN().fit_transform(clouds)
    assert twonn_table[2, 0] == pytest.approx(twonn(clouds[2][:60])["twonn"], rel=1e-9)
    with pytest.warns(UserWarning, match=r"row 2.*4 duplicated point"):
        phdim_table = PHDimension(random_state=0).fit_transform(clouds)
    assert np.isfinite(phdim_table[:, 0]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = PHDimension(random_state=0).fit_transform(clouds[:2] + clouds[3:])
    np.testing.assert_array_equal(clean, np.delete(phdim_table, 2, axis=0))


def test_many_tiny_clouds_give_one_summary_warning():
    clouds = [make_sphere(10, 1, random_state=i) for i in range(30)]
    # batched too (threads, not a process per cloud): the batch hands them to the per-cloud path
    assert phdim_batch_key(clouds[0], **PHDIM) == (10, 2)
    with pytest.warns(UserWarning) as record:
        table = PHDimension(random_state=0, n_jobs=2).fit_transform(clouds)
    assert np.isnan(table[:, 0]).all()
    assert len(record) == 1 and "30 of 30 clouds" in str(record[0].message)
    assert phdim_batch(clouds[:2], [0, 1], ["row 0", "row 1"], **PHDIM) == [
        _estimate_cloud(cloud, seed, label, **PHDIM)
        for cloud, seed, label in zip(clouds[:2], [0, 1], ["row 0", "row 1"])]


# ------------------------------------------------------------------ extreme scales (issue 11)
def test_unit_scale_is_a_power_of_two_only_outside_the_safe_range():
    assert unit_scale(3.0) == 1.0 and unit_scale(0.0) == 1.0 and unit_scale(np.inf) == 1.0
    for peak in (1e200, 1e-300, 2.0 ** 50):
        scale = unit_scale(peak)
        assert 0.5 <= peak * scale < 1 and np.frexp(scale)[0] == 0.5
    X = np.array([[1e200, 0.0], [0.0, 1e200]])
    assert np.abs(rescaled(X, "euclidean")).max() < 1
    assert rescaled(X, "hamming") is X  # not scale-free: left alone


@pytest.mark.parametrize("factor", [1e200, 1e-300])
@pytest.mark.parametrize("n_points", [64, 400])  # in a batch, and cloud by cloud
def test_extreme_scales_give_the_unit_scale_numbers(factor, n_points):
    X = make_sphere(n_points, 2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / underflow RuntimeWarning either
        # the same subsamples (same seed): the same numbers
        unit = _estimate_cloud(X, 7, "row 0", **PHDIM)[0]
        for got in (_estimate_cloud(X * factor, 7, "row 0", **PHDIM)[0],
                    phdim_batch([X * factor], [7], ["row 0"], **PHDIM)[0][0]):
            np.testing.assert_allclose(list(got.values()), list(unit.values()), rtol=1e-6)
        # through the estimators (the content seed differs with the scale: other subsamples)
        estimate = ph_dimension(X * factor, random_state=0)["phdim"]
        assert estimate == pytest.approx(2, abs=0.2 if n_points > 100 else 0.5)
        np.testing.assert_allclose(twonn(X * factor).to_numpy(), twonn(X).to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("factor", [1e200, 1e-300])
def test_extreme_scales_of_precomputed_and_other_metrics(factor):
    X = make_sphere(300, 2, random_state=1)
    D = cdist(X, X)
    settings = {**PHDIM, "metric": "precomputed"}
    np.testing.assert_allclose(
        list(_estimate_cloud(D * factor, 7, "row 0", **settings)[0].values()),
        list(_estimate_cloud(D, 7, "row 0", **settings)[0].values()), rtol=1e-6)
    for metric, data in (("precomputed", D), ("manhattan", X)):
        unit = twonn(data, metric=metric)
        np.testing.assert_allclose(twonn(data * factor, metric=metric).to_numpy(),
                                   unit.to_numpy(), rtol=1e-6)
