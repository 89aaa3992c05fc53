"""PersistenceDiagram and sktopo.persistence: hand cases, containers, parameters, errors."""

import numpy as np
import pandas as pd
import pytest
import ripser
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sktopo
from sktopo import Diagram, PersistenceDiagram
from sktopo.datasets import make_circle
from sktopo.topology import engines

SQUARE = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
TRIANGLE = np.array([[0, 0], [1, 0], [0.5, np.sqrt(3) / 2]])
BACKENDS_H1 = ["auto", "ripser"] + (["giotto"] if engines.giotto_available() else [])


def sorted_bars(a):
    a = np.asarray(a, dtype=float).reshape(-1, 2)
    return a[np.lexsort((a[:, 1], a[:, 0]))]


# ------------------------------------------------------------------ hand cases
@pytest.mark.parametrize("backend", BACKENDS_H1)
def test_square(backend):
    d = sktopo.persistence(SQUARE, backend=backend)
    np.testing.assert_allclose(d[0], [[0, 1], [0, 1], [0, 1], [0, np.inf]])
    np.testing.assert_allclose(d[1], [[1, np.sqrt(2)]], rtol=1e-6)
    assert d.n_points == d.n_landmarks == 4 and d.covering_radius == 0


@pytest.mark.parametrize("backend", ["auto", "mst", "ripser"])
def test_square_h0_only(backend):
    d = sktopo.persistence(SQUARE, homology_dimensions=(0,), backend=backend)
    assert d.dims == (0,)
    np.testing.assert_allclose(d[0], [[0, 1], [0, 1], [0, 1], [0, np.inf]])


@pytest.mark.parametrize("backend", BACKENDS_H1)
def test_equilateral_triangle(backend):
    # all three edges enter at 1 together with the triangle: no loop is ever born
    d = sktopo.persistence(TRIANGLE, backend=backend)
    np.testing.assert_allclose(d[0], [[0, 1], [0, 1], [0, np.inf]], rtol=1e-6)
    assert d[1].shape == (0, 2)


@pytest.mark.parametrize("backend", BACKENDS_H1)
def test_max_edge_length_cuts(backend):
    # below the side length nothing connects; at the side length the loop is born and never dies
    d = sktopo.persistence(SQUARE, max_edge_length=0.5, backend=backend)
    np.testing.assert_array_equal(d[0], [[0, np.inf]] * 4)
    assert d[1].shape == (0, 2)
    d = sktopo.persistence(SQUARE, max_edge_length=1.2, backend=backend)
    np.testing.assert_allclose(d[0], [[0, 1], [0, 1], [0, 1], [0, np.inf]])
    np.testing.assert_allclose(d[1], [[1, np.inf]])
    assert d.threshold == 1.2
    # features read the infinite loop as living until the threshold
    np.testing.assert_allclose(d.finite(1), [[1, 1.2]])


def test_mst_threshold_matches_ripser():
    X = make_circle(100, noise=0.2, random_state=0)
    d = sktopo.persistence(X, homology_dimensions=(0,), max_edge_length=0.15)
    ref = ripser.ripser(cdist(X, X), distance_matrix=True, maxdim=0, thresh=0.15)["dgms"][0]
    np.testing.assert_allclose(sorted_bars(d[0]), sorted_bars(ref), rtol=1e-5)
    assert d.n_infinite(0) > 1


# ------------------------------------------------------------- against ripser
@pytest.mark.parametrize("seed", [0, 1])
def test_noisy_circle_equals_ripser(seed):
    X = make_circle(200, noise=0.1, random_state=seed)
    ref = ripser.ripser(cdist(X, X), distance_matrix=True, maxdim=1)["dgms"]
    for backend in BACKENDS_H1:
        d = sktopo.persistence(X, backend=backend)
        for q in (0, 1):
            np.testing.assert_allclose(sorted_bars(d[q]), sorted_bars(ref[q]), rtol=1e-5)
    h0 = sktopo.persistence(X, homology_dimensions=(0,))
    np.testing.assert_allclose(sorted_bars(h0[0]), sorted_bars(ref[0]), rtol=1e-5)
    # the circle's loop dominates
    life = d[1][:, 1] - d[1][:, 0]
    assert np.sort(life)[-1] > 5 * np.sort(life)[-2]


def test_precomputed():
    X = np.random.default_rng(0).normal(size=(60, 3))
    D = cdist(X, X)
    a = PersistenceDiagram().fit_transform([X])[0]
    b = PersistenceDiagram(metric="precomputed").fit_transform([D])[0]
    c = sktopo.persistence(D, metric="precomputed")
    assert a.allclose(b, rtol=1e-6) and b == c


# ------------------------------------------------------------------ containers
def clouds(n=4, seed=0):
    return [make_circle(40 + 5 * i, noise=0.05, random_state=seed + i) for i in range(n)]


def test_list_and_3d_array():
    X = clouds()
    out = PersistenceDiagram().fit_transform(X)
    assert isinstance(out, list) and len(out) == 4 and all(isinstance(d, Diagram) for d in out)
    cube = np.stack([c[:40] for c in X])
    out = PersistenceDiagram().fit_transform(cube)
    assert isinstance(out, list) and len(out) == 4


def test_series_and_frame_keep_labels():
    X = clouds()
    index = pd.Index(["conv1", "conv2", "fc1", "fc2"], name="layer")
    s = pd.Series(X, index=index, name="clouds")
    out = PersistenceDiagram().fit_transform(s)
    assert isinstance(out, pd.Series) and out.index.equals(index)
    assert out.index.name == "layer" and out.name == "clouds"
    frame = pd.DataFrame({"a": X[:2], "b": X[2:]},
                         index=pd.MultiIndex.from_tuples([("m", 0), ("m", 1)], names=["model", "input"]))
    out = PersistenceDiagram((0,)).fit_transform(frame)
    assert isinstance(out, pd.DataFrame) and out.index.equals(frame.index)
    assert list(out.columns) == ["a", "b"] and out.index.names == ["model", "input"]
    assert out.iat[1, 1] == PersistenceDiagram((0,)).fit_transform([X[3]])[0]


def test_set_output_pandas():
    est = PersistenceDiagram((0,))
    assert est.set_output(transform="pandas") is est
    out = est.fit_transform(clouds())
    assert isinstance(out, pd.Series) and len(out) == 4
    est.set_output(transform="default")
    assert isinstance(est.fit_transform(clouds()), list)


def feature_step():
    from sktopo import DiagramFeatures

    return DiagramFeatures()


def test_pipeline_set_output_pandas():
    X = pd.Series(clouds(), index=pd.Index(list("abcd"), name="layer"))
    pipe = make_pipeline(PersistenceDiagram(), feature_step())
    pipe.set_output(transform="pandas")
    table = pipe.fit_transform(X)
    assert isinstance(table, pd.DataFrame)
    assert table.index.equals(X.index) and table.index.name == "layer"


def test_clone_and_grid_search():
    rng = np.random.default_rng(0)
    circles = [make_circle(40, noise=0.05, random_state=i) for i in range(8)]
    blobs = [rng.normal(scale=0.5, size=(40, 2)) for _ in range(8)]
    X = pd.Series(circles + blobs)
    y = np.array([1] * 8 + [0] * 8)
    pipe = make_pipeline(PersistenceDiagram(), feature_step(), StandardScaler(), LogisticRegression())
    cloned = clone(pipe)
    assert cloned.get_params()["persistencediagram__homology_dimensions"] == (0, 1)
    search = GridSearchCV(pipe, {"persistencediagram__homology_dimensions": [(0,), (0, 1)]}, cv=2)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    assert search.best_score_ == 1.0  # loops against blobs: easy
    assert search.best_estimator_[0] is not pipe[0]


# ----------------------------------------------------------------- parameters
def test_n_jobs_equals_serial_threads():
    from joblib import parallel_config

    X = clouds(5)
    kw = dict(n_landmarks=30, random_state=0)
    serial = PersistenceDiagram(**kw).fit_transform(X)
    with parallel_config(backend="threading"):
        parallel = PersistenceDiagram(n_jobs=2, **kw).fit_transform(X)
    assert serial == parallel


@pytest.mark.slow
def test_n_jobs_equals_serial_processes():
    X = clouds(5)
    kw = dict(n_landmarks=30, random_state=0)
    serial = PersistenceDiagram(**kw).fit_transform(X)
    parallel = PersistenceDiagram(n_jobs=2, **kw).fit_transform(X)
    assert serial == parallel


def test_landmarks_metadata_and_seeding():
    X = clouds(3)
    a = PersistenceDiagram(n_landmarks=20, random_state=1).fit_transform(X)
    b = PersistenceDiagram(n_landmarks=20, random_state=1).fit_transform(X)
    assert a == b
    for d, cloud in zip(a, X):
        assert d.n_points == len(cloud) and d.n_landmarks == 20
        assert d.covering_radius > 0 and len(d[0]) == 20
    # more landmarks than points: the whole cloud, quietly
    whole = PersistenceDiagram(n_landmarks=1000).fit_transform(X)
    assert whole == PersistenceDiagram().fit_transform(X)
    assert all(d.covering_radius == 0 and d.n_landmarks == d.n_points for d in whole)


def test_landmark_diagram_within_twice_covering_radius():
    from persim import bottleneck

    X = make_circle(300, noise=0.05, random_state=0)
    full = sktopo.persistence(X)
    sub = sktopo.persistence(X, n_landmarks=60, random_state=0)
    for q in (0, 1):
        assert bottleneck(full.finite(q), sub.finite(q)) <= 2 * sub.covering_radius + 1e-6


def test_memory_limit_error_and_string_sizes():
    X = [np.random.default_rng(0).normal(size=(600, 3))]
    with pytest.raises(MemoryError, match=r"row 0.*600 points.*n_landmarks.*max_edge_length"):
        PersistenceDiagram(memory_limit="1MiB").fit_transform(X)
    # the advice works
    d = PersistenceDiagram(memory_limit="1MiB", n_landmarks=200, random_state=0).fit_transform(X)[0]
    assert d.n_landmarks == 200
    d = PersistenceDiagram(memory_limit=None).fit_transform(X)[0]
    assert d.n_points == 600


def test_memory_limit_finite_threshold_goes_sparse():
    X = [make_circle(600, noise=0.05, random_state=0)]
    sparse = PersistenceDiagram(memory_limit="3.4MiB", max_edge_length=0.3).fit_transform(X)[0]
    dense = PersistenceDiagram(memory_limit=None, max_edge_length=0.3).fit_transform(X)[0]
    assert sparse.allclose(dense, rtol=1e-6)


def test_coeff_and_metric_params():
    X = clouds(1)
    d3 = PersistenceDiagram(coeff=3).fit_transform(X)[0]
    assert d3.coeff == 3
    mink = PersistenceDiagram(metric="minkowski", metric_params={"p": 2}).fit_transform(X)[0]
    assert mink.allclose(PersistenceDiagram().fit_transform(X)[0], rtol=1e-6)


def test_verbose_progress_bar(capsys):
    PersistenceDiagram((0,), verbose=1).fit_transform(clouds(2))
    assert "PersistenceDiagram" in capsys.readouterr().err


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "params, match",
    [
        (dict(homology_dimensions=()), "non-empty"),
        (dict(homology_dimensions=(0, 0)), "repeated"),
        (dict(homology_dimensions=(-1,)), "homology_dimensions"),
        (dict(homology_dimensions=("a",)), "non-negative integers"),
        (dict(backend="mst"), "H0 only"),
        (dict(coeff=4), "prime"),
        (dict(memory_limit="lots"), "memory size"),
        (dict(metric="nonsense"), "unknown metric"),
        (dict(backend="gudhi"), "backend"),
        (dict(n_landmarks=1), "n_landmarks"),
        (dict(max_edge_length=-1.0), "max_edge_length"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        PersistenceDiagram(**params).fit(clouds(1))


def test_giotto_missing(monkeypatch):
    monkeypatch.setattr(engines.get_engine("giotto"), "available", lambda: False)
    with pytest.raises(ImportError, match=r"pip install sktopo\[fast\]"):
        PersistenceDiagram(backend="giotto").fit(clouds(1))
    # giotto-ph is opt-in: auto never needed it
    assert PersistenceDiagram().fit(clouds(1)).engine_ == "redzed"


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[0.0, np.nan], [1, 1]]), "NaN"),
        (np.array([[0.0, np.inf], [1, 1]]), "infinite"),
        (np.empty((0, 2)), "empty"),
        (np.array([[1.0, 2.0]]), "at least 2"),
        (np.array([["a", "b"], ["c", "d"]]), "not numeric"),
        ([[1.0, 2.0], [3.0]], "ragged"),
    ],
)
def test_bad_clouds_name_the_row(bad, match):
    X = pd.Series([clouds(1)[0], bad], index=["good", "broken"])
    with pytest.raises(ValueError, match=match) as info:
        PersistenceDiagram().fit_transform(X)
    assert "'broken'" in str(info.value)


def test_bare_2d_array_refused_with_hint():
    with pytest.raises(ValueError, match=r"sktopo\.persistence"):
        PersistenceDiagram().fit(SQUARE)


def test_one_point_in_one_cloud_function():
    with pytest.raises(ValueError, match="at least 2"):
        sktopo.persistence([[1.0, 2.0]])


def test_identical_points_and_duplicates_are_fine():
    d = sktopo.persistence(np.zeros((10, 5)))
    np.testing.assert_array_equal(d[0], [[0, np.inf]])
    assert d[1].shape == (0, 2)
    X = np.maximum(np.random.default_rng(0).normal(size=(100, 3)), 0)  # ReLU: many duplicates
    ref = ripser.ripser(cdist(X, X), distance_matrix=True, maxdim=1)["dgms"]
    for backend in BACKENDS_H1:
        d = sktopo.persistence(X, backend=backend)
        for q in (0, 1):
            np.testing.assert_allclose(sorted_bars(d[q]), sorted_bars(ref[q]), rtol=1e-5, atol=1e-7)


def test_transform_before_fit():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        PersistenceDiagram().transform(clouds(1))


def test_device_options_without_gpu():
    import torch

    X = clouds(1)
    ref = PersistenceDiagram((0,)).fit_transform(X)[0]
    assert PersistenceDiagram((0,), device="auto").fit_transform(X)[0].allclose(ref, rtol=1e-5)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            PersistenceDiagram((0,), device="cuda").fit(X)
    with pytest.raises(ValueError, match="device"):
        PersistenceDiagram((0,), device="abacus").fit(X)


# ---------------------------------------------------- landmarks of distance matrices
BACKENDS_ALL = ["auto", "mst", "ripser"] + (["giotto"] if engines.giotto_available() else [])


@pytest.mark.parametrize("backend", BACKENDS_ALL)
def test_precomputed_landmarks_equal_the_cloud(backend):
    # was: one H0 bar with "auto", "not symmetric" errors with the other engines
    # (greedy_landmarks updated a row of the user's matrix in place)
    from sktopo.datasets import make_sphere

    X = make_sphere(400, random_state=0)
    D = cdist(X, X)
    D_before = D.copy()
    dims = (0,) if backend == "mst" else (0, 1)
    a = PersistenceDiagram(dims, n_landmarks=60, backend=backend, random_state=0).fit_transform([X])[0]
    b = PersistenceDiagram(dims, n_landmarks=60, backend=backend, random_state=0,
                           metric="precomputed").fit_transform([D])[0]
    np.testing.assert_array_equal(D, D_before)
    assert b.n_landmarks == a.n_landmarks == 60 and b.n_points == 400
    assert b.covering_radius == pytest.approx(a.covering_radius, rel=1e-12)
    assert len(b[0]) == 60
    for q in dims:
        np.testing.assert_allclose(sorted_bars(b[q]), sorted_bars(a[q]), rtol=1e-6, atol=1e-9)
    if 1 in dims:
        assert len(b[1]) > 10


def test_same_cloud_same_landmarks_in_any_row():
    X = clouds(4)
    forward = PersistenceDiagram(n_landmarks=15, random_state=3).fit_transform(X)
    backward = PersistenceDiagram(n_landmarks=15, random_state=3).fit_transform(X[::-1])
    assert forward == backward[::-1]
    twice = PersistenceDiagram(n_landmarks=15, random_state=3).fit_transform([X[1], X[1]])
    assert twice[0] == twice[1] == forward[1]


# ------------------------------------------------------------- many small clouds
def _many_clouds(rng, sizes, d=6):
    return [rng.normal(size=(n, d)) for n in sizes]


@pytest.mark.parametrize("backend, dims", [("auto", (0,)), ("ripser", (0, 1))]
                         + ([("giotto", (0, 1))] if engines.giotto_available() else []))
def test_batched_path_equals_one_cloud_engine(rng, backend, dims):
    # unequal sizes: several buckets, never padded
    X = _many_clouds(rng, [12, 30, 12, 30, 7, 30, 12, 2])
    X[3][5] = X[3][6]  # a duplicate point
    est = PersistenceDiagram(dims, backend=backend).fit(X)
    got = est.transform(X)
    for cloud, d in zip(X, got):
        ref = engines.compute_bars(cloud, engine=est.engine_, homology_dimensions=dims)
        for q in dims:
            np.testing.assert_allclose(sorted_bars(d[q]), sorted_bars(ref[q]), rtol=1e-6, atol=1e-9)
        ref = ripser.ripser(cdist(cloud, cloud), distance_matrix=True, maxdim=max(dims))["dgms"]
        for q in dims:
            np.testing.assert_allclose(sorted_bars(d[q]), sorted_bars(ref[q][ref[q][:, 1] > ref[q][:, 0]]),
                                       rtol=1e-5, atol=1e-6)


def test_batched_path_does_not_depend_on_chunk_mates(rng, monkeypatch):
    from sktopo.topology.engines import _scheduler as module

    X = _many_clouds(rng, [20] * 9)
    whole = PersistenceDiagram((0,)).fit_transform(X)
    monkeypatch.setattr(module, "_CHUNK_ENTRIES", 20 * 20 * 2)  # chunks of two clouds
    chunked = PersistenceDiagram((0,)).fit_transform(X[::-1])[::-1]
    alone = [PersistenceDiagram((0,)).fit_transform([x])[0] for x in X]
    for a, b, c in zip(whole, chunked, alone):
        for q in (0,):
            np.testing.assert_array_equal(a[q], b[q])
            np.testing.assert_array_equal(a[q], c[q])


@pytest.mark.parametrize("backend", ["ripser"] + (["giotto"] if engines.giotto_available() else []))
def test_batched_path_parallel_equals_serial(rng, backend):
    X = _many_clouds(rng, [40] * 6 + [45] * 5)  # above 32 points: worker processes
    serial = PersistenceDiagram((0, 1), backend=backend).fit_transform(X)
    parallel = PersistenceDiagram((0, 1), backend=backend, n_jobs=2).fit_transform(X)
    assert serial == parallel
    tiny = _many_clouds(rng, [12] * 8)  # tiny clouds stay here
    assert (PersistenceDiagram((0, 1), backend=backend, n_jobs=2).fit_transform(tiny)
            == PersistenceDiagram((0, 1), backend=backend).fit_transform(tiny))


def test_batched_path_precomputed_threshold_and_metric(rng):
    X = _many_clouds(rng, [18] * 4)
    Ds = [cdist(x, x) for x in X]
    for dims in ((0,), (0, 1)):
        a = PersistenceDiagram(dims, max_edge_length=2.0).fit_transform(X)
        b = PersistenceDiagram(dims, max_edge_length=2.0, metric="precomputed").fit_transform(Ds)
        for da, db in zip(a, b):
            assert da.allclose(db, rtol=1e-6)
        ref = ripser.ripser(Ds[0], distance_matrix=True, maxdim=max(dims), thresh=2.0)["dgms"]
        for q in dims:
            np.testing.assert_allclose(sorted_bars(a[0][q]), sorted_bars(ref[q]), rtol=1e-5, atol=1e-6)
    man = PersistenceDiagram((0, 1), metric="manhattan").fit_transform(X)[1]
    ref = ripser.ripser(cdist(X[1], X[1], "cityblock"), distance_matrix=True, maxdim=1)["dgms"]
    for q in (0, 1):
        np.testing.assert_allclose(sorted_bars(man[q]), sorted_bars(ref[q]), rtol=1e-5, atol=1e-6)


def test_batched_path_torch_on_cpu_tensors(rng):
    pytest.importorskip("torch")
    from sktopo.topology.engines import PersistenceSettings
    from sktopo.topology.engines._scheduler import _chunk_h0_torch

    X = np.stack(_many_clouds(rng, [16] * 3))
    settings = PersistenceSettings(homology_dimensions=(0,), engine="mst", device="cpu")
    got = _chunk_h0_torch(list(X), [0, 1, 2], settings)
    ref = PersistenceDiagram((0,), device="cpu").fit_transform(list(X))
    for g, r in zip(got, ref):
        np.testing.assert_allclose(sorted_bars(g[0]), r[0], rtol=1e-5)


# ------------------------------------------------------------------ extreme scales
@pytest.mark.parametrize("factor", [1e200, 1e-300, 1e150])
@pytest.mark.parametrize("n_points", [40, 600])  # the batched and the one-cloud paths
def test_extreme_scales_give_scaled_bars(factor, n_points):
    X = make_circle(n_points, noise=0.05, random_state=0)
    dims = (0, 1) if n_points < 100 else (0,)
    ref = sktopo.persistence(X, homology_dimensions=dims, backend="ripser" if dims == (0, 1) else "auto")
    got = sktopo.persistence(X * factor, homology_dimensions=dims,
                             backend="ripser" if dims == (0, 1) else "auto")
    for q in dims:
        assert np.isfinite(got[q][:-1 if q == 0 else None]).all() and len(got[q]) == len(ref[q])
        np.testing.assert_allclose(got[q] / factor, ref[q], rtol=1e-6)


def test_extreme_scales_precomputed_and_landmarks():
    X = make_circle(120, noise=0.05, random_state=0)
    D = cdist(X, X)
    ref = sktopo.persistence(D, metric="precomputed")
    for factor in (1e200, 1e-300):
        got = sktopo.persistence(D * factor, metric="precomputed")
        for q in (0, 1):
            assert len(got[q]) == len(ref[q])
            np.testing.assert_allclose(got[q] / factor, ref[q], rtol=1e-6)
        from sktopo.topology.landmarks import greedy_landmarks

        idx, eps = greedy_landmarks(X * factor, 30, random_state=0)
        idx_ref, eps_ref = greedy_landmarks(X, 30, random_state=0)
        np.testing.assert_array_equal(idx, idx_ref)
        assert eps / factor == pytest.approx(eps_ref, rel=1e-9)
        # the content key of a scaled cloud differs (other landmarks), the diagram stays sane
        sub = sktopo.persistence(X * factor, n_landmarks=30, random_state=0)
        assert np.isfinite(sub.covering_radius) and sub.covering_radius > 0
        assert len(sub[0]) == 30 and np.isfinite(sub[1]).all()


@pytest.mark.parametrize("factor", [1e200, 1e-300])
@pytest.mark.parametrize("n_points", [30, 600])
def test_overflowing_metric_raises_clearly(factor, n_points):
    X = [make_circle(n_points, random_state=0) * factor]
    with np.errstate(all="ignore"), pytest.raises(ValueError, match=r"row 0.*overflow or underflow"):
        PersistenceDiagram((0,), metric=lambda a, b: float(np.sum((a - b) ** 2))).fit_transform(X)


# ------------------------------------------------------------------------ coeff
def test_coeff_range_edges():
    X = [make_circle(20, random_state=0)]
    ref = PersistenceDiagram(backend="ripser").fit_transform(X)[0]
    for backend in BACKENDS_H1:
        top = PersistenceDiagram(backend=backend, coeff=127).fit_transform(X)[0]
        np.testing.assert_allclose(top[1], ref[1], rtol=1e-6)  # a circle: any field agrees
    import time

    for p in (131, 251, 65521, 65537, 2**61 - 1):
        start = time.process_time()  # CPU time: a loaded machine does not make it flaky
        with pytest.raises(ValueError, match=r"coeff=\d+ is outside.*primes 2 to 127"):
            PersistenceDiagram(coeff=p).fit(X)
        # no primality test of a huge number (trial division of 2**61 - 1: minutes)
        assert time.process_time() - start < 1.0
    with pytest.raises(ValueError, match="prime"):
        PersistenceDiagram(coeff=121).fit(X)
    with pytest.raises(ValueError, match="outside"):
        engines.check_coeff(131)


# --------------------------------------------------------------------- settings
def test_one_settings_object_and_error_context():
    settings = engines.PersistenceSettings(homology_dimensions=(1, 0), engine="ripser",
                                           memory_limit=10 * 2**20, estimator="MyEstimator")
    assert settings.homology_dimensions == (0, 1) and settings.maxdim == 1
    with pytest.raises(Exception):
        settings.coeff = 3  # frozen
    with pytest.raises(MemoryError) as info:
        engines.compute_bars(np.zeros((3000, 2)), settings, label="the cloud at row 'conv1'")
    assert str(info.value).startswith("MyEstimator: Vietoris-Rips persistence of the cloud at row 'conv1'")


def test_keyword_only_and_device_default():
    import inspect

    params = inspect.signature(PersistenceDiagram).parameters
    assert params["homology_dimensions"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for name, p in params.items()
               if name != "homology_dimensions")
    assert PersistenceDiagram().device == "auto"
    with pytest.raises(TypeError):
        PersistenceDiagram((0,), "euclidean")


# ------------------------------------------------------------- sparse matrices
@pytest.mark.parametrize("backend, dims", [("auto", (0,)), ("mst", (0,)), ("ripser", (0, 1))]
                         + ([("giotto", (0, 1))] if engines.giotto_available() else []))
def test_sparse_precomputed_equals_ripser(backend, dims):
    import scipy.sparse as sp

    X = make_circle(80, noise=0.05, random_state=0)
    X[3] = X[4]  # a duplicate point: an explicit 0 edge
    D = cdist(X, X)
    i, j = np.nonzero((D <= 0.8) & ~np.eye(len(X), dtype=bool))  # short edges only
    A = sp.csr_matrix((D[i, j], (i, j)), shape=D.shape)
    assert A.nnz == len(i)  # the zero-length edge (3, 4) is stored
    ref = ripser.ripser(A, distance_matrix=True, maxdim=max(dims))["dgms"]
    d = PersistenceDiagram(dims, metric="precomputed", backend=backend).fit_transform([A])[0]
    for q in dims:
        np.testing.assert_allclose(sorted_bars(d[q]), sorted_bars(ref[q][ref[q][:, 1] > ref[q][:, 0]]),
                                   rtol=1e-5, atol=1e-7)
    # the same graph as a dense matrix with inf for the missing edges
    dense = np.full(D.shape, np.inf)
    dense[i, j] = D[i, j]
    np.fill_diagonal(dense, 0.0)
    d_dense = sktopo.persistence(dense, homology_dimensions=dims, metric="precomputed", backend=backend)
    for q in dims:
        np.testing.assert_allclose(sorted_bars(d[q]), sorted_bars(d_dense[q]), rtol=1e-6)


def test_sparse_precomputed_landmarks_and_errors():
    import scipy.sparse as sp

    X = make_circle(120, noise=0.05, random_state=0)
    D = cdist(X, X)
    full = sp.csr_matrix(D)  # every edge stored
    a = PersistenceDiagram(n_landmarks=30, metric="precomputed", random_state=0).fit_transform([full])[0]
    b = PersistenceDiagram(n_landmarks=30, metric="precomputed", random_state=0).fit_transform([D])[0]
    assert a.n_landmarks == 30 and a.covering_radius == pytest.approx(b.covering_radius)
    assert a.allclose(b, rtol=1e-6)
    bad = sp.csr_matrix(np.triu(D))
    with pytest.raises(ValueError, match=r"row 0.*not symmetric"):
        PersistenceDiagram(metric="precomputed").fit_transform([bad])
    with pytest.raises(ValueError, match="square"):
        PersistenceDiagram(metric="precomputed").fit_transform([sp.csr_matrix(np.ones((3, 4)))])
    neg = full.tolil()
    neg[1, 2] = neg[2, 1] = -1.0
    with pytest.raises(ValueError, match="negative"):
        sktopo.persistence(neg, metric="precomputed")
    diag = full.tolil()
    diag[0, 0] = 1.0
    with pytest.raises(ValueError, match="diagonal"):
        sktopo.persistence(diag, metric="precomputed")


# ---------------------------------------------------------- representatives
def _check_representatives(X, d, threshold=np.inf):
    D = cdist(X, X)
    for k, (bar, rep) in enumerate(zip(d[0], d.representatives[0])):
        if np.isfinite(bar[1]):  # the tree edge that kills the bar
            assert len(rep) == 2 and D[rep[0], rep[1]] == pytest.approx(bar[1], rel=1e-6)
        else:
            assert len(rep) == 1
    for bar, cycle in zip(d[1] if 1 in d else [], d.representatives.get(1, [])):
        assert len(cycle) >= 3 and len(set(cycle)) == len(cycle)
        steps = D[cycle, np.roll(cycle, -1)]
        assert steps.max() == pytest.approx(bar[0], rel=1e-6)  # born with its longest edge
        assert steps.max() <= min(bar[1], threshold) + 1e-9


@pytest.mark.parametrize("backend", BACKENDS_H1)
def test_representatives_circle(backend):
    X = make_circle(100, noise=0.05, random_state=0)
    d = PersistenceDiagram(backend=backend, representatives=True).fit_transform([X])[0]
    assert set(d.representatives) == {0, 1}
    assert [len(r) for r in d.representatives.values()] == [len(d[0]), len(d[1])]
    _check_representatives(X, d)
    # the longest H1 bar's loop goes once around the circle
    longest = d.representatives[1][int(np.argmax(d[1][:, 1] - d[1][:, 0]))]
    angles = np.arctan2(X[longest, 1], X[longest, 0])
    steps = np.angle(np.exp(1j * (np.roll(angles, -1) - angles)))  # around the closed loop
    assert abs(steps.sum() / (2 * np.pi)) == pytest.approx(1.0)
    assert PersistenceDiagram(backend=backend).fit_transform([X])[0].representatives is None


def test_representatives_with_landmarks_threshold_and_mst():
    X = make_circle(300, noise=0.05, random_state=1)
    d = PersistenceDiagram(n_landmarks=60, random_state=0, representatives=True,
                           max_edge_length=0.5).fit_transform([X])[0]
    _check_representatives(X, d, threshold=0.5)  # indices are rows of X, not landmark positions
    used = np.unique(np.concatenate(d.representatives[0]))
    assert used.max() > 60
    h0 = PersistenceDiagram((0,), representatives=True).fit_transform([X[:50], X[50:90]])
    for x, dd in zip([X[:50], X[50:90]], h0):
        _check_representatives(x, dd)


def test_representatives_refuse_sparse():
    import scipy.sparse as sp

    X = make_circle(30, random_state=0)
    with pytest.raises(ValueError, match="representatives=True needs a dense"):
        PersistenceDiagram(metric="precomputed", representatives=True).fit_transform(
            [sp.csr_matrix(cdist(X, X))])


def test_plot_cycle_draws_the_loop_and_its_inputs():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sktopo.plotting import plot_cycle

    X = make_circle(80, noise=0.05, random_state=0)
    X5 = np.column_stack([X, np.zeros((80, 3))])  # projected on its principal axes
    d = sktopo.persistence(X5, representatives=True)
    images = np.random.default_rng(0).uniform(size=(80, 64))
    ax = plot_cycle(X5, d, images=images, image_shape=(8, 8))
    longest = d.representatives[1][int(np.argmax(d[1][:, 1] - d[1][:, 0]))]
    line = ax.get_lines()[0]
    assert len(line.get_xdata()) == len(longest) + 1  # closed loop
    assert len(ax.figure.axes) == 1 + min(12, len(longest))
    plt.close(ax.figure)
    ax = plot_cycle(X5, d, q=0, bar=0)
    assert len(ax.get_lines()[0].get_xdata()) == 2
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="representatives=True"):
        plot_cycle(X5, sktopo.persistence(X5))


@pytest.mark.skipif(not engines.giotto_available(), reason="needs giotto-ph")
def test_giotto_by_name_gives_the_diagrams_of_auto(rng):
    X = _many_clouds(rng, [10, 10, 60])
    auto = PersistenceDiagram((0, 1)).fit_transform(X)
    giotto = PersistenceDiagram((0, 1), backend="giotto").fit_transform(X)
    assert [d.engine for d in auto] == ["redzed"] * 3  # giotto-ph is opt-in
    assert all(d.engine == "giotto" for d in giotto)
    for a, g in zip(auto, giotto):
        assert a == g  # the same float32 matrix, exact engines: the same diagram


@pytest.mark.parametrize("params", [
    {}, {"n_jobs": 2}, {"n_landmarks": 10, "random_state": 0}, {"metric": "manhattan"},
    {"representatives": True}, {"max_edge_length": 1.0},
])
@pytest.mark.parametrize("dims", [(0,), (0, 1)])
def test_float32_clouds_give_the_diagrams_of_their_float64_copies(rng, dims, params):
    # float32 clouds are converted chunk by chunk, not up front: the same exact diagrams,
    # the caller's arrays untouched, and extreme scales still rescaled
    if params.get("representatives") and dims == (0,):
        pytest.skip("representatives are tested with H1")
    clouds32 = [(rng.normal(size=(int(rng.integers(5, 60)), 7)) * scale).astype(np.float32)
                for scale in [1e-30, 1.0, 1e30] * 12]
    before = [c.copy() for c in clouds32]
    ours = PersistenceDiagram(dims, **params).fit_transform(clouds32)
    reference = PersistenceDiagram(dims, **params).fit_transform(
        [c.astype(np.float64) for c in clouds32])
    assert all(a == b for a, b in zip(ours, reference))
    assert all(np.array_equal(a, b) for a, b in zip(clouds32, before))


@pytest.mark.parametrize("params", [{}, {"n_jobs": 2}, {"n_landmarks": 3}, {"metric": "cosine"}])
@pytest.mark.parametrize("dims", [(0,), (0, 1)])
def test_non_finite_float32_clouds_are_named_on_every_path(rng, dims, params):
    clouds = [rng.normal(size=(20, 4)).astype(np.float32) for _ in range(30)]
    clouds[17][3, 1] = np.inf
    X = pd.Series(clouds, index=[f"text{k}" for k in range(30)])
    with pytest.raises(ValueError, match=r"row 'text17' contains 0 NaN and 1 infinite"):
        PersistenceDiagram(dims, **params).fit_transform(X)


def test_representatives_use_the_engines_birth_simplices(monkeypatch):
    # redzed-tda reports each bar's birth edge: the loops are built from it, no length search
    from sktopo.topology import persistence as module
    from sktopo.topology import representatives

    X = make_circle(80, noise=0.1, random_state=3)
    searched = []
    monkeypatch.setattr(representatives, "_h1", lambda *a: searched.append(1) or [])
    d = PersistenceDiagram(representatives=True).fit_transform([X])[0]
    assert d.engine == "redzed" and not searched and len(d[1]) > 0
    _check_representatives(X, d)
    edges = module._birth_edges(engines.get_engine("redzed"), cdist(X, X), d[1], np.inf)
    assert edges is not None and all(len(e) == 2 for e in edges)
    monkeypatch.undo()
    # the same bars through ripser.py (no simplices): loops found by the birth length
    r = PersistenceDiagram(representatives=True, backend="ripser").fit_transform([X])[0]
    assert r == d
    _check_representatives(X, r)


def test_hardening_n_jobs_zero_complex_sparse_and_subnormal_clouds():
    # issue 22: n_jobs=0 was accepted in fit and failed in transform; a complex sparse
    # matrix lost its imaginary part in sktopo.persistence; a subnormal cloud (x1e-318) got a
    # scale of 2**1063 = inf from power_of_two_scale and NaN bars
    import scipy.sparse as sp

    X = make_circle(60, noise=0.05, random_state=0)
    with pytest.raises(ValueError, match="n_jobs"):
        PersistenceDiagram(n_jobs=0).fit([X])
    A = sp.csr_matrix(cdist(X, X) * (1 + 1j))
    with pytest.raises((ValueError, TypeError), match="(?i)complex"):
        sktopo.persistence(A, metric="precomputed")
    ref = sktopo.persistence(X, (0,))
    tiny = sktopo.persistence(X * 1e-318, (0,))
    assert len(tiny[0]) == len(ref[0]) and np.isfinite(tiny[0][:-1]).all()
