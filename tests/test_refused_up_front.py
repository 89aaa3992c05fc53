"""Large allocations are estimated and refused before they happen (issue 22, item 13).

Each estimator that builds something ``n x n`` (or ``n_inputs x width``) estimates it from
shapes alone and raises a MemoryError naming the estimator, the row or pair, the estimate,
the limit and what to do, before the first big array exists. The sizes here are the ones of
the issue (40,000 points, 50,000 diagrams, a 10 GB flattened layer): nothing that large is
ever allocated, which guards (monkeypatched functions that fail if called) make sure of.
"""

import math
import re
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch

from sktopo import (
    RTD,
    CrossBarcode,
    Diagram,
    DiagramDistance,
    GeodesicDistances,
    LayerEmbedder,
    cross_barcode,
    geodesic_distances,
    rtd,
)
from sktopo.topology import divergence, geodesic

BIG = 40_000  # points: an n x n float64 matrix is 11.9 GiB


@pytest.fixture(scope="module")
def big_cloud():
    return np.random.default_rng(0).normal(size=(BIG, 2))


# ------------------------------------------------------------- DiagramDistance
def test_diagram_distance_refuses_50000_diagrams_before_the_pair_list():
    # the pair list (1.25e9 pairs) and the n x n table were built before any check: 6.9 GB,
    # then a bare MemoryError. Now: the estimate from the number of diagrams, at once.
    d = Diagram({0: [[0.0, 1.0]], 1: [[0.2, 0.5]]})
    with pytest.raises(MemoryError, match=(
            r"DiagramDistance: the bottleneck table of 50000 against 50000 diagrams "
            r"\(1,249,975,000 pairs: .*the 50000 x 50000 float64 table\) would need about "
            r"[\d.]+ GiB, above the memory limit of 4\.0 GiB\. Compare fewer diagrams at once: "
            r"fit on a subset .* transform the others in chunks of rows.*raise memory_limit")):
        DiagramDistance().fit_transform([d] * 50_000)
    with pytest.raises(MemoryError, match=r"the sliced_wasserstein table of 50000 against 50000 "
                                          r"diagrams .*projections of every diagram onto 50"):
        DiagramDistance("sliced_wasserstein").fit_transform([d] * 50_000)


@pytest.mark.parametrize("metric", ["bottleneck", "wasserstein", "sliced_wasserstein",
                                    "sliced_wasserstein_kernel"])
def test_diagram_distance_counts_the_table_not_only_each_pair(metric):
    # 100 one-bar diagrams: every pair is tiny (the old per-pair check passed, or for the
    # sliced metrics counted only the projections), the table and its pairs are not
    d = Diagram({0: [[0.0, 1.0]], 1: [[0.2, 0.5]]})
    est = DiagramDistance(metric, memory_limit=200_000)
    with pytest.raises(MemoryError, match=rf"DiagramDistance: the {metric} table of 100 against "
                                          rf"100 diagrams \(4,950 pairs"):
        est.fit_transform([d] * 100)
    # transform: every row against every fitted diagram
    fitted = DiagramDistance(metric, memory_limit="1MiB").fit([d] * 100)
    with pytest.raises(MemoryError, match=r"table of 150 against 100 diagrams \(15,000 pairs"):
        fitted.transform([d] * 150)
    # within the limit (or without one) the same call works
    assert DiagramDistance(metric, memory_limit=None).fit_transform([d] * 100).shape == (100, 100)
    assert est.fit_transform([d] * 5).shape == (5, 5)


def test_diagram_distance_estimate_bounds_what_it_allocates():
    rng = np.random.default_rng(0)
    diagrams = [Diagram({0: np.c_[np.zeros(5), rng.random(5) + 0.1],
                         1: np.c_[rng.random(3), rng.random(3) + 1.2]}) for _ in range(25)]
    for metric in ("bottleneck", "sliced_wasserstein"):
        message = ""
        try:
            DiagramDistance(metric, memory_limit=1).fit_transform(diagrams)
        except MemoryError as error:
            message = str(error)
        value, unit = re.search(r"would need about ([\d.]+) (\w+)", message).groups()
        estimate = float(value) * {"KiB": 2**10, "MiB": 2**20}[unit]
        tracemalloc.start()
        try:
            DiagramDistance(metric, memory_limit=None).fit_transform(diagrams)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak <= estimate, (metric, peak, estimate)


# --------------------------------------------------------- RTD, CrossBarcode
@pytest.fixture
def no_distances(monkeypatch):
    """Fail if a pair's distance matrix is computed: the check must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("a distance matrix was computed before the memory check")

    monkeypatch.setattr(divergence, "_distances", refuse)


def test_cross_barcode_on_40000_points_is_refused_before_any_distance(big_cloud, no_distances):
    P, Q = big_cloud, big_cloud[::-1]
    expected = (r"CrossBarcode: the pair at row 0 \(40000 inputs: two 40000 x 40000 distance "
                r"matrices, the 80000 x 80000 cross matrix and engine '\w+''s H1 computation "
                r"on it\) would need about [\d.]+ GiB, above the memory limit of 4\.0 GiB\. "
                r"To fit, lower batch_size \(the cross matrix has 2 \* 40000 vertices; about "
                r"\d+ inputs fit in the limit\), or raise memory_limit")
    with pytest.raises(MemoryError, match=expected):
        cross_barcode(P, Q)
    with pytest.raises(MemoryError, match=expected):
        CrossBarcode().fit_transform([(P, Q)])
    frame = pd.DataFrame({"before": [P[:50], P], "after": [Q[:50], Q]}, index=["small", "big"])
    with pytest.raises(MemoryError, match=r"the pair at row 'big' \(40000 inputs"):
        CrossBarcode().fit_transform(frame)


def test_rtd_on_40000_points_is_refused_before_any_distance(big_cloud, no_distances):
    P, Q = big_cloud, big_cloud[::-1]
    with pytest.raises(MemoryError, match=r"RTD: the pair at row 0 \(40000 inputs: .*above the "
                                          r"memory limit of 4\.0 GiB\. To fit, lower batch_size"):
        RTD(batch_size=None).fit_transform([(P, Q)])
    with pytest.raises(MemoryError, match=r"RTD: the pair at row 0 \(20000 of its 40000 inputs "
                                          r"per subset: two 20000 x 20000"):
        rtd(P, Q, batch_size=20_000)
    with pytest.raises(MemoryError, match=r"above the memory limit of 1\.0 GiB"):
        rtd(P, Q, batch_size=None, memory_limit="1GiB")
    # None disables the check: the computation would start (the guard stops it)
    with pytest.raises(AssertionError, match="before the memory check"):
        rtd(P, Q, batch_size=None, memory_limit=None)


@pytest.mark.parametrize("backend", ["redzed", "ripser"])
def test_cross_barcode_estimate_covers_what_numpy_allocates(backend):
    # the estimate is of the whole computation: the distance matrices, the cross matrix and
    # the engine (whose C++ memory tracemalloc does not see), so it bounds the numpy peak
    rng = np.random.default_rng(1)
    m = 150
    P, Q = rng.normal(size=(m, 4)), rng.normal(size=(m, 3))
    estimate = divergence._cross_barcode_bytes(m, (4, 3), engine=backend)
    est = CrossBarcode(backend=backend, memory_limit=estimate).fit([(P, Q)])
    tracemalloc.start()
    try:
        est.transform([(P, Q)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 48 * m * m <= peak <= estimate
    with pytest.raises(MemoryError, match="lower batch_size"):
        CrossBarcode(backend=backend, memory_limit=estimate - 1).fit_transform([(P, Q)])


def test_cross_matrix_is_the_papers_definition():
    # built in place now: the same matrix as the definition, w_P+ with +inf below the diagonal
    rng = np.random.default_rng(2)
    DP, DQ = rng.random((6, 6)), rng.random((6, 6))
    DP, DQ = DP + DP.T, DQ + DQ.T
    np.fill_diagonal(DP, 0.0)
    np.fill_diagonal(DQ, 0.0)
    upper = DP.copy()
    upper[np.tril_indices(6, -1)] = np.inf
    expected = np.block([[np.zeros((6, 6)), upper.T], [upper, np.minimum(DP, DQ)]])
    np.testing.assert_array_equal(divergence._cross_matrix(DP, DQ), expected)


# ---------------------------------------------------------- GeodesicDistances
def test_geodesic_distances_on_40000_points_are_refused_before_any_distance(big_cloud,
                                                                               monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("distances were computed before the memory check")

    monkeypatch.setattr(geodesic, "cdist", refuse)
    with pytest.raises(MemoryError, match=(
            r"GeodesicDistances: the geodesic distances of the cloud at row 0 \(40000 points, a "
            r"dense 40000 x 40000 float64 matrix and its 10-nearest-neighbour graph\) would need "
            r"about 13\.\d GiB, above the memory limit of 4\.0 GiB\. Subsample the cloud \(about "
            r"\d+ points fit in the limit\).*or raise memory_limit")):
        GeodesicDistances().fit_transform([big_cloud])
    with pytest.raises(MemoryError, match=r"geodesic_distances: .* cloud at X \(40000 points.*"
                                          r"above the memory limit of 8\.0 GiB"):
        geodesic_distances(big_cloud, memory_limit="8GiB")
    with pytest.raises(AssertionError, match="before the memory check"):
        geodesic_distances(big_cloud, memory_limit=None)


def test_geodesic_memory_limit_parameter():
    cloud = np.random.default_rng(3).normal(size=(60, 2))
    assert GeodesicDistances(memory_limit="1GB").fit([cloud]).memory_limit_ == 10**9
    assert GeodesicDistances(memory_limit=None).fit([cloud]).memory_limit_ is None
    with pytest.raises(ValueError, match="memory_limit='lots' is not a memory size"):
        GeodesicDistances(memory_limit="lots").fit([cloud])
    with pytest.raises(MemoryError, match="the cloud at row 0 \\(60 points"):
        GeodesicDistances(memory_limit=10_000).fit_transform([cloud])
    assert GeodesicDistances(memory_limit="1MiB").fit_transform([cloud])[0].shape == (60, 60)


def test_geodesic_estimate_bounds_what_it_allocates_and_no_n_by_n_distances():
    rng = np.random.default_rng(4)
    n, k = 1500, 8
    X = rng.normal(size=(n, 3))
    tracemalloc.start()
    try:
        geodesic_distances(X, n_neighbors=k)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the output, a boolean temporary and one block of the kNN search: the old code held
    # two more n x n matrices (its Euclidean distances and argpartition's indices) at once,
    # then its distances beside the output: at least 17 bytes per entry
    assert 8 * n * n <= peak <= geodesic._geodesic_bytes(n, k)
    assert peak < 14 * n * n


def test_geodesic_blocks_of_rows_give_the_same_graph(monkeypatch):
    rng = np.random.default_rng(5)
    X = np.round(rng.normal(size=(200, 2)), 1)  # ties and duplicates
    whole = geodesic_distances(X, n_neighbors=6)
    monkeypatch.setattr(geodesic, "_KNN_BLOCK_BYTES", 16 * 200 * 7)  # blocks of 7 rows
    assert geodesic._knn_block(200) == 7
    np.testing.assert_array_equal(geodesic_distances(X, n_neighbors=6), whole)


# -------------------------------------------------------------- LayerEmbedder
def _wide_model():
    """One input feature -> 25,000 values per input, shaped (100, 250) like tokens."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(1, 25_000), torch.nn.Unflatten(1, (100, 250)))


@pytest.fixture
def small_empty_only(monkeypatch):
    """Fail if torch.empty is asked for more than 400 MB: the output must be refused first."""
    real = torch.empty

    def guarded(*size, **kwargs):
        shape = size[0] if len(size) == 1 and not isinstance(size[0], int) else size
        if math.prod(shape) * 8 > 400e6:
            raise AssertionError(f"torch.empty{tuple(shape)} was allocated before the check")
        return real(*size, **kwargs)

    monkeypatch.setattr(torch, "empty", guarded)


def test_flatten_output_of_10_gb_is_refused_from_the_first_batch(small_empty_only):
    model = _wide_model()
    X = torch.zeros(100_000, 1)
    embedder = LayerEmbedder(model, "1", reduce="flatten", batch_size=4, device="cpu")
    with pytest.raises(MemoryError, match=(
            r"LayerEmbedder: the dataset clouds of the 100000 inputs, estimated from the first "
            r"batch \(layer '1': 9\.3 GiB\), would need about 9\.3 GiB, above the memory limit "
            r"of 4\.0 GiB\. Use reduce='mean' .* n_components= .* max_inputs=.*raise "
            r"memory_limit")):
        embedder.fit_transform(X)
    # several reductions and layers add up; the largest are named
    embedder = LayerEmbedder(model, ["0", "1"], reduce=["flatten", "mean"], batch_size=4,
                             device="cpu")
    # (layer '0' gives vectors, which 'mean' keeps as they are)
    with pytest.raises(MemoryError, match=r"layer '0 \(flatten\)': 9\.3 GiB; layer '0 \(mean\)': "
                                          r"9\.3 GiB; layer '1 \(flatten\)': 9\.3 GiB; layer "
                                          r"'1 \(mean\)': 95\.4 MiB\), would need about 28\.0 GiB"):
        embedder.fit_transform(X)


def test_layer_embedder_memory_limit_small_sizes():
    model = _wide_model()
    X = torch.rand(40, 1)
    mean = LayerEmbedder(model, "1", reduce="mean", batch_size=8, device="cpu",
                         memory_limit="50KB").fit_transform(X)
    assert mean["1"].shape == (40, 250)  # 40 KB: fits
    flat = LayerEmbedder(model, "1", reduce="flatten", batch_size=8, device="cpu",
                         memory_limit="50KB")
    with pytest.raises(MemoryError, match=r"the dataset clouds of the 40 inputs.*3\.8 MiB"):
        flat.fit_transform(X)
    unlimited = flat.set_params(memory_limit=None).fit_transform(X)
    np.testing.assert_allclose(unlimited["1"].reshape(40, 100, 250).mean(1), mean["1"],
                               rtol=1e-5, atol=1e-6)
    assert LayerEmbedder(model, "1", memory_limit="2GB").fit().memory_limit_ == 2 * 10**9
    with pytest.raises(ValueError, match="is not a memory size"):
        LayerEmbedder(model, "1", memory_limit="big").fit()
    # the sample unit: each input's cloud of 100 tokens x 250 features, 100 KB per input
    with pytest.raises(MemoryError, match=r"LayerEmbedder: the sample clouds of the 40 inputs, "
                                          r"estimated from the first batch .*3\.8 MiB.*Select "
                                          r"fewer layers"):
        LayerEmbedder(model, "1", unit="sample", batch_size=8, device="cpu",
                      memory_limit="1MiB").fit_transform(X)


def test_layer_embedder_loaders_are_checked_too():
    from torch.utils.data import DataLoader, IterableDataset, TensorDataset

    model = _wide_model()
    X = torch.rand(40, 1)
    loader = DataLoader(TensorDataset(X), batch_size=8)
    # a DataLoader with a length: its batches counted as full, and twice (concatenated)
    with pytest.raises(MemoryError, match=r"clouds of about 40 inputs \(5 batches of up to 8\), "
                                          r"estimated from the first batch .* 7\.6 MiB"):
        LayerEmbedder(model, "1", reduce="flatten", device="cpu",
                      memory_limit="1MiB").fit_transform(loader)

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(X)

    # no length at all: checked as the batches come
    with pytest.raises(MemoryError, match=r"clouds of the 16 inputs read so far \(a DataLoader of "
                                          r"unknown length\), and counting"):
        LayerEmbedder(model, "1", reduce="flatten", batch_size=8, device="cpu",
                      memory_limit="1.2MiB").fit_transform(Stream())
    out = LayerEmbedder(model, "1", reduce="flatten", batch_size=8, device="cpu",
                        memory_limit="8MiB").fit_transform(Stream())
    assert out["1"].shape == (40, 25_000)
