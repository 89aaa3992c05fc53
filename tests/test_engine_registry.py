"""The engine registry: one home for every Rips engine, capabilities, fall-backs."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import ripser
from scipy.spatial.distance import cdist

import sktopo
from sktopo import PersistenceDiagram
from sktopo.datasets import make_circle
from sktopo.topology import engines
from sktopo.topology.engines import EngineFallbackWarning, compute_bars
from sktopo.topology.engines import redzed as redzed_module

PACKAGE = Path(sktopo.__file__).parent


def test_every_rips_engine_is_imported_only_by_the_registry():
    pattern = re.compile(r"^\s*(import|from)\s+(ripser|pyRipser|gph|redzed_tda)\b", re.M)
    offenders = [
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
        if "engines" not in path.relative_to(PACKAGE).parts and pattern.search(path.read_text())
    ]
    assert offenders == []


def test_each_engine_declares_its_capabilities_and_licence():
    for name in engines.ENGINES:
        engine = engines.get_engine(name)
        caps = engine.capabilities
        assert engine.name == name
        assert caps.licence in {"MIT", "AGPL-3.0"}
        assert caps.fields in {"Z/2", "Z/p"}
        assert isinstance(engine.peak_bytes(100, min(1, caps.max_dimension)), int)
    assert engines.get_engine("giotto").capabilities.licence == "AGPL-3.0"
    assert engines.get_engine("redzed").capabilities.fields == "Z/2"
    assert engines.get_engine("mst").capabilities.max_dimension == 0


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(redzed_module, "_warned", set())


def _reference(X, maxdim=1):
    return ripser.ripser(cdist(X, X), distance_matrix=True, maxdim=maxdim)["dgms"]


def _same(a, b):
    a = a[np.lexsort((a[:, 1], a[:, 0]))]
    b = np.asarray(b)[np.asarray(b)[:, 1] > np.asarray(b)[:, 0]]
    b = b[np.lexsort((b[:, 1], b[:, 0]))]
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_redzed_missing_falls_back_to_ripser_with_one_warning(monkeypatch, fresh_warnings):
    monkeypatch.setattr(engines.get_engine("redzed"), "available", lambda: False)
    X = make_circle(50, noise=0.1, random_state=0)
    with pytest.warns(EngineFallbackWarning, match="redzed.*ripser.py") as record:
        first = PersistenceDiagram((0, 1)).fit([X])
        PersistenceDiagram((0, 1)).fit([X])
    assert len([w for w in record if issubclass(w.category, EngineFallbackWarning)]) == 1
    assert first.engine_ == "ripser"
    with pytest.raises(ImportError, match="redzed"):
        PersistenceDiagram((0, 1), backend="redzed").fit([X])


@pytest.mark.parametrize("n_points", [  # the many-cloud scheduler, the one-cloud path (15 s)
    40, pytest.param(700, marks=pytest.mark.slow)])
def test_redzed_failing_falls_back_to_ripser_with_one_warning(monkeypatch, fresh_warnings, n_points):
    import redzed_tda

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure of the compiled core")

    monkeypatch.setattr(redzed_tda, "rips", broken)
    clouds = [make_circle(n_points, noise=0.1, random_state=k) for k in range(3)]
    with pytest.warns(EngineFallbackWarning, match="simulated failure") as record:
        got = PersistenceDiagram((0, 1), n_jobs=2).fit_transform(clouds)
    assert len([w for w in record if issubclass(w.category, EngineFallbackWarning)]) == 1
    for X, d in zip(clouds, got):
        ref = _reference(X)
        for q in (0, 1):
            _same(d[q], ref[q])


def test_a_fallback_that_would_not_fit_is_a_memory_error(monkeypatch, fresh_warnings):
    # the memory check was made for redzed-tda; ripser.py needs ~1 GiB for H2 of 500 points
    # in R^3: with less free, the fall-back refuses instead of aborting the process
    import redzed_tda

    from sktopo.topology.engines import redzed

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure of the compiled core")

    monkeypatch.setattr(redzed_tda, "rips", broken)
    monkeypatch.setattr(redzed, "_available_bytes", lambda: 200 * 2**20)
    X = np.random.default_rng(0).normal(size=(500, 3))
    with pytest.raises(MemoryError, match=r"fall-back, would need about .* more than the 200"):
        PersistenceDiagram((0, 1, 2)).fit_transform([X])
    # H1 of a small cloud fits in 200 MiB: the fall-back runs
    with pytest.warns(EngineFallbackWarning):
        PersistenceDiagram((0, 1)).fit_transform([X[:100]])


def test_an_explicit_backend_that_cannot_do_the_job_is_a_clear_error():
    X = make_circle(30, random_state=0)
    with pytest.raises(ValueError, match=r"backend='redzed' computes over Z/2 only.*coeff=3"):
        PersistenceDiagram((0, 1), backend="redzed", coeff=3).fit([X])
    with pytest.raises(ValueError, match=r"backend='mst' computes H0 only"):
        PersistenceDiagram((0, 1), backend="mst").fit([X])
    import scipy.sparse as sp

    A = sp.csr_matrix(cdist(X, X) * (cdist(X, X) < 0.5))
    with pytest.raises(ValueError, match="backend='redzed' takes no sparse edge list"):
        PersistenceDiagram((0, 1), backend="redzed", metric="precomputed").fit_transform([A])
    # auto gives the sparse cell to ripser.py, Z/3 to ripser.py
    d = PersistenceDiagram((0, 1), metric="precomputed").fit_transform([A])[0]
    assert len(d[0]) > 0
    assert PersistenceDiagram((0, 1), coeff=3).fit([X]).engine_ == "ripser"


def test_redzed_takes_missing_edges_densely():
    # two far-apart triangles whose cross distances are infinite (the RTD cross matrix has such)
    D = np.full((6, 6), np.inf)
    tri = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
    D[:3, :3], D[3:, 3:] = tri, 2 * tri
    bars = compute_bars(D, engine="redzed", homology_dimensions=(0, 1), metric="precomputed")
    np.testing.assert_array_equal(bars[0], [[0, 1], [0, 1], [0, 2], [0, 2], [0, np.inf], [0, np.inf]])
    assert bars[1].shape == (0, 2)
