"""Float64 reference for ReLURankRegions' ranks, shared by tests/ and benchmarks/.

Independent of the rank engine: for each input on its own, the float64 Jacobian of every
``nn.ReLU`` module's output (``torch.autograd.functional.jacobian``) and its rank by
``numpy.linalg.matrix_rank``. Slow by design; never used by the estimators.
"""

import copy

import numpy as np
import torch
from torch import nn


def relu_outputs(model):
    """x (one input) -> tuple of every nn.ReLU module's flattened output, in call order."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]

    def f(x):
        out = []
        handles = [r.register_forward_hook(lambda m, i, o: out.append(o.reshape(-1)))
                   for r in relus]
        try:
            model(x[None])
        finally:
            for h in handles:
                h.remove()
        return tuple(out)

    return f


def jacobian_ranks(model, X, rank_tol=None, *, vectorize=False):
    """(n, L) ranks of the float64 Jacobian of each nn.ReLU call's output, one input at a time.

    ``model`` is used through a float64 copy in eval mode (the caller's model is untouched);
    ``X`` is an array or tensor of inputs. ``rank_tol`` is ``matrix_rank``'s ``tol`` (None: its
    default, ``max(shape) * eps * largest singular value``). ``vectorize=True`` computes each
    input's Jacobian with one batched backward pass over all output units
    (``torch.autograd.functional.jacobian(vectorize=True)``), as a careful user would.
    """
    from torch.autograd.functional import jacobian

    model = copy.deepcopy(model).double().eval()
    X = torch.as_tensor(np.asarray(X), dtype=torch.float64)
    f = relu_outputs(model)
    rows = []
    for x in X:
        rows.append([np.linalg.matrix_rank(J.reshape(J.shape[0], -1).numpy(), tol=rank_tol)
                     for J in jacobian(f, x, vectorize=vectorize)])
    return np.asarray(rows, dtype=np.int64).reshape(len(X), -1)
