"""The interface every Rips engine implements: what it can do, what it costs, how it is called.

An engine is a subclass of :class:`Engine` registered in
:mod:`sktopo.topology.engines`. It declares its :class:`Capabilities` and its
memory model (:meth:`Engine.peak_bytes`), and computes bars from a dense
distance matrix (:meth:`Engine.dense`), from the condensed float32 matrices
of the many-cloud scheduler (:meth:`Engine.condensed`) and, where it can, from
a sparse edge list (:meth:`Engine.sparse`). Each returns ``[H0, H1, ...]``
arrays of ``(birth, death)`` pairs up to ``maxdim``, as ripser.py does; the
callers drop zero-length bars, rescale and sort.

The callers guarantee what every engine may assume: distances are finite
(missing edges only where :attr:`Capabilities.missing_edges` says so, as
``inf``), non-negative, symmetric, with a zero diagonal; ``threshold`` is a
float (``inf`` for none); ``coeff`` is a prime the engine supports.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

__all__ = ["Capabilities", "Engine"]


@dataclass(frozen=True)
class Capabilities:
    """What an engine can compute and how it runs.

    Attributes
    ----------
    max_dimension : float
        Highest homology dimension (``inf``: any).
    fields : str
        ``"Z/2"`` or ``"Z/p"`` (any prime up to :data:`MAX_COEFF`).
    sparse : bool
        Takes an edge list (a thresholded graph, ``scipy.sparse`` input).
    missing_edges : bool
        Takes a dense matrix with infinite entries (edges that never enter).
    thresholds : bool
        Honours a finite ``max_edge_length``.
    representatives : bool
        Returns the birth and death simplices of every bar.
    cocycles : bool
        Returns representative cocycles.
    releases_gil : bool
        Its compiled core releases the GIL.
    thread_safe : bool
        Several threads may run its core at once. Many clouds run in threads
        when both hold, else in worker processes.
    devices : tuple of str
        ``"cpu"``, and ``"torch"`` for an engine that runs on any torch device.
    precision : str
        The floating-point type the engine compares distances in.
    licence : str
        SPDX identifier of the engine's licence.
    """

    max_dimension: float = np.inf
    fields: str = "Z/p"
    sparse: bool = True
    missing_edges: bool = False
    thresholds: bool = True
    representatives: bool = False
    cocycles: bool = False
    releases_gil: bool = False
    thread_safe: bool = True
    devices: tuple = ("cpu",)
    precision: str = "float32"
    licence: str = "MIT"


class Engine:
    """Base class of the Rips engines; see the module docstring for the contract."""

    #: The ``backend`` name.
    name: ClassVar[str] = ""
    #: What the engine can do.
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: The module whose import decides :meth:`available` (None: always there).
    requires: ClassVar[str | None] = None
    #: How to install the engine, for the error of an explicit backend that is missing.
    install: ClassVar[str] = ""
    #: Its fitted model in :mod:`~sktopo.topology.engines._memory` (None: :meth:`peak_bytes`
    #: is overridden).
    memory_model: ClassVar[str | None] = None

    # ------------------------------------------------------------- capability
    def available(self) -> bool:
        """Whether the engine's package can be imported (probed once per process)."""
        return self.requires is None or _importable(self.requires)

    def missing_message(self) -> str:
        return (f"backend={self.name!r} needs the package {self.requires!r}, which cannot be "
                f"imported. {self.install}")

    def cannot(self, *, maxdim: int, coeff: int = 2, sparse: bool = False,
               device=None) -> str | None:
        """Why the engine cannot do this job, or None when it can."""
        caps = self.capabilities
        if maxdim > caps.max_dimension:
            top = int(caps.max_dimension)
            return (f"computes {'H0' if top == 0 else f'H0 to H{top}'} only, and H{maxdim} was "
                    f"asked for")
        if caps.fields == "Z/2" and coeff != 2:
            return f"computes over Z/2 only, and coeff={coeff} was asked for"
        if sparse and not caps.sparse:
            return "takes no sparse edge list (scipy.sparse input, or a thresholded graph)"
        if device is not None and "torch" not in caps.devices:
            return f"runs on the CPU only, and device={device!r} was asked for"
        return None

    # ----------------------------------------------------------------- memory
    def needs_counts(self, maxdim: int) -> bool:
        """Whether :meth:`peak_bytes` reads the numbers of simplices for these dimensions.

        For H1 and above the engines store simplices of the filtration cut at the
        enclosing radius, whose number depends on the data (its intrinsic
        dimension, its holes), not on ``n`` alone.
        """
        return self.memory_model is not None and maxdim >= 1

    def peak_bytes(self, n_points: int, maxdim: int, counts=None, *, device=None) -> int:
        """Bytes the engine allocates on top of the float64 matrix the caller holds.

        ``counts`` is what :func:`~sktopo.topology.engines._memory.clique_counts`
        returns (the estimated simplices of the filtration, by number of vertices,
        and the size of the largest cocycle of a hole); None where the caller has
        no estimate, which the model reads as the worst case (every clique of the
        complete graph). The default uses the engine's fitted model
        (:attr:`memory_model`) plus :meth:`input_bytes`.
        """
        if self.memory_model is None:
            raise NotImplementedError
        from ._memory import engine_peak_bytes

        return (engine_peak_bytes(self.memory_model, n_points, maxdim, counts)
                + self.input_bytes(n_points))

    def input_bytes(self, n_points: int) -> int:
        """Bytes of the copy of the matrix sktopo makes to call the engine (not in the model)."""
        return 0

    # -------------------------------------------------------------- computing
    def bars_of(self, data, settings, distances) -> list:
        """Bars of one (rescaled) cloud, or its matrix when ``settings.precomputed``.

        ``distances()`` builds the cloud's checked dense distance matrix; an
        engine that works from the points themselves (the MST engine) overrides this.
        """
        D = data if settings.precomputed else distances()
        return self.dense(D, settings.maxdim, settings.threshold, settings.coeff,
                          settings.n_threads)

    def dense(self, D, maxdim, threshold, coeff, n_threads=1) -> list:
        """Bars of a square float64 distance matrix."""
        raise NotImplementedError

    def condensed(self, condensed, n, maxdim, threshold, coeff) -> list:
        """Bars of a float32 condensed matrix (pdist order), the many-cloud hot path.

        ``threshold`` is used as given (the scheduler passes the enclosing
        radius); no Python-level checks.
        """
        raise NotImplementedError

    def dense_with_simplices(self, D, maxdim, threshold):
        """``(bars, simplices)`` with the birth and death vertices of every bar.

        For engines whose :attr:`Capabilities.representatives` holds:
        ``simplices[q][k]`` is ``(birth_vertices, death_vertices)`` of
        ``bars[q][k]``; ``simplices`` is None where the engine fell back to one
        that has no such output.
        """
        raise NotImplementedError(f"the {self.name} engine reports no simplices")

    def sparse(self, rows, cols, values, n, maxdim, threshold, coeff, n_threads=1) -> list:
        """Bars of a graph given by its edges ``i < j`` (explicit zeros are edges)."""
        raise NotImplementedError(f"the {self.name} engine takes no edge list")

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


@functools.cache
def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # ImportError, or a broken build that fails while loading
        return False
    return True


def enclosing_radius(D) -> float:
    """``min_i max_j D[i, j]``: above it the Rips complex is a cone (contractible).

    Every class of dimension 1 and above dies by this scale and the graph is
    connected, so a filtration cut there gives exactly the same diagram
    (giotto-ph does the same). ``inf`` for a matrix with infinite entries in
    every row.
    """
    return float(np.min(np.max(D, axis=1))) if D.shape[0] else 0.0


def condensed_float32(D):
    """Upper triangle of ``D`` row by row, in float32: the condensed layout of the engines.

    Filled in place row by row so that no float64 copy of the triangle (and no
    index grids, as ripser.py itself builds) is ever allocated.
    """
    n = D.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=np.float32)
    pos = 0
    for i in range(n - 1):
        k = n - 1 - i
        out[pos:pos + k] = D[i, i + 1:]
        pos += k
    return out


def as_pairs(flat) -> np.ndarray:
    """An engine's flat births-and-deaths list as a float64 ``(k, 2)`` array."""
    return np.reshape(np.asarray(flat, dtype=np.float64), (-1, 2))
