"""Resolve a ``layers`` specification into named modules of a torch model.

A specification is a module name as ``model.named_modules()`` spells it, a glob pattern, a
module type (every module of that type, e.g. ``torch.nn.ReLU``), a module instance of the
model, or a list mixing these.

Glob patterns follow module paths the way file globs follow directories: ``*`` matches within
one dotted component (``"encoder.layer.*"`` is the six blocks of MiniLM, not their
submodules), ``**`` matches across dots (``"**.dense"``: every ``dense`` at any depth), ``?``
one character, ``[0-9]``/``[!0]`` a character class. Patterns are globs only, never regular
expressions: a malformed one (``"[z-a]"``) is a ValueError that names it.

A module that runs more than once per forward pass (a ``relu`` reused inside a ResNet block) has
one activation per call. Calls are named as ``ReLURankRegions`` names them: the first call by the
module's name, the k-th (k >= 2) ``name#k`` (``call_name``), one name per call everywhere. A
suffix selects calls: ``"layer1.0.relu#2"`` the second call only, ``"layer1.0.relu#1"`` the first
(named ``"layer1.0.relu"``), ``"layer1.0.relu#*"`` (or the bare name) every call.
"""

import difflib
import re
from collections.abc import Sequence

import torch

_GLOB_CHARS = set("*?[")
_MAX_LISTED = 25


def glob_regex(pattern):
    """Compile a dot-aware glob pattern (see the module docstring) to a regex."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**.", i):  # any prefix, including none
            out.append(r"(?:.*\.)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^.]*")
            i += 1
        elif char == "?":
            out.append("[^.]")
            i += 1
        elif char == "[" and pattern.find("]", i + 2) != -1:
            end = pattern.find("]", i + 2)
            body = pattern[i + 1:end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as exc:
        raise ValueError(
            f"Layer pattern {pattern!r} is not a valid glob pattern ({exc}). Patterns are globs, "
            "not regular expressions: '*' (within one dotted component), '**' (across dots), '?' "
            "(one character) and '[...]' (a character class such as [0-9], ranges low to high)."
        ) from None


def glob_filter(names, pattern):
    """The names matching ``pattern`` (dot-aware glob), in order."""
    regex = glob_regex(pattern)
    return [name for name in names if regex.match(name)]


def is_pattern(text):
    return bool(_GLOB_CHARS & set(text))


def split_call(spec):
    """``"name#2"`` -> ``("name", 2)``; ``"name#*"`` or ``"name"`` -> ``("name", None)`` (all)."""
    base, sep, suffix = spec.rpartition("#")
    if not sep or not base:
        return spec, None
    if suffix == "*":
        return base, None
    if suffix.isdigit() and int(suffix) >= 1:
        return base, int(suffix)
    raise ValueError(
        f"Layer {spec!r}: the part after '#' selects a call of the module and must be a "
        "positive integer ('#2': its second call in a forward pass) or '*' (every call).")


def call_name(name, call):
    """Name of the ``call``-th call (1-based) of module ``name``: ``name``, ``name#2``, ..."""
    return name if call == 1 else f"{name}#{call}"


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
    """Return the list of ``(name, module, call)`` selected by ``layers``.

    ``name`` is the module's name (as ``model.named_modules()`` spells it); ``call`` is the
    call asked for (k of ``"name#k"``, 1 for ``"name#1"``), or None for every call of the
    module. The output names of the calls are ``call_name(name, k)``.

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
        call = None
        if isinstance(spec, str) and spec not in named:
            spec, call = split_call(spec)
        if isinstance(spec, str):
            if spec in named:
                matches = [spec]
            elif is_pattern(spec):
                matches = glob_filter(names, spec)
                if not matches:
                    listed, _ = _format_names(names)
                    raise ValueError(
                        f"Layer pattern {spec!r} matches no module of "
                        f"{type(model).__name__} ('*' stays within one dotted component, '**' "
                        f"crosses dots). Valid names: {listed}."
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
            selected.setdefault((name, call), (name, named[name], call))
    return list(selected.values())
