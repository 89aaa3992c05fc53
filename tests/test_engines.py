"""The persistence engines against ripser.py, and against each other."""

import numpy as np
import pytest
import ripser
from scipy.spatial.distance import cdist

from sktopo.datasets import make_circle, make_sphere
from sktopo.topology import engines
from sktopo.topology.engines import compute_bars, resolve_engine

HAS_GIOTTO = engines.giotto_available()
FULL_ENGINES = ["redzed", "ripser"] + (["giotto"] if HAS_GIOTTO else [])
# the engines of any prime field (redzed-tda computes over Z/2 only)
ZP_ENGINES = ["ripser"] + (["giotto"] if HAS_GIOTTO else [])


def reference(X, maxdim, thresh=np.inf, metric="euclidean"):
    """ripser.py on an exactly computed distance matrix (differences, not products)."""
    D = cdist(X, X, metric=metric)
    dgms = ripser.ripser(D, distance_matrix=True, maxdim=maxdim, thresh=thresh)["dgms"]
    return {q: dgms[q] for q in range(maxdim + 1)}


def assert_same_bars(a, b, rtol=1e-5, atol=1e-6):
    a = np.asarray(a, dtype=float).reshape(-1, 2)
    b = np.asarray(b, dtype=float).reshape(-1, 2)
    assert a.shape == b.shape, f"{len(a)} bars vs {len(b)}"
    a = a[np.lexsort((a[:, 1], a[:, 0]))]
    b = b[np.lexsort((b[:, 1], b[:, 0]))]
    assert np.array_equal(np.isinf(a), np.isinf(b))
    finite = np.isfinite(a)
    np.testing.assert_allclose(a[finite], b[finite], rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def clouds():
    rng = np.random.default_rng(0)
    return {
        "gaussian": rng.normal(size=(120, 5)),
        "circle": make_circle(150, noise=0.1, random_state=1),
        "uniform3d": rng.uniform(size=(100, 3)),
    }


@pytest.mark.parametrize("name", ["gaussian", "circle", "uniform3d"])
@pytest.mark.parametrize("engine", FULL_ENGINES)
def test_h0_h1_equal_ripser(clouds, name, engine):
    X = clouds[name]
    ref = reference(X, 1)
    bars = compute_bars(X, engine=engine, homology_dimensions=(0, 1))
    for q in (0, 1):
        assert_same_bars(bars[q], ref[q])


@pytest.mark.parametrize("name", ["gaussian", "circle", "uniform3d"])
def test_mst_h0_equal_ripser(clouds, name):
    X = clouds[name]
    assert_same_bars(compute_bars(X, engine="mst", homology_dimensions=(0,))[0], reference(X, 0)[0])


def test_mst_torch_path_on_cpu(clouds):
    X = clouds["gaussian"]
    bars = compute_bars(X, engine="mst", homology_dimensions=(0,), device="cpu")
    assert_same_bars(bars[0], reference(X, 0)[0], rtol=1e-4)


@pytest.mark.parametrize("engine", FULL_ENGINES)
def test_h2_small_sphere(engine):
    X = make_sphere(60, dim=2, noise=0.02, random_state=0)
    ref = reference(X, 2)
    bars = compute_bars(X, engine=engine, homology_dimensions=(0, 1, 2))
    for q in (0, 1, 2):
        assert_same_bars(bars[q], ref[q])
    # the sphere's void
    assert (bars[2][:, 1] - bars[2][:, 0]).max() > 0.3


def test_only_requested_dimensions_returned(clouds):
    bars = compute_bars(clouds["circle"], engine="ripser", homology_dimensions=(1,))
    assert list(bars) == [1]


@pytest.mark.parametrize("engine", ["mst"] + FULL_ENGINES)
def test_duplicate_points_change_nothing(engine):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 4))
    # ReLU-like: many exact duplicates, including a block of zeros
    X_dup = np.vstack([X, X[:30], np.zeros((25, 4)), X[5:10]])
    dims = (0,) if engine == "mst" else (0, 1)
    ref = reference(X_dup, max(dims))
    ref_unique = reference(np.unique(X_dup, axis=0), max(dims))
    bars = compute_bars(X_dup, engine=engine, homology_dimensions=dims)
    for q in dims:
        assert_same_bars(bars[q], ref[q])
        assert_same_bars(bars[q], ref_unique[q])
        assert (bars[q][:, 1] > bars[q][:, 0]).all()  # no zero-length bars


@pytest.mark.parametrize("engine", ["mst"] + ZP_ENGINES)
def test_duplicate_points_change_nothing_on_the_sparse_path(engine):
    # many features: sklearn's radius search takes its matrix-product path,
    # which leaves ~1e-6 between identical points (spurious tiny bars)
    rng = np.random.default_rng(4)
    X = 3 * rng.normal(size=(80, 40)) + 5
    X_dup = np.vstack([X, X[:20]])
    thresh = float(np.quantile(cdist(X_dup, X_dup), 0.2))
    dims = (0,) if engine == "mst" else (0, 1)
    # the limit is below the dense estimate, so the chunked edge list is used
    bars = compute_bars(X_dup, engine=engine, homology_dimensions=dims, threshold=thresh,
                        memory_limit=180_000)
    ref_unique = reference(X, max(dims), thresh=thresh)
    for q in dims:
        assert_same_bars(bars[q], ref_unique[q])


@pytest.mark.parametrize("engine", ["mst"] + FULL_ENGINES)
def test_identical_points(engine):
    dims = (0,) if engine == "mst" else (0, 1)
    bars = compute_bars(np.ones((7, 3)), engine=engine, homology_dimensions=dims)
    np.testing.assert_array_equal(bars[0], [[0, np.inf]])
    if 1 in dims:
        assert bars[1].shape == (0, 2)


@pytest.mark.parametrize("engine", ["mst"] + FULL_ENGINES)
@pytest.mark.parametrize("sparse", [False, True])
def test_threshold_equal_ripser(clouds, engine, sparse):
    if sparse and engine == "redzed":
        pytest.skip("redzed-tda takes no edge list (test_redzed_refuses_the_edge_list)")
    X = clouds["circle"]
    thresh = 0.3
    dims = (0,) if engine == "mst" else (0, 1)
    # a tiny memory limit forces the chunked sparse edge list
    limit = 250_000 if sparse else None
    ref = reference(X, max(dims), thresh=thresh)
    bars = compute_bars(X, engine=engine, homology_dimensions=dims, threshold=thresh,
                        memory_limit=limit)
    for q in dims:
        assert_same_bars(bars[q], ref[q])
    assert np.isinf(bars[0][:, 1]).sum() > 1  # the threshold cut the cloud apart


@pytest.mark.parametrize("engine", ["mst"] + FULL_ENGINES)
def test_precomputed_matches_points(clouds, engine):
    X = clouds["uniform3d"]
    dims = (0,) if engine == "mst" else (0, 1)
    a = compute_bars(X, engine=engine, homology_dimensions=dims)
    b = compute_bars(cdist(X, X), engine=engine, homology_dimensions=dims, metric="precomputed")
    for q in dims:
        assert_same_bars(a[q], b[q])


@pytest.mark.parametrize("engine", ["mst"] + FULL_ENGINES)
def test_precomputed_infinite_entries_are_missing_edges(engine):
    # two far-apart triangles whose cross distances are infinite
    D = np.full((6, 6), np.inf)
    tri = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
    D[:3, :3] = tri
    D[3:, 3:] = 2 * tri
    dims = (0,) if engine == "mst" else (0, 1)
    bars = compute_bars(D, engine=engine, homology_dimensions=dims, metric="precomputed")
    assert_same_bars(bars[0], [[0, 1], [0, 1], [0, 2], [0, 2], [0, np.inf], [0, np.inf]])


def test_non_euclidean_metric(clouds):
    X = np.abs(clouds["gaussian"])
    ref = reference(X, 1, metric="cityblock")
    for engine in FULL_ENGINES:
        bars = compute_bars(X, engine=engine, homology_dimensions=(0, 1), metric="manhattan")
        for q in (0, 1):
            assert_same_bars(bars[q], ref[q])
    assert_same_bars(compute_bars(X, engine="mst", homology_dimensions=(0,), metric="manhattan")[0],
                     ref[0])


@pytest.mark.parametrize("engine", ZP_ENGINES)
def test_coefficients(engine):
    # the real projective plane is where Z/2 and Z/3 differ; a circle is where they agree
    X = make_circle(60, random_state=0)
    for p in (2, 3):
        ref = ripser.ripser(cdist(X, X), distance_matrix=True, maxdim=1, coeff=p)["dgms"]
        bars = compute_bars(X, engine=engine, homology_dimensions=(0, 1), coeff=p)
        assert_same_bars(bars[1], ref[1])


def test_resolve_engine(monkeypatch):
    assert resolve_engine("auto", (0,)) == "mst"
    # redzed-tda for H1+ over Z/2; ripser.py for other fields and sparse input; never giotto
    assert resolve_engine("auto", (0, 1)) == "redzed"
    assert resolve_engine("auto", (0, 1, 2), coeff=3) == "ripser"
    assert resolve_engine("auto", (1,), sparse=True) == "ripser"
    with pytest.raises(ValueError, match="H0 only"):
        resolve_engine("mst", (0, 1))
    with pytest.raises(ValueError, match=r"backend='redzed' computes over Z/2 only.*coeff=3.*'ripser'"):
        resolve_engine("redzed", (0, 1), coeff=3)
    with pytest.raises(ValueError, match="unknown engine 'nosuch'"):
        resolve_engine("nosuch", (0, 1))
    monkeypatch.setattr(engines.get_engine("giotto"), "available", lambda: False)
    with pytest.raises(ImportError, match=r"sktopo\[fast\].*AGPL"):
        resolve_engine("giotto", (0, 1))


def test_memory_estimate_raises_before_allocating():
    X = np.zeros((3000, 2))
    with pytest.raises(MemoryError) as info:
        compute_bars(X, engine="ripser", homology_dimensions=(0, 1), memory_limit=10 * 2**20,
                     where="the cloud at row 'conv1'")
    text = str(info.value)
    assert "row 'conv1'" in text and "3000 points" in text
    assert "n_landmarks" in text and "max_edge_length" in text and "memory_limit" in text
    assert "MiB" in text


def test_sparse_edge_list_is_memory_checked(clouds):
    X = clouds["circle"]
    with pytest.raises(MemoryError, match="edge list"):
        compute_bars(X, engine="ripser", homology_dimensions=(0, 1), threshold=5.0,
                     memory_limit=1000)


@pytest.mark.cuda  # skipped without a GPU by the conftest marker
def test_mst_on_cuda_matches_cpu():
    import sktopo

    X = np.random.default_rng(0).normal(size=(3000, 128))
    X = np.vstack([X, X[:100]])  # duplicates must stay exact on the GPU too
    cpu = sktopo.persistence(X, homology_dimensions=(0,))
    gpu = sktopo.persistence(X, homology_dimensions=(0,), device="cuda")
    assert_same_bars(gpu[0], cpu[0], rtol=1e-4)
    auto = sktopo.PersistenceDiagram((0,), device="auto").fit_transform([X])[0]
    assert_same_bars(auto[0], cpu[0], rtol=1e-4)


# ------------------------------------------------------------ measured memory
_MEMORY_PROBE = r"""
import sys, json
import numpy as np
from sktopo import PersistenceDiagram
kind, n, d, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
if kind == "precomputed":
    X = rng.normal(size=(n, 3))
    data = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    params = dict(metric="precomputed")
else:
    data = rng.normal(size=(n, d))
    params = dict(metric=kind)
del rng
# warm up on a tiny input: imports (scipy, scikit-learn modules) are not the computation
# (and BLAS's thread buffers, allocated on its first large product)
warm = 300
PersistenceDiagram((0,), **params).fit_transform(
    [data[:warm, :warm] if kind == "precomputed" else data[:warm]])
def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
# VmHWM, not ru_maxrss: ru_maxrss survives exec and starts at the parent's (pytest's) RSS
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark to the current RSS
except OSError:
    pass
before = status("VmRSS")
try:
    PersistenceDiagram((0,), memory_limit=limit, **params).fit_transform([data])
    outcome = "ran"
except MemoryError:
    outcome = "refused"
peak = status("VmHWM") - before
print(json.dumps({"outcome": outcome, "peak": peak}))
"""


def _probe(kind, n, d, limit):
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, kind, str(n), str(d), str(limit)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize("kind, n, d", [
    ("euclidean", 600, 40_000),   # a wide cloud: the product's operands dominate
    ("cosine", 1500, 200),        # scikit-learn's temporaries
    ("precomputed", 3000, 3),     # the matrix check
])
def test_memory_limit_bounds_the_measured_peak(kind, n, d):
    from sktopo.topology.engines import PersistenceSettings, dense_bytes_of

    settings = PersistenceSettings(homology_dimensions=(0,), engine="mst", metric=kind)
    estimate = dense_bytes_of(np.empty((n, d if kind != "precomputed" else n)), settings)
    # just above the estimate: it must run, and within the limit (measured RSS)
    limit = int(estimate * 1.05) + 16 * 2**20
    result = _probe(kind, n, d, limit)
    assert result["outcome"] == "ran"
    assert result["peak"] <= limit, (result, limit)
    # well below the estimate: refused before the big allocations
    result = _probe(kind, n, d, estimate // 3)
    assert result["outcome"] == "refused"
    assert result["peak"] <= estimate // 3 + 16 * 2**20


def test_redzed_refuses_the_edge_list_and_auto_hands_it_to_ripser(clouds):
    # the dense matrix does not fit, a finite threshold allows an edge list: redzed-tda
    # cannot take one, so an explicit backend says so and "auto" gives the cloud to ripser.py
    X = clouds["circle"]
    with pytest.raises(ValueError, match=r"over memory_limit.*backend='redzed' takes no sparse "
                                         r"edge list.*backend='auto'"):
        compute_bars(X, engine="redzed", homology_dimensions=(0, 1), threshold=0.3,
                     memory_limit=250_000)
    bars = compute_bars(X, engine="redzed", auto=True, homology_dimensions=(0, 1), threshold=0.3,
                        memory_limit=250_000)
    ref = reference(X, 1, thresh=0.3)
    for q in (0, 1):
        assert_same_bars(bars[q], ref[q])


def test_an_edge_list_far_over_the_limit_is_refused_before_it_is_built(monkeypatch):
    # issue 22 item 13: max_edge_length=5 on 60,000 points was refused after 117 s and 4.6 GB
    from sktopo.topology.engines import _compute

    X = np.random.default_rng(0).normal(size=(3000, 3))
    built = []
    monkeypatch.setattr(_compute, "_refine_close_pairs", lambda *a: built.append(1) or a[-1])
    with pytest.raises(MemoryError, match=r"edge list.*estimated from the degrees of 256 sampled"):
        compute_bars(X, engine="ripser", homology_dimensions=(0, 1), threshold=5.0,
                     memory_limit=20 * 2**20)
    assert not built  # not one chunk of neighbours was searched


def test_a_float32_matrix_whose_float64_copy_does_not_fit_is_refused_before_the_copy():
    import sktopo

    D = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(40_000, 40_000),
                                        strides=(0, 0))  # 6.4 GB if it were real
    with pytest.raises(MemoryError, match=r"float64 copy of the float32 distance matrix at row 0"):
        sktopo.PersistenceDiagram(metric="precomputed").fit_transform([D])
    with pytest.raises(MemoryError, match="float64 copy"):
        sktopo.persistence(D, metric="precomputed")
