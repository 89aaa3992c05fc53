"""The inputs behind a bar: representative cycles of H0 and H1 bars.

``PersistenceDiagram(representatives=True)`` keeps, with every
:class:`~sktopo.Diagram`, the input indices of a representative of each bar
(``diagram.representatives[q][k]`` for the bar ``diagram[q][k]``):

H0
    A finite bar ``[0, w)`` dies when an edge of length ``w`` of a minimum
    spanning tree joins two components: its representative is that edge's two
    endpoints ``[i, j]`` (the 0-cycle ``i - j`` that the edge kills). An
    infinite bar (a connected component that never dies) is represented by the
    smallest index of its component.
H1
    A bar ``[b, d)`` is born when an edge ``(u, v)`` of length ``b`` closes a
    loop: ``u`` and ``v`` were already connected by shorter edges. Its
    representative is that loop, ``u``, the shortest path (by length) from
    ``u`` to ``v`` through edges no longer than ``b``, ending at ``v``: a cycle
    of the complex at scale ``b`` that contains the birth edge, hence a
    representative of the class born there. The indices are listed in cycle
    order (consecutive indices are joined by an edge, and so are the last and
    the first).

The birth edge of an H1 bar comes from the engine where it reports the birth
simplex of every bar (redzed-tda, the default engine over Z/2). Otherwise it
is found by its length (the engines report float32 values of the distances):
when several edges have exactly the bar's birth length (symmetric data), each
bar gets a different one that closes a loop; which of them goes with which of
those equal bars is then arbitrary, as the pairing of equal bars itself is.
Dimensions 2 and above have no representatives here.

With landmarks the indices refer to the original inputs (the cloud's rows),
not to positions among the landmarks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bar_representatives"]


def bar_representatives(D, bars, dims, threshold=np.inf, birth_edges=None) -> dict:
    """Representatives of the H0 and H1 bars of a dense distance matrix.

    Parameters
    ----------
    D : ndarray of shape (n, n)
        Distances (infinite entries are missing edges).
    bars : dict of int to ndarray of shape (k, 2)
        The bars the engine computed from ``D``.
    dims : sequence of int
        Dimensions of ``bars``; those above 1 get no representatives.
    threshold : float, default=inf
        Largest edge length of the filtration.
    birth_edges : sequence of (int, int), optional
        The edge that gives birth to each H1 bar, in the order of ``bars[1]``,
        as an engine that reports birth simplices gives it; without it the
        edge is found by its length.

    Returns
    -------
    representatives : dict of int to list of ndarray
        For ``q`` in ``dims`` (at most 1), one integer array per bar of
        ``bars[q]``, in its order. An array is empty where no representative
        was found (rounding between the engine's float32 values and ``D``).
    """
    out = {}
    if 0 in dims:
        out[0] = _h0(D, np.asarray(bars[0], dtype=float).reshape(-1, 2), threshold)
    if 1 in dims:
        h1 = np.asarray(bars[1], dtype=float).reshape(-1, 2)
        if birth_edges is not None and len(birth_edges) == len(h1):
            out[1] = [_loop_closed_by(D, int(u), int(v), threshold) for u, v in birth_edges]
        else:
            out[1] = _h1(D, h1, threshold)
    return out


def _loop_closed_by(D, u, v, threshold):
    """The loop ``u, ..., v`` that the edge ``(u, v)`` closes: shortest path through shorter edges."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra

    n = D.shape[0]
    b = D[u, v]
    iu, ju = np.triu_indices(n, 1)
    lengths = D[iu, ju]
    mask = np.isfinite(lengths) & (lengths <= min(b, threshold))
    mask &= ~(((iu == u) & (ju == v)) | ((iu == v) & (ju == u)))
    # a tiny positive weight keeps zero-length edges (duplicates) as edges
    w = lengths[mask] + (1e-12 * b + 1e-300)
    graph = sp.coo_matrix((w, (iu[mask], ju[mask])), shape=(n, n)).tocsr()
    dist, pred = dijkstra(graph, directed=False, indices=u, return_predecessors=True)
    if not np.isfinite(dist[v]):
        return np.empty(0, dtype=np.intp)
    path = [v]
    while path[-1] != u:
        path.append(pred[path[-1]])
    return np.asarray(path[::-1], dtype=np.intp)


def _h0(D, bars, threshold):
    from .._mst import mst_edges

    lengths, heads, tails = mst_edges(D)
    keep = (lengths > 0) & (lengths <= threshold)
    finite = np.flatnonzero(np.isfinite(bars[:, 1]))
    reps = [np.empty(0, dtype=np.intp)] * len(bars)
    # bars and tree edges in ascending order of death are the same multiset
    for bar, edge in zip(finite[np.argsort(bars[finite, 1], kind="stable")], np.flatnonzero(keep)):
        reps[bar] = np.array([heads[edge], tails[edge]], dtype=np.intp)
    # one infinite bar per component of the graph of edges <= threshold
    n = D.shape[0]
    parent = np.arange(n)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j, w in zip(heads, tails, lengths):
        if w <= threshold:
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = sorted({find(i) for i in range(n)})
    for bar, root in zip(np.flatnonzero(~np.isfinite(bars[:, 1])), roots):
        reps[bar] = np.array([root], dtype=np.intp)
    return reps


def _h1(D, bars, threshold):
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra

    n = D.shape[0]
    reps = [np.empty(0, dtype=np.intp)] * len(bars)
    if not len(bars):
        return reps
    iu, ju = np.triu_indices(n, 1)
    lengths = D[iu, ju]
    finite = np.isfinite(lengths) & (lengths <= threshold)
    iu, ju, lengths = iu[finite], ju[finite], lengths[finite]
    as32 = lengths.astype(np.float32)
    used = set()
    for bar in np.argsort(bars[:, 0], kind="stable"):
        birth = np.float32(bars[bar, 0])
        for e in np.flatnonzero(as32 == birth):
            if e in used:
                continue
            u, v, b = iu[e], ju[e], lengths[e]
            # the loop the edge closes: edges no longer than it, except itself;
            # a tiny positive weight keeps zero-length edges (duplicates) as edges
            mask = lengths <= b
            mask[e] = False
            w = lengths[mask] + (1e-12 * b + 1e-300)
            graph = sp.coo_matrix((w, (iu[mask], ju[mask])), shape=(n, n)).tocsr()
            dist, pred = dijkstra(graph, directed=False, indices=u, return_predecessors=True)
            if not np.isfinite(dist[v]):
                continue  # the edge merges components: not this bar's birth
            path = [v]
            while path[-1] != u:
                path.append(pred[path[-1]])
            reps[bar] = np.asarray(path[::-1], dtype=np.intp)
            used.add(e)
            break
    return reps
