"""Per-cloud preprocessing: each cloud scaled by its own statistics.

Study A min-max scales the coordinates of each layer's cloud before computing
persistence, so that the lifespans compare layers of very different weight
norms. :class:`CloudScaler` does that as a Pipeline step between
:class:`~sktopo.LayerEmbedder` and :class:`~sktopo.PersistenceDiagram`.
Unlike scikit-learn's ``MinMaxScaler`` (statistics learned in ``fit`` over the
rows of one table), every cloud is scaled by its *own* minimum and maximum (or
mean and standard deviation), at ``transform`` time: a cloud gives the same
scaled cloud in any row, any collection.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils._param_validation import StrOptions

from sktopo._base import CloudMapper
from sktopo._distance import power_of_two_scale

__all__ = ["CloudScaler"]


class CloudScaler(CloudMapper):
    """Scale the coordinates of every cloud by the cloud's own statistics.

    A collection of clouds in, the same collection of scaled clouds out (same
    container, index and columns). Each coordinate (column) of a cloud is scaled
    on its own:

    - ``"minmax"``: ``(x - min) / (max - min)``, into [0, 1] (study A's
      per-layer ``MinMaxScaler``);
    - ``"standard"``: ``(x - mean) / std`` (population standard deviation).

    A coordinate that is constant within a cloud has no spread to divide by: it
    becomes 0 (as in scikit-learn's scalers). Nothing is learned in ``fit``:
    the statistics are those of each transformed cloud.

    Parameters
    ----------
    method : {"minmax", "standard"}, default="minmax"
        The scaling.

    Attributes
    ----------
    n_features_in_ : int
        Number of columns of the input (1 for a list, 3-D array or Series).
    feature_names_in_ : ndarray of str
        Column names of a DataFrame input whose columns are all strings.

    See Also
    --------
    sklearn.preprocessing.MinMaxScaler : one set of statistics for a whole table.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sktopo import CloudScaler, DiagramFeatures, PersistenceDiagram
    >>> clouds = [np.array([[0.0, 10.0], [2.0, 30.0], [4.0, 20.0]])]
    >>> CloudScaler().fit_transform(clouds)[0]
    array([[0. , 0. ],
           [0.5, 1. ],
           [1. , 0.5]])
    >>> pipe = make_pipeline(CloudScaler(), PersistenceDiagram((0,)), DiagramFeatures())
    >>> pipe.fit_transform(clouds).shape
    (1, 7)
    """

    _parameter_constraints: dict = {
        "method": [StrOptions({"minmax", "standard"})],
    }

    def __init__(self, method="minmax"):
        self.method = method

    _one_cloud = "sklearn.preprocessing.minmax_scale(X)"

    def _map_cloud(self, cloud, label):
        cloud = _in_range(cloud)
        return _minmax(cloud) if self.method == "minmax" else _standard(cloud)


def _in_range(cloud: np.ndarray) -> np.ndarray:
    """The cloud with every column far from unit scale multiplied by a power of two.

    Both scalings are unchanged by a positive factor per column, and a power of
    two is exact (:func:`~sktopo._distance.power_of_two_scale`, the package's
    extreme-scale rule), so this only keeps the squares of ``"standard"`` from
    overflowing (above ~1e154) or underflowing (below ~1e-154) and the spread of
    ``"minmax"`` below the largest float. Columns in range are left alone.
    """
    max_abs = np.abs(cloud).max(axis=0)
    scales = np.ones_like(max_abs)
    far = (max_abs > 0) & ((max_abs < 2.0**-60) | (max_abs > 2.0**60))
    if not far.any():
        return cloud
    scales[far] = [power_of_two_scale(m) for m in max_abs[far]]
    return cloud * scales


def _minmax(cloud: np.ndarray) -> np.ndarray:
    low = cloud.min(axis=0)
    spread = cloud.max(axis=0) - low
    return (cloud - low) / np.where(spread > 0, spread, 1.0)


def _standard(cloud: np.ndarray) -> np.ndarray:
    mean = cloud.mean(axis=0)
    std = cloud.std(axis=0)
    return (cloud - mean) / np.where(std > 0, std, 1.0)
