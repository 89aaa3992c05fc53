"""Random ReLU networks for rank experiments (study B of the research notes).

Three families of ``nn.Sequential`` MLPs ``Linear, ReLU, Linear, ReLU, ..., [Linear]``:

- :func:`random_relu_mlp`: i.i.d. weights, PyTorch's default initialisation or N(mean, std);
- :func:`sign_flipped_mlp`: all-positive weights with k rows (units) per layer sign-flipped;
  the minimum rank over inputs then follows about ``min(k, width - k, input_dim)``;
- :func:`dale_mlp`: Dale's principle: every presynaptic unit (a column of the weight matrix) is
  either excitatory (non-negative outgoing weights) or inhibitory (non-positive, scaled by
  ``inhibition``); meant for non-negative inputs.

All weights are drawn with numpy from ``random_state`` (same seed, same network, on any
machine), then stored in ``dtype``. The hidden layers' ReLUs are ``nn.ReLU`` modules, as
:class:`sktopo.ReLURankRegions` needs.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["random_relu_mlp", "sign_flipped_mlp", "dale_mlp"]


def random_relu_mlp(input_dim, widths, output_dim=None, *, weight_mean=None, weight_std=None,
                    bias=True, bias_std=None, dtype="float32", random_state=None):
    """A ReLU MLP with i.i.d. random weights.

    Parameters
    ----------
    input_dim : int
        Input dimension.
    widths : int or list of int
        Width of each hidden (ReLU) layer; an int means one hidden layer.
    output_dim : int or None, default=None
        Width of a final Linear layer without ReLU; None ends with the last ReLU.
    weight_mean, weight_std : float or None, default=None
        When both are None, weights follow PyTorch's default ``nn.Linear`` initialisation,
        U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Otherwise weights are N(weight_mean, weight_std),
        a missing mean being 0 and a missing std ``1/sqrt(3 fan_in)`` (the default init's).
    bias : bool, default=True
        Whether the layers have biases.
    bias_std : float or None, default=None
        Biases N(0, bias_std); None gives PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    dtype : {"float32", "float64"} or torch.dtype, default="float32"
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    model : torch.nn.Sequential
        In eval mode.

    Examples
    --------
    >>> from sktopo.nn.random_networks import random_relu_mlp
    >>> random_relu_mlp(2, [5, 5], 1, random_state=0)
    Sequential(
      (0): Linear(in_features=2, out_features=5, bias=True)
      (1): ReLU()
      (2): Linear(in_features=5, out_features=5, bias=True)
      (3): ReLU()
      (4): Linear(in_features=5, out_features=1, bias=True)
    )
    """
    rng = check_random_state(random_state)
    sizes = _sizes(input_dim, widths)
    _check_weight_std(weight_std)

    def weight(fan_in, fan_out):
        if weight_mean is None and weight_std is None:
            return _default_init(rng, fan_in, fan_out)
        mean = 0.0 if weight_mean is None else float(weight_mean)
        std = 1.0 / np.sqrt(3 * fan_in) if weight_std is None else float(weight_std)
        return rng.normal(mean, std, size=(fan_out, fan_in))

    weights = [weight(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    return _build(weights, sizes, output_dim, bias, bias_std, dtype, rng)


def sign_flipped_mlp(input_dim, widths, n_flipped, output_dim=None, *, weight_std=None,
                     bias=True, bias_std=None, dtype="float32", random_state=None):
    """A ReLU MLP with all-positive weights except ``n_flipped`` negated rows per layer.

    Each hidden layer's weight matrix starts with absolute values of the default
    initialisation (or of N(0, weight_std)); the rows of ``n_flipped`` randomly chosen units
    are then multiplied by -1. Study B: the minimum rank follows ``min(k, width - k, d)``.

    Parameters
    ----------
    input_dim : int
    widths : int or list of int
        Hidden widths.
    n_flipped : int or list of int
        Rows flipped in each hidden layer (one number for all layers, or one per layer); each
        must lie in ``[0, width]``.
    output_dim : int or None, default=None
        Width of a final (unconstrained, default-initialised) Linear layer.
    weight_std, bias, bias_std, dtype, random_state
        As in :func:`random_relu_mlp`.

    Returns
    -------
    model : torch.nn.Sequential
    """
    return _signed_mlp(input_dim, widths, n_flipped, output_dim, name="n_flipped", axis=0,
                       factor=lambda fan_in, k: 1.0, weight_std=weight_std, bias=bias,
                       bias_std=bias_std, dtype=dtype, random_state=random_state)


def dale_mlp(input_dim, widths, n_inhibitory, output_dim=None, *, inhibition=None,
             weight_std=None, bias=True, bias_std=None, dtype="float32", random_state=None):
    """A ReLU MLP obeying Dale's principle: each presynaptic unit has one sign.

    Weights are absolute values of the default initialisation (or of N(0, weight_std)); in
    every hidden layer, ``n_inhibitory`` randomly chosen *columns* (inputs of the first layer,
    units of the previous layer after that) are multiplied by ``-inhibition``. Feed it
    non-negative inputs (e.g. uniform in [0, 1]^d): with all-positive inputs and weights, ReLU
    units stay on together and the rank collapses unless excitation and inhibition balance.

    Parameters
    ----------
    input_dim : int
    widths : int or list of int
    n_inhibitory : int or list of int
        Inhibitory columns per hidden layer, in ``[0, fan_in]``.
    output_dim : int or None, default=None
    inhibition : float or None, default=None
        Factor of the inhibitory columns. None balances excitation and inhibition in
        expectation: ``(fan_in - k) / k`` (1 when k is 0).
    weight_std, bias, bias_std, dtype, random_state
        As in :func:`random_relu_mlp`.

    Returns
    -------
    model : torch.nn.Sequential
    """
    if inhibition is not None and inhibition < 0:
        raise ValueError(f"inhibition must be non-negative (it multiplies -|w|), got "
                         f"{inhibition}.")

    def factor(fan_in, k):
        if inhibition is not None:
            return inhibition
        return (fan_in - k) / k if k else 1.0

    return _signed_mlp(input_dim, widths, n_inhibitory, output_dim, name="n_inhibitory",
                       axis=1, factor=factor, weight_std=weight_std, bias=bias,
                       bias_std=bias_std, dtype=dtype, random_state=random_state)


def _signed_mlp(input_dim, widths, counts, output_dim, *, name, axis, factor, weight_std, bias,
                bias_std, dtype, random_state):
    """The one generator behind sign_flipped_mlp (rows, axis=0) and dale_mlp (columns, axis=1).

    Per hidden layer: |w| of the default initialisation (or of N(0, weight_std)), then ``k``
    randomly chosen rows or columns multiplied by ``-factor(fan_in, k)``.
    """
    rng = check_random_state(random_state)
    sizes = _sizes(input_dim, widths)
    _check_weight_std(weight_std)
    per_layer = _per_layer(counts, len(sizes) - 1, name)
    weights = []
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        k, size = per_layer[layer], (fan_out, fan_in)[axis]
        if not 0 <= k <= size:
            what = f"of width {fan_out}" if axis == 0 else f"with {fan_in} inputs"
            raise ValueError(f"{name}={k} for hidden layer {layer} {what}: it must lie in "
                             f"[0, {size}].")
        w = _abs_weights(rng, fan_in, fan_out, weight_std)
        chosen = rng.choice(size, size=k, replace=False)
        if axis == 0:
            w[chosen] *= -factor(fan_in, k)
        else:
            w[:, chosen] *= -factor(fan_in, k)
        weights.append(w)
    return _build(weights, sizes, output_dim, bias, bias_std, dtype, rng)


def _default_init(rng, fan_in, fan_out):
    # nn.Linear's default: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=(fan_out, fan_in))


def _abs_weights(rng, fan_in, fan_out, weight_std):
    """|w| of the default initialisation, or of N(0, weight_std)."""
    return np.abs(_default_init(rng, fan_in, fan_out) if weight_std is None
                  else rng.normal(0.0, weight_std, size=(fan_out, fan_in)))


def _check_weight_std(weight_std):
    if weight_std is not None and (not isinstance(weight_std, Real) or weight_std < 0):
        raise ValueError(f"weight_std must be non-negative or None, got {weight_std!r}.")


def _sizes(input_dim, widths):
    if isinstance(widths, Integral):
        widths = [widths]
    sizes = [input_dim, *widths]
    for size in sizes:
        if not isinstance(size, Integral) or size < 1:
            raise ValueError(
                f"input_dim and widths must be positive integers, got input_dim={input_dim!r}, "
                f"widths={widths!r}.")
    return [int(s) for s in sizes]


def _per_layer(value, n_layers, name):
    values = [value] * n_layers if isinstance(value, Integral) else list(value)
    if len(values) != n_layers or not all(isinstance(v, Integral) for v in values):
        raise ValueError(
            f"{name} must be an int or a list of {n_layers} ints (one per hidden layer), got "
            f"{value!r}.")
    return [int(v) for v in values]


def _build(weights, sizes, output_dim, bias, bias_std, dtype, rng):
    import torch
    from torch import nn

    from .._device import torch_dtype

    dtype = torch_dtype(dtype)
    if bias_std is not None and (not isinstance(bias_std, Real) or bias_std < 0):
        raise ValueError(f"bias_std must be a non-negative number or None, got {bias_std!r}.")
    layers = []

    def linear(w):
        fan_out, fan_in = w.shape
        layer = nn.Linear(fan_in, fan_out, bias=bias, dtype=dtype)
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(w, dtype=dtype))
            if bias:
                b = (rng.uniform(-1, 1, size=fan_out) / np.sqrt(fan_in) if bias_std is None
                     else rng.normal(0.0, bias_std, size=fan_out))
                layer.bias.copy_(torch.as_tensor(b, dtype=dtype))
        return layer

    for w in weights:
        layers += [linear(w), nn.ReLU()]
    if output_dim is not None:
        if not isinstance(output_dim, Integral) or output_dim < 1:
            raise ValueError(f"output_dim must be a positive integer or None, got "
                             f"{output_dim!r}.")
        layers.append(linear(_default_init(rng, sizes[-1], int(output_dim))))
    return nn.Sequential(*layers).eval()
