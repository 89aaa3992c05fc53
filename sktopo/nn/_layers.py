"""Resolve a ``layers`` specification into named modules of a torch model.

A specification is a module name as ``model.named_modules()`` spells it, a glob pattern
(``fnmatch`` syntax, e.g. ``"encoder.layer.*.output"``), a module type (every module of that
type, e.g. ``torch.nn.ReLU``), a module instance of the model, or a list mixing these.
"""

import difflib
import fnmatch
from collections.abc import Sequence

import torch

_GLOB_CHARS = set("*?[")
_MAX_LISTED = 25


def _is_type_spec(spec):
    if isinstance(spec, type):
        return issubclass(spec, torch.nn.Module)
    return isinstance(spec, tuple) and len(spec) > 0 and all(_is_type_spec(s) for s in spec)


def _format_names(names, query=None):
    """List module names for an error message, truncated but saying how many."""
    shown = [repr(n) for n in names[:_MAX_LISTED]]
    text = ", ".join(shown)
    if len(names) > _MAX_LISTED:
        text += f", ... ({len(names) - _MAX_LISTED} more, {len(names)} in all)"
    hint = ""
    if query is not None:
        close = difflib.get_close_matches(query, names, n=3, cutoff=0.6)
        if close:
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?"
    return text, hint


def resolve_layers(model, layers):
    """Return the list of ``(name, module)`` pairs selected by ``layers``.

    Order: specifications in the order given; inside a glob pattern or a type, the order of
    ``model.named_modules()`` (registration order). Duplicates are kept once, at their first
    place. The root module (name ``""``) is only selected by the exact name ``""``.

    Raises
    ------
    ValueError
        When a name or pattern matches nothing (the message lists valid names) or when the
        selection is empty.
    TypeError
        When an item of ``layers`` has an unsupported type.
    """
    named = dict(model.named_modules())
    names = [n for n in named if n != ""]
    by_id = {id(m): n for n, m in reversed(list(named.items()))}  # first name wins

    if isinstance(layers, (str, torch.nn.Module)) or _is_type_spec(layers):
        specs = [layers]
    elif isinstance(layers, Sequence):
        specs = list(layers)
    else:
        raise TypeError(
            "layers must be a module name, a glob pattern, a torch.nn.Module type, a module "
            f"of the model, or a list of these; got {type(layers).__name__}."
        )
    if not specs:
        raise ValueError("layers is empty: select at least one layer.")

    selected = {}
    for spec in specs:
        if isinstance(spec, str):
            if spec in named:
                matches = [spec]
            elif _GLOB_CHARS & set(spec):
                matches = fnmatch.filter(names, spec)
                if not matches:
                    listed, _ = _format_names(names)
                    raise ValueError(
                        f"Layer pattern {spec!r} matches no module of "
                        f"{type(model).__name__}. Valid names: {listed}."
                    )
            else:
                listed, hint = _format_names(names, spec)
                raise ValueError(
                    f"Unknown layer {spec!r} in {type(model).__name__}.{hint} Valid names "
                    f"(as model.named_modules() spells them): {listed}."
                )
        elif _is_type_spec(spec):
            matches = [n for n in names if isinstance(named[n], spec)]
            if not matches:
                types = sorted({type(named[n]).__name__ for n in names})
                raise ValueError(
                    f"No module of type {getattr(spec, '__name__', spec)} in "
                    f"{type(model).__name__}; its module types are: {', '.join(types)}."
                )
        elif isinstance(spec, torch.nn.Module):
            if id(spec) not in by_id:
                raise ValueError(
                    f"The module {type(spec).__name__} passed in layers is not a submodule "
                    f"of {type(model).__name__}."
                )
            matches = [by_id[id(spec)]]
        else:
            raise TypeError(
                "Each item of layers must be a module name, a glob pattern, a torch.nn.Module "
                f"type or a module of the model; got {spec!r} ({type(spec).__name__})."
            )
        for name in matches:
            selected.setdefault(name, named[name])
    return list(selected.items())
