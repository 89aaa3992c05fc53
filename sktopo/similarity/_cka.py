"""Centered kernel alignment (CKA): linear, unbiased (debiased HSIC), RBF, and minibatch.

Kornblith, Norouzi, Lee & Hinton, "Similarity of neural network representations
revisited", ICML 2019; the unbiased HSIC estimator of Song, Smola, Gretton,
Bedo & Borgwardt, "Feature selection via dependence maximization", JMLR 2012;
the minibatch estimator of Nguyen, Raghu & Kornblith, "Do wide and deep networks
learn the same things?", ICLR 2021.

For two representations ``X`` (``n x p``) and ``Y`` (``n x q``) of the same
``n`` inputs, with Gram matrices ``K`` and ``L`` (``K = X X^T`` for the linear
kernel)::

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

- **biased** (the default, Kornblith's): ``HSIC(K, L) = tr(K H L H) / (n-1)^2``
  with the centring matrix ``H = I - 11^T / n``. With centred features ``Xc`` this
  is ``||Yc^T Xc||_F^2 / (n-1)^2``: the *feature-space form*, ``n p q`` work per
  pair and no ``n x n`` matrix, used whenever a layer is narrower than ``n``.
- **unbiased** (``unbiased=True``): Song et al.'s U-statistic on the Gram
  matrices with their diagonals set to 0 (``K~``, ``L~``)::

      HSIC_u = [tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))

  It is unchanged by centring (``K -> HKH`` adds only row, column and constant
  terms, which the U-statistic cancels), so it too has a feature-space form
  (Kornblith et al.'s "debiased" CKA). It needs ``n >= 4`` inputs. The biased
  estimator is far from 0 for independent representations when the widths are
  large compared with ``n`` (two random ``10 x 1000`` layers give about 0.9);
  the unbiased one is about 0 there.
- **RBF kernel** (``kernel="rbf"``): ``K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``
  with ``sigma = bandwidth * sqrt(median ||x_i - x_j||^2)``, the median taken
  over all ``n^2`` pairs (diagonal included), as in Kornblith et al.'s code; the
  Gram matrix is ``n x n``.
- **minibatch** (``batch_size``, needs ``unbiased=True``): the inputs are split
  into ``n // batch_size`` random batches of at least ``batch_size`` inputs (the
  same batches for both representations); ``HSIC_u`` is averaged over batches
  before the ratio is taken (Nguyen et al. 2021), so memory is ``batch_size^2``
  per Gram matrix and the estimate stays unbiased for the HSIC terms.

All sums are accumulated in float64. A cloud whose largest centred value is
outside ``[2**-200, 2**200]`` is first divided by a power of two near it (exact,
and CKA is scale-invariant) so that clouds of 1e200 or 1e-200 neither overflow
nor underflow.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from .._parallel import N_JOBS
from .._seeding import root_entropy
from ._pairs import PairSimilarity, on_device

__all__ = ["CKA", "cka"]


# ------------------------------------------------------------------- the kernel
@dataclass
class HSICForm:
    """What CKA keeps of one cloud (or of one minibatch of it).

    ``features`` (centred, ``n x p``) for the linear kernel when ``p < n``, else
    ``gram`` (the centred ``n x n`` Gram matrix ``HKH``); ``diag`` is the
    diagonal of the centred Gram matrix (only kept for the unbiased estimator,
    else None), ``total`` its sum, ``self_term`` the
    HSIC of the cloud with itself.
    """

    features: np.ndarray | None
    gram: np.ndarray | None
    diag: np.ndarray | None
    total: float
    self_term: float
    n: int = 0

    @property
    def is_zero(self) -> bool:
        """A minibatch where the representation is constant: every HSIC with it is 0."""
        return self.features is None and self.gram is None



# ------------------------------------------------ numpy or torch (the ``device`` path)
def _is_numpy(X) -> bool:
    return isinstance(X, np.ndarray)


def _vdot(a, b) -> float:
    """``sum(a * b)`` in float64, for numpy arrays or torch tensors."""
    if _is_numpy(a):
        return float(np.vdot(a, b))
    return float((a.reshape(-1) @ b.reshape(-1)).item())


def _diagonal(K):
    return np.diag(K).copy() if _is_numpy(K) else K.diagonal().clone()


def _row_squares(X):
    return np.einsum("ij,ij->i", X, X) if _is_numpy(X) else (X * X).sum(dim=1)


def _median(G) -> float:
    """numpy's median (the mean of the two middle values) for arrays and tensors alike."""
    if _is_numpy(G):
        return float(np.median(G))
    flat = G.reshape(-1)
    size = flat.numel()
    low = flat.kthvalue((size + 1) // 2).values
    high = flat.kthvalue(size // 2 + 1).values
    return float(((low + high) / 2).item())


def _peak(X) -> float:
    """Largest absolute value (two reductions, no temporary array for numpy)."""
    if _is_numpy(X):
        return max(float(X.max()), -float(X.min())) if X.size else 0.0
    return float(X.abs().max().item()) if X.numel() else 0.0


# clouds whose largest centred value lies in [2**-200, 2**200] are used as they are: the
# fourth powers that HSIC sums (times n^2 p^2 < 2**60) neither overflow nor underflow there
_SAFE_EXPONENT = 200


def _power_of_two_scaled(X, peak=None):
    """``X`` divided by a power of two near its largest absolute value when that value is
    outside ``[2**-200, 2**200]`` (exact, so nothing changes but the range; in place when the
    factor is a normal number)."""
    peak = _peak(X) if peak is None else peak
    if not np.isfinite(peak) or peak == 0.0:
        return X
    _, exponent = np.frexp(peak)
    if abs(int(exponent)) <= _SAFE_EXPONENT:
        return X
    if abs(int(exponent)) < 1000:
        X *= 2.0 ** -int(exponent)
        return X
    if _is_numpy(X):
        return np.ldexp(X, -int(exponent))
    return X * 2.0 ** -int(exponent)  # a power of two (normal or not): exact


def is_constant(X) -> bool:
    """Whether every row (input) of ``X`` is the same."""
    return bool((X == X[:1]).all())


def centre(X, *, rescale=True):
    """``X`` minus its column means (a new array), divided by a power of two near its largest
    value when ``rescale``; None when ``X`` is constant (every row the same).

    Only a cloud whose centred values are as small as the rounding of its means is compared
    row by row, so the check costs nothing for the others.
    """
    mean = X.mean(axis=0)
    Xc = X - mean
    peak = _peak(Xc)
    if peak <= 16 * np.finfo(np.float64).eps * _peak(mean) and is_constant(X):
        return None
    return _power_of_two_scaled(Xc, peak) if rescale else Xc


def _centre_gram(K):
    """``H K H`` in place (``K`` symmetric)."""
    means = K.mean(axis=0)
    K -= means[None, :]
    K -= means[:, None]
    K += means.mean()
    return K


def _rbf_gram(Xc, bandwidth, where):
    G = Xc @ Xc.T
    sq_norms = _diagonal(G)
    G *= -2.0
    G += sq_norms[:, None]
    G += sq_norms[None, :]
    if _is_numpy(G):
        np.maximum(G, 0.0, out=G)
        np.fill_diagonal(G, 0.0)
    else:
        G.clamp_(min=0.0).fill_diagonal_(0.0)
    median = _median(G)
    if not median > 0:
        raise ValueError(
            f"CKA: {where}: the median squared distance between inputs is 0 (more than half "
            f"of the pairs of inputs coincide), so the RBF bandwidth (a fraction of it) is 0. "
            f"Remove duplicate inputs, or use kernel='linear'."
        )
    G /= -2.0 * bandwidth ** 2 * median
    if _is_numpy(G):
        np.exp(G, out=G)
    else:
        G.exp_()
    return G


def hsic_form(X, *, kernel="linear", bandwidth=0.8, unbiased=False, gram=None, rescale=True,
              where="the cloud"):
    """The :class:`HSICForm` of one cloud (already checked: finite, float64, 2-D).

    Parameters
    ----------
    X : ndarray or float64 torch tensor of shape (n, p)
        A tensor keeps every step on its device (the ``device`` path).
    kernel : {"linear", "rbf"}
    bandwidth : float
        RBF bandwidth as a fraction of the median distance.
    unbiased : bool
        Which HSIC estimator ``self_term`` uses.
    gram : bool or None
        Force the Gram form (True) or the feature form (False, linear only);
        None picks the feature form when ``p < n``.
    rescale : bool
        Divide the centred cloud by a power of two near its largest value (the
        minibatches of one cloud are not: their HSICs are averaged).
    where : str
        Names the cloud in errors.
    """
    n, p = X.shape
    Xc = centre(X, rescale=rescale)
    if Xc is None:
        raise ValueError(
            f"CKA: {where} is constant (all {n} inputs have the same representation), so its "
            f"HSIC with itself is 0 and CKA is undefined (0/0). Compare layers whose "
            f"representations vary over the inputs."
        )
    use_gram = kernel == "rbf" or (gram if gram is not None else p >= n)
    if use_gram:
        K = _centre_gram(_rbf_gram(Xc, bandwidth, where)) if kernel == "rbf" else Xc @ Xc.T
        diag = _diagonal(K) if unbiased else None
        form = HSICForm(None, K, diag, float(diag.sum()) if unbiased else 0.0, 0.0, n)
        t = _vdot(K, K)
    else:
        diag = _row_squares(Xc) if unbiased else None
        form = HSICForm(Xc, None, diag, float(diag.sum()) if unbiased else 0.0, 0.0, n)
        C = Xc.T @ Xc
        t = _vdot(C, C)
    form.self_term = hsic_value(t, form, form, unbiased)
    return form


def trace_product(a: HSICForm, b: HSICForm) -> float:
    """``tr(Kc Lc)`` of two forms of the same inputs, in the cheapest way their forms allow."""
    if a.is_zero or b.is_zero:
        return 0.0
    if a.features is not None and b.features is not None:
        # ||Yc^T Xc||_F^2: n p q work, no n x n matrix
        if a.features.shape[1] > b.features.shape[1]:
            a, b = b, a
        C = a.features.T @ b.features
        return _vdot(C, C)
    if a.gram is not None and b.gram is not None:
        return _vdot(a.gram, b.gram)
    features, gram = (a.features, b.gram) if a.features is not None else (b.features, a.gram)
    return _vdot(features, gram @ features)


def hsic_value(t, a: HSICForm, b: HSICForm, unbiased: bool) -> float:
    """HSIC from ``t = tr(Kc Lc)`` and the diagonals of the centred Gram matrices."""
    if a.is_zero or b.is_zero:
        return 0.0
    n = a.n
    if not unbiased:
        return t / (n - 1) ** 2
    correction = n / (n - 2) * _vdot(a.diag, b.diag)
    return (t - correction + a.total * b.total / ((n - 1) * (n - 2))) / (n * (n - 3))


def _ratio(cross, self_a, self_b, where):
    if not (self_a > 0 and self_b > 0):
        warnings.warn(
            f"CKA: {where}: the unbiased HSIC of a representation with itself is "
            f"{min(self_a, self_b):.3g} (not positive: too few inputs for the estimator), so "
            f"CKA is NaN. Use more inputs, a larger batch_size, or unbiased=False.",
            UserWarning, stacklevel=4,
        )
        return np.nan
    return cross / np.sqrt(self_a * self_b)


# ---------------------------------------------------------------- the estimator
class CKA(PairSimilarity):
    """Centered kernel alignment of every pair of representations of the same inputs.

    ``CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` for the Gram
    matrices ``K``, ``L`` of the two representations (Kornblith et al., ICML
    2019). 1 for identical representations, and for any two that differ by an
    orthogonal transform, an isotropic scaling and a translation; not invariant
    to general invertible linear maps (unlike CCA). See
    :mod:`sktopo.similarity._cka` for the estimators.

    Parameters
    ----------
    kernel : {"linear", "rbf"}, default="linear"
        ``"linear"``: ``K = X X^T``, computed in its feature-space form
        ``||Y^T X||_F^2`` (no ``n x n`` matrix) when a layer is narrower than
        the number of inputs. ``"rbf"``: Gaussian kernel with bandwidth
        ``bandwidth`` times the median distance.
    bandwidth : float, default=0.8
        RBF bandwidth, as a fraction of the median distance between inputs
        (``sigma^2 = bandwidth^2 * median ||x_i - x_j||^2``, as Kornblith et
        al.'s code, which reports 0.2, 0.4 and 0.8). Ignored by the linear kernel.
    unbiased : bool, default=False
        Use Song et al.'s unbiased HSIC estimator ("debiased CKA"): needs at
        least 4 inputs, and does not drift towards 1 for wide layers and few
        inputs, as the biased estimator does.
    batch_size : int or None, default=None
        Minibatch CKA (Nguyen et al., ICLR 2021): split the inputs into
        ``n // batch_size`` random batches and average the unbiased HSIC over
        them; needs ``unbiased=True``. For inputs whose ``n x n`` Gram matrix
        does not fit. None (or a batch as large as the inputs) uses every
        input at once.
    device : str or torch.device, default="auto"
        ``"auto"`` is CUDA when available, else ``"cpu"`` (sktopo's rule for every
        ``device``). ``"cpu"`` computes with numpy. Any other device (``"cuda"``,
        ``"cuda:1"``) computes the Gram matrices, features and products with
        torch, in float64, on that device (the same numbers to rounding).
        Checked in ``fit``.
    random_state : int, RandomState instance or None, default=None
        Seeds the minibatches (only with ``batch_size``), together with the
        number of inputs: every pair with the same number of inputs gets the
        same batches in one call, in any row and on any ``n_jobs``.
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
    cka : the value for one pair.
    similarity_table : CKA (and other measures) between every pair of layers.
    SVCCA, PWCCA, ProcrustesDistance, RTD : other ways to compare representations.

    Notes
    -----
    The output column is ``cka``. A representation that is constant over the
    inputs (0/0) raises a ValueError naming the pair; an unbiased self-HSIC that
    is not positive (a handful of inputs) gives NaN with a warning.

    Examples
    --------
    >>> import numpy as np
    >>> from sktopo import CKA
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 10))
    >>> R, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    >>> table = CKA().fit_transform([(X, 3 * X @ R), (X, rng.normal(size=(100, 10)))])
    >>> round(float(table[0, 0]), 6), bool(table[1, 0] < 0.3)
    (1.0, True)
    """

    _column = "cka"

    _parameter_constraints: dict = {
        "kernel": [StrOptions({"linear", "rbf"})],
        "bandwidth": [Interval(Real, 0, None, closed="neither")],
        "unbiased": ["boolean"],
        "batch_size": [Interval(Integral, 4, None, closed="left"), None],
        "device": "no_validation",  # a string or a torch.device: checked in fit
        "random_state": ["random_state"],
        "n_jobs": N_JOBS,
        "verbose": ["verbose"],
    }

    def __init__(self, kernel="linear", *, bandwidth=0.8, unbiased=False, batch_size=None,
                 device="auto", random_state=None, n_jobs=None, verbose=0):
        self.kernel = kernel
        self.bandwidth = bandwidth
        self.unbiased = unbiased
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _check_settings(self):
        super()._check_settings()
        if self.batch_size is not None and not self.unbiased:
            raise ValueError(
                "CKA: batch_size (minibatch CKA) averages the unbiased HSIC estimator over "
                "batches (Nguyen et al. 2021); the biased one would not converge to CKA. Set "
                "unbiased=True, or batch_size=None."
            )

    def _min_inputs(self):
        return 4 if self.unbiased else 2

    def _min_inputs_reason(self):
        return "the unbiased HSIC estimator divides by n(n-3)" if self.unbiased else ""

    def _measure_name(self):
        name = "cka" if self.kernel == "linear" else "cka_rbf"
        return name + "_unbiased" if self.unbiased else name

    def _plan(self, n_inputs, entropy=None):
        if self.batch_size is None or self.batch_size >= n_inputs:
            return None
        if entropy is None:
            entropy = root_entropy(self.random_state)
        rng = np.random.default_rng([entropy % 2**64, n_inputs])
        order = rng.permutation(n_inputs)
        return [np.sort(batch) for batch in np.array_split(order, n_inputs // self.batch_size)]

    def _form(self, X, where, plan):
        settings = dict(kernel=self.kernel, bandwidth=float(self.bandwidth),
                        unbiased=bool(self.unbiased))
        device = self._torch_device()
        if device is not None:  # the torch path: float64 on the device, every step there
            import torch

            X = on_device(X, device)
            if plan is not None:
                plan = [torch.as_tensor(batch, device=device) for batch in plan]
        if plan is None:
            return hsic_form(X, where=where, **settings)
        centred = centre(X)  # one scale for every batch
        if centred is None:
            hsic_form(X, where=where, **settings)  # raises the message of a constant cloud
        X = centred
        forms = []
        for k, batch in enumerate(plan):
            part = X[batch]
            if is_constant(part):  # a batch where the representation does not vary: HSIC 0
                forms.append(HSICForm(None, None, None, 0.0, 0.0, len(batch)))
            else:
                forms.append(hsic_form(part, rescale=False, where=f"{where}, batch {k}", **settings))
        return forms

    def _self_value(self, form, where):
        # HSIC(K, K) is already in the form: 1, or NaN where the unbiased one is not positive
        if isinstance(form, HSICForm):
            return _ratio(form.self_term, form.self_term, form.self_term, where)
        self_term = np.mean([x.self_term for x in form])
        return _ratio(self_term, self_term, self_term, where)

    def _compare(self, a, b, where):
        unbiased = bool(self.unbiased)
        if isinstance(a, HSICForm):
            return _ratio(hsic_value(trace_product(a, b), a, b, unbiased), a.self_term,
                          b.self_term, where)
        cross = np.mean([hsic_value(trace_product(x, y), x, y, unbiased) for x, y in zip(a, b)])
        self_a = np.mean([x.self_term for x in a])
        self_b = np.mean([y.self_term for y in b])
        return _ratio(cross, self_a, self_b, where)


def cka(X, Y, **params) -> float:
    """Centered kernel alignment of one pair of representations of the same inputs.

    Parameters
    ----------
    X, Y : array-like of shape (n_inputs, n_features_X) and (n_inputs, n_features_Y)
        Two representations of the same inputs (row ``i`` is input ``i`` in
        both); the widths may differ.
    **params
        Any parameter of :class:`CKA` (``kernel="linear"``, ``bandwidth=0.8``,
        ``unbiased=False``, ``batch_size=None``, ``random_state``).

    Returns
    -------
    score : float
        In [0, 1] for the biased estimator; 1 for identical representations.

    Examples
    --------
    >>> import numpy as np
    >>> import sktopo
    >>> X = np.random.default_rng(0).normal(size=(50, 8))
    >>> round(sktopo.cka(X, 2 * X + 1), 12)
    1.0
    """
    table = CKA(**params).set_output(transform="default").fit_transform([(X, Y)])
    return float(table[0, 0])
