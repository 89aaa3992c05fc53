"""The registry of Rips engines: which exist, which can do a job, which ``"auto"`` picks."""

from __future__ import annotations

from ._base import Engine
from .giotto import GiottoEngine
from .mst import MSTEngine
from .redzed import RedzedEngine, warn_fallback
from .ripserpy import RipserEngine

__all__ = ["AUTO_ORDER", "ENGINES", "engine_for", "get_engine", "register", "resolve_engine",
           "rips_bars"]

_REGISTRY: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    """Add an engine under its ``name`` (a new ``backend`` value)."""
    _REGISTRY[engine.name] = engine
    return engine


for _engine in (MSTEngine(), RedzedEngine(), RipserEngine(), GiottoEngine()):
    register(_engine)

#: The ``backend`` names of the engines, besides ``"auto"``.
ENGINES = tuple(_REGISTRY)

#: What ``backend="auto"`` tries for H1 and above, fastest first: the first that can do
#: the job and imports. giotto-ph (AGPL, measured no faster than ripser.py on two
#: cores) is used only when asked for by name.
AUTO_ORDER = ("redzed", "ripser")


def get_engine(name: str) -> Engine:
    """The registered engine called ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; the engines are {sorted(_REGISTRY)} "
                         f"(or backend='auto').") from None


def resolve_engine(backend: str, homology_dimensions, estimator: str = "PersistenceDiagram", *,
                   coeff: int = 2, sparse: bool = False) -> str:
    """The engine ``backend`` stands for, given the job.

    ``"auto"``: the exact MST engine for H0 only; for H1 and above the first of
    :data:`AUTO_ORDER` that can do the job (redzed-tda over Z/2, ripser.py for
    other fields and sparse input) and can be imported; an engine that cannot
    be imported is passed over with one :class:`EngineFallbackWarning`. An
    explicit backend that cannot do the job raises a ValueError that says
    why and what to use; one that is not installed, an ImportError.
    """
    maxdim = max(homology_dimensions)
    lead = f"{estimator}: " if estimator else ""
    if backend == "auto":
        if maxdim == 0:
            return "mst"
        for name in AUTO_ORDER:
            engine = _REGISTRY[name]
            if engine.cannot(maxdim=maxdim, coeff=coeff, sparse=sparse) is not None:
                continue
            if engine.available():
                return name
            warn_fallback(name, ImportError(f"{engine.requires} cannot be imported"))
        return "ripser"
    engine = get_engine(backend)
    reason = engine.cannot(maxdim=maxdim, coeff=coeff, sparse=sparse)
    if reason is not None:
        raise ValueError(f"{lead}backend={backend!r} {reason}. {_alternatives(maxdim, coeff, sparse)}")
    if not engine.available():
        raise ImportError(f"{lead}{engine.missing_message()}")
    return backend


def engine_for(settings, *, sparse: bool = False, why: str = "") -> Engine:
    """The engine that computes one cloud: the settings' own, or under ``"auto"`` another that can.

    A cloud may need what the collection's engine cannot do (an edge list,
    because its dense matrix does not fit ``memory_limit``); under
    ``backend="auto"`` the first engine of :data:`AUTO_ORDER` that can takes
    it; with an explicit backend that is a ValueError naming the remedy
    (``why`` says what made the cloud need it).
    """
    engine = _REGISTRY[settings.engine]
    if engine.cannot(maxdim=settings.maxdim, coeff=settings.coeff, sparse=sparse) is None:
        return engine
    if settings.auto:
        return _REGISTRY[resolve_engine("auto", settings.homology_dimensions, settings.estimator,
                                        coeff=settings.coeff, sparse=sparse)]
    reason = engine.cannot(maxdim=settings.maxdim, coeff=settings.coeff, sparse=sparse)
    raise ValueError(f"{settings.lead()}{why}backend={settings.engine!r} {reason}. "
                     f"{_alternatives(settings.maxdim, settings.coeff, sparse)}")


def _alternatives(maxdim, coeff, sparse) -> str:
    able = [name for name, engine in _REGISTRY.items()
            if engine.cannot(maxdim=maxdim, coeff=coeff, sparse=sparse) is None and engine.available()]
    return f"Use backend='auto' (it chooses by capability) or one of {able}."


def rips_bars(D, maxdim, *, threshold=float("inf"), coeff=2, backend="auto") -> list:
    """``[H0, ..., H{maxdim}]`` bars of a finite dense distance matrix, through the registry.

    For callers that hold a small, checked matrix and call often (the
    subsamples of ``PHDimension(homology_dimension=1)``): no rescaling and no
    memory estimate, which :func:`~sktopo.topology.engines.compute_bars` does.
    """
    engine = get_engine(resolve_engine(backend, range(maxdim + 1), "", coeff=coeff))
    return engine.dense(D, maxdim, threshold, coeff)
