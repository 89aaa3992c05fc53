"""The minimum-spanning-tree engine (ours, MIT): H0 only, exact, on the CPU or a torch device.

The H0 bars of a Vietoris-Rips filtration are ``[0, w)`` for every edge ``w``
of a minimum spanning tree, plus one ``[0, inf)`` per connected component
(Kruskal's algorithm *is* the H0 persistence algorithm). On the CPU: dense
Prim in float64 (:func:`sktopo._mst.mst_edge_lengths`, on squared distances
for the Euclidean metric: the tree only compares lengths), or a spanning
forest of a sparse edge list. On a torch device (``device="cuda"``): torch
distances and Boruvka in float32. Many small clouds take the batched Prim of
the many-cloud scheduler (:mod:`sktopo.topology.engines._scheduler`).
"""

from __future__ import annotations

import numpy as np

from ._base import Capabilities, Engine

__all__ = ["MSTEngine", "h0_bars", "h0_bars_batch"]


class MSTEngine(Engine):
    name = "mst"
    capabilities = Capabilities(max_dimension=0, fields="Z/p", sparse=True, missing_edges=True,
                                releases_gil=True, devices=("cpu", "torch"), precision="float64",
                                licence="MIT")

    def peak_bytes(self, n_points, maxdim, counts=None, *, device=None):
        if device is not None:
            return 12 * n_points * n_points  # float32 matrix, its transposed minimum and masks
        # the compiled kernel's condensed float64 copy (4 per entry of the square) and its
        # finiteness mask (1)
        return 5 * n_points * n_points

    def bars_of(self, data, settings, distances):
        device = settings.device
        if device is None:
            from ..._distance import squared_euclidean_distances
            from ..._mst import mst_edge_lengths

            if settings.plain_euclidean and not settings.precomputed:
                # the tree only compares lengths: build it on squared distances and
                # take n - 1 roots instead of n^2
                lengths = np.sqrt(np.maximum(mst_edge_lengths(squared_euclidean_distances(data)), 0.0))
            else:
                lengths = mst_edge_lengths(data if settings.precomputed else distances())
        else:
            lengths = _torch_lengths(data, settings, distances)
        return [h0_bars(lengths, settings.threshold)]

    def dense(self, D, maxdim, threshold, coeff, n_threads=1):
        from ..._mst import mst_edge_lengths

        return [h0_bars(mst_edge_lengths(D), threshold)]

    def sparse(self, rows, cols, values, n, maxdim, threshold, coeff, n_threads=1):
        import scipy.sparse as sp
        from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

        graph = sp.csr_matrix((values, (rows, cols)), shape=(n, n))
        # explicit zeros (duplicate points) count as edges for the components;
        # they are zero-length bars, dropped anyway, so losing them in the tree is harmless
        n_components = connected_components(graph, directed=False)[0]
        return [h0_bars(minimum_spanning_tree(graph).data, threshold, n_components)]


def _torch_lengths(data, settings, distances):
    import torch

    from ..._distance import torch_pairwise_distances
    from ..._mst import torch_mst_edge_lengths

    device = settings.device
    if settings.precomputed:
        D = torch.as_tensor(data, dtype=torch.float32, device=device)
    elif settings.plain_euclidean:
        D = torch_pairwise_distances(torch.as_tensor(data, dtype=torch.float32, device=device))
    else:
        D = torch.as_tensor(distances(), dtype=torch.float32, device=device)
    return torch_mst_edge_lengths(D).cpu().numpy().astype(np.float64)


def h0_bars(lengths, threshold, n_components=1):
    """H0 bars from the edge lengths of a minimum spanning tree (or forest)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    kept = np.isfinite(lengths) & (lengths <= threshold)
    finite = lengths[kept & (lengths > 0)]  # zero-length bars are dropped
    n_infinite = n_components + int((~kept).sum())
    bars = np.zeros((len(finite) + n_infinite, 2))
    bars[:len(finite), 1] = finite
    bars[len(finite):, 1] = np.inf
    return bars


def h0_bars_batch(lengths, threshold) -> list:
    """H0 bars of a batch of trees, in the canonical order (what :func:`h0_bars` gives per row).

    Parameters
    ----------
    lengths : ndarray of shape (b, n - 1)
        Edge lengths of one spanning tree per row, each row ascending
        (infinite lengths: missing edges).
    threshold : float
        Filtration threshold: longer edges never join, their bars are infinite.

    Returns
    -------
    bars : list of b ndarrays of shape (k, 2)
        Views of one ``(b, n, 2)`` array: born at 0, finite deaths ascending,
        then the infinite bars; zero-length bars left out.
    """
    b, m = lengths.shape
    pairs = np.zeros((b, m + 1, 2))
    deaths = pairs[:, :, 1]
    deaths[:, :m] = lengths
    deaths[:, m] = np.inf
    if threshold < np.inf:
        deaths[deaths > threshold] = np.inf
    zeros = (deaths[:, :m] <= 0.0).sum(axis=1)  # ascending rows: the zero lengths come first
    return [pairs[k, zeros[k]:] for k in range(b)]
