"""giotto-ph (AGPL-3.0, optional: ``pip install sktopo[fast]``): multi-threaded ripser.

Never chosen by ``backend="auto"`` (measured no faster than ripser.py on two
cores, and its licence is not the package's); used when asked for by name.
Its compiled dense core is private API, so it is probed and the public
``ripser_parallel`` stands in when it moves.
"""

from __future__ import annotations

import functools

import numpy as np

from ._base import Capabilities, Engine, as_pairs, condensed_float32, enclosing_radius

__all__ = ["GiottoEngine"]


class GiottoEngine(Engine):
    """giotto-ph's ``ripser_parallel`` and its compiled dense core."""

    name = "giotto"
    capabilities = Capabilities(fields="Z/p", sparse=True, cocycles=True, releases_gil=True,
                                # its core deadlocked once in a C++ static initialisation when
                                # two threads entered it at once (benchmarks/many_clouds.py)
                                thread_safe=False, precision="float32", licence="AGPL-3.0")
    requires = "gph"
    install = ("Install it with `pip install sktopo[fast]` (or `pip install giotto-ph`; note that "
               "giotto-ph is licensed AGPL-3.0), or use backend='auto', 'redzed' or 'ripser'.")

    def missing_message(self):
        return f"the giotto-ph engine needs the optional package giotto-ph, which is not installed. {self.install}"

    memory_model = "giotto"

    def input_bytes(self, n_points):
        # ripser_parallel's float32 copy of the square matrix and the condensed one its
        # core reads (the model is fitted on the core alone)
        return 6 * n_points * n_points

    def dense(self, D, maxdim, threshold, coeff, n_threads=1):
        from gph import ripser_parallel

        # our distances, not giotto-ph's: they are exact for duplicate points
        # (sklearn's leave ~1e-8 there, i.e. spurious tiny bars)
        return ripser_parallel(D, metric="precomputed", maxdim=maxdim, thresh=threshold,
                               coeff=coeff, n_threads=n_threads)["dgms"]

    def condensed(self, condensed, n, maxdim, threshold, coeff, n_threads=1):
        core = _dense_core()
        if core is None:  # pragma: no cover - the private core moved: the public API
            from scipy.spatial.distance import squareform

            return self.dense(squareform(np.asarray(condensed, dtype=np.float64)), maxdim,
                              threshold, coeff, n_threads)
        # the compiled core reads the buffer as C-contiguous float32 without checking
        condensed = np.ascontiguousarray(condensed, dtype=np.float32)
        diagonal = np.zeros(n, dtype=np.float32)
        result = core(condensed, diagonal, maxdim, threshold, coeff, n_threads)
        return [as_pairs(flat) for flat in result.births_and_deaths_by_dim()]

    def sparse(self, rows, cols, values, n, maxdim, threshold, coeff, n_threads=1):
        import scipy.sparse as sp
        from gph import ripser_parallel

        matrix = sp.coo_matrix((values, (rows, cols)), shape=(n, n))
        return ripser_parallel(matrix, metric="precomputed", maxdim=maxdim, thresh=threshold,
                               coeff=coeff, n_threads=n_threads)["dgms"]


@functools.cache
def _dense_core():
    """giotto-ph's private compiled dense core, or None where its layout changed."""
    try:
        from gph.python.ripser_interface import _compute_ph_vr_dense
    except ImportError:
        return None
    return _compute_ph_vr_dense


def giotto_dense(D, maxdim, threshold, coeff, n_threads=1):
    """giotto-ph's compiled core on a dense matrix (cut at the enclosing radius)."""
    if maxdim > 0:
        threshold = min(threshold, enclosing_radius(D))
    return GiottoEngine().condensed(condensed_float32(D), D.shape[0], maxdim, threshold, coeff,
                                    n_threads)
