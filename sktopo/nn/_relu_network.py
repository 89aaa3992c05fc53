"""Inspecting a torch network as a piecewise-linear (ReLU) map.

Private helpers of :class:`sktopo.ReLURankRegions`:

- :func:`check_piecewise_linear` refuses modules that make a network non piecewise-linear
  (or piecewise-linear with regions we do not track: fractional max pooling, LP pooling);
  max pooling is tracked: the argmax index of each window is part of the region's pattern
  (:func:`max_pool_indices`), and with it fixed the pooling is a gather, a linear map;
- :class:`ReLUTracer` runs the network and records, for every *call* of an ``nn.ReLU`` module,
  the activation pattern (``pre-activation > 0``) or, in "frozen" mode, replaces each ReLU by a
  multiplication with a given 0/1 mask, so that forward-mode differentiation yields the linear
  part ``D_l W_l ... D_1 W_1`` of the map from the input to that ReLU's output.

Only ``nn.ReLU`` *modules* are seen: a ``torch.relu`` / ``F.relu`` call inside a ``forward``
method is invisible to hooks. ReLURankRegions checks the affine consistency of every merged
region on a sample of inputs and raises when such hidden nonlinearities break it.
"""

import contextlib
import warnings

import torch
from torch import nn

# Raised after the last traced ReLU (the layers after it do not matter); the same
# BaseException as LayerEmbedder's, so a model's own ``except Exception`` cannot swallow it.
from sktopo.nn._capture import ModuleCalls, _StopForward

# Modules that make the network non piecewise-linear, or piecewise-linear with pieces that are
# not described by ReLU activation patterns. Checked by isinstance on modules that actually run.
_NONLINEAR = (
    nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SELU, nn.CELU, nn.LeakyReLU, nn.PReLU, nn.RReLU,
    nn.ReLU6, nn.Softplus, nn.SiLU, nn.Mish, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
    nn.Hardshrink, nn.Softshrink, nn.Tanhshrink, nn.Softsign, nn.LogSigmoid, nn.Threshold,
    nn.GLU, nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softmax2d, nn.MultiheadAttention,
    nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.Bilinear, nn.RNNBase,
    nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.Transformer,
    nn.modules.instancenorm._InstanceNorm, nn.Embedding, nn.EmbeddingBag,
)
# Max pooling whose argmax indices are tracked as part of the region (max_pool_indices).
_MAXPOOL = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
# Pooling that is random (fractional) or not piecewise linear (LP): refused.
_REFUSED_POOL = (nn.FractionalMaxPool2d, nn.FractionalMaxPool3d, nn.LPPool1d, nn.LPPool2d)



@contextlib.contextmanager
def _quiet_jit_warning():
    """Silence torch's own torch.jit deprecation warning on the first use of forward AD."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*",
                                category=DeprecationWarning)
        yield


@contextlib.contextmanager
def _dual_level():
    """Forward-AD level (with _quiet_jit_warning)."""
    import torch.autograd.forward_ad as fwAD

    with _quiet_jit_warning(), fwAD.dual_level():
        yield


def _load_forward_ad():
    """Run forward-mode AD once on two scalars, so that torch loads what it needs for it now.

    On first use, forward AD loads torch modules lazily: ``make_dual`` imports
    ``torch._decomp.decompositions_for_jvp``, and a dual tensor added to a tensor without a
    tangent (every ``Linear`` bias: its tangent is a ZeroTensor, whose result shape torch
    computes with its Python meta kernels) imports ``torch._dynamo`` and sympy on the first
    such call (torch 2.13: 1.6 s of CPU of the 2 s that the first ``ReLURankRegions.fit`` of
    a process spent more than the next ones). Nothing of sktopo needs them, but torch's
    forward AD does, so they are paid here, once, when :mod:`sktopo.nn.relu_rank` is
    imported: a fit then costs the same in any order. The operations run are the ones
    the engine runs, so a torch that needs less loads less. Never raises: a failure here only
    leaves the loading to the first fit.
    """
    import torch.autograd.forward_ad as fwAD

    try:
        with torch.no_grad(), _dual_level():
            zero = torch.zeros(1, dtype=torch.float64)
            fwAD.make_dual(zero, torch.ones(1, dtype=torch.float64)) + zero
    except Exception:  # pragma: no cover - a torch without forward AD, or inside a dual level
        pass


_load_forward_ad()


def max_pool_indices(module, z):
    """(n, outputs) int64 argmax index of every window of a max-pooling ``module`` on ``z``.

    The same torch kernel (``*_with_indices``) that forward-mode and backward differentiation
    of the module use, so ties in a window resolve to the same index as the Jacobian's.
    """
    F = nn.functional
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        pool = {nn.MaxPool1d: F.max_pool1d, nn.MaxPool2d: F.max_pool2d,
                nn.MaxPool3d: F.max_pool3d}[type(module)]
        _, idx = pool(z, module.kernel_size, module.stride, module.padding, module.dilation,
                      ceil_mode=module.ceil_mode, return_indices=True)
    else:
        pool = {nn.AdaptiveMaxPool1d: F.adaptive_max_pool1d,
                nn.AdaptiveMaxPool2d: F.adaptive_max_pool2d,
                nn.AdaptiveMaxPool3d: F.adaptive_max_pool3d}[type(module)]
        _, idx = pool(z, module.output_size, return_indices=True)
    return idx.reshape(z.shape[0], -1)


def modules_called(model, x):
    """Return the (name, module) pairs of ``model`` that run on ``x``, in first-call order."""
    called = {}

    def on_call(name, count, module, args, output):
        called.setdefault(name, module)

    with ModuleCalls(model.named_modules(), on_call), torch.no_grad():
        model(x)
    return list(called.items())


def check_piecewise_linear(called):
    """Raise ValueError for the first module that breaks piecewise linearity with ReLU regions.

    ``called`` is the output of :func:`modules_called`. Returns the names of the ReLU modules.
    """
    relus = []
    for name, module in called:
        label = f"module {name!r} ({type(module).__name__})" if name else (
            f"the model itself ({type(module).__name__})")
        if isinstance(module, _REFUSED_POOL):
            raise ValueError(
                f"{label} is a fractional max or LP pooling layer: its pieces are random or "
                "not linear, so ReLURankRegions cannot analyse it. Replace it by nn.MaxPool, "
                "nn.AvgPool (or a strided convolution) to analyse the network."
            )
        if isinstance(module, _NONLINEAR):
            raise ValueError(
                f"{label} is not a ReLU: the network is not piecewise linear with ReLU regions, "
                "so ReLURankRegions cannot analyse it. Only Linear/Conv/affine layers "
                "(BatchNorm in eval mode, AvgPool, Flatten, Dropout in eval mode) and nn.ReLU "
                "are supported."
            )
        if isinstance(module, nn.ReLU):
            relus.append(name)
    if not relus:
        raise ValueError(
            "No nn.ReLU module runs in this model's forward pass. ReLURankRegions finds ReLU "
            "layers through forward hooks on nn.ReLU modules; functional calls (torch.relu, "
            "F.relu) are invisible: replace them by nn.ReLU modules."
        )
    return relus


def max_pool_names(called):
    """Names of the tracked max-pooling modules among ``called`` (modules_called's output)."""
    return [name for name, module in called if isinstance(module, _MAXPOOL)]


class ReLUTracer:
    """Run a network recording (or freezing) the activation pattern of every ReLU call.

    Parameters
    ----------
    model : torch.nn.Module
        The network (already on the right device and dtype, in eval mode).
    relu_names : list of str
        Qualified names of the nn.ReLU modules to trace.

    Notes
    -----
    A ReLU module called several times in one forward pass (a shared ``self.relu``) gives one
    layer per call, named ``name``, ``name#2``, ``name#3``, ...
    """

    def __init__(self, model, relu_names, n_calls=None, pool_names=()):
        self.model = model
        modules = dict(model.named_modules())
        self.relus = [modules[name] for name in relu_names]
        self.relu_names = relu_names
        self.pools = [(name, modules[name]) for name in pool_names]
        # After patterns(): per ReLU call, the (n, windows) argmax indices of the max-pooling
        # calls that ran since the previous ReLU call (they select the region too).
        self.pool_indices = []
        # After patterns(): per ReLU call, (n,) bool, whether the call's input (the
        # pre-activation) has an inf or NaN entry: the forward pass overflowed there.
        self.nonfinite = []
        # With the number of ReLU calls known, the forward pass stops after the last one.
        self.n_calls = n_calls

    def _run(self, x, forward_for):
        """Run ``model(x)`` with each ReLU call's output replaced by
        ``forward_for(module_index, call_index, z)``, ``z`` the call's input.

        Forward hooks (``ModuleCalls``): a hook's return value replaces the output, and
        ``keep_input`` hands an in-place ReLU a copy, so ``z`` is the input as it came.
        """
        calls = []
        index_of = {name: index for index, name in enumerate(self.relu_names)}

        def on_call(name, count, module, args, output):
            calls.append(name)
            y = forward_for(index_of[name], len(calls) - 1, args[0])
            if len(calls) == self.n_calls:
                raise _StopForward
            return y

        output = None
        try:
            with ModuleCalls(zip(self.relu_names, self.relus), on_call, keep_input=True):
                output = self.model(x)
        except _StopForward:
            pass
        return output, calls

    def patterns(self, x):
        """Return (layer names, list of boolean (n, units) patterns, output) for a batch ``x``.

        ``output`` is None when the pass stopped after the last ReLU (``n_calls`` given).
        """
        patterns, pending, self.pool_indices, self.nonfinite = [], [], [], []

        def record(index, call, z):
            positive = z > 0
            patterns.append(positive.reshape(z.shape[0], -1))
            flat = z.reshape(z.shape[0], -1)  # two reductions: no temporary of z's size
            self.nonfinite.append(
                ~torch.isfinite(torch.maximum(flat.amax(dim=1), -flat.amin(dim=1)))
                if flat.shape[1] else torch.zeros(z.shape[0], dtype=torch.bool,
                                                  device=z.device))
            self.pool_indices.append(list(pending))
            pending.clear()
            return torch.where(positive, z, torch.zeros((), dtype=z.dtype, device=z.device))

        def record_pool(name, count, module, args, output):
            pending.append(max_pool_indices(module, args[0]))

        with torch.no_grad(), ModuleCalls(self.pools, record_pool):
            output, calls = self._run(x, record)
        return layer_names(calls), patterns, output

    def frozen(self, x, masks, on_output):
        """Run the network with ReLU call ``k`` replaced by multiplication with ``masks[k]``.

        ``masks[k]`` is a (n, units) 0/1 tensor matching the rows of ``x``. ``on_output(k, y)``
        is called with each ReLU call's (masked) output ``y``. With ``x`` a forward-mode dual
        tensor, the tangents of ``y`` are the linear part of the map input -> ReLU output.
        """
        def freeze(index, call, z):
            y = z * masks[call].reshape(z.shape).to(z.dtype)
            on_output(call, y)
            return y

        with torch.no_grad():
            output, calls = self._run(x, freeze)
        return output, calls


def layer_names(calls):
    """Name the k-th call of a ReLU module ``name#k`` (k >= 2), the first call ``name``."""
    seen, names = {}, []
    for name in calls:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return names
