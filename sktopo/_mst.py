"""Minimum spanning trees of dense distance matrices: numpy on the CPU, torch anywhere.

The H0 bars of a Vietoris-Rips filtration are exactly the edge lengths of a
minimum spanning tree (all born at 0, one infinite bar for the whole cloud), and
the PH dimension sums powers of those lengths, so both estimators share these
kernels. Only the multiset of edge lengths is returned: that is all either needs.

* :func:`mst_edge_lengths` - dense Prim, O(n^2) time, O(n) extra memory,
  vectorised over a batch of equally sized matrices (the draws of a PHdim
  subsample size) so the Python loop runs once per vertex for the whole batch.
* :func:`torch_mst_edge_lengths` - Boruvka on a torch tensor: about log2(n)
  passes, each a masked row-minimum over the whole matrix, which suits a GPU.
* :func:`torch_batched_mst_edge_lengths` - dense Prim on a batch of torch
  matrices, vectorised over the batch; no host synchronisation inside the
  loop, so on a GPU the n - 1 steps queue up back to back.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mst_edge_lengths", "torch_mst_edge_lengths", "torch_batched_mst_edge_lengths"]


def mst_edge_lengths(D: np.ndarray) -> np.ndarray:
    """Edge lengths of a minimum spanning tree of a dense distance matrix.

    Parameters
    ----------
    D : ndarray of shape (n, n) or (batch, n, n)
        Symmetric distance matrices. Infinite entries mean "no edge"; a
        graph with ``c`` components gives a minimum spanning forest plus
        ``c - 1`` infinite lengths.

    Returns
    -------
    lengths : ndarray of shape (n - 1,) or (batch, n - 1)
        Edge lengths in the order Prim added them (not sorted).
    """
    D = np.asarray(D, dtype=np.float64)
    single = D.ndim == 2
    if single:
        D = D[None]
    if D.ndim != 3 or D.shape[1] != D.shape[2]:
        raise ValueError(f"expected square distance matrices, got shape {D.shape}")
    batch, n, _ = D.shape
    out = np.empty((batch, max(n - 1, 0)))
    if n <= 1:
        return out[0] if single else out
    rows = np.arange(batch)
    in_tree = np.zeros((batch, n), dtype=bool)
    in_tree[:, 0] = True
    best = D[:, 0, :].copy()
    best[in_tree] = np.inf
    for k in range(n - 1):
        j = np.argmin(best, axis=1)
        value = best[rows, j]
        stuck = ~np.isfinite(value)
        if stuck.any():
            # the tree's component is exhausted (infinite distances): jump to
            # the first vertex outside it, with an infinite "edge", so the
            # other components' own edges are still found
            j[stuck] = np.argmax(~in_tree[stuck], axis=1)
        out[:, k] = value
        in_tree[rows, j] = True
        np.minimum(best, D[rows, j, :], out=best)
        best[in_tree] = np.inf
    # a disconnected graph (infinite distances) gives one infinite "edge" per
    # extra component; every component's own tree edges are still there
    return out[0] if single else out


def torch_mst_edge_lengths(D):
    """Edge lengths of a minimum spanning tree of a dense torch distance matrix.

    Boruvka's algorithm: every component picks its shortest outgoing edge; the
    picked edges are merged shortest first with a union-find on the host (at
    most one edge per component, so little crosses the bus), which also keeps
    ties from closing a cycle. Stays on ``D``'s device otherwise.

    Parameters
    ----------
    D : torch.Tensor of shape (n, n)

    Returns
    -------
    lengths : torch.Tensor of shape (n - 1,), on ``D``'s device, sorted.
    """
    import torch

    n = D.shape[0]
    device = D.device
    if n <= 1:
        return D.new_empty(0)
    comp = torch.arange(n, device=device)
    vertex = torch.arange(n, device=device)
    parent = np.arange(n)

    def find(a):
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    lengths = []
    n_components = n
    inf = torch.tensor(float("inf"), dtype=D.dtype, device=device)
    while n_components > 1:
        same = comp.unsqueeze(0) == comp.unsqueeze(1)
        w, nearest = torch.where(same, inf, D).min(dim=1)
        comp_best = torch.full((n,), float("inf"), dtype=D.dtype, device=device)
        comp_best.scatter_reduce_(0, comp, w, reduce="amin")
        # one vertex per component attains its minimum; take the lowest index
        attains = (w == comp_best[comp]) & torch.isfinite(w)
        candidate = torch.where(attains, vertex, torch.full_like(vertex, n))
        chosen = torch.full((n,), n, dtype=vertex.dtype, device=device)
        chosen.scatter_reduce_(0, comp, candidate, reduce="amin")
        chosen = chosen[chosen < n]
        if chosen.numel() == 0:
            # disconnected (infinite distances): the remaining edges are infinite
            lengths.extend([float("inf")] * (n_components - 1))
            break
        u = chosen.cpu().numpy()
        v = nearest[chosen].cpu().numpy()
        weights = w[chosen].cpu().numpy()
        for k in np.argsort(weights, kind="stable"):
            ru, rv = find(u[k]), find(v[k])
            if ru != rv:
                parent[max(ru, rv)] = min(ru, rv)
                lengths.append(float(weights[k]))
                n_components -= 1
        roots = parent.copy()
        while True:  # pointer jumping to every vertex's root, vectorised
            hop = roots[roots]
            if np.array_equal(hop, roots):
                break
            roots = hop
        comp = torch.as_tensor(roots, device=device)
    return torch.sort(torch.tensor(lengths, dtype=D.dtype, device=device)).values


def torch_batched_mst_edge_lengths(D):
    """Edge lengths of the minimum spanning trees of a batch of dense torch matrices.

    Prim's algorithm vectorised over the batch (the draws of one PHdim
    subsample size): each of the n - 1 steps is a row-minimum, a gather and an
    elementwise minimum over ``(batch, n)``, all on ``D``'s device.

    Parameters
    ----------
    D : torch.Tensor of shape (batch, n, n)
        Symmetric distance matrices; infinite entries give infinite lengths.

    Returns
    -------
    lengths : torch.Tensor of shape (batch, n - 1)
        Edge lengths in the order Prim added them (not sorted).
    """
    import torch

    if D.ndim != 3 or D.shape[1] != D.shape[2]:
        raise ValueError(f"expected a batch of square matrices (batch, n, n), got {tuple(D.shape)}")
    batch, n, _ = D.shape
    out = D.new_empty((batch, max(n - 1, 0)))
    if n <= 1:
        return out
    rows = torch.arange(batch, device=D.device)
    in_tree = torch.zeros((batch, n), dtype=torch.bool, device=D.device)
    in_tree[:, 0] = True
    best = D[:, 0, :].clone()
    best.masked_fill_(in_tree, float("inf"))
    for k in range(n - 1):
        value, j = best.min(dim=1)
        out[:, k] = value
        in_tree[rows, j] = True
        best = torch.minimum(best, D[rows, j, :])
        best.masked_fill_(in_tree, float("inf"))
    return out
