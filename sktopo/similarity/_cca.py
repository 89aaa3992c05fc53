"""Canonical correlation measures: SVCCA and PWCCA.

Raghu, Gilmer, Yosinski & Sohl-Dickstein, "SVCCA: singular vector canonical
correlation analysis for deep learning dynamics and interpretability", NeurIPS
2017; Morcos, Raghu & Bengio, "Insights on representational similarity in neural
networks with canonical correlation", NeurIPS 2018.

Canonical correlation analysis (CCA) of two representations ``X`` (``n x p``)
and ``Y`` (``n x q``) of the same inputs finds the pairs of directions whose
projections correlate most. With orthonormal bases ``Qx``, ``Qy`` of the centred
column spaces, the canonical correlations ``rho_1 >= rho_2 >= ...`` are the
singular values of ``Qx^T Qy``, ``min(rank X, rank Y)`` of them. CCA is
invariant to any invertible linear map of either representation (and to
translations).

- **SVCCA**: each representation is first reduced to its leading singular
  directions, those that explain ``n_components`` of its variance (0.99, as
  Raghu et al.) or a given number of them; SVCCA is the mean of the canonical
  correlations of the reduced representations. The reduction makes it invariant
  to orthogonal maps and isotropic scaling only; with ``n_components=1.0`` (no
  reduction) it is the mean CCA, invariant to every invertible linear map.
- **PWCCA**: the weighted mean ``sum_i alpha_i rho_i`` over the canonical
  correlations of the full representations, with ``alpha_i`` proportional to
  ``sum_j |<h_i, x_j>|``: how much of the representation's neurons ``x_j``
  (centred columns) the canonical variate ``h_i`` (unit norm) accounts for. The
  weights come from the representation with fewer neurons (the first on a tie),
  as in Morcos et al.'s code, so PWCCA is symmetric except between layers of
  equal width. It is invariant to invertible linear maps of the *other*
  representation, and to permutations and scalings of the weighting one's neurons.

CCA needs more inputs than directions: when ``rank X + rank Y > n - 1``, at
least ``rank X + rank Y - (n - 1)`` canonical correlations are 1 whatever the
data (the two column spaces must intersect), and a warning says so.

Ranks are decided by the singular values of the centred representation above
``max(n, p) * eps`` times the largest.

With a ``device`` other than the CPU, the bases (SVD), the canonical correlations
and PWCCA's weights are computed with ``torch.linalg`` in float64 on that device;
the ranks and the number of kept directions follow the same rule, read from the
singular values brought back to the host.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, RealNotInt

from .._parallel import N_JOBS
from ._cka import centre
from ._pairs import PairSimilarity, on_device, svd, to_float, to_numpy

__all__ = ["PWCCA", "SVCCA", "pwcca", "svcca"]


@dataclass
class CCAForm:
    """An orthonormal basis ``basis`` (``n x k``) of a centred representation, its
    coordinates ``coords = basis^T Xc`` (``k x p``, for PWCCA's weights) and its width.
    ``basis`` and ``coords`` are float64 torch tensors on the torch path."""

    basis: np.ndarray
    coords: np.ndarray
    width: int


def cca_form(X, *, n_components=1.0, measure="CCA", where="the cloud") -> CCAForm:
    """The :class:`CCAForm` of one cloud, keeping ``n_components`` of it.

    ``n_components``: an int keeps that many leading singular directions (at most
    the rank); a float in (0, 1] keeps the fewest that explain that fraction of
    the variance (1.0 keeps every direction of non-zero variance). ``X`` may be a float64
    torch tensor: then the SVD and the form stay on its device.
    """
    n, p = X.shape
    Xc = centre(X)
    if Xc is None:
        raise ValueError(
            f"{measure}: {where} is constant (all {n} inputs have the same representation): it "
            f"has no direction to correlate, and {measure} is undefined. Compare layers whose "
            f"representations vary over the inputs."
        )
    U, s, Vt = svd(Xc)
    s_host = to_numpy(s)  # the rank and the kept directions: the same rule on either path
    rank = int(np.sum(s_host > s_host[0] * max(n, p) * np.finfo(np.float64).eps))
    if isinstance(n_components, (Integral, np.integer)) and not isinstance(n_components, bool):
        k = min(int(n_components), rank)
    else:
        variance = np.cumsum(s_host[:rank] ** 2)
        k = rank if n_components >= 1.0 else int(
            np.searchsorted(variance, n_components * variance[-1] * (1 - 1e-12)) + 1)
        k = min(max(k, 1), rank)
    return CCAForm(U[:, :k], s[:k, None] * Vt[:k], p)


def canonical_correlations(a: CCAForm, b: CCAForm, *, vectors=False):
    """Canonical correlations (descending, clipped to [0, 1]) of two forms; with
    ``vectors``, also the left and right singular vectors of ``Qa^T Qb``. Arrays, or tensors
    on the forms' device."""
    M = a.basis.T @ b.basis
    if vectors:
        U, rho, Vt = svd(M)
        return rho.clip(0.0, 1.0), U, Vt.T
    return svd(M, compute_uv=False).clip(0.0, 1.0)


def _warn_few_inputs(a, b, measure, where):
    n = a.basis.shape[0]
    ka, kb = a.basis.shape[1], b.basis.shape[1]
    if ka + kb > n - 1:
        warnings.warn(
            f"{measure}: {where}: {ka} + {kb} directions for {n} inputs, so at least "
            f"{ka + kb - (n - 1)} canonical correlation(s) are 1 whatever the data (the two "
            f"column spaces must intersect). Use more inputs than directions"
            f"{' or fewer components (n_components)' if measure == 'SVCCA' else ''}.",
            UserWarning, stacklevel=4,
        )


class _CCABase(PairSimilarity):
    _parameter_constraints: dict = {
        "device": "no_validation",  # a string or a torch.device: checked in fit
        "n_jobs": N_JOBS,
        "verbose": ["verbose"],
    }

    def _min_inputs(self):
        return 2


class SVCCA(_CCABase):
    """SVCCA of every pair of representations of the same inputs (Raghu et al., 2017).

    Each representation is reduced to the leading singular directions that
    explain ``n_components`` of its variance, and SVCCA is the mean canonical
    correlation of the two reductions: 1 for identical representations (and for
    any two related by an orthogonal map, an isotropic scaling and a
    translation; with ``n_components=1.0``, by any invertible linear map).
    See :mod:`sktopo.similarity._cca`.

    Parameters
    ----------
    n_components : int or float, default=0.99
        A float in (0, 1]: keep the fewest leading directions that explain this
        fraction of each representation's variance (Raghu et al.'s 0.99; 1.0
        keeps every direction, which makes SVCCA the mean CCA). An int: keep
        that many (at most the rank); ``1`` is one direction, ``1.0`` all.
    device : str or torch.device, default="auto"
        ``"auto"`` is CUDA when available, else ``"cpu"`` (sktopo's rule for every
        ``device``). ``"cpu"`` computes with numpy. Any other device (``"cuda"``,
        ``"cuda:1"``) computes the SVDs and the canonical correlations with torch,
        in float64, on that device (the same numbers to rounding, and the same
        number of directions). Checked in ``fit``.
    n_jobs : int or None, default=None
        Pairs processed in parallel (joblib).
    verbose : int, default=0
        Show a progress bar over pairs when positive.

    Attributes
    ----------
    device_ : str
        The device ``device`` resolved to (``"cpu"``: numpy).
    n_features_in_ : int
        2 for a DataFrame of pairs, 1 for a list of pairs.

    See Also
    --------
    svcca : the value for one pair.
    PWCCA, CKA, ProcrustesDistance, similarity_table

    Notes
    -----
    The output column is ``svcca``. A warning says when the kept directions of
    the two representations outnumber the inputs (then some correlations are
    1 whatever the data).

    Examples
    --------
    >>> import numpy as np
    >>> from sktopo import SVCCA
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 6))
    >>> A = rng.normal(size=(6, 6))  # an invertible linear map
    >>> table = SVCCA(n_components=1.0).fit_transform([(X, X @ A), (X, rng.normal(size=(200, 6)))])
    >>> round(float(table[0, 0]), 6), bool(table[1, 0] < 0.3)
    (1.0, True)
    """

    _column = "svcca"

    _parameter_constraints: dict = {
        **_CCABase._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left"),
                         Interval(RealNotInt, 0, 1, closed="right")],
    }

    def __init__(self, n_components=0.99, *, device="auto", n_jobs=None, verbose=0):
        self.n_components = n_components
        self.device = device
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _form(self, X, where, plan):
        return cca_form(on_device(X, self._torch_device()), n_components=self.n_components,
                        measure="SVCCA", where=where)

    def _compare(self, a, b, where):
        _warn_few_inputs(a, b, "SVCCA", where)
        return to_float(canonical_correlations(a, b).mean())


class PWCCA(_CCABase):
    """Projection-weighted CCA of every pair of representations (Morcos et al., 2018).

    The mean of the canonical correlations of the two full representations,
    each weighted by how much of the narrower representation's neurons its
    canonical variate accounts for: ``sum_i alpha_i rho_i`` with ``alpha_i``
    proportional to ``sum_j |<h_i, x_j>|``. Directions that carry most of the
    representation count most; noise directions that happen to correlate count
    little. 1 for identical representations. See
    :mod:`sktopo.similarity._cca`.

    Parameters
    ----------
    device : str or torch.device, default="auto"
        ``"auto"`` is CUDA when available, else ``"cpu"`` (sktopo's rule for every
        ``device``). ``"cpu"`` computes with numpy. Any other device (``"cuda"``,
        ``"cuda:1"``) computes the SVDs, the canonical correlations and the
        weights with torch, in float64, on that device (the same numbers to
        rounding, and the same number of directions). Checked in ``fit``.
    n_jobs : int or None, default=None
        Pairs processed in parallel (joblib).
    verbose : int, default=0
        Show a progress bar over pairs when positive.

    Attributes
    ----------
    device_ : str
        The device ``device`` resolved to (``"cpu"``: numpy).
    n_features_in_ : int
        2 for a DataFrame of pairs, 1 for a list of pairs.

    See Also
    --------
    pwcca : the value for one pair.
    SVCCA, CKA, ProcrustesDistance, similarity_table

    Notes
    -----
    The output column is ``pwcca``. The weights come from the representation
    with fewer neurons (the first on a tie), as in the authors' code: between
    layers of equal width, ``PWCCA(X, Y)`` and ``PWCCA(Y, X)`` may differ.
    Where several canonical correlations are 1 whatever the data (more directions
    than inputs: the warning), their canonical variates are any basis of the
    shared subspace, so their weights depend on the SVD routine: numpy and
    ``device`` paths may then differ beyond rounding.

    Examples
    --------
    >>> import numpy as np
    >>> from sktopo import PWCCA
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 6))
    >>> float(np.round(PWCCA().fit_transform([(X, X)]), 6)[0, 0])
    1.0
    """

    _column = "pwcca"
    _symmetric = False

    def __init__(self, *, device="auto", n_jobs=None, verbose=0):
        self.device = device
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _form(self, X, where, plan):
        return cca_form(on_device(X, self._torch_device()), n_components=1.0, measure="PWCCA",
                        where=where)

    def _compare(self, a, b, where):
        _warn_few_inputs(a, b, "PWCCA", where)
        rho, U, V = canonical_correlations(a, b, vectors=True)
        # the canonical variates of the narrower representation: h_i = Q u_i
        weighting, directions = (a, U) if a.width <= b.width else (b, V)
        alpha = abs(directions.T @ weighting.coords).sum(axis=1)
        return to_float((alpha @ rho) / alpha.sum())


def svcca(X, Y, **params) -> float:
    """SVCCA of one pair of representations of the same inputs.

    Parameters
    ----------
    X, Y : array-like of shape (n_inputs, n_features_X) and (n_inputs, n_features_Y)
        Two representations of the same inputs; the widths may differ.
    **params
        Any parameter of :class:`SVCCA` (``n_components=0.99``, ``device="auto"``).

    Returns
    -------
    score : float
        The mean canonical correlation of the reduced representations, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> import sktopo
    >>> X = np.random.default_rng(0).normal(size=(100, 5))
    >>> round(sktopo.svcca(X, -2 * X), 12)
    1.0
    """
    return float(SVCCA(**params).set_output(transform="default").fit_transform([(X, Y)])[0, 0])


def pwcca(X, Y, **params) -> float:
    """PWCCA of one pair of representations of the same inputs.

    Parameters
    ----------
    X, Y : array-like of shape (n_inputs, n_features_X) and (n_inputs, n_features_Y)
        Two representations of the same inputs; the widths may differ.
    **params
        Any parameter of :class:`PWCCA` (``device="auto"``).

    Returns
    -------
    score : float
        The projection-weighted mean canonical correlation, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> import sktopo
    >>> X = np.random.default_rng(0).normal(size=(100, 5))
    >>> round(sktopo.pwcca(X, X), 12)
    1.0
    """
    return float(PWCCA(**params).set_output(transform="default").fit_transform([(X, Y)])[0, 0])
