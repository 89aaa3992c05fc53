"""What the dimension estimators share lives in :mod:`sktopo._base`.

:class:`~sktopo.PHDimension` and :class:`~sktopo.TwoNN` are
:class:`sktopo._base.CloudTransformer` subclasses: they differ only in what they
compute for one cloud (``_cell_task``, or a batched ``_compute_cells``). These
names are kept for the modules that import them from here.
"""

from sktopo._base import CellMessage, CloudTransformer, one_cloud

CloudFeatures = CloudTransformer

__all__ = ["CellMessage", "CloudFeatures", "CloudTransformer", "one_cloud"]
