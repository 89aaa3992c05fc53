"""ripser.py (MIT): any dimension, any prime field, sparse edge lists; single-threaded.

The one engine that does everything the others leave out (Z/p coefficients,
edge lists), so it is also where a failing young engine falls back to.
"""

from __future__ import annotations

import numpy as np

from ._base import Capabilities, Engine, as_pairs, condensed_float32, enclosing_radius

__all__ = ["RipserEngine"]


class RipserEngine(Engine):
    """ripser.py's compiled core (``pyRipser``), called without its Python-level checks."""

    name = "ripser"
    capabilities = Capabilities(fields="Z/p", sparse=True, cocycles=True, releases_gil=False,
                                precision="float32", licence="MIT")
    requires = "ripser"
    install = "Install it with `pip install ripser`."

    memory_model = "ripser"

    def input_bytes(self, n_points):
        return 2 * n_points * n_points  # the float32 condensed matrix it is called with

    def dense(self, D, maxdim, threshold, coeff, n_threads=1):
        if maxdim > 0:
            # exact (see enclosing_radius) and 1.5-2x faster: ripser.py does not cut there itself
            threshold = min(threshold, enclosing_radius(D))
        return self.condensed(condensed_float32(D), D.shape[0], maxdim, threshold, coeff)

    def condensed(self, condensed, n, maxdim, threshold, coeff):
        try:
            from pyRipser import doRipsFiltrationDM
        except ImportError:  # pragma: no cover - ripser.py's layout changed: its public API
            from ripser import ripser
            from scipy.spatial.distance import squareform

            return ripser(squareform(np.asarray(condensed, dtype=np.float64)), distance_matrix=True,
                          maxdim=maxdim, thresh=threshold, coeff=coeff)["dgms"]
        condensed = np.ascontiguousarray(condensed, dtype=np.float32)
        result = doRipsFiltrationDM(condensed, maxdim, thresh=threshold, coeff=coeff, do_cocycles=0)
        return [as_pairs(flat) for flat in result["births_and_deaths_by_dim"]]

    def sparse(self, rows, cols, values, n, maxdim, threshold, coeff, n_threads=1):
        import scipy.sparse as sp
        from ripser import ripser

        matrix = sp.coo_matrix((values, (rows, cols)), shape=(n, n))
        return ripser(matrix, distance_matrix=True, maxdim=maxdim, thresh=threshold,
                      coeff=coeff)["dgms"]
