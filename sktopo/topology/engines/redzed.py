"""redzed-tda (MIT): Vietoris-Rips persistence over Z/2 by reduction to zero differentials.

Kapulkin & Kershaw, "RedZeD: Computing persistent homology by Reduction to
Zero Differentials", arXiv:2606.06310 (2026). The default engine for H1 and
above over Z/2: on two cores 20x faster than ripser.py on 1,000-3,000
Gaussian points in R^64 and a third of its memory (``benchmarks/persistence.py``),
with the same bars (it compares distances in float32, as ripser.py does;
``tests/test_redzed_crosscheck.py`` checks every release in the pinned range
against ripser.py). Its compiled core releases the GIL, so many clouds run in
threads.

It is a young package (an alpha release from one small team), so it is
guarded: if it cannot be imported, or raises on a job, the computation falls
back to ripser.py (the same diagram, slower) with one warning per process.
It takes no sparse input and no coefficients but Z/2: ``backend="auto"`` gives
those jobs to ripser.py, and an explicit ``backend="redzed"`` refuses them.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from ._base import Capabilities, Engine, enclosing_radius

__all__ = ["RedzedEngine", "EngineFallbackWarning"]


class EngineFallbackWarning(UserWarning):
    """An engine failed (could not be imported, or raised) and ripser.py took its job."""


class RedzedEngine(Engine):
    """``redzed_tda.rips`` on dense or condensed distances."""

    name = "redzed"
    capabilities = Capabilities(fields="Z/2", sparse=False, missing_edges=True,
                                representatives=True, releases_gil=True, precision="float32",
                                licence="MIT")
    requires = "redzed_tda"
    install = ("It is a dependency of sktopo: reinstall it with `pip install 'redzed-tda>=0.1.1,<0.2'`, "
               "or use backend='auto' (which falls back to ripser.py) or backend='ripser'.")

    # the caller's float64 matrix is passed as it is (a copy only with missing edges)
    memory_model = "redzed"

    def dense(self, D, maxdim, threshold, coeff, n_threads=1):
        D, threshold = _cut(D, maxdim, threshold)
        return self._rips(D, maxdim, threshold)

    def condensed(self, condensed, n, maxdim, threshold, coeff):
        return self._rips(condensed, maxdim, threshold, n=n)

    def dense_with_simplices(self, D, maxdim, threshold):
        """``(bars, simplices)``: also the birth and death vertices of every bar.

        ``simplices[q][k]`` is ``(birth_vertices, death_vertices)`` of
        ``bars[q][k]`` (no death vertices for an infinite bar). None where
        redzed-tda failed and ripser.py (which has no such output) took the job.
        """
        D, threshold = _cut(D, maxdim, threshold)
        try:
            import redzed_tda

            dgms, simplices = redzed_tda.rips(D, maxdim=maxdim, threshold=threshold,
                                              simplex_pairs=True)
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as error:
            return self._fallback(error, D, maxdim, threshold), None
        return dgms, simplices

    def _rips(self, distances, maxdim, threshold, n=None):
        try:
            import redzed_tda

            return redzed_tda.rips(distances, maxdim=maxdim, threshold=threshold)
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as error:  # an import failure, or a failure of its core
            return self._fallback(error, distances, maxdim, threshold, n)

    def _fallback(self, error, distances, maxdim, threshold, n=None):
        from .ripserpy import RipserEngine

        ripser = RipserEngine()
        if np.ndim(distances) == 1 and n is None:
            n = int(round((1 + np.sqrt(1 + 8 * len(distances))) / 2))
        _check_fallback_fits(ripser, error, distances, n or distances.shape[0], maxdim, threshold)
        warn_fallback(self.name, error)
        if np.ndim(distances) == 1:
            return ripser.condensed(np.asarray(distances, dtype=np.float32), n, maxdim,
                                    threshold, 2)
        return ripser.condensed(_upper(distances), distances.shape[0], maxdim, threshold, 2)


def _check_fallback_fits(ripser, error, distances, n_points, maxdim, threshold):
    """A MemoryError where ripser.py would need more memory than the machine has free.

    The memory check before the call was made for redzed-tda, which needs far less
    than ripser.py in H2 and above (and on clouds with holes): a fall-back must not
    turn a failure into an abort (``std::bad_alloc``) of the whole process.
    """
    available = _available_bytes()
    if available is None:
        return
    if ripser.peak_bytes(n_points, maxdim) <= available:  # the worst case fits: no estimate
        return
    from ._memory import clique_counts

    counts = clique_counts(distances=distances, threshold=threshold, max_size=min(maxdim + 2, 6))
    need = ripser.peak_bytes(n_points, maxdim, counts)
    if need > available:
        from ..._distance import format_bytes

        raise MemoryError(
            f"the redzed engine failed ({type(error).__name__}: {error}) and ripser.py, its "
            f"fall-back, would need about {format_bytes(need)} for H0 to H{maxdim} of "
            f"{n_points} points, more than the {format_bytes(available)} this machine has "
            f"free. Subsample with n_landmarks or set a finite max_edge_length, or reinstall "
            f"redzed-tda (`pip install 'redzed-tda>=0.1.1,<0.2'`).") from error


def _available_bytes():
    """Memory the system can still give (Linux ``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _cut(D, maxdim, threshold):
    """``(D, threshold)`` redzed-tda takes: finite entries, cut at the enclosing radius.

    A missing edge (``inf``) becomes a value above the threshold, so it never
    enters the filtration; the enclosing radius (a row with no missing edge)
    changes nothing in H1 and above (see :func:`enclosing_radius`).
    """
    if maxdim > 0:
        threshold = min(threshold, enclosing_radius(D))
    finite = np.isfinite(D)
    if not finite.all():
        top = float(D[finite].max()) if finite.any() else 0.0
        threshold = min(threshold, top)
        D = np.where(finite, D, 2.0 * top + 1.0)
    return D, threshold


def _upper(D):
    from ._base import condensed_float32

    return condensed_float32(D)


_warned: set = set()
_warned_lock = threading.Lock()


def warn_fallback(engine: str, error) -> None:
    """One :class:`EngineFallbackWarning` per engine and process."""
    with _warned_lock:
        if engine in _warned:
            return
        _warned.add(engine)
    warnings.warn(
        f"the {engine} engine failed ({type(error).__name__}: {error}); ripser.py computes its "
        f"jobs instead (the same diagrams, slower). Reinstall it with "
        f"`pip install 'redzed-tda>=0.1.1,<0.2'`, or pass backend='ripser' to silence this.",
        EngineFallbackWarning, stacklevel=3,
    )
