"""What one persistence computation needs: :class:`PersistenceSettings` and the field check."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

__all__ = ["MAX_COEFF", "PersistenceSettings", "check_coeff"]

# Largest prime field the Z/p engines compute correctly (probed in subprocesses on
# a 20-point circle): ripser.py hangs at coeff=131 and 251, aborts the process
# at 65521 and returns H1 bars that never die at 65537; giotto-ph gives a wrong
# H1 death at 131 and 197 and hangs at 241 and 251 (it refuses 255 and above).
# H0 does not depend on the field, so the MST engine shares the bound.
MAX_COEFF = 127


@dataclass(frozen=True)
class PersistenceSettings:
    """Everything one persistence computation needs, fixed for a whole collection.

    Built once per :meth:`~sktopo.PersistenceDiagram.transform` (or per call of
    :func:`~sktopo.topology.engines.compute_bars`) and passed whole to every
    cloud, instead of a dozen keyword arguments threaded by hand.

    Parameters
    ----------
    homology_dimensions : tuple of int
        Dimensions to return, sorted.
    engine : str
        Name of a registered engine (:data:`sktopo.topology.engines.ENGINES`);
        see :func:`~sktopo.topology.engines.resolve_engine` for ``"auto"``.
    metric : str or callable
        Metric of :func:`sklearn.metrics.pairwise_distances`, or ``"precomputed"``.
    metric_params : mapping or None
        Extra arguments of the metric.
    threshold : float
        Largest edge length of the filtration (``max_edge_length``).
    coeff : int
        Prime field of coefficients (irrelevant for H0).
    n_landmarks : int or None
        Greedy max-min landmarks per cloud (used by the caller, not the engines).
    representatives : bool
        Keep the input indices of a representative of every H0 and H1 bar
        (used by the caller, see :mod:`sktopo.topology.representatives`).
    memory_limit : int or None
        Bytes one cloud's computation may take; ``None`` disables the check.
    device : str or None
        Torch device of the MST engine; ``None`` uses numpy.
    n_threads : int
        Threads an engine that has its own (giotto-ph) may use per cloud.
    estimator : str
        Name that starts error messages (e.g. ``"PersistenceDiagram"``).
    auto : bool
        The engine was chosen by ``backend="auto"``: where a cloud needs what
        the engine cannot do (a sparse edge list), another engine that gives the
        same diagram may take it.
    """

    homology_dimensions: tuple = (0, 1)
    engine: str = "ripser"
    metric: Any = "euclidean"
    metric_params: Mapping | None = field(default=None, hash=False)
    threshold: float = np.inf
    coeff: int = 2
    n_landmarks: int | None = None
    representatives: bool = False
    memory_limit: int | None = None
    device: str | None = None
    n_threads: int = 1
    estimator: str = ""
    auto: bool = False

    def __post_init__(self):
        dims = tuple(sorted(int(q) for q in self.homology_dimensions))
        object.__setattr__(self, "homology_dimensions", dims)
        object.__setattr__(self, "threshold", float(self.threshold))

    @property
    def maxdim(self) -> int:
        return self.homology_dimensions[-1]

    @property
    def precomputed(self) -> bool:
        return isinstance(self.metric, str) and self.metric == "precomputed"

    @property
    def params(self) -> dict:
        return dict(self.metric_params or {})

    @property
    def plain_euclidean(self) -> bool:
        return isinstance(self.metric, str) and self.metric == "euclidean" and not self.metric_params

    @property
    def metric_name(self) -> str:
        """The metric's name for diagrams and messages (``"callable"`` for a nameless one)."""
        return self.metric if isinstance(self.metric, str) else getattr(self.metric, "__name__",
                                                                        "callable")

    def lead(self) -> str:
        """Start of an error message: ``"PersistenceDiagram: "`` or nothing."""
        return f"{self.estimator}: " if self.estimator else ""

    def with_(self, **changes) -> "PersistenceSettings":
        return replace(self, **changes)


def check_coeff(coeff, estimator: str = "PersistenceDiagram") -> int:
    """``coeff`` if it is a prime in the range every engine computes correctly, else ValueError.

    The range is checked before primality, so a huge number is refused at
    once (a trial division up to ``sqrt(2**61 - 1)`` would stall).
    """
    p = int(coeff)
    if not 2 <= p <= MAX_COEFF:
        raise ValueError(
            f"{estimator}: coeff={p} is outside the range the engines compute correctly "
            f"(primes 2 to {MAX_COEFF}): ripser.py hangs or aborts the Python process and "
            f"giotto-ph returns wrong deaths for larger fields. Use a prime up to {MAX_COEFF}."
        )
    if any(p % k == 0 for k in range(2, int(math.isqrt(p)) + 1)):
        raise ValueError(f"{estimator}: coeff must be a prime number (the field Z/pZ); got {p}.")
    return p
