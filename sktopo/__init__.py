"""sktopo: topology and geometry of neural-network representations.

Public names are imported lazily so that ``import sktopo`` stays fast and does
not import torch; the estimator you touch first loads what it needs. The one
exception is :func:`tidy`, bound here at once (its module imports only ``re``):
a function that shares its name with its submodule must be bound after the
submodule is loaded, or ``import sktopo.tidy`` would make ``sktopo.tidy`` the module.
"""

from importlib import import_module

from sktopo.tidy import tidy

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "Diagram": "sktopo.diagram",
    "PersistenceDiagram": "sktopo.topology.persistence",
    "persistence": "sktopo.topology.persistence",
    "DiagramFeatures": "sktopo.topology.features",
    "BettiCurve": "sktopo.topology.features",
    "PersistenceImage": "sktopo.topology.vectorize",
    "PersistenceLandscape": "sktopo.topology.vectorize",
    "DiagramDistance": "sktopo.topology.distances",
    "diagram_distance": "sktopo.topology.distances",
    "QuotientPersistence": "sktopo.nn.quotient",
    "CrossBarcode": "sktopo.topology.divergence",
    "cross_barcode": "sktopo.topology.divergence",
    "RTD": "sktopo.topology.divergence",
    "rtd": "sktopo.topology.divergence",
    "rtd_table": "sktopo.topology.divergence",
    "split_by_label": "sktopo.local",
    "mean_over_labels": "sktopo.local",
    "CloudScaler": "sktopo.preprocessing",
    "GeodesicDistances": "sktopo.topology.geodesic",
    "geodesic_distances": "sktopo.topology.geodesic",
    "bar_significance": "sktopo.topology.significance",
    "PHDimension": "sktopo.dimension.phdim",
    "ph_dimension": "sktopo.dimension.phdim",
    "TwoNN": "sktopo.dimension.twonn",
    "twonn": "sktopo.dimension.twonn",
    "MLEDimension": "sktopo.dimension.mle",
    "mle_dimension": "sktopo.dimension.mle",
    "TwoNNLikelihood": "sktopo.dimension.mle",
    "twonn_likelihood": "sktopo.dimension.mle",
    "local_dimension": "sktopo.dimension.mle",
    "CKA": "sktopo.similarity",
    "cka": "sktopo.similarity",
    "SVCCA": "sktopo.similarity",
    "svcca": "sktopo.similarity",
    "PWCCA": "sktopo.similarity",
    "pwcca": "sktopo.similarity",
    "ProcrustesDistance": "sktopo.similarity",
    "procrustes_distance": "sktopo.similarity",
    "similarity_table": "sktopo.similarity",
    "LayerEmbedder": "sktopo.nn.embedder",
    "CheckpointEmbedder": "sktopo.nn.checkpoints",
    "embed_checkpoints": "sktopo.nn.checkpoints",
    "ReLURankRegions": "sktopo.nn.relu_rank",
    "tidy": "sktopo.tidy",  # bound above; listed for __all__
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    try:
        module = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'sktopo' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
