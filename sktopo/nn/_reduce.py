"""Turn one batch of a layer's activations into points, on the device, before the CPU copy.

Layouts of an activation tensor ``t`` whose first axis is the batch:

- ``"vector"``: ``(B,)`` or ``(B, D)``, one point per input;
- ``"tokens"``: ``(B, T, D)``, a sequence of T tokens of dimension D (Transformers, RNNs with
  ``batch_first=True``); padding tokens (attention mask 0) are never points;
- ``"channels"``: ``(B, C, *spatial)``, feature maps (conv layers), C features per position.

``layout="auto"`` picks vector for 1-D/2-D outputs, channels for 4-D and more, and for 3-D
outputs tokens unless the module is a 1-D convolution, pooling or normalisation layer (whose
``(B, C, L)`` outputs are channel maps).
"""

import math
import warnings
import zlib

import numpy as np
import torch

_CHANNEL_MODULES_1D = (
    torch.nn.Conv1d, torch.nn.ConvTranspose1d, torch.nn.MaxPool1d, torch.nn.AvgPool1d,
    torch.nn.AdaptiveAvgPool1d, torch.nn.AdaptiveMaxPool1d, torch.nn.LPPool1d,
    torch.nn.BatchNorm1d, torch.nn.InstanceNorm1d,
)


def infer_layout(tensor, module, layout):
    """Layout of ``tensor`` (output of ``module``) given the user's ``layout`` choice."""
    if tensor.ndim <= 2:
        return "vector"
    if layout != "auto":
        return layout
    if tensor.ndim == 3 and not isinstance(module, _CHANNEL_MODULES_1D):
        return "tokens"
    return "channels"


def token_mask(tensor, mask, layer, warned):
    """The (B, T) bool mask that fits a tokens output, or None (with a warning once)."""
    if mask is None:
        return None
    if tuple(mask.shape) == tuple(tensor.shape[:2]):
        return mask.to(tensor.device)
    if layer not in warned:
        warned.add(layer)
        warnings.warn(
            f"Layer {layer!r}: its token axis has length {tensor.shape[1]} but the attention "
            f"mask has {mask.shape[1]} positions, so the mask cannot be applied; all its "
            "positions are used as tokens.", UserWarning, stacklevel=4)
    return None


def pool(tensor, layout, reduce, mask, layer):
    """Dataset unit: one row per input, ``(B, F)``."""
    if layout == "vector":
        return tensor.reshape(tensor.shape[0], -1)
    if reduce == "flatten":
        if layout == "tokens" and mask is not None:
            raise ValueError(
                f"Layer {layer!r}: reduce='flatten' on token outputs with padding would make "
                "padding tokens part of each point (and the length depends on the batch). Use "
                "reduce='mean' (mean over valid tokens) or unit='sample' (one cloud of tokens "
                "per input).")
        return tensor.reshape(tensor.shape[0], -1)
    if layout == "channels":
        return tensor.flatten(2).mean(2)
    if mask is None:
        return tensor.mean(1)
    weights = mask.to(tensor.dtype).unsqueeze(-1)
    return (tensor * weights).sum(1) / weights.sum(1).clamp(min=1)


def points(tensor, layout, layer):
    """Sample unit: ``(B, P, F)``: tokens, or spatial positions of a channel map."""
    if layout == "vector":
        raise ValueError(
            f"Layer {layer!r} gives one vector per input (shape {tuple(tensor.shape)}), so "
            "unit='sample' would make clouds of a single point. Use unit='dataset' for this "
            "layer (one point per input), or select token or feature-map layers.")
    n_points = math.prod(tensor.shape[2:]) if layout == "channels" else tensor.shape[1]
    if n_points == 1:
        what = "spatial position" if layout == "channels" else "token"
        raise ValueError(
            f"Layer {layer!r} gives one {what} per input (shape {tuple(tensor.shape)}, e.g. "
            "after global pooling), so unit='sample' would make clouds of a single point, which "
            "have no topology. Use unit='dataset' for this layer (one point per input), or "
            "select a layer before the pooling.")
    if layout == "channels":
        # contiguous: each input's cloud is then a C-ordered (positions, channels) array
        return tensor.flatten(2).transpose(1, 2).contiguous()
    return tensor


class Projections:
    """Seeded Gaussian random projections, one fixed matrix per layer.

    The matrix of a layer depends only on (seed, layer name, n_features), so it is the same on
    every batch, every ``transform`` call and whatever other layers are selected. Entries are
    N(0, 1/k): squared distances are preserved in expectation (Johnson-Lindenstrauss).
    """

    def __init__(self, n_components, seed):
        self.n_components = n_components
        self.seed = seed
        self._cache = {}

    def __call__(self, tensor, layer):
        if self.n_components is None:
            return tensor
        n_features = tensor.shape[-1]
        key = (layer, n_features, tensor.dtype, tensor.device)
        matrix = self._cache.get(key)
        if matrix is None:
            if self.n_components >= n_features:
                warnings.warn(
                    f"Layer {layer!r} has {n_features} features, not more than "
                    f"n_components={self.n_components}: the random projection does not "
                    "reduce it (it is applied anyway, so all layers are treated alike).",
                    UserWarning, stacklevel=4)
            rng = np.random.default_rng([self.seed, zlib.crc32(layer.encode())])
            values = rng.standard_normal((n_features, self.n_components))
            values /= math.sqrt(self.n_components)
            matrix = torch.from_numpy(values).to(device=tensor.device, dtype=tensor.dtype)
            self._cache[key] = matrix
        return tensor @ matrix
