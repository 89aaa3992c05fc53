"""Vietoris-Rips persistence engines: one registry, one module per engine.

Every Rips computation of the package goes through here: the one-cloud
pipeline (:func:`compute_bars`), the many-cloud scheduler
(:mod:`._scheduler`), and so :class:`~sktopo.PersistenceDiagram`,
:func:`~sktopo.persistence`, ``PHDimension(homology_dimension=1)``,
:class:`~sktopo.RTD` / :class:`~sktopo.CrossBarcode`,
:class:`~sktopo.QuotientPersistence` and :func:`~sktopo.bar_significance`.

=========  =======================================  ==========  =========================
name       engine                                   licence     does
=========  =======================================  ==========  =========================
``mst``    minimum spanning trees (:mod:`.mst`)     MIT (ours)  H0 only, exact, float64;
                                                                torch devices
``redzed`` redzed-tda (:mod:`.redzed`)              MIT         any dimension over Z/2;
                                                                the default for H1+
``ripser`` ripser.py (:mod:`.ripserpy`)             MIT         any dimension, Z/p,
                                                                sparse edge lists
``giotto`` giotto-ph (:mod:`.giotto`), optional     AGPL-3.0    any dimension, Z/p,
                                                                threads; by name only
=========  =======================================  ==========  =========================

Each engine declares its :class:`Capabilities` and its memory model
(:meth:`Engine.peak_bytes`); ``backend="auto"`` chooses by capability
(:func:`resolve_engine`) and an explicit backend that cannot do the job is a
clear error. Adding an engine is one module (a subclass of :class:`Engine`),
one line in :mod:`._registry` and its tests; see the engines guide.
"""

from ._base import Capabilities, Engine, enclosing_radius
from ._compute import check_metric_values, compute_bars, dense_bytes_of
from ._registry import (
    AUTO_ORDER,
    ENGINES,
    engine_for,
    get_engine,
    register,
    resolve_engine,
    rips_bars,
)
from ._scale import finite_range, scale_of
from ._settings import MAX_COEFF, PersistenceSettings, check_coeff
from .mst import h0_bars, h0_bars_batch
from .redzed import EngineFallbackWarning

__all__ = [
    "AUTO_ORDER",
    "Capabilities",
    "ENGINES",
    "Engine",
    "EngineFallbackWarning",
    "MAX_COEFF",
    "PersistenceSettings",
    "check_coeff",
    "check_metric_values",
    "compute_bars",
    "dense_bytes_of",
    "enclosing_radius",
    "engine_for",
    "finite_range",
    "get_engine",
    "giotto_available",
    "h0_bars",
    "h0_bars_batch",
    "register",
    "resolve_engine",
    "rips_bars",
    "scale_of",
]


def giotto_available() -> bool:
    """Whether giotto-ph can be imported."""
    return get_engine("giotto").available()
