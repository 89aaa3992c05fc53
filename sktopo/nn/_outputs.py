"""Pick the activation tensor out of whatever a module returns.

Default rule (documented in ``LayerEmbedder``):

- a tensor is used as it is;
- a mapping (dict, Hugging Face ``ModelOutput``): the value of ``"last_hidden_state"`` if
  present, else of ``"hidden_states"`` (its last element when it is a tuple of per-layer
  states), else the first tensor found among the values, in order;
- a tuple or list: the first tensor found, searching depth first in order (so an LSTM's
  ``(out, (h, c))`` gives ``out`` and ``nn.MultiheadAttention``'s ``(out, weights)`` gives
  ``out``).

A selector overrides the rule: an int (index into a tuple or list), a str (key of a mapping or
attribute name), a tuple of these (a path, e.g. ``(1, 0)`` for an LSTM's ``h``), or a callable
``f(output) -> tensor``.
"""

from collections.abc import Mapping

import torch

_PREFERRED_KEYS = ("last_hidden_state", "hidden_states")


def describe(obj, depth=0):
    """Short text of an output's structure for error messages, e.g. ``tuple(Tensor(2, 3), None)``."""
    if isinstance(obj, torch.Tensor):
        return f"Tensor{tuple(obj.shape)}"
    if depth > 2:
        return "..."
    if isinstance(obj, Mapping):
        items = ", ".join(f"{k!r}: {describe(v, depth + 1)}" for k, v in list(obj.items())[:6])
        return f"{type(obj).__name__}({items})"
    if isinstance(obj, (tuple, list)):
        items = ", ".join(describe(v, depth + 1) for v in obj[:6])
        more = ", ..." if len(obj) > 6 else ""
        return f"{type(obj).__name__}({items}{more})"
    return type(obj).__name__


def _first_tensor(obj):
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, Mapping):
        for key in _PREFERRED_KEYS:
            value = obj.get(key)
            if isinstance(value, torch.Tensor):
                return value
            if isinstance(value, (tuple, list)) and value and isinstance(value[-1], torch.Tensor):
                return value[-1]
        values = obj.values()
    elif isinstance(obj, (tuple, list)):
        values = obj
    else:
        return None
    for value in values:
        found = _first_tensor(value)
        if found is not None:
            return found
    return None


def _apply_step(obj, step):
    if isinstance(step, int) and not isinstance(step, bool):
        if isinstance(obj, Mapping):
            return list(obj.values())[step]
        return obj[step]
    if isinstance(step, str):
        if isinstance(obj, Mapping):
            return obj[step]
        return getattr(obj, step)
    raise TypeError(f"an output selector step must be an int or a str, got {step!r}")


def select_tensor(output, selector, layer):
    """Return the tensor chosen by ``selector`` (None: the default rule) from ``output``.

    Raises a TypeError naming ``layer`` and the output's structure when nothing fits.
    """
    try:
        if selector is None:
            tensor = _first_tensor(output)
        elif callable(selector):
            tensor = selector(output)
        else:
            tensor = output
            for step in selector if isinstance(selector, (tuple, list)) else (selector,):
                tensor = _apply_step(tensor, step)
    except (IndexError, KeyError, AttributeError, TypeError) as exc:
        raise TypeError(
            f"Layer {layer!r}: output selector {selector!r} does not fit its output "
            f"{describe(output)} ({type(exc).__name__}: {exc})."
        ) from exc
    if not isinstance(tensor, torch.Tensor):
        what = "the default rule found no tensor" if selector is None else (
            f"selector {selector!r} gave {type(tensor).__name__}, not a tensor")
        raise TypeError(
            f"Layer {layer!r}: {what} in its output {describe(output)}. Pass output= (an "
            "index, a key, a path tuple, a callable, or a dict layer -> selector) to pick one."
        )
    return tensor


def resolve_selectors(output, layer_names, param="output", *, strict=True):
    """Map each layer name to its selector (None = default rule) from the ``output`` param.

    A key of a dict ``output`` applies to a layer when it is the layer's name, its module's name
    (``"relu"`` covers the calls ``"relu"``, ``"relu#2"``, ...) or a glob pattern matching either;
    ``"relu#1"`` is the first call, whose name is ``"relu"``.
    Later keys override earlier ones. ``strict``: a key that matches no layer is an error.
    """
    from ._layers import glob_regex, is_pattern

    if not isinstance(output, Mapping):
        return dict.fromkeys(layer_names, output)
    bases = {name: name.rpartition("#")[0] or name for name in layer_names}
    selectors = dict.fromkeys(layer_names)
    for key, selector in output.items():
        if isinstance(key, str) and is_pattern(key):
            regex = glob_regex(key)
            matches = [n for n in layer_names if regex.match(n) or regex.match(bases[n])]
        else:
            first = key[:-2] if isinstance(key, str) and key.endswith("#1") else None
            matches = [n for n in layer_names if key in (n, bases[n]) or n == first]
        if not matches and strict:
            raise ValueError(
                f"LayerEmbedder: {param} has an entry for {key!r}, which is not one of the "
                f"selected layers "
                f"{list(layer_names)}."
            )
        for name in matches:
            selectors[name] = selector
    return selectors
