"""Representation similarity beside RTD: CKA, SVCCA / PWCCA and the Procrustes shape metric.

Each measure compares two representations of the same inputs (row ``i`` of both
clouds is input ``i``; the widths may differ) and comes three ways: a function for
one pair (:func:`cka`), a transformer over a two-column collection of pairs
(:class:`CKA`, on the contract of :class:`~sktopo.RTD`), and a layer-by-layer table
(:func:`similarity_table`) that computes each layer's Gram matrix, features or
basis once and reuses it for every pair.
"""

from ._cca import PWCCA, SVCCA, pwcca, svcca
from ._cka import CKA, cka
from ._procrustes import ProcrustesDistance, procrustes_distance
from ._table import similarity_table

__all__ = ["CKA", "PWCCA", "ProcrustesDistance", "SVCCA", "cka", "procrustes_distance", "pwcca",
           "similarity_table", "svcca"]
