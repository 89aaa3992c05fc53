"""The orthogonal Procrustes shape distance (angular), Williams et al. 2021.

Williams, Kunz, Kornblith & Linderman, "Generalized shape metrics on neural
representations", NeurIPS 2021.

Each representation is centred and scaled to unit Frobenius norm (``X``, ``Y``);
the narrower one is padded with zero columns so both have the same width. The
angular Procrustes distance is the angle between them after the best orthogonal
alignment::

    theta(X, Y) = min_Q arccos <X, Y Q> = arccos ||X^T Y||_*

(``||.||_*`` the nuclear norm, the sum of singular values; ``Q`` orthogonal). It is
a metric on shapes, in ``[0, pi/2]``: 0 exactly when one representation is an
orthogonal transform, an isotropic scaling and a translation of the other, and it
satisfies the triangle inequality, so distances between many layers can feed
clustering or embedding methods that expect a metric.

``arccos`` loses half the digits near 0 (``arccos(1 - 1e-16)`` is ``1.5e-8``), so
the angle is computed as ``2 arcsin(||X - Y Q*|| / 2)`` from the residual of the
optimal alignment ``Q*`` (the polar factor of ``Y^T X``), the same number without
the cancellation: identical representations give 0 to rounding (about 1e-15).

A layer wider than the number of inputs ``n`` is first written in the basis of
its centred column space (``U S`` from its SVD, ``n`` columns at most), which
leaves every inner product, and so the distance, unchanged.

With a ``device`` other than the CPU, the SVDs, the alignment and its residual are
computed with ``torch.linalg`` in float64 on that device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._parallel import N_JOBS
from ._cka import centre
from ._pairs import PairSimilarity, on_device, svd, to_float

__all__ = ["ProcrustesDistance", "procrustes_distance"]


@dataclass
class ShapeForm:
    """A centred representation of unit Frobenius norm, at most ``n`` columns wide (a float64
    torch tensor on the torch path)."""

    points: np.ndarray


def shape_form(X, *, where="the cloud") -> ShapeForm:
    """The :class:`ShapeForm` of one cloud (already checked: finite, float64, 2-D; a float64
    torch tensor keeps every step on its device)."""
    n, p = X.shape
    Xc = centre(X)
    if Xc is None:
        raise ValueError(
            f"ProcrustesDistance: {where} is constant (all {n} inputs have the same "
            f"representation): it has no shape to scale to unit norm, and the distance is "
            f"undefined. Compare layers whose representations vary over the inputs."
        )
    if p > n:
        U, s, _ = svd(Xc)
        Xc = U * s
    return ShapeForm(Xc / _norm(Xc))


def _norm(A):
    """The Frobenius norm (a float for an array, a 0-d tensor for a tensor)."""
    if isinstance(A, np.ndarray):
        return np.linalg.norm(A)
    import torch

    return torch.linalg.norm(A)


def _padded(points, width):
    if points.shape[1] == width:
        return points
    if isinstance(points, np.ndarray):
        out = np.zeros((points.shape[0], width))
    else:
        out = points.new_zeros((points.shape[0], width))
    out[:, :points.shape[1]] = points
    return out


def procrustes_angle(a: ShapeForm, b: ShapeForm) -> float:
    """The angular Procrustes distance of two forms of the same inputs."""
    width = max(a.points.shape[1], b.points.shape[1])
    X, Y = _padded(a.points, width), _padded(b.points, width)
    U, _, Vt = svd(X.T @ Y, full_matrices=True)
    Q = Vt.T @ U.T  # tr(X^T Y Q) = the nuclear norm of X^T Y
    residual = to_float(_norm(X - Y @ Q))
    return float(2.0 * np.arcsin(min(residual / 2.0, 1.0)))


class ProcrustesDistance(PairSimilarity):
    """Angular Procrustes shape distance of every pair of representations (Williams et al., 2021).

    ``arccos ||X^T Y||_*`` for the centred, unit-norm representations ``X`` and
    ``Y`` (the narrower one padded with zeros): the angle left between them after
    the best orthogonal alignment. A metric, in ``[0, pi/2]``: 0 for identical
    representations and for any two related by an orthogonal transform, an
    isotropic scaling and a translation. See
    :mod:`sktopo.similarity._procrustes`.

    Parameters
    ----------
    device : str or torch.device, default="auto"
        ``"auto"`` is CUDA when available, else ``"cpu"`` (sktopo's rule for every
        ``device``). ``"cpu"`` computes with numpy. Any other device (``"cuda"``,
        ``"cuda:1"``) computes the SVDs and the nuclear norm (the optimal
        alignment and its residual) with torch, in float64, on that device (the
        same numbers to rounding). Checked in ``fit``.
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
    procrustes_distance : the value for one pair.
    CKA, SVCCA, PWCCA, RTD, similarity_table

    Notes
    -----
    The output column is ``procrustes_distance``, in radians. A distance, not
    a similarity: 0 means the same shape.

    Examples
    --------
    >>> import numpy as np
    >>> from sktopo import ProcrustesDistance
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 5))
    >>> R, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    >>> table = ProcrustesDistance().fit_transform([(X, 2 * X @ R + 1), (X, rng.normal(size=(100, 5)))])
    >>> bool(table[0, 0] < 1e-12), bool(table[1, 0] > 1)
    (True, True)
    """

    _column = "procrustes_distance"

    _parameter_constraints: dict = {
        "device": "no_validation",  # a string or a torch.device: checked in fit
        "n_jobs": N_JOBS,
        "verbose": ["verbose"],
    }

    def __init__(self, *, device="auto", n_jobs=None, verbose=0):
        self.device = device
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _measure_name(self):
        return "procrustes"

    def _form(self, X, where, plan):
        return shape_form(on_device(X, self._torch_device()), where=where)

    def _compare(self, a, b, where):
        return procrustes_angle(a, b)


def procrustes_distance(X, Y, **params) -> float:
    """Angular Procrustes shape distance of one pair of representations of the same inputs.

    Parameters
    ----------
    X, Y : array-like of shape (n_inputs, n_features_X) and (n_inputs, n_features_Y)
        Two representations of the same inputs; the widths may differ.
    **params
        Any parameter of :class:`ProcrustesDistance` (``device="auto"``).

    Returns
    -------
    distance : float
        The angle, in radians, in ``[0, pi/2]``.

    Examples
    --------
    >>> import numpy as np
    >>> import sktopo
    >>> X = np.random.default_rng(0).normal(size=(100, 5))
    >>> sktopo.procrustes_distance(X, 3 * X) < 1e-12
    True
    """
    table = ProcrustesDistance(**params).set_output(transform="default").fit_transform([(X, Y)])
    return float(table[0, 0])
