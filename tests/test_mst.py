import numpy as np
import pytest
from ripser import ripser
from scipy.spatial.distance import cdist

from sktopo._distance import pairwise_distances
from sktopo._mst import mst_edge_lengths, torch_mst_edge_lengths


def ripser_h0(X):
    dgm = ripser(X, maxdim=0)["dgms"][0]
    return np.sort(dgm[np.isfinite(dgm[:, 1]), 1])


@pytest.mark.parametrize("n, d", [(50, 2), (300, 10)])
def test_mst_equals_ripser_h0(rng, n, d):
    X = rng.normal(size=(n, d))
    D = pairwise_distances(X)
    np.testing.assert_allclose(np.sort(mst_edge_lengths(D)), ripser_h0(X), rtol=1e-5, atol=1e-6)


def test_batched_equals_single(rng):
    Ds = np.stack([pairwise_distances(rng.normal(size=(40, 3))) for _ in range(5)])
    batch = mst_edge_lengths(Ds)
    for D, lengths in zip(Ds, batch):
        np.testing.assert_allclose(np.sort(lengths), np.sort(mst_edge_lengths(D)))


def test_hand_computed_and_ties():
    # points on a line at 0, 1, 3, 6: MST edges 1, 2, 3
    X = np.array([[0.0], [1], [3], [6]])
    assert sorted(mst_edge_lengths(pairwise_distances(X))) == [1, 2, 3]
    grid = np.array([[i, j] for i in range(12) for j in range(12)], float)
    D = pairwise_distances(grid)
    assert mst_edge_lengths(D).sum() == pytest.approx(143)


def test_torch_boruvka_matches_prim(rng):
    torch = pytest.importorskip("torch")
    for X in (rng.normal(size=(200, 5)), np.array([[i, j] for i in range(10) for j in range(10)], float)):
        D = pairwise_distances(X)
        got = torch_mst_edge_lengths(torch.tensor(D)).numpy()
        np.testing.assert_allclose(got, np.sort(mst_edge_lengths(D)), atol=1e-12)


def test_disconnected_gives_inf():
    D = np.array([[0, 1, np.inf], [1, 0, np.inf], [np.inf, np.inf, 0]])
    assert sorted(mst_edge_lengths(D))[-1] == np.inf


@pytest.mark.cuda
def test_torch_boruvka_on_cuda(rng):
    import torch

    X = rng.normal(size=(500, 16))
    D = pairwise_distances(X)
    got = torch_mst_edge_lengths(torch.tensor(D, device="cuda")).cpu().numpy()
    np.testing.assert_allclose(got, np.sort(mst_edge_lengths(D)), rtol=1e-10)


# ---------------------------------------------------------------- batched kernels
def test_single_matrix_uses_compiled_kernel_and_sorts(rng):
    X = rng.normal(size=(80, 4))
    D = pairwise_distances(X)
    got = mst_edge_lengths(D)
    assert np.all(np.diff(got) >= 0)
    np.testing.assert_allclose(got, ripser_h0(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batched_mst_equals_per_matrix_kernel(rng, dtype):
    from sktopo._mst import batched_mst_edge_lengths

    Ds = np.stack([pairwise_distances(rng.normal(size=(30, 7))) for _ in range(40)]).astype(dtype)
    Ds = np.minimum(Ds, Ds.transpose(0, 2, 1))  # exactly symmetric: both kernels read the same values
    got = batched_mst_edge_lengths(Ds)
    assert got.shape == (40, 29) and got.dtype == dtype
    assert np.all(np.diff(got, axis=1) >= 0)
    for D, lengths in zip(Ds, got):
        # the lengths are entries of D: exactly the compiled kernel's values
        np.testing.assert_array_equal(lengths, mst_edge_lengths(D).astype(dtype))


def test_batched_mst_many_chunks_and_disconnected(rng, monkeypatch):
    import sktopo._mst as mst

    monkeypatch.setattr(mst, "_BATCH_ENTRIES", 50)  # several chunks of two matrices
    Ds = np.stack([pairwise_distances(rng.normal(size=(5, 2))) for _ in range(7)])
    Ds[3, :2, 2:] = Ds[3, 2:, :2] = np.inf  # two components
    got = mst.batched_mst_edge_lengths(Ds)
    assert np.isinf(got[3]).sum() == 1 and np.isinf(got).sum() == 1
    for D, lengths in zip(Ds, got):
        finite = D[np.isfinite(D)]
        assert set(lengths[np.isfinite(lengths)]) <= set(finite)
    expected = np.sort(np.concatenate([mst_edge_lengths(Ds[3, :2, :2]), mst_edge_lengths(Ds[3, 2:, 2:])]))
    np.testing.assert_array_equal(got[3, :3], expected)


def test_batched_distances_equal_per_cloud(rng):
    from sktopo._distance import batched_pairwise_distances, batched_squared_euclidean_distances

    X = rng.normal(size=(300, 12, 40)) + 50.0  # large norms: the product formula loses digits
    X[7, 3] = X[7, 5]  # a duplicate point
    X[8, 1] = X[8, 2] + 1e-9  # a near-duplicate
    D2 = batched_squared_euclidean_distances(X)
    assert np.array_equal(D2, D2.transpose(0, 2, 1))
    assert D2[7, 3, 5] == 0.0
    assert D2[8, 1, 2] == pytest.approx(40e-18, rel=1e-3)
    exact = ((X[:, :, None, :] - X[:, None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(D2, exact, rtol=1e-9, atol=1e-9)
    D = batched_pairwise_distances(X)
    for k in (0, 7, 299):
        np.testing.assert_allclose(D[k], pairwise_distances(X[k]), rtol=1e-10, atol=1e-10)
    D1 = batched_pairwise_distances(X, metric="manhattan")
    np.testing.assert_allclose(D1[4], cdist(X[4], X[4], "cityblock"))


def test_batched_distances_of_a_list_equal_those_of_the_stack(rng):
    from sktopo._distance import batched_squared_euclidean_distances

    X = rng.normal(size=(40, 9, 30)) + 20.0
    X[3, 2] = X[3, 6]
    stacked = batched_squared_euclidean_distances(X)
    # a list of clouds (never stacked), strided views and float32 copies work alike
    listed, sq = batched_squared_euclidean_distances(list(X), return_norms=True)
    assert np.array_equal(listed, stacked)
    np.testing.assert_allclose(sq, (X**2).sum(-1), rtol=1e-12)
    wide = np.repeat(X, 2, axis=2)[:, :, ::2]  # not contiguous, same values
    assert np.array_equal(batched_squared_euclidean_distances(list(wide)), stacked)
    assert all(np.array_equal(D, D.T) for D in listed) and (listed >= 0).all()
    assert listed[3, 2, 6] == 0.0
    with pytest.raises(ValueError, match="one shape"):
        batched_squared_euclidean_distances([X[0], X[1, :, :10]])


def test_batched_h0_equals_ripser(rng):
    from sktopo._distance import batched_squared_euclidean_distances
    from sktopo._mst import batched_mst_edge_lengths

    X = rng.normal(size=(25, 20, 6))
    lengths = np.sqrt(batched_mst_edge_lengths(batched_squared_euclidean_distances(X)))
    for x, got in zip(X, lengths):
        np.testing.assert_allclose(got, ripser_h0(x), rtol=1e-5, atol=1e-6)


def test_torch_batched_distances_and_mst_on_cpu_tensors(rng):
    torch = pytest.importorskip("torch")
    from sktopo._distance import batched_pairwise_distances, torch_pairwise_distances
    from sktopo._mst import batched_mst_edge_lengths, torch_batched_mst_edge_lengths

    X = rng.normal(size=(10, 16, 5))
    X[2, 0] = X[2, 1]
    D = batched_pairwise_distances(X)
    Dt = torch_pairwise_distances(torch.tensor(X))
    np.testing.assert_allclose(Dt.numpy(), D, atol=1e-12)
    assert Dt[2, 0, 1] == 0
    got = torch.sort(torch_batched_mst_edge_lengths(Dt), dim=1).values.numpy()
    np.testing.assert_allclose(got, batched_mst_edge_lengths(D), atol=1e-12)


def test_mst_edges_endpoints(rng):
    from sktopo._mst import mst_edges

    X = rng.normal(size=(60, 3))
    X[5] = X[6]  # a zero-length edge is a real edge
    D = pairwise_distances(X)
    D = np.minimum(D, D.T)
    lengths, i, j = mst_edges(D)
    np.testing.assert_array_equal(lengths, mst_edge_lengths(D))
    np.testing.assert_array_equal(D[i, j], lengths)
    # a spanning tree: n - 1 edges joining everything
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    tree = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=D.shape)
    assert len(i) == 59 and connected_components(tree, directed=False)[0] == 1
    D[:10, 10:] = D[10:, :10] = np.inf  # two components: a forest
    lengths, i, j = mst_edges(D)
    assert len(lengths) == 58 and np.isfinite(lengths).all()


def test_batched_mst_big_matrices_use_the_compiled_kernel(rng, monkeypatch):
    import sktopo._mst as mst

    Ds = np.stack([pairwise_distances(rng.normal(size=(40, 3))) for _ in range(3)])
    Ds = np.minimum(Ds, Ds.transpose(0, 2, 1))
    prim = mst.batched_mst_edge_lengths(Ds)
    monkeypatch.setattr(mst, "_LOOP_FROM", 10)
    looped = mst.batched_mst_edge_lengths(Ds)
    np.testing.assert_array_equal(prim, looped)
    Ds[0, 0, 1:] = Ds[0, 1:, 0] = np.inf  # a missing edge: back to Prim, which handles it
    assert np.isinf(mst.batched_mst_edge_lengths(Ds)[0]).sum() == 1


def test_large_matrices_take_the_numpy_prim_with_the_same_lengths():
    # above _PRIM_FROM points the numpy Prim is the faster kernel; same multiset as the
    # compiled single linkage (the lengths are entries of D either way)
    from scipy.spatial.distance import squareform

    from sktopo import _mst
    from sktopo._distance import pairwise_distances

    X = np.random.default_rng(5).normal(size=(_mst._PRIM_FROM + 10, 8))
    D = pairwise_distances(X)
    D = np.minimum(D, D.T)  # the two kernels read opposite triangles: make them equal bitwise
    compiled = _mst.single_linkage(squareform(D, checks=False), len(D))[:, 2]
    np.testing.assert_array_equal(_mst.mst_edge_lengths(D), compiled)
