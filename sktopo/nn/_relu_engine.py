"""Exact cumulative ranks of a ReLU network's linear map, carried from layer to layer.

Private engine of :class:`sktopo.ReLURankRegions`.

On the linear region of an input, the map from the input to the output of ReLU call l is
linear with matrix ``A_l`` (``units_l x d``). Pushing all ``d`` input directions through the
whole network for every region costs ``d`` forward passes per region and a ``units x d`` rank
per layer. This engine instead carries a small factor from layer to layer.

The carried factor
------------------
For every layer it keeps ``B_l`` (active units of l x ``r_l``) with

    A_l = B_l Q_l^T,   Q_l a ``d x r_l`` matrix with orthonormal columns (never formed),

so the nonzero singular values of ``A_l`` and ``B_l`` are the same. At the input ``B`` is the
identity (``r = d``). When the pre-activation of layer l depends on the input only through the
output of an earlier ReLU call p (its *parent*; the previous call in a chain, the block input
in a residual block), ``A_l = D_l G_{p->l} A_p = (D_l G_{p->l} B_p) Q_p^T``: the raw factor of
layer l is ``G_{p->l}`` applied to the columns of ``B_p``, rows restricted to the active units.
When it is wide (fewer active units than columns) and the later layers' saved work exceeds
the cost, it is compacted losslessly by an LQ (Householder QR) factorisation, ``B = L Q'^T``,
keeping ``L`` (as many columns as active units). The input map of the first layer is compacted
once for all regions the same way when it has fewer units than inputs. No direction is ever
dropped, so no rank is ever decided on a truncated basis.

The parent of every layer is found once, with one forward-mode push of a random input tangent
per candidate p, the tangent of call p's output held at 0 and every ReLU frozen to random
positive scalings: l's parent is the latest p for which l's tangent is then 0 (paths around p,
such as a skip connection from the input, add their own tangent; the input is the fallback
parent and always valid). The tangent is a polynomial in the scalings, so it is 0 at random
ones only when it is 0 for every region's 0/1 mask. Tangents, not perturbed outputs: a path
around p whose contribution to l's output is below one rounding step of it (``fc2(h) + 1e-9 x``
with ``fc2(h)`` near 1e8) does not change the output, but it adds a 1e-9 identity to the map
and so its rank.

``G_{p->l}`` is applied by ``torch.func.vmap(jvp)`` through the network itself with every ReLU
frozen to its region's mask, so every module torch can differentiate in forward mode works
(Linear, Conv, pooling, BatchNorm, ...). When no ReLU call sits between p and l
(``l = p + 1``), ``G_{p->l}`` does not depend on the region: it is materialised once when small
enough and, when mostly nonzero (a Linear layer, not a convolution), applied as a gathered dense
product. A factor that would be carried unchanged (never wide in the chunk) is not re-entered:
the layers after it whose segments are pushed anyway (convolutions) are pushed from its own
source in the same pass.

Coloured input tangents
-----------------------
A push from the input does not need all ``d`` basis vectors when the input maps are sparse: a
convolution's unit sees only its receptive field, on every region. The nonzero pattern of the
maps from the input to the pushed layers is read once, from one push of the basis with every
ReLU frozen to random positive scalings instead of 0/1 masks (an entry nonzero on some region
is a nonzero polynomial in the scalings, so it is nonzero at random ones). Columns that never
share a row get one colour (greedy, in raster order: an ``h x w`` receptive field gives about
``h w`` colours); each colour is pushed as the sum of its basis vectors, and every entry of
the factor is read back from its colour's column (the one column of that colour in its row's
pattern). Products and sums are those of the full push, only over fewer tangents: on a 28 x 28
CNN whose second ReLU layer sees 8 x 8 pixels, 64 tangents per region replace 784.

Convolution chains
------------------
For an ``nn.Sequential`` of ``Conv2d`` / ``AvgPool2d`` / ``BatchNorm2d`` (eval) / ``ReLU`` up
to the last traced ReLU, :class:`ConvChain` first tries to certify that a region has full
column rank ``d`` at every layer, without any module push or SVD: the maps are carried in
windowed form (each unit's row only over its receptive field), layer 2 as one GEMM of the
im2col of layer 1's masks, the last layer only at a few output positions whose windows
cover the image, and one Cholesky test per region on those rows' Gram matrix, shifted by the
rank rule's tolerances of every layer carried to the last through upper bounds of the
segments' norms (see the class). Regions it does not settle (rank-deficient ones, nearly
singular ones, too few active units) go through the general engine below, unchanged.

Scaling
-------
Every factor is rescaled per region by a power of two, which is exact, with its exponent
carried beside it (:func:`normalized`): only a factor whose largest entry leaves
``[2**-256, 2**256]`` (``[2**-32, 2**32]`` in float32) is rescaled, to ``[1/2, 1)``. So
no depth under- or overflows the carried factors (weights of 1e-7 over 60 layers give maps
of 1e-420), and the squared Frobenius norms, Gram matrices and Cholesky shifts of the rank
tests are normal numbers: below about 1e-154 a sum of squares underflows to 0 (which would
read as rank 0) or to subnormals with a few bits, on which the certificate's rounding bound
does not hold. The default tolerance is scale invariant; an absolute ``rank_tol`` is compared
in the units of the rescaled factor (``rank_tol * 2**-exponent``). :class:`ConvChain`
rescales its windows at every layer the same way and keeps its norm bounds as mantissa and
exponent. A push through several segments at once (the fused convolution pushes above)
cannot rescale on the way: when one of its factors needed rescaling it is redone one segment
at a time. A factor that still has inf, NaN or subnormal entries (the forward pass itself
overflows, and forward derivatives through inf are NaN; or one segment's map leaves the
range) is counted in ``RankEngine.overflow``, and the estimator warns naming the layer.

The rank rule
-------------
The rank of ``A_l`` is decided by numpy's rule for the full ``M x N = units_l x d`` product:
the number of singular values above ``tol = sigma_max * max(M, N) * eps`` (or above
``rank_tol``). ``B_l`` has the same singular values in exact arithmetic, and it is formed with
the same backward-stable operations (products, Householder QR) as the full product, so the two
agree except for singular values within rounding (``~ n eps`` times the norms of the factors) of
the threshold, where the full product's own float64 rank is decided by rounding too.

Per matrix the decision is made in two steps:

1. A Cholesky certificate of full rank: with ``G`` the Gram matrix of ``B`` on its smaller side
   (size s) and ``F = ||B||_F^2`` (an upper bound of ``sigma_max^2``), Cholesky of
   ``G - c I`` with ``c = (sqrt(F) max(M, N) eps)^2 + 2 (m + s + 2) eps F`` (m the larger side)
   succeeds only if ``lambda_min(G) > tol^2``: the rounding of the Gram product is at most
   ``gamma_m F`` and a successful floating-point Cholesky is the exact one of a matrix within
   ``gamma_{s+1} trace`` of its input. So success proves ``sigma_min > tol``: full rank s.
   A matrix much longer than its smaller side is first tried on a random subset of about
   ``1.25 s`` of its long side (a subset's Gram is dominated by the whole one, so its success
   proves the same), then on the whole Gram.
2. Every matrix the certificate does not settle goes to ``torch.linalg.svdvals`` and the rule is
   applied to its singular values, as numpy does.
"""

import math

import numpy as np
import torch
from scipy import sparse
from torch import nn
from torch.func import jvp, vmap

from sktopo.nn._relu_network import ReLUTracer, _dual_level, _quiet_jit_warning
from sktopo.nn._relu_patterns import unpack_pattern

# Largest region-independent segment map (entries) that is materialised as a dense matrix.
_DENSE_LIMIT = 1 << 22
# Fraction of nonzero entries below which a segment map between two ReLU calls is pushed
# through the modules (a convolution's) rather than gathered and multiplied densely.
_DENSE_FILL = 0.5
# Seed of the random positive masks of the probe that finds the input maps' sparsity patterns.
_PROBE_SEED = 12345


def matrix_rank(B, rows, cols, full_shape, rank_tol=None, exponent=None, rescaled=False):
    """Batched rank of (k, R, C) zero-padded matrices by numpy's rule for a given full shape.

    Parameters
    ----------
    B : torch.Tensor of shape (k, R, C)
        Matrix i occupies ``B[i, :rows[i], :cols[i]]``; the rest is zero.
    rows, cols : torch.Tensor of shape (k,), int64
        True sizes.
    full_shape : (int, int)
        Shape ``(M, N)`` of the matrix whose rank is wanted (same nonzero singular values as B):
        the default tolerance is ``sigma_max * max(M, N) * eps``.
    rank_tol : float or None
        Absolute tolerance (numpy's ``tol``) instead of the default.
    exponent : torch.Tensor of shape (k,), int64, or None
        The matrices whose rank is wanted are ``B[i] * 2**exponent[i]`` (a factor carried
        rescaled, see :func:`normalized`); only an absolute ``rank_tol`` depends on it.
    rescaled : bool
        B is already an output of :func:`normalized` (not rescaled again).

    Returns
    -------
    ranks : torch.Tensor of shape (k,), int64
        0 for a matrix with a non-finite entry (its rank is not defined).
    """
    k, R, C = B.shape
    ranks = torch.zeros(k, dtype=torch.int64, device=B.device)
    if k == 0 or R == 0 or C == 0:
        return ranks
    # Every test below runs on B times a power of two (exact) whose largest entry is near 1:
    # neither the squared norms nor the Gram matrices under- or overflow (see normalized).
    if rescaled:
        scale = torch.zeros(k, dtype=torch.int64, device=B.device)
    else:
        B, scale = normalized(B)
    if exponent is not None:
        scale = scale + exponent
    eps = torch.finfo(B.dtype).eps
    big = max(full_shape)
    # Absolute tolerance in the units of the rescaled matrices (None: the default rule, which
    # is scale invariant).
    tol = (None if rank_tol is None else
           ldexp(torch.full((k,), float(rank_tol), dtype=B.dtype, device=B.device), -scale))
    # Sums of squares as one dot product per matrix: no temporary of B's size.
    flat = B.reshape(k, -1)
    fro2 = (flat[:, None, :] @ flat[:, :, None]).reshape(k)
    small = torch.minimum(rows, cols)
    live = (fro2 > 0) & (small > 0) & torch.isfinite(fro2)
    certified = torch.zeros(k, dtype=torch.bool, device=B.device)
    for wide in (True, False):
        # Gram on the smaller side of each matrix: rows <= cols -> B B^T, else B^T B.
        group = live & ((rows <= cols) if wide else (rows > cols))
        if not bool(group.any()):
            continue
        idx = torch.nonzero(group).reshape(-1)
        n = int(small[idx].max())
        sub = B[:, :n, :] if wide else B[:, :, :n]
        if idx.numel() < k:  # a copy of the group's matrices only when it is not all
            sub = sub[idx]
        if wide:
            sub = sub.transpose(1, 2)
        f, s = fro2[idx], small[idx]
        larger = torch.maximum(rows[idx], cols[idx]).to(B.dtype)
        tol2 = f * (big * eps) ** 2 if tol is None else tol[idx] ** 2
        shift = tol2 + 2 * (larger + s.to(B.dtype) + 2) * eps * f
        ok = torch.zeros(idx.numel(), dtype=torch.bool, device=B.device)
        if sub.shape[1] > 2 * n:
            # Much taller than wide: certify on a random subset of the rows first (sigma_min
            # of a row subset bounds sigma_min from below); the full Gram for the others.
            gen = torch.Generator(device="cpu").manual_seed(sub.shape[1])
            pick = torch.randperm(sub.shape[1], generator=gen)[:n + n // 4 + 8]
            ok = _cholesky_certificate(sub[:, pick.to(B.device)], s, shift)
        todo = torch.nonzero(~ok).reshape(-1)
        if todo.numel():
            ok[todo] = _cholesky_certificate(sub[todo], s[todo], shift[todo])
        certified[idx[ok]] = True
        ranks[idx[ok]] = s[ok]
    unsure = torch.nonzero(live & ~certified).reshape(-1)
    if unsure.numel():
        sv = torch.linalg.svdvals(B[unsure])
        if rank_tol is None:
            threshold = sv[:, :1] * (big * eps)
        else:
            threshold = tol[unsure, None]
        ranks[unsure] = (sv > threshold).sum(dim=1)
    return ranks


def _exp2(n):
    """Exact ``2.0 ** n`` (float64) for an int64 tensor n in [-1022, 1023], from its bits."""
    return ((n + 1023) << 52).view(torch.float64)


def ldexp(x, e):
    """``x * 2**e`` with one int64 exponent per leading index of x (broadcast over the others).

    Exact where the result is a normal number; ``2**e`` is applied in three factors of at most
    ``2**700`` each, so a large exponent never makes an intermediate inf or 0 that the result
    would not be (``0 * 2**5000`` stays 0).
    """
    if x.numel() == 0:
        return x
    e = e.reshape((-1,) + (1,) * (x.dim() - 1)).clamp(-2100, 2100)
    for i in range(3):
        part = torch.div(e, 3 - i, rounding_mode="floor")
        x = x * _exp2(part).to(x.dtype)
        e = e - part
    return x


def normalized(T):
    """Rescale each ``T[i]`` by a power of two (exact) so that its largest entry is near 1.

    Returns ``(T', e)``, ``T = T' * 2**e`` (``e`` int64 of shape (k,)). Only an entry far out of
    range is rescaled: a ``T[i]`` whose largest absolute value lies in ``[2**-s, 2**s]`` (``s``
    a quarter of the dtype's exponent range: ``2**256`` in float64, ``2**32`` in float32), is
    zero or is not finite is kept as it is (``e = 0``); the others are brought to ``[1/2, 1)``.
    Then a squared Frobenius norm or Gram matrix, with the rank rule's ``eps**2`` factors, is a
    normal number: below about ``1e-154`` in float64 the sums of squares underflow (to 0, or
    to subnormals with a few bits, on which the Cholesky certificate's rounding bound does not
    hold), and above about ``1e154`` they overflow.
    """
    T, e, _ = _normalized(T)
    return T, e


def _normalized(T):
    """:func:`normalized`, and the (k,) largest absolute entries of the input (inf or NaN
    where an entry is)."""
    k = T.shape[0]
    e = torch.zeros(k, dtype=torch.int64, device=T.device)
    if T.numel() == 0:
        return T, e, T.new_zeros(k)
    amax = _max_abs(T)
    _, exp = torch.frexp(amax)
    exp = exp.to(torch.int64)
    safe = (int(np.log2(torch.finfo(T.dtype).max)) + 1) // 4  # 256 in float64, 32 in float32
    far = torch.isfinite(amax) & (amax > 0) & (exp.abs() > safe)
    if not bool(far.any()):
        return T, e, amax
    e = torch.where(far, exp, e)
    return ldexp(T, -e), e, amax


def _max_abs(T):
    """(k,) largest absolute entry of each ``T[i]`` (NaN where one is): two reductions, no
    temporary of T's size, faster than ``aminmax``."""
    flat = T.reshape(T.shape[0], -1)
    return torch.maximum(flat.amax(dim=1), -flat.amin(dim=1))


def _lower_gram(S):
    """``S^T S`` for a (k, m, n) batch, lower triangle only (all Cholesky reads): recursive
    2 x 2 blocks skip the upper off-diagonal block, about half the multiply-adds of a GEMM."""
    n = S.shape[2]
    if n <= 256:
        return S.transpose(1, 2) @ S
    h = n // 2
    gram = S.new_zeros(S.shape[0], n, n)
    gram[:, :h, :h] = _lower_gram(S[:, :, :h])
    gram[:, h:, h:] = _lower_gram(S[:, :, h:])
    gram[:, h:, :h] = S[:, :, h:].transpose(1, 2) @ S[:, :, :h]
    return gram


def _cholesky_certificate(sub, s, shift):
    """Whether Cholesky of ``sub^T sub - shift I`` succeeds (leading s x s block; the padded
    indices get an identity block, which keeps positive definiteness block by block)."""
    n = sub.shape[2]
    gram = _lower_gram(sub)
    pad = torch.arange(n, device=sub.device)[None, :] >= s[:, None]
    diag = gram.diagonal(dim1=1, dim2=2)
    diag.sub_(shift[:, None])
    diag.masked_fill_(pad, 1.0)
    return torch.linalg.cholesky_ex(gram)[1] == 0


def _compact(B, rows, cols, worth=None):
    """LQ-compact wide matrices of a padded batch: same singular values, ``rows`` columns.

    Returns ``(B_new, cols_new)``: matrices with ``rows < cols`` (and ``worth``, when given)
    are replaced by their (rows x rows) L factor from a Householder QR of ``B^T``; the others
    are kept (trailing all-zero columns dropped).
    """
    wide = rows < cols
    if worth is not None:
        wide &= worth
    new_cols = torch.where(wide, rows, cols)
    width = int(new_cols.max()) if new_cols.numel() else 0
    if not bool(wide.any()):
        return B[:, :, :width], new_cols
    out = B.new_zeros(B.shape[0], B.shape[1], width)
    keep = torch.nonzero(~wide).reshape(-1)
    if keep.numel():
        out[keep] = B[keep][:, :, :width]
    idx = torch.nonzero(wide).reshape(-1)
    n = int(rows[idx].max())
    if n > 0:
        # Zero padded rows of B are zero columns of B^T: they give zero rows and columns in R.
        # (geqrf: R in the upper triangle; faster than linalg.qr for batches of small ones.)
        r = torch.geqrf(B[idx][:, :n, :].transpose(1, 2).contiguous())[0][:, :n, :].triu()
        out[idx, :n, :n] = r.transpose(1, 2)
    return out, new_cols


def _active_index(mask):
    """(k, units) bool -> (index (k, a_max) int64 padded with ``units``, counts (k,))."""
    k, units = mask.shape
    counts = mask.sum(dim=1)
    a_max = int(counts.max()) if k else 0
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :a_max]
    pad = torch.arange(a_max, device=mask.device)[None, :] >= counts[:, None]
    return order.masked_fill(pad, units), counts


def greedy_column_colors(pattern):
    """Colour the columns of a boolean (m, d) pattern: no row has two nonzeros of one colour.

    Greedy in column order (for an image, raster order: a receptive field of h x w pixels then
    gives about h * w colours). Returns ``(colors, n_colors)``, ``colors`` a (d,) int64 array.
    """
    S = sparse.csr_matrix(pattern, dtype=np.int32)
    conflict = (S.T @ S).tocsr()  # columns that share a row
    d = pattern.shape[1]
    colors = np.full(d, -1, dtype=np.int64)
    for j in range(d):
        used = colors[conflict.indices[conflict.indptr[j]:conflict.indptr[j + 1]]]
        taken = np.zeros(used.size + 1, dtype=bool)
        taken[used[(used >= 0) & (used <= used.size)]] = True
        colors[j] = int(np.argmin(taken))  # the smallest colour no neighbour has
    return colors, int(colors.max()) + 1 if d else 0


class RankEngine:
    """Cumulative ranks of every ReLU call on each region; see the module docstring.

    Parameters
    ----------
    model : torch.nn.Module
        Prepared (device, dtype, eval mode).
    relu_names : list of str
        nn.ReLU modules to trace (ReLUTracer's).
    units : sequence of int
        Units per ReLU call.
    input_shape : tuple of int
    rank_tol : float or None
    batch_size : int
        Tangent rows per forward pass: a chunk holds ``max(1, batch_size // r0)`` regions,
        ``r0`` the columns of the first factor (d, or units_0 when smaller and the input map
        is compacted once).
    progress : callable
        ``progress(iterable, desc=...)``.
    """

    def __init__(self, model, relu_names, units, input_shape, *, rank_tol, batch_size,
                 progress, region_dependent_segments=False):
        self.model, self.relu_names = model, relu_names
        self.units = [int(u) for u in units]
        self.input_shape = tuple(input_shape)
        self.d = int(np.prod(self.input_shape))
        self.rank_tol = rank_tol
        self.batch_size = int(batch_size)
        self.progress = progress
        self.n_layers = len(self.units)
        self._dense = {}
        self._colorings = {}
        self._parent_calls = None  # found once (_parents)
        self._shapes = None
        self._chain = False  # ConvChain (or None), built on the first chunk
        # Max pooling makes the maps between ReLU calls depend on the region (its argmax):
        # then every factor is pushed from the input through the network itself, where forward
        # differentiation of the pooling gathers at the region's own argmax (the primal is the
        # region's representative), and no map is shared between regions.
        self.region_dependent_segments = bool(region_dependent_segments)
        # Layer -> number of regions whose factor over- or underflowed even when pushed one
        # segment at a time from a rescaled factor (see _ranks_from); the estimator warns.
        self.overflow = {}

    # ------------------------------------------------------------------ driver
    def ranks(self, reps, rep_words):
        """(R, L) int64 ranks of the regions represented by the rows of ``reps``."""
        n_regions, L = reps.shape[0], self.n_layers
        ranks = np.zeros((n_regions, L), dtype=np.int64)
        # Regions per chunk: ``batch_size`` tangent rows of the first factor (d columns, or
        # units_0 when the first layer's map is compacted once, see _dense_map).
        first = self.units[0] if self.units[0] * self.d <= max(
            _DENSE_LIMIT, self.batch_size * max(self.units)) else self.d
        chunk = max(1, self.batch_size // min(self.d, first))
        for start in self.progress(range(0, n_regions, chunk), desc="ranks per region"):
            stop = min(start + chunk, n_regions)
            # A copy, not a view: a tangent over a view spans the view's whole base.
            x = reps[start:stop].clone()
            masks = [torch.as_tensor(unpack_pattern(w[start:stop], m), device=reps.device)
                     for w, m in zip(rep_words, self.units)]
            ranks[start:stop] = self._certified_or_general(x, masks)
        return ranks

    def _certified_or_general(self, x, masks):
        """Ranks of a chunk: full column rank d where a ConvChain certificate holds, the
        general engine (:meth:`_chunk_ranks`) for the other regions."""
        if self._chain is False:
            self._chain = (None if self.region_dependent_segments or self.d < 2 else
                           ConvChain.build(self.model, self.relu_names, self.units,
                                           self.input_shape, self.rank_tol, x))
        out = np.full((x.shape[0], self.n_layers), self.d, dtype=np.int64)
        ok = (self._chain.certify([m.to(x.dtype) for m in masks]) if self._chain is not None
              else torch.zeros(x.shape[0], dtype=torch.bool, device=x.device))
        rest = torch.nonzero(~ok).reshape(-1)
        if rest.numel():
            out[rest.cpu().numpy()] = self._chunk_ranks(
                x[rest], [m[rest] for m in masks]).cpu().numpy()
        return out

    def _chunk_ranks(self, x, masks):
        k = x.shape[0]
        if self._shapes is None:
            self._shapes = self._layer_shapes(x[:1], [m[:1] for m in masks])
        fmasks = [m.to(x.dtype) for m in masks]
        active = [_active_index(m) for m in masks]
        parents = self._parents(x, fmasks)
        sources = self._sources(x, fmasks, active, parents)
        ranks, bad, redo = self._ranks_from(x, masks, fmasks, active, sources, parents)
        if redo:
            # A push through several segments at once left the range that rescaling keeps
            # (it may have under- or overflowed on the way): once more, one segment at a
            # time, each pushed from a rescaled factor.
            ranks, bad, _ = self._ranks_from(x, masks, fmasks, active, parents, parents)
        for l in torch.nonzero(bad.any(dim=0)).reshape(-1).tolist():
            self.overflow[l] = self.overflow.get(l, 0) + int(bad[:, l].sum())
        return ranks

    def _ranks_from(self, x, masks, fmasks, active, sources, parents):
        """Ranks (k, L) with the factors pushed from ``sources``; (k, L) bool: the regions
        whose factor of a layer (or of one it was pushed from) has a non-finite entry (rank 0
        there) or had underflowed into the subnormal range before it was rescaled; and whether
        a factor pushed through several segments at once (a source that is not its parent)
        needed rescaling (or was bad), so the pushes are to be redone one segment at a time.

        Every raw factor is rescaled by a power of two per region (:func:`normalized`, exact)
        before it is ranked and carried, its exponent carried beside it: a factor's entries
        are then near 1 whatever the depth, and neither the next push nor the next products
        under- or overflow (weights of 1e-7 or 1e6 over dozens of layers).
        """
        k, L = x.shape[0], self.n_layers
        children = {p: [l for l in range(L) if sources[l] == p] for p in range(-1, L)}
        ranks = torch.zeros(k, L, dtype=torch.int64, device=x.device)
        bad = torch.zeros(k, L, dtype=torch.bool, device=x.device)
        redo = False
        finfo = torch.finfo(x.dtype)
        # Below 2**lost the largest entry is within eps of the subnormal range: bits are lost.
        lost = int(np.log2(finfo.tiny / finfo.eps)) + 1
        carried = {}
        exponents = {-1: torch.zeros(k, dtype=torch.int64, device=x.device)}
        for p in range(-1, L - 1):
            if not children[p]:
                continue
            raws = self._push(x, masks, fmasks, active, carried, p, children[p])
            for l, raw in zip(children[p], raws):
                rows = active[l][1]
                cols = (torch.full_like(rows, raw.shape[2]) if p < 0 else carried[p][1])
                raw, e, amax = _normalized(raw)
                bad[:, l] = ~torch.isfinite(amax) | (e < lost)
                if sources[l] != parents[l] and bool(((e != 0) | bad[:, l]).any()):
                    redo = True
                e = e + exponents[p]
                if p >= 0:
                    bad[:, l] |= bad[:, p]
                ranks[:, l] = matrix_rank(raw, rows, cols, (self.units[l], self.d),
                                          self.rank_tol, exponent=e, rescaled=True)
                if children.get(l):
                    carried[l] = _compact(raw, rows, cols, self._worth(active, l, rows, cols))
                    exponents[l] = e
            carried.pop(p, None)  # every child of p is done
        return ranks, bad, redo

    def _sources(self, x, fmasks, active, parents):
        """Where each layer's factor is pushed from: its parent, or the parent's own source
        when the parent's factor would be carried unchanged (as many active units as columns
        in every region: no compaction) and the segment between them is pushed through the
        modules anyway (not a dense gather). One pass through a chain of convolutions then
        gives all their factors, without leaving and re-entering the network at each ReLU."""
        width = {-1: self._first_width(x, fmasks)}
        sources = list(parents)
        for l, g in enumerate(parents):
            cols = width[sources[l]] if g < 0 else width[g]
            width[l] = cols  # a tall factor keeps its columns; a wide one is never fused
            if g < 0 or not bool((active[g][1] >= width[g]).all()):
                continue
            if l == g + 1 and self._dense_map(x, fmasks, g, l) is not None:
                continue
            sources[l] = sources[g]
        return sources

    def _first_width(self, x, fmasks):
        """Columns of the first factor: units_0 when the input map is compacted, else d."""
        dense = self._dense_map(x, fmasks, -1, 0)
        return self.d if dense is None else dense.shape[1] - 1

    def _worth(self, active, l, rows, cols):
        """Whether to compact layer l's wide factor: when the QR (about ``cols rows^2``
        multiply-adds) costs less than it saves in the later layers' products and Grams (about
        ``(a_m a_{m-1} + a_m^2) (cols - rows)`` each, with this chunk's active counts), or when
        a later layer has more active units than l (an uncompacted factor would then be rank
        deficient below its smaller side, which only the SVD can settle)."""
        counts = [active[m][1].to(torch.float64) for m in range(self.n_layers)]
        a, r = rows.to(torch.float64), cols.to(torch.float64)
        later = torch.zeros_like(a)
        wider = torch.zeros_like(a, dtype=torch.bool)
        for m in range(l + 1, self.n_layers):
            later += counts[m] * counts[m - 1] + counts[m] ** 2
            wider |= counts[m] > a
        return wider | (later * (r - a) > r * a * a)

    # ------------------------------------------------------------------ structure
    def _run(self, x, stop, forward_for):
        """model(x) with ReLU call c replaced by ``forward_for(c, z)``; stops after ``stop``."""
        tracer = ReLUTracer(self.model, self.relu_names, n_calls=stop)
        return tracer._run(x, lambda index, call, z: forward_for(call, z))

    def _layer_shapes(self, x, masks):
        shapes = {}

        def record(call, z):
            shapes[call] = tuple(z.shape[1:])
            return z * masks[call].reshape(z.shape).to(z.dtype)

        with torch.no_grad():
            self._run(x, self.n_layers, record)
        return [shapes[c] for c in range(self.n_layers)]

    def _parents(self, x, fmasks):
        """Parent call of every layer (-1: the input); see the module docstring.

        The frozen network is affine in its input; its linear part is pushed with one random
        input tangent, once per candidate p, with the tangent of call p's output held at 0:
        layer l depends on the input only through call p exactly when its tangent is then 0.
        Tangents, not outputs: a path around p whose contribution to l's output is below one
        rounding step of that output (``fc2(h) + 1e-9 x`` with ``fc2(h)`` near 1e8) leaves the
        output bit for bit unchanged, but not its tangent, and dropping it would drop the rank
        it adds.

        Every ReLU is frozen to random positive scalings, not to a region's 0/1 mask (the
        colouring probe's): l's tangent is a polynomial in the scalings, so it is 0 at random
        ones only when it is 0 for every mask. The parents are then those of every region,
        found once on one representative (``fmasks`` is not read). Each call's tangent is
        rescaled by a power of two on the way (a zero stays zero, a nonzero one neither under-
        nor overflows through the layers).
        """
        import torch.autograd.forward_ad as fwAD

        L = self.n_layers
        if L == 1 or self.region_dependent_segments:
            return [-1] * L
        if self._parent_calls is not None:
            return list(self._parent_calls)
        parents = [-1] * L
        x1 = x[:1]
        gen = torch.Generator(device="cpu").manual_seed(_PROBE_SEED)
        scalings = [(1.0 + torch.rand(1, u, generator=gen, dtype=x.dtype)).to(x.device)
                    for u in self.units]
        noise = torch.randn(x1.shape, generator=gen, dtype=x.dtype).to(x.device)
        base = {}

        def record(call, z):
            base[call] = z * scalings[call].reshape(z.shape)
            return base[call]

        with torch.no_grad():
            self._run(x1, L, record)
        with torch.no_grad(), _dual_level():
            dual = fwAD.make_dual(x1, noise)
            for p in range(L - 1):
                moved = {}

                def frozen(call, z, p=p, moved=moved):
                    if call == p:
                        return base[p]  # a constant: no tangent passes through call p
                    y = z * scalings[call].reshape(z.shape)
                    primal, t = fwAD.unpack_dual(y)
                    if t is None:
                        moved[call] = False
                        return y
                    if call > p:
                        moved[call] = bool(t.ne(0).any())
                    return fwAD.make_dual(primal, normalized(t)[0])

                self._run(dual, L, frozen)
                for l in range(p + 1, L):
                    if not moved.get(l, False):
                        parents[l] = p  # p increases: the latest valid parent wins
        self._parent_calls = parents
        return list(parents)

    # ------------------------------------------------------------------ pushes
    def _push(self, x, masks, fmasks, active, carried, p, children):
        """Raw factors ``D_l G_{p->l} B_p`` of the children of p, (k, a_l, r) each."""
        out = [None] * len(children)
        pushed = []
        for i, l in enumerate(children):
            dense = self._dense_map(x, fmasks, p, l) if l == p + 1 else None
            if dense is None:
                pushed.append(i)
                continue
            J = dense  # (units_l + 1, cols + 1), zero last row and column
            act_l = active[l][0]
            if p < 0:
                out[i] = J[act_l][:, :, :-1]
            else:
                B, _ = carried[p]
                act_p = active[p][0]
                # Gathered blocks of J in groups of regions: about batch_size x widest layer
                # entries at a time.
                group = max(1, self.batch_size * max(self.units)
                            // max(1, act_l.shape[1] * act_p.shape[1]))
                out[i] = torch.cat([
                    J[act_l[g:g + group, :, None], act_p[g:g + group, None, :]] @ B[g:g + group]
                    for g in range(0, B.shape[0], group)])
        if pushed:
            ls = [children[i] for i in pushed]
            acts = [active[l][0] for l in ls]
            coloring = self._input_coloring(x, ls) if p < 0 else None
            if coloring is None:
                tangents = self._tangents(x, fmasks, carried, active, p)
                raws = self._jvp(x, fmasks, p, ls, tangents, acts)
            else:
                # One tangent per colour; each nonzero of A_l is read back from its colour.
                basis, index = coloring
                n = basis.shape[0]
                tangents = basis.reshape(n, 1, *self.input_shape).expand(
                    n, x.shape[0], *self.input_shape)
                raws = [torch.gather(torch.nn.functional.pad(raw, (0, 1)), 2, index[l][act])
                        for l, act, raw in zip(ls, acts,
                                               self._jvp(x, fmasks, p, ls, tangents, acts))]
            for i, raw in zip(pushed, raws):
                out[i] = raw
        return out

    def _input_coloring(self, x, ls):
        """Compressed input basis for pushing the input maps of layers ``ls`` (or None).

        The map from the input to layer l's pre-activation has, on every region, its nonzeros
        within a fixed pattern: a convolution's unit sees only its receptive field. Inputs
        (columns) that never share a unit of ``ls`` get one colour and are pushed as the sum of
        their basis vectors; the pushed sum holds, in each unit's row, the entry of the one
        column of that colour in the row's pattern. The pattern is read from one push of the
        input basis with every ReLU frozen to random positive scalings (not 0/1 masks): an
        entry that is nonzero on some region is a polynomial in the scalings that is not zero,
        so it is nonzero at random ones. Used when the colours at most halve the tangents.

        Returns ``(basis, index)``: the (n_colors, d) 0/1 basis and, per layer l of ``ls``, a
        (units_l + 1, d) int64 map of each entry to its colour (``n_colors``, a zero column
        appended to the pushed rows, outside the pattern and in the padding row).
        """
        key = tuple(ls)
        if key in self._colorings:
            return self._colorings[key]
        coloring = None
        limit = max(_DENSE_LIMIT, self.batch_size * max(self.units))
        if (not self.region_dependent_segments and self.d > 1
                and sum(self.units[l] for l in ls) * self.d <= limit):
            gen = torch.Generator(device="cpu").manual_seed(_PROBE_SEED)
            scalings = [(1.0 + torch.rand(1, u, generator=gen, dtype=x.dtype)).to(x.device)
                        for u in self.units]
            eye = torch.eye(self.d, dtype=x.dtype, device=x.device).reshape(
                self.d, 1, *self.input_shape)
            probes = self._jvp(x[:1], scalings, -1, ls, eye)  # (d, 1, units_l) each
            patterns = [(probe[:, 0, :] != 0).T.cpu().numpy() for probe in probes]
            colors, n = greedy_column_colors(np.concatenate(patterns))
            if 2 * n <= self.d:
                colors = torch.as_tensor(colors, device=x.device)
                basis = torch.nn.functional.one_hot(colors, n).T.to(x.dtype)
                index = {}
                for l, pattern in zip(ls, patterns):
                    inside = torch.as_tensor(pattern, device=x.device)
                    index[l] = torch.nn.functional.pad(
                        torch.where(inside, colors[None, :], n), (0, 0, 0, 1), value=n)
                coloring = (basis.contiguous(), index)
        self._colorings[key] = coloring
        return coloring

    def _gather_rows(self, tangent, act):
        """(r, k, units) tangents -> (k, a_max, r) rows of the active units."""
        r, k, units = tangent.shape
        padded = torch.cat([tangent, tangent.new_zeros(r, k, 1)], dim=2)
        rows = torch.gather(padded, 2, act[None].expand(r, -1, -1))
        return rows.permute(1, 2, 0)

    def _tangents(self, x, fmasks, carried, active, p):
        """Tangents (r, k, *shape_p) that carry B_p (the identity for the input)."""
        k = x.shape[0]
        if p < 0:
            eye = torch.eye(self.d, dtype=x.dtype, device=x.device)
            return eye.reshape(self.d, 1, *self.input_shape).expand(
                self.d, k, *self.input_shape)
        B, _ = carried[p]
        act = active[p][0]
        r = B.shape[2]
        full = B.new_zeros(k, self.units[p] + 1, r)
        full.scatter_(1, act[:, :, None].expand(-1, -1, r), B)
        return full[:, :-1].permute(2, 0, 1).reshape(r, k, *self._shapes[p])

    def _jvp(self, x, fmasks, p, ls, tangents, acts=None):
        """Push tangents injected after call p (or at the input) to the pre-activations of ls.

        Returns (r, k, units_l) tangents per l in ``ls`` or, with ``acts`` (active indices per
        l), their active rows (k, a_l, r); every ReLU is frozen to its mask.
        """
        r = tangents.shape[0]
        if r == 0:  # nothing carried (no active unit at p): empty factors
            if acts is None:
                return [x.new_zeros(0, x.shape[0], self.units[l]) for l in ls]
            return [x.new_zeros(x.shape[0], act.shape[1], 0) for act in acts]
        stop = max(ls) + 1
        wanted = set(ls)
        zero = torch.zeros_like(tangents[0])

        def f(v):
            seen = {}

            def frozen(call, z):
                if call in wanted:
                    seen[call] = z.reshape(z.shape[0], -1)
                    if call == stop - 1:
                        return z  # the pass stops here: no need to mask
                y = z * fmasks[call].reshape(z.shape)
                return y + v if call == p else y

            self._run(x + v if p < 0 else x, stop, frozen)
            return tuple(seen[l] for l in ls)

        # vmap over the tangent columns in slices that keep ``batch_size`` rows per pass.
        step = max(1, self.batch_size // max(1, x.shape[0]))
        parts = []
        with torch.no_grad(), _quiet_jit_warning():
            for s in range(0, r, step):
                part = vmap(lambda t: jvp(f, (zero,), (t,))[1])(tangents[s:s + step])
                if acts is not None:  # keep only the active rows of each slice
                    part = [self._gather_rows(t, act) for t, act in zip(part, acts)]
                parts.append(part)
        if len(parts) == 1:
            return list(parts[0])
        dim = 0 if acts is None else 2
        return [torch.cat([part[i] for part in parts], dim=dim) for i in range(len(ls))]

    def _dense_map(self, x, fmasks, p, l):
        """Region-independent map y_p -> pre-activation of l = p + 1, padded by a zero row and
        column for gathers; None when too large (then pushed with jvp)."""
        if self.region_dependent_segments:
            return None
        if (p, l) in self._dense:
            return self._dense[(p, l)]
        cols = self.d if p < 0 else self.units[p]
        J = None
        # The input's map is only ever gathered by rows (no product): it may be as large as
        # the other buffers of a step (batch_size x widest layer).
        limit = _DENSE_LIMIT if p >= 0 else max(_DENSE_LIMIT,
                                                 self.batch_size * max(self.units))
        if self.units[l] * cols <= limit:
            x1, masks1 = x[:1], [m[:1] for m in fmasks]
            shape = self.input_shape if p < 0 else self._shapes[p]
            eye = torch.eye(cols, dtype=x.dtype, device=x.device).reshape(cols, 1, *shape)
            if p >= 0:
                # A sparse map (a convolution) is cheaper to push through the modules than to
                # gather in blocks and multiply densely: probe a few columns first.
                probe = torch.linspace(0, cols - 1, min(cols, 64), device=x.device).long()
                (some,) = self._jvp(x1, masks1, p, [l], eye[probe])
                if bool((some != 0).to(x.dtype).mean() < _DENSE_FILL):
                    self._dense[(p, l)] = None
                    return None
            (cols_t,) = self._jvp(x1, masks1, p, [l], eye)  # (cols, 1, units_l)
            J = cols_t[:, 0, :].T
            if not bool(torch.isfinite(J).all()):
                # The forward pass of this representative overflows (forward derivatives
                # through inf are NaN): no map shared with the other regions; each is pushed.
                self._dense[(p, l)] = None
                return None
            if p < 0 and J.shape[0] < J.shape[1]:
                # Fewer units than inputs: J = L Q^T (Householder QR of J^T), and every row
                # subset of J has the singular values of the same rows of L.
                n = J.shape[0]
                J = torch.geqrf(J.T.contiguous())[0][:n, :n].triu().T
            J = torch.nn.functional.pad(J, (0, 1, 0, 1))
        self._dense[(p, l)] = J
        return J


# ---------------------------------------------------------------------- convolution chains
# Pixels each pixel of the input must lie in (the clipped windows of) the chosen output
# positions of the last layer, and rows per input column, before a subset is tried.
_CHAIN_COVER = 2
_CHAIN_ROWS = 2


def _flat_children(model):
    """The modules an ``nn.Sequential`` runs, nested Sequentials flattened (None otherwise)."""
    if type(model) is not nn.Sequential:
        return None
    out = []
    for child in model:
        if type(child) is nn.Sequential:
            inner = _flat_children(child)
            out.extend(inner)
        else:
            out.append(child)
    return out


def _squared_norms(T):
    """Sum of squares of each T[i] as one dot product (no temporary of T's size)."""
    flat = T.reshape(T.shape[0], -1)
    return (flat[:, None, :] @ flat[:, :, None]).reshape(-1)


def _mantissa_exponent(values):
    """``(m, e)`` with ``prod(values) = m * 2**e`` and m in [1/2, 1) (``(1.0, 0)`` for none): a
    product of many norm bounds (1e6 per layer over 60 layers) without overflow; each partial
    product rounds as the plain product would."""
    m, e = 1.0, 0
    for v in values:
        mv, ev = math.frexp(float(v))
        m, e2 = math.frexp(m * mv)
        e += ev + e2
    return m, e


def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(u) for u in v)


class ConvChain:
    """Full-rank certificates for chains of 2-D convolutions, average pools and ReLUs.

    For an ``nn.Sequential`` whose modules up to the last traced ReLU are ``Conv2d``
    (``groups=1``, zero padding, any stride / padding / dilation), ``AvgPool2d`` (no ceil
    mode, no divisor override, padding counted), ``BatchNorm2d`` in eval mode with running
    statistics, ``Identity`` / ``Dropout`` (eval) and ``nn.ReLU``, the map from the input to
    each layer is pushed in *windowed* form: the row of unit ``(c, P)`` of a layer whose
    pixel stride is ``S`` has its nonzeros among the pixels ``S P + lo + t``, ``t`` in a
    fixed window (a receptive field), and only that window is stored. A convolution is one
    product ``W[:, :, i, j] @`` (the windows of the input positions of tap ``(i, j)``) per
    tap, added at the tap's shift of the output window; a pool is the same with ``1 / k^2``.
    The first segment (input -> first ReLU) does not depend on the region: it is pushed once.

    Only a full column rank ``d`` is certified, and only on the last layer: for every region
    the Gram matrix of the rows of the last layer's map at a few output positions (``T``, all
    channels; their windows cover every pixel) must pass the Cholesky test of
    :func:`matrix_rank` with the shift

        s^2 = max_l (2 tol_l N_{l->L})^2   plus the Gram's rounding 2 (m + d + 2) eps ||A_T||_F^2,

    where ``tol_l`` is the rank rule's tolerance for layer l computed from an upper bound of
    ``sigma_max(A_l)`` (its Frobenius norm; for the last layer the segment's bound times the
    previous layer's), and ``N_{l->L}`` is an upper bound of the norm of the map from layer
    l's output to layer L's (product of the segments' bounds: a convolution is a sum of taps,
    each a partial permutation tensor its channel matrix, so its norm is at most the sum of
    the taps' Frobenius norms; an average pool's at most 1; a ReLU mask's at most 1). Since
    ``A_L = M A_l``, ``sigma_min(A_l) >= sigma_min(A_L) / N_{l->L} >= sigma_min(A_L[T]) /
    N_{l->L} > 2 tol_l``: every layer has full column rank ``d`` by the rule, with a factor 2
    of margin for the rounding of the float64 Jacobian the rule is applied to. Regions that
    fail (rank-deficient ones, or too few rows) are handed back to the general engine.

    The windows of every layer are rescaled per region by a power of two (:func:`normalized`)
    and the squared norms kept with their exponents; the bounds ``N`` are products of
    mantissas and exponents (:func:`_mantissa_exponent`), and the shift is formed in the
    units of the rescaled rows of the last layer: no term under- or overflows at any depth.
    """

    def __init__(self, steps, n_layers, input_shape, units, shapes, rank_tol):
        self.steps, self.n_layers = steps, n_layers
        self.input_shape, self.units, self.shapes = input_shape, units, shapes
        self.d = int(np.prod(input_shape))
        self.rank_tol = rank_tol
        self._first, self._first_exp = None, 0  # windows of layer 0 (rescaled), exponent
        self._positions = None

    @classmethod
    def build(cls, model, relu_names, units, input_shape, rank_tol, x):
        """A ConvChain for ``model`` or None when it is not such a chain."""
        children = _flat_children(model)
        if children is None or len(input_shape) != 3:
            return None
        relus = {id(m) for name, m in model.named_modules() if name in set(relu_names)}
        steps, layers = [], 0
        for m in children:
            if layers == len(units):
                break
            if isinstance(m, nn.ReLU):
                if id(m) not in relus:
                    return None
                steps.append(("relu", layers))
                layers += 1
            elif type(m) is nn.Conv2d:
                if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
                    return None
                steps.append(("conv", m.weight.detach(), _pair(m.stride), _pair(m.padding),
                              _pair(m.dilation)))
            elif type(m) is nn.AvgPool2d:
                k = _pair(m.kernel_size)
                s = _pair(m.stride if m.stride is not None else m.kernel_size)
                p = _pair(m.padding)
                if m.ceil_mode or m.divisor_override is not None or (
                        not m.count_include_pad and any(p)):
                    return None
                w = torch.full((1, 1) + k, 1.0 / (k[0] * k[1]), dtype=x.dtype, device=x.device)
                steps.append(("pool", w, s, p, (1, 1)))
            elif type(m) is nn.BatchNorm2d:
                if m.training or not m.track_running_stats or m.running_var is None:
                    return None
                scale = 1.0 / torch.sqrt(m.running_var.detach().to(x.dtype) + m.eps)
                if m.affine:
                    scale = scale * m.weight.detach().to(x.dtype)
                steps.append(("scale", scale))
            elif isinstance(m, (nn.Identity, nn.Dropout)):
                continue
            else:
                return None
        if layers != len(units) or steps[0][0] == "relu":
            return None
        # Shapes by a plain run of the steps (bias-free, any values): they must be the layers'.
        shapes, z = [], torch.zeros((1,) + tuple(input_shape), dtype=x.dtype, device=x.device)
        F = nn.functional
        for step in steps:
            if step[0] == "conv":
                z = F.conv2d(z, step[1], None, step[2], step[3], step[4])
            elif step[0] == "pool":
                z = F.avg_pool2d(z, step[1].shape[2:], step[2], step[3])
            elif step[0] == "relu":
                shapes.append(tuple(z.shape[1:]))
        if [int(np.prod(s)) for s in shapes] != [int(u) for u in units]:
            return None
        return cls(steps, len(units), tuple(input_shape), [int(u) for u in units], shapes,
                   rank_tol)

    # -------------------------------------------------------------- windowed pushes
    @staticmethod
    def _tap_step(T, geom, hw, weight, stride, padding, dilation, depthwise, positions=None):
        """Push windowed maps T (k, H W, C0, ny, nx, C) (channels last) through a convolution
        (or, with ``depthwise``, an average pool whose weight is the (1, 1, kh, kw) kernel).

        ``geom = (Sy, Sx, loy, lox)``: pixel ``y = Sy * Py + loy + ty``; ``hw = (H, W)``.
        Returns the output (k, Ho Wo, C0, ny', nx', Co), or (k, n, ...) at ``positions`` ((n,)
        flat output positions), its geometry and (Ho, Wo).
        """
        k, _, C0, ny, nx, C = T.shape
        H, W = hw
        Sy, Sx, loy, lox = geom
        kh, kw = weight.shape[2:]
        (sy, sx), (py, px), (dy, dx) = stride, padding, dilation
        Ho = (H + 2 * py - dy * (kh - 1) - 1) // sy + 1
        Wo = (W + 2 * px - dx * (kw - 1) - 1) // sx + 1
        Co = C if depthwise else weight.shape[0]
        ny2, nx2 = Sy * dy * (kh - 1) + ny, Sx * dx * (kw - 1) + nx
        if positions is None:
            # The whole grid: every tap's product on all input positions at once (one GEMM
            # with the taps side by side), then added at its shifts as strided views.
            if depthwise:
                Y = T.reshape(k, H, W, C0, ny, nx, 1, C)
            else:
                Wall = weight.permute(1, 2, 3, 0).reshape(C, kh * kw * Co)
                Y = (T.reshape(-1, C) @ Wall).reshape(k, H, W, C0, ny, nx, kh * kw, Co)
            out = T.new_zeros(k, Ho, Wo, C0, ny2, nx2, Co)
            for iy in range(kh):
                oy0, oy1 = ConvChain._valid(Ho, H, sy, dy * iy - py)
                for ix in range(kw):
                    ox0, ox1 = ConvChain._valid(Wo, W, sx, dx * ix - px)
                    if oy1 <= oy0 or ox1 <= ox0:
                        continue
                    qy0, qx0 = sy * oy0 + dy * iy - py, sx * ox0 + dx * ix - px
                    src = Y[:, qy0:qy0 + sy * (oy1 - oy0 - 1) + 1:sy,
                            qx0:qx0 + sx * (ox1 - ox0 - 1) + 1:sx, :, :, :,
                            0 if depthwise else iy * kw + ix]
                    ay, ax = Sy * dy * iy, Sx * dx * ix
                    dst = out[:, oy0:oy1, ox0:ox1, :, ay:ay + ny, ax:ax + nx]
                    if depthwise:
                        dst.add_(src, alpha=float(weight[0, 0, iy, ix]))
                    else:
                        dst += src
            return (out.reshape(k, Ho * Wo, C0, ny2, nx2, Co),
                    (Sy * sy, Sx * sx, loy - Sy * py, lox - Sx * px), (Ho, Wo))
        flat = positions
        oy, ox = flat // Wo, flat % Wo
        out = T.new_zeros(k, flat.numel(), C0, ny2, nx2, Co)
        for iy in range(kh):
            qy = sy * oy - py + dy * iy
            for ix in range(kw):
                qx = sx * ox - px + dx * ix
                sel = (qy >= 0) & (qy < H) & (qx >= 0) & (qx < W)
                if not bool(sel.any()):
                    continue
                idx = torch.nonzero(sel).reshape(-1)
                G = T[:, qy[idx] * W + qx[idx]]  # (k, n, C0, ny, nx, C)
                if depthwise:
                    Y = G * weight[0, 0, iy, ix]
                else:
                    Y = (G.reshape(-1, C) @ weight[:, :, iy, ix].T).reshape(
                        k, idx.numel(), C0, ny, nx, Co)
                ay, ax = Sy * dy * iy, Sx * dx * ix
                if idx.numel() == flat.numel():
                    out[:, :, :, ay:ay + ny, ax:ax + nx] += Y
                else:
                    out[:, idx, :, ay:ay + ny, ax:ax + nx] += Y
        return out, (Sy * sy, Sx * sx, loy - Sy * py, lox - Sx * px), (Ho, Wo)

    @staticmethod
    def _valid(n_out, n_in, stride, offset):
        """Output range [o0, o1) whose input index ``stride * o + offset`` is in [0, n_in)."""
        o0 = max(0, -(offset // stride)) if offset < 0 else 0
        while o0 < n_out and stride * o0 + offset < 0:
            o0 += 1
        o1 = o0
        while o1 < n_out and stride * o1 + offset < n_in:
            o1 += 1
        return o0, o1

    def _run_steps(self, T, geom, hw, steps, masks, positions=None):
        """Apply steps to T (channels last); ``masks[l]`` (k, H W, C) for each relu; the last
        conv or pool step at ``positions`` only (no linear step may follow it)."""
        last_linear = max((i for i, s in enumerate(steps) if s[0] in ("conv", "pool")),
                          default=-1)
        for i, step in enumerate(steps):
            kind = step[0]
            if kind in ("conv", "pool"):
                pos = positions if i == last_linear else None
                T, geom, hw = self._tap_step(T, geom, hw, step[1], step[2], step[3], step[4],
                                             kind == "pool", pos)
            elif kind == "scale":
                T = T * step[1]
            else:  # relu: the mask of this layer (T is never the cached first segment here)
                m = masks[step[1]]
                if positions is not None and i > last_linear:
                    m = m[:, positions]
                if T.shape[0] == m.shape[0] and i > 0:
                    T.mul_(m[:, :, None, None, None, :])
                else:
                    T = T * m[:, :, None, None, None, :]
        return T, geom, hw

    def _closed_form(self, segs):
        """Layer 2's pre-activation as one GEMM of the im2col of layer 1's masks (when segment
        1 starts with a convolution and layer 1's windows are translates of one stencil R):

            A_2[k, P, o, c] = sum_{tap, c'} m_1[k, s P - p + d tap, c'] K[(c', tap), (o, c)],
            K[(c', tap), (o, c)] = W[c, c', tap] R[o - shift_tap, c'].

        R is the window of an interior position; the entries of other positions' windows at
        pixels outside the image are then R's instead of 0 (never read: a window entry stays
        at its pixel through every later step, and out-of-image pixels are dropped; they only
        enlarge the Frobenius norms, which are upper bounds). Used only when every position's
        exact window equals R on its in-image pixels. Returns (K, geometry, conv) or None.
        """
        step = segs[1][0]
        if step[0] != "conv":
            return None
        T, geom, hw = self._first  # (1, H W, C0, ny, nx, C1)
        _, n, C0, ny, nx, C1 = T.shape
        H, W = self.input_shape[1:]
        Sy, Sx, loy, lox = geom
        P = torch.arange(n, device=T.device)
        ys = Sy * (P // hw[1])[:, None] + loy + torch.arange(ny, device=T.device)
        xs = Sx * (P % hw[1])[:, None] + lox + torch.arange(nx, device=T.device)
        inside = (((ys >= 0) & (ys < H))[:, :, None] & ((xs >= 0) & (xs < W))[:, None, :])
        full = inside.reshape(n, -1).all(dim=1)
        if not bool(full.any()):
            return None
        R = T[0, int(torch.nonzero(full)[0])]  # (C0, ny, nx, C1)
        if not torch.equal(T[0], R[None] * inside[:, None, :, :, None].to(R.dtype)):
            return None
        weight, stride, padding, dilation = step[1], step[2], step[3], step[4]
        Co, _, kh, kw = weight.shape
        ny2, nx2 = Sy * dilation[0] * (kh - 1) + ny, Sx * dilation[1] * (kw - 1) + nx
        K = T.new_zeros(C1, kh, kw, C0, ny2, nx2, Co)
        for iy in range(kh):
            for ix in range(kw):
                ay, ax = Sy * dilation[0] * iy, Sx * dilation[1] * ix
                # R[C0, ty, tx, c'] W[c, c', tap] -> K[c', tap, C0, ay + ty, ax + tx, c]
                K[:, iy, ix, :, ay:ay + ny, ax:ax + nx] = (
                    R.permute(3, 0, 1, 2)[..., None] * weight[:, :, iy, ix].T[:, None, None,
                                                                              None, :])
        Ho = (hw[0] + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        Wo = (hw[1] + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        out_geom = (Sy * stride[0], Sx * stride[1], loy - Sy * padding[0],
                    lox - Sx * padding[1])
        return (K.reshape(C1 * kh * kw, -1), (C0, ny2, nx2, Co), out_geom, (Ho, Wo),
                (kh, kw), stride, padding, dilation, hw)

    def _closed_step(self, m1, k):
        """Layer 2's pre-activation windows (k, Ho Wo, C0, ny, nx, Co) by the closed form."""
        K, shape, geom, (Ho, Wo), ksize, stride, padding, dilation, hw = self._closed
        masks = m1.transpose(1, 2).reshape(k, -1, hw[0], hw[1])  # (k, C1, H1, W1)
        cols = nn.functional.unfold(masks, ksize, dilation=dilation, padding=padding,
                                    stride=stride)  # (k, C1 kh kw, Ho Wo)
        out = cols.transpose(1, 2).reshape(-1, K.shape[0]) @ K
        return out.reshape((k, Ho * Wo) + shape), geom, (Ho, Wo)

    def _segments(self):
        """Steps split at each relu: segment l ends with layer l's relu."""
        segs, cur = [], []
        for step in self.steps:
            cur.append(step)
            if step[0] == "relu":
                segs.append(cur)
                cur = []
        return segs

    def _segment_bound(self, seg):
        """Upper bound of the norm of a segment's linear map (its relu's mask included)."""
        bound = 1.0
        for step in seg:
            if step[0] == "conv":
                w = step[1].to(torch.float64)
                bound *= float(torch.linalg.vector_norm(w, dim=(0, 1)).sum())
            elif step[0] == "scale":
                bound *= float(step[1].abs().max())
        return bound * (1 + 1e-12)

    def _choose_positions(self, seg_geom_fn):
        """Output positions of the last layer: greedy, fewest taps per newly covered pixel,
        until every pixel lies in ``_CHAIN_COVER`` windows and there are ``_CHAIN_ROWS d``
        rows."""
        C, Ho, Wo = self.shapes[-1]
        lo_hi, taps = seg_geom_fn(Ho, Wo)
        H, W = self.input_shape[1:]
        count = np.zeros((H, W), dtype=np.int64)
        chosen = []
        free = list(range(Ho * Wo))
        while free:
            if (count >= _CHAIN_COVER).all() and len(chosen) * C >= _CHAIN_ROWS * self.d:
                break
            best, score = None, -1.0
            for p in free:
                (y0, y1), (x0, x1) = lo_hi[p]
                gain = np.minimum(count[y0:y1, x0:x1], _CHAIN_COVER)
                new = float((_CHAIN_COVER - gain).sum()) + 1e-3
                if new / taps[p] > score:
                    best, score = p, new / taps[p]
            free.remove(best)
            chosen.append(best)
            (y0, y1), (x0, x1) = lo_hi[best]
            count[y0:y1, x0:x1] += 1
        return sorted(chosen)

    def _last_geometry(self, step, geom, window, shape_in):
        """Per output position of the last linear step: clipped pixel window and valid taps."""
        H_in, W_in = shape_in
        Sy, Sx, loy, lox = geom
        wy, wx = window
        kh, kw = step[1].shape[2:]
        (sy, sx), (py, px), (dy, dx) = step[2], step[3], step[4]
        H, W = self.input_shape[1:]

        def fn(Ho, Wo):
            lo_hi, taps = [], []
            for p in range(Ho * Wo):
                oy, ox = divmod(p, Wo)
                qys = [sy * oy - py + dy * a for a in range(kh)
                       if 0 <= sy * oy - py + dy * a < H_in]
                qxs = [sx * ox - px + dx * b for b in range(kw)
                       if 0 <= sx * ox - px + dx * b < W_in]
                taps.append(max(1, len(qys) * len(qxs)))
                y0 = max(0, Sy * min(qys, default=0) + loy)
                y1 = min(H, Sy * max(qys, default=0) + loy + wy)
                x0 = max(0, Sx * min(qxs, default=0) + lox)
                x1 = min(W, Sx * max(qxs, default=0) + lox + wx)
                lo_hi.append(((y0, max(y0, y1)), (x0, max(x0, x1))))
            return lo_hi, taps
        return fn

    def _dense_rows(self, T, geom, positions, Wo):
        """Windowed rows (k, n, C0, ny, nx, C) at ``positions`` -> dense (k, n C, d)."""
        k, n, C0, ny, nx, C = T.shape
        H, W = self.input_shape[1:]
        Sy, Sx, loy, lox = geom
        oy, ox = positions // Wo, positions % Wo
        ys = Sy * oy[:, None] + loy + torch.arange(ny, device=T.device)[None, :]  # (n, ny)
        xs = Sx * ox[:, None] + lox + torch.arange(nx, device=T.device)[None, :]
        inside = (((ys >= 0) & (ys < H))[:, :, None] & ((xs >= 0) & (xs < W))[:, None, :])
        col = (torch.arange(C0, device=T.device)[None, :, None, None] * (H * W)
               + ys[:, None, :, None] * W + xs[:, None, None, :])
        col = torch.where(inside[:, None], col, self.d).reshape(n, -1)  # (n, C0 ny nx)
        dense = T.new_zeros(k, n, C, self.d + 1)
        index = col[None, :, None, :].expand(k, n, C, col.shape[1])
        dense.scatter_add_(3, index, T.reshape(k, n, -1, C).transpose(2, 3))
        return dense[..., :self.d].reshape(k, n * C, self.d)

    # -------------------------------------------------------------- driver
    def certify(self, masks):
        """(k,) bool: regions certified to have rank d at every layer (masks: (k, units))."""
        dtype = masks[0].dtype if masks[0].is_floating_point() else torch.float64
        k = masks[0].shape[0]
        # Masks channels last: (k, H W, C).
        fm = [m.to(dtype).reshape(k, s[0], -1).transpose(1, 2) for m, s in
              zip(masks, self.shapes)]
        segs = self._segments()
        ok = torch.ones(k, dtype=torch.bool, device=masks[0].device)
        for l, m in enumerate(masks):  # rank d needs d active units per layer
            ok &= m.sum(dim=1) >= self.d
        if self.n_layers < 2 or not bool(ok.any()):
            return torch.zeros_like(ok) if self.n_layers < 2 else ok
        eps = torch.finfo(dtype).eps
        C0, H, W = self.input_shape
        if self._first is None:
            T0 = torch.eye(C0, dtype=dtype, device=masks[0].device).reshape(1, 1, C0, 1, 1, C0)
            T0 = T0.expand(1, H * W, C0, 1, 1, C0).contiguous()
            ones = [torch.ones(1, s[1] * s[2], s[0], dtype=dtype, device=T0.device)
                    for s in self.shapes]
            T, geom, hw = self._run_steps(T0, (1, 1, 0, 0), (H, W), segs[0], ones)
            T, e = normalized(T)
            self._first, self._first_exp = (T, geom, hw), int(e[0])
            self._bounds = [self._segment_bound(seg) for seg in segs]
            self._closed = self._closed_form(segs) if self.n_layers > 2 else None
        # Every layer's windows are carried rescaled per region by a power of two (exact,
        # :func:`normalized`): the true windows are ``T * 2**E``. Squared norms are kept as
        # ``(sum of squares of T, E)``, so no depth under- or overflows them.
        T, geom, hw = self._first
        T, E = normalized(T * fm[0][:, :, None, None, None, :])
        E = E + self._first_exp
        fro = [(_squared_norms(T), E)]
        for l in range(1, self.n_layers - 1):
            if l == 1 and self._closed is not None:
                T, geom, hw = self._closed_step(fm[0], k)  # from the rescaled first windows
                T, geom, hw = self._run_steps(T, geom, hw, segs[1][1:], fm)
                E = torch.full_like(E, self._first_exp)
            else:
                T, geom, hw = self._run_steps(T, geom, hw, segs[l], fm)
            T, e = normalized(T)
            E = E + e
            fro.append((_squared_norms(T), E))
        last = segs[-1]
        i = max((j for j, s in enumerate(last) if s[0] in ("conv", "pool")), default=-1)
        if i < 0:
            return torch.zeros_like(ok)
        if i:
            T, geom, hw = self._run_steps(T, geom, hw, last[:i], fm)
        if self._positions is None:
            fn = self._last_geometry(last[i], geom, (T.shape[3], T.shape[4]), hw)
            self._positions = torch.as_tensor(self._choose_positions(fn), device=T.device)
        L = self.n_layers
        m_last, e_last = _mantissa_exponent(self._bounds[-1:])  # bound of ||A_L||_F^2
        fro.append((fro[-1][0] * m_last ** 2, fro[-1][1] + e_last))
        # s2 in the units of T (the true s2 divided by 4**E): each term's mantissa, then its
        # power of two.
        s2 = torch.zeros(k, dtype=dtype, device=T.device)
        for l in range(L):
            Nm, Ne = _mantissa_exponent(self._bounds[l + 1:])
            big = max(self.units[l], self.d)
            f, El = fro[l]
            if self.rank_tol is None:
                term = ldexp(4 * (f * (big * eps) ** 2) * Nm ** 2, 2 * (El + Ne - E))
            else:  # the tolerance is absolute: its square only once in range
                t = ldexp(torch.full_like(f, float(self.rank_tol) * Nm), Ne - E)
                term = 4 * t * t
            s2 = torch.maximum(s2, term)
        every = torch.arange(self.shapes[-1][1] * self.shapes[-1][2], device=T.device)
        passed = self._last_test(T, geom, hw, last[i:], fm, self._positions, s2)
        ok &= passed
        # Regions the chosen positions do not settle: once more with every position.
        again = torch.nonzero(~passed & (fm[-1].sum(dim=(1, 2)) >= self.d)).reshape(-1)
        if again.numel() and self._positions.numel() < every.numel():
            ok[again] = self._last_test(T[again], geom, hw, last[i:],
                                        [m[again] for m in fm], every, s2[again])
        return ok

    def _last_test(self, T, geom, hw, steps, fm, pos, s2):
        """Cholesky test of the last layer's rows at ``pos`` (see the class docstring); ``s2``
        in the units of T, the rows rescaled once more before their Gram is formed."""
        eps = torch.finfo(T.dtype).eps
        TL, geomL, _ = self._run_steps(T, geom, hw, steps, fm, positions=pos)
        rows, e = normalized(self._dense_rows(TL, geomL, pos, self.shapes[-1][2]))
        fT = _squared_norms(rows)
        m = rows.shape[1]
        if m < self.d:
            return torch.zeros(T.shape[0], dtype=torch.bool, device=T.device)
        shift = ldexp(s2, -2 * e) + 2 * (m + self.d + 2) * eps * fT
        full = torch.full((rows.shape[0],), self.d, device=rows.device)
        return (_cholesky_certificate(rows, full, shift) & (fT > 0) & torch.isfinite(fT)
                & torch.isfinite(shift))
