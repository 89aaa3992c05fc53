import numpy as np
import pytest
from ripser import ripser

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
