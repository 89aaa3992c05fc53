"""The persistence diagram value type.

Infinite bars: the one policy
-----------------------------
A :class:`Diagram` stores every bar as the engine found it: a class still alive
when the filtration ends has death ``inf``. Everything downstream (features,
images, landscapes, distances) follows one rule:

* **Counts** (number of bars, Betti numbers and Betti curves) use all bars: an
  infinite bar is alive at every scale after its birth, which is what a Betti
  number means.
* **Lifetime-based quantities** (total persistence, lifetimes, entropy, images,
  landscapes, bottleneck and Wasserstein distances) read bars through
  :meth:`Diagram.finite`:

  - if the filtration stopped at a finite threshold (``max_edge_length``), an
    infinite death is replaced by that threshold: the class lives at least
    that long, and diagrams computed with the same threshold stay comparable;
  - if the filtration ran to completion (threshold ``inf``), infinite bars are
    left out: their length is not a number. In Vietoris-Rips persistence of a
    point cloud that is exactly one bar, the H0 class of the whole cloud, which
    carries no information about its shape. The count stays available as the
    feature ``n_infinite``.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pandas as pd

__all__ = ["Diagram"]


def check_bars(value, what: str) -> np.ndarray:
    """``value`` as a ``(k, 2)`` float array of valid (birth, death) bars, or a ValueError.

    A valid bar has a finite birth and a death that is not before it (``inf``
    allowed: the class never dies). Used by :class:`Diagram` and by every
    function that takes bars as a raw array (:func:`sktopo.diagram_distance`),
    so both refuse the same things.

    Parameters
    ----------
    value : array-like of shape (k, 2)
        The bars.
    what : str
        Names the bars in error messages (``"Diagram: the bars of dimension 1"``).

    Returns
    -------
    bars : ndarray of shape (k, 2)
    """
    try:
        pairs = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a (k, 2) array of numbers (birth, death).") from None
    if pairs.size == 0:
        return np.empty((0, 2))
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"{what} must be a (k, 2) array of (birth, death); got shape {pairs.shape}.")
    if np.isnan(pairs).any():
        raise ValueError(f"{what} contain NaN (first in bar {int(np.isnan(pairs).any(axis=1).argmax())}).")
    bad = ~np.isfinite(pairs[:, 0])
    if bad.any():
        k = int(bad.argmax())
        raise ValueError(
            f"{what} include a bar born at {pairs[k, 0]} (bar {k}); births must be finite "
            f"(only deaths may be inf, for a class that never dies)."
        )
    below = pairs[:, 1] < pairs[:, 0]
    if below.any():
        k = int(below.argmax())
        raise ValueError(
            f"{what} include a bar that dies before it is born: ({pairs[k, 0]}, {pairs[k, 1]}) "
            f"(bar {k}); every bar needs death >= birth. Did you swap the columns?"
        )
    return pairs


def _as_pairs(value, q, return_order=False):
    pairs = check_bars(value, f"Diagram: the bars of dimension {q}")
    if not len(pairs):
        return (pairs, np.empty(0, dtype=np.intp)) if return_order else pairs
    # A canonical order (birth, then death) makes equal diagrams compare equal
    # whatever order the engine reported them in.
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return (pairs[order], order) if return_order else pairs[order]


class Diagram:
    """Persistence diagram of one cloud: (birth, death) bars per homology dimension.

    Parameters
    ----------
    bars : mapping of int to array-like, or sequence of array-like
        ``bars[q]`` is a ``(k, 2)`` array of (birth, death) pairs of dimension
        ``q``. A sequence is read as dimensions 0, 1, 2, ... (ripser's
        ``dgms``).
    n_points : int, optional
        Number of points of the cloud the diagram was computed from.
    n_landmarks : int, optional
        Number of landmarks actually used, when the cloud was subsampled.
    covering_radius : float, default=0.0
        Largest distance from a point of the cloud to its nearest landmark: the
        diagram of the landmarks is within this bottleneck distance (times two)
        of the diagram of the cloud. Zero when every point was used.
    threshold : float, default=inf
        Largest edge length of the filtration (``max_edge_length``).
    coeff : int, default=2
        Prime field of coefficients.
    metric : str, default="euclidean"
        Metric of the cloud.
    engine : str, optional
        Engine that computed the diagram.
    representatives : mapping of int to sequence of array-like, optional
        ``representatives[q][k]``: the input indices of a representative of
        the ``k``-th bar of dimension ``q`` as given in ``bars`` (reordered
        with the bars), e.g. from ``PersistenceDiagram(representatives=True)``.

    Attributes
    ----------
    dims : tuple of int
        Homology dimensions present.
    representatives : dict of int to tuple of ndarray, or None
        Per dimension, one integer array per bar in the order of
        ``diagram[q]``; None when not computed.

    Examples
    --------
    >>> import numpy as np
    >>> from sktopo import Diagram
    >>> d = Diagram({0: [[0, 1], [0, np.inf]], 1: [[0.5, 0.8]]}, n_points=2)
    >>> d[1]
    array([[0.5, 0.8]])
    >>> d.dims
    (0, 1)
    """

    def __init__(
        self,
        bars: Mapping[int, Iterable] | Iterable,
        *,
        n_points: int | None = None,
        n_landmarks: int | None = None,
        covering_radius: float = 0.0,
        threshold: float = np.inf,
        coeff: int = 2,
        metric: str = "euclidean",
        engine: str | None = None,
        representatives: Mapping[int, Iterable] | None = None,
    ):
        if not isinstance(bars, Mapping):
            bars = dict(enumerate(bars))
        self._bars = {}
        self.representatives = None if representatives is None else {}
        for q in sorted(bars):
            if int(q) != q or q < 0:
                raise ValueError(f"Diagram: homology dimensions are non-negative integers; got {q!r}.")
            pairs, order = _as_pairs(bars[q], q, return_order=True)
            pairs.setflags(write=False)
            self._bars[int(q)] = pairs
            if representatives is not None and q in representatives:
                reps = list(representatives[q])
                if len(reps) != len(pairs):
                    raise ValueError(
                        f"Diagram: {len(reps)} representatives for the {len(pairs)} bars of "
                        f"dimension {q}; give one per bar."
                    )
                self.representatives[int(q)] = tuple(
                    np.asarray(reps[k], dtype=np.intp) for k in order)
        self._set_metadata(n_points, n_landmarks, covering_radius, threshold, coeff, metric, engine)

    @classmethod
    def _from_engine(cls, bars: Mapping[int, np.ndarray], *, canonical: bool = False,
                     n_points=None, n_landmarks=None, covering_radius=0.0, threshold=np.inf,
                     coeff=2, metric="euclidean", engine=None) -> "Diagram":
        """A diagram from bars an engine of the package computed, without re-checking them.

        ``bars[q]`` must be a float64 ``(k, 2)`` array of valid bars (finite
        births, deaths not before them); ``canonical=True`` says they are
        already in the canonical order (birth, then death). Thousands of small
        clouds make thousands of diagrams: the checks of :meth:`__init__`
        would cost more than the H0 computation of a 64-point cloud.
        """
        self = cls.__new__(cls)
        self._bars = {}
        for q in sorted(bars):
            pairs = bars[q]
            if not canonical and len(pairs) > 1:
                pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
            pairs.setflags(write=False)
            self._bars[int(q)] = pairs
        self.representatives = None
        self._set_metadata(n_points, n_landmarks, covering_radius, threshold, coeff, metric, engine)
        return self

    def _set_metadata(self, n_points, n_landmarks, covering_radius, threshold, coeff, metric,
                      engine):
        self.n_points = n_points
        self.n_landmarks = n_landmarks if n_landmarks is not None else n_points
        self.covering_radius = float(covering_radius)
        self.threshold = float(threshold)
        self.coeff = int(coeff)
        self.metric = metric
        self.engine = engine

    @property
    def dims(self) -> tuple:
        return tuple(self._bars)

    def __getitem__(self, q: int) -> np.ndarray:
        try:
            return self._bars[q]
        except (KeyError, TypeError):
            raise KeyError(
                f"this diagram has no bars of dimension {q!r}; it has dimensions {self.dims}. "
                f"Ask for it with homology_dimensions."
            ) from None

    def __contains__(self, q) -> bool:
        return q in self._bars

    def __iter__(self):
        return iter(self._bars)

    def finite(self, q: int) -> np.ndarray:
        """Bars of dimension ``q`` for lifetime-based quantities.

        Applies the module's infinite-bar policy: infinite deaths become the
        finite threshold when there is one, and are left out otherwise.
        """
        pairs = self[q]
        infinite = np.isinf(pairs[:, 1])
        if not infinite.any():
            return pairs
        if np.isfinite(self.threshold):
            clipped = pairs.copy()
            clipped[infinite, 1] = self.threshold
            return clipped
        return pairs[~infinite]

    def n_infinite(self, q: int) -> int:
        """Number of bars of dimension ``q`` that never die."""
        return int(np.isinf(self[q][:, 1]).sum())

    def betti(self, q: int, scales) -> np.ndarray:
        """Number of bars of dimension ``q`` alive at each scale (birth <= t < death)."""
        pairs = self[q]
        t = np.asarray(scales, dtype=float)[..., None]
        return ((pairs[:, 0] <= t) & (t < pairs[:, 1])).sum(axis=-1)

    def to_frame(self) -> pd.DataFrame:
        """Bars as a long table with columns dim, birth, death, persistence."""
        frames = [
            pd.DataFrame({"dim": q, "birth": p[:, 0], "death": p[:, 1], "persistence": p[:, 1] - p[:, 0]})
            for q, p in self._bars.items()
        ]
        if not frames:
            return pd.DataFrame(columns=["dim", "birth", "death", "persistence"])
        return pd.concat(frames, ignore_index=True)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Diagram):
            return NotImplemented
        return self.dims == other.dims and all(
            np.array_equal(self[q], other[q]) for q in self.dims
        )

    __hash__ = None

    def allclose(self, other: "Diagram", rtol: float = 1e-7, atol: float = 1e-9) -> bool:
        """Whether two diagrams have the same bars up to floating-point tolerance."""
        return self.dims == other.dims and all(
            self[q].shape == other[q].shape
            and np.allclose(self[q], other[q], rtol=rtol, atol=atol)
            for q in self.dims
        )

    def __repr__(self) -> str:
        parts = []
        for q, pairs in self._bars.items():
            text = f"H{q}: {len(pairs)} bar{'s' if len(pairs) != 1 else ''}"
            n_inf = self.n_infinite(q)
            if n_inf:
                text += f" ({n_inf} infinite)"
            parts.append(text)
        meta = []
        if self.n_points is not None:
            meta.append(f"{self.n_points} points")
        if self.n_landmarks is not None and self.n_landmarks != self.n_points:
            meta.append(f"{self.n_landmarks} landmarks, covering radius {self.covering_radius:.4g}")
        if np.isfinite(self.threshold):
            meta.append(f"threshold={self.threshold:.4g}")
        body = ", ".join(parts) if parts else "no dimensions"
        return f"Diagram({body}{' | ' + ', '.join(meta) if meta else ''})"
