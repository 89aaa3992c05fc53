"""``LayerEmbedder``: the layers of a torch model as point clouds."""

import io
import math
import re
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._base import FixedOutput, NoBoolNumbers
from .._device import resolve_device, torch_dtype, torch_threads
from .._distance import check_memory, format_bytes
from .._progress import progress
from ._capture import LayerHooks, floating_dtype, prepared_model
from ._inputs import Inputs
from ._layers import call_name, resolve_layers, split_call
from ._outputs import resolve_selectors, select_tensor
from ._reduce import Projections, infer_layout, points, pool, token_mask


def _torch_dtype(dtype):
    return torch_dtype(dtype, owner="LayerEmbedder")


_REDUCTIONS = ("auto", "mean", "flatten", "project")
_SEQUENCE_FIRST_HINT = ("(a sequence-first module: nn.Transformer*, nn.MultiheadAttention, RNNs "
                        "with batch_first=False give (T, B, ...))")


def _shares_storage(a, b):
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _batch_label(positions, start, size):
    """Name a batch in error messages by the positions of its inputs in ``X``."""
    if positions is None:  # a DataLoader read as it comes: no subsample
        return f"the batch of inputs {start} to {start + size - 1}"
    rows = positions[start:start + size]
    if rows[-1] - rows[0] == len(rows) - 1:
        return f"the batch of inputs {rows[0]} to {rows[-1]}"
    return (f"the batch of {len(rows)} inputs at positions {rows[0]} to {rows[-1]} of X "
            "(a max_inputs subsample)")


def _listed(values, limit=10):
    values = list(values)
    text = ", ".join(str(v) for v in values[:limit])
    return text + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def _check_reduce(reduce, n_components):
    """Validate ``reduce`` (str, list of str, or dict pattern -> str or list)."""
    def check(value, where):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items or not all(
                isinstance(item, str) and item in _REDUCTIONS for item in items):
            raise ValueError(
                f"LayerEmbedder: {where} must be one of {list(_REDUCTIONS)} or a non-empty list "
                f"of them; got {value!r}.")
        if len(set(items)) != len(items):
            raise ValueError(f"LayerEmbedder: {where} lists a reduction twice: {value!r}.")
        if "project" in items and n_components is None:
            raise ValueError(
                f"LayerEmbedder: {where} asks for 'project' (a random projection of the "
                "flattened activation), which needs n_components (its dimension).")

    if isinstance(reduce, dict):
        for key, value in reduce.items():
            check(value, f"reduce[{key!r}]")
    else:
        check(reduce, "reduce")


class _Collector:
    """Receives each layer's output from its hook, reduces it on the device, keeps it on CPU.

    Dataset unit with a known number of inputs: each batch is written straight into one
    preallocated ``(n_inputs, n_features)`` CPU tensor per (layer, reduction) (a single copy;
    no concatenation at the end). On the CPU the copy happens inside the hook, before any later
    in-place operation of the model can change the output; on an accelerator the reduced batch
    is kept there (a private copy if it is a view) and copied once the forward pass has been
    queued.

    The batch axis of each layer is learnt on the first batch: axis 0 when it is the only axis
    of the batch's length; the module's ``batch_first`` attribute when it has one; otherwise a
    probe (``needs_probe``) with fewer inputs shows which axis follows the batch.
    """

    def __init__(self, embedder, n_inputs, n_batches=None):
        self.unit = embedder.unit
        self.output = embedder.output
        self.layout = embedder.layout
        self.reduce = embedder.reduce
        self.n_components = embedder.n_components
        self.multi = _multi_reduce(embedder.reduce)
        self.project = Projections(embedder.n_components, embedder.projection_seed_)
        self.dtype = _torch_dtype(embedder.dtype)
        self.nonfinite = embedder.nonfinite
        self.n_inputs = n_inputs
        self.n_batches = n_batches
        self.memory_limit = embedder.memory_limit_
        # the whole output is estimated from the first batch, before any buffer is allocated
        self.sized = False
        self.stored_bytes = 0  # kept so far (inputs of unknown number: checked as they come)
        self.buffers = {}
        self.parts = {}
        self.bad = {}         # layer -> list of input counts (read order) with NaN/inf
        self.axes = {}        # layer -> batch axis
        self.needs_probe = {}  # layer -> output shape on the first batch
        self.probe_shapes = {}
        self.probing = False
        self._settings = {}
        self._pending = {}
        self._warned = set()
        self._batch_size = None
        self._mask = None
        self._offset = 0
        self._batch_label = None

    def settings(self, name):
        """(selector, layout, reductions) of one layer call, resolved once."""
        found = self._settings.get(name)
        if found is None:
            selector = resolve_selectors(self.output, [name], strict=False)[name]
            layout = resolve_selectors(self.layout, [name], strict=False)[name] \
                if isinstance(self.layout, dict) else self.layout
            layout = "auto" if layout is None else layout
            if layout not in ("auto", "tokens", "channels"):
                raise ValueError(f"LayerEmbedder: layout for layer {name!r} must be 'auto', "
                                 f"'tokens' or 'channels'; got {layout!r}.")
            if isinstance(self.reduce, dict):
                reduce = resolve_selectors(self.reduce, [name], strict=False)[name] or "auto"
            else:
                reduce = self.reduce
            reductions = [reduce] if isinstance(reduce, str) else list(reduce)
            found = self._settings[name] = (selector, layout, reductions)
        return found

    def start_batch(self, batch_size, mask, label):
        self._batch_size = batch_size
        self._mask = mask
        self._batch_label = label
        self._pending = {}

    def _batch_axis(self, name, module, tensor):
        axis = self.axes.get(name)
        size = self._batch_size
        if axis is None:
            batch_first = getattr(module, "batch_first", None)
            candidates = [i for i, n in enumerate(tensor.shape) if n == size]
            declared = (0 if batch_first else 1) if isinstance(batch_first, bool) else None
            if declared is not None and declared in candidates and tensor.ndim >= 3:
                # the module's word (an RNN's h_n, (layers, B, H), ignores it: probed below)
                axis = declared
            elif candidates == [0] or (size == 1 and tensor.ndim and tensor.shape[0] == 1):
                axis = 0
            elif size > 1 and candidates:
                # ambiguous: read it as batch-first for now; the probe decides
                self.needs_probe[name] = tuple(tensor.shape)
                axis = candidates[0]
            elif len(candidates) == 1:
                axis = candidates[0]
            else:
                axis = None
            if axis is not None:
                self.axes[name] = axis
        if axis is None or tensor.ndim <= axis or tensor.shape[axis] != size:
            raise ValueError(
                f"Layer {name!r}: its output has shape {tuple(tensor.shape)}, with no batch axis "
                f"of {size} inputs where the first batch had it. LayerEmbedder reads the batch "
                f"on the axis the module says (batch_first) or the one that follows the number "
                f"of inputs {_SEQUENCE_FIRST_HINT}; pick another layer, or pass output= a "
                "callable that returns a batch-first tensor.")
        return axis

    def on_output(self, name, module, output):
        selector, layout_choice, reductions = self.settings(name)
        tensor = select_tensor(output, selector, name)
        if self.probing:
            self.probe_shapes[name] = tuple(tensor.shape)
            return
        if tensor.ndim == 0:
            raise ValueError(f"Layer {name!r} gives a scalar, not one value per input; pick "
                             "another layer.")
        axis = self._batch_axis(name, module, tensor)
        if axis:
            tensor = tensor.movedim(axis, 0)
        layout = infer_layout(tensor, module, layout_choice)
        mask = token_mask(tensor, self._mask, name, self._warned) if layout == "tokens" else None
        # (no detach needed: the pass runs under no_grad)
        values = tensor if tensor.dtype == self.dtype else tensor.to(self.dtype)
        if self.unit == "dataset":
            project_all = self.n_components is not None and len(reductions) == 1
            for reduction in reductions:
                if reduction == "project":
                    reduced = self.project(pool(values, layout, "flatten", mask, name), name)
                else:
                    reduced = pool(values, layout, reduction, mask, name)
                    if project_all:
                        reduced = self.project(reduced, name)
                self._keep(name, reduction, reduced, tensor, None)
        else:
            self._keep(name, None, self.project(points(values, layout, name), name), tensor,
                       mask)

    def _keep(self, name, reduction, reduced, tensor, mask):
        key = (name, reduction)
        if reduced.device.type == "cpu":
            # Copied now, before a later in-place op (ReLU(inplace=True)) can change a view.
            into_buffer = self.unit == "dataset" and self.n_inputs is not None and self.sized
            self._store(key, reduced, mask,
                        copy=not into_buffer and _shares_storage(reduced, tensor))
        else:
            # A view of the module's output would change under later in-place ops before
            # the copy to the host, so copy it on the device now.
            if _shares_storage(reduced, tensor):
                reduced = reduced.clone()
            self._pending[key] = (reduced, mask)

    def end_batch(self):
        for key, (reduced, mask) in self._pending.items():
            self._store(key, reduced, mask, copy=False)
        self._pending = {}
        if not self.sized:
            self._size_output()
        elif self.n_inputs is None:
            self._check_running()
        self._offset += self._batch_size

    def _first_batch_bytes(self):
        """Bytes per (layer, reduction) that the first batch keeps."""
        kept = {}
        for key, parts in self.parts.items():
            if self.unit == "dataset":
                kept[key] = sum(part.numel() * part.element_size() for part in parts)
            else:
                kept[key] = sum(cloud.nbytes for cloud in parts)
        return kept

    def _label(self, key):
        name, reduction = key
        return name if reduction is None or not self.multi else f"{name} ({reduction})"

    def _size_output(self):
        """Estimate the whole output from the first batch; refuse it, or allocate the buffers.

        Dataset unit: ``n_inputs x features x itemsize`` per (layer, reduction), exact
        (a DataLoader of unknown length counts its batches as full, and twice: its parts
        are concatenated at the end). Sample unit: the first batch's clouds per input, times
        the number of inputs.
        """
        self.sized = True
        kept = self._first_batch_bytes()
        size = self._batch_size
        n_total = self.n_inputs
        estimated = ""
        if n_total is None and self.n_batches is not None:
            n_total = size * self.n_batches
            estimated = f"about {n_total} inputs ({self.n_batches} batches of up to {size})"
        if n_total is not None:
            copies = 2 if self.unit == "dataset" and self.n_inputs is None else 1
            per_key = {key: copies * math.ceil(value * n_total / size)
                       for key, value in kept.items()}
            self._refuse(per_key, sum(per_key.values()),
                         estimated or f"the {n_total} inputs", "estimated from the first batch")
        self.stored_bytes = sum(kept.values())
        if self.unit != "dataset" or self.n_inputs is None:
            return
        for key, parts in list(self.parts.items()):
            if not parts:
                del self.parts[key]
                continue
            first = torch.cat(parts) if len(parts) > 1 else parts[0]
            buffer = torch.empty((self.n_inputs, *first.shape[1:]), dtype=self.dtype)
            buffer[:first.shape[0]].copy_(first)
            self.buffers[key] = buffer
            del self.parts[key]

    def _check_running(self):
        """Inputs of unknown number: the clouds kept so far (twice for the final concatenation)."""
        copies = 2 if self.unit == "dataset" else 1
        self._refuse({}, copies * self.stored_bytes,
                     f"the {self._offset + self._batch_size} inputs read so far (a DataLoader "
                     f"of unknown length)", "and counting")

    def _refuse(self, per_key, total, inputs, how):
        if self.memory_limit is None or total <= self.memory_limit:
            return
        largest = sorted(per_key.items(), key=lambda item: -item[1])[:5]
        layers = "; ".join(f"layer {self._label(key)!r}: {format_bytes(value)}"
                           for key, value in largest)
        more = f"; and {len(per_key) - 5} more layers" if len(per_key) > 5 else ""
        detail = f" ({layers}{more})" if layers else ""
        if self.unit == "dataset":
            advice = ("Use reduce='mean' (one value per channel or feature) or n_components= "
                      "(a random projection) instead of reduce='flatten', select fewer layers, "
                      "extract a subset with max_inputs=, or raise memory_limit (None disables "
                      "this check).")
        else:
            advice = ("Select fewer layers, extract a subset with max_inputs=, or raise "
                      "memory_limit (None disables this check).")
        check_memory(
            total, self.memory_limit,
            f"LayerEmbedder: the {self.unit} clouds of {inputs}, {how}{detail},", advice)

    def discard_batch(self):
        """Forget what the current batch stored (it is run again with the right batch axes)."""
        self._pending = {}
        for key, parts in self.parts.items():
            if self.unit == "sample":
                del parts[self._offset:]
            elif key not in self.buffers:
                kept, total = [], 0
                for part in parts:
                    if total >= self._offset:
                        break
                    kept.append(part)
                    total += part.shape[0]
                self.parts[key] = kept
        for rows in self.bad.values():
            rows[:] = [row for row in rows if row < self._offset]

    def _nonfinite(self, key, values, mask=None, offset=None):
        """Record (or raise for) inputs whose values are not all finite.

        ``values`` is ``(B, ...)`` (``(B, P, F)`` with a ``(B, P)`` token ``mask`` in the sample
        unit). One sum tells in one cheap reduction that all is finite (a sum of finite values
        may still overflow: then the exact check finds nothing); the exact per-input check
        runs only when it is not.
        """
        if _all_finite(values):
            return
        finite = torch.isfinite(values)
        if mask is not None:
            finite = finite.all(-1) | ~mask
        finite = finite.reshape(finite.shape[0], -1).all(1)
        if bool(finite.all()):
            return
        offset = self._offset if offset is None else offset
        rows = (torch.nonzero(~finite).flatten() + offset).tolist()
        name = key[0] if key[1] is None or not self.multi else f"{key[0]} ({key[1]})"
        if self.nonfinite == "raise":
            raise ValueError(
                f"LayerEmbedder: layer {name!r} gives NaN or infinite values for "
                f"{len(rows)} input(s) of {self._batch_label}. Check those inputs (values "
                "beyond float32's range become inf when cast to a float32 model), or pass "
                "nonfinite='warn' to get the clouds anyway.")
        self.bad.setdefault(name, []).extend(rows)

    def _store(self, key, reduced, mask, copy):
        if self.unit == "dataset":
            buffer = self.buffers.get(key)
            if buffer is None and self.n_inputs is not None and self.sized:
                # a (layer, reduction) the first batch did not give: its buffer, checked alone
                row_bytes = math.prod(reduced.shape[1:]) * reduced.element_size()
                self._refuse({key: self.n_inputs * row_bytes}, self.n_inputs * row_bytes,
                             f"the {self.n_inputs} inputs", "estimated from its first batch")
                buffer = torch.empty((self.n_inputs, *reduced.shape[1:]), dtype=self.dtype)
                self.buffers[key] = buffer
            if buffer is None:
                stored = reduced.to("cpu", copy=copy)
                self.parts.setdefault(key, []).append(stored)
                if self.sized:
                    self.stored_bytes += stored.numel() * stored.element_size()
                if self.nonfinite == "warn" and self.n_inputs is not None:
                    return  # the first batch goes into the buffer, checked once in result()
            else:
                if reduced.shape[1:] != buffer.shape[1:]:
                    raise ValueError(
                        f"Layer {key[0]!r} gives points of shape {tuple(reduced.shape[1:])} for "
                        f"the inputs from {self._offset} on, but {tuple(buffer.shape[1:])} "
                        "before; all inputs must give the same number of features (use "
                        "reduce='mean').")
                stored = buffer[self._offset:self._offset + self._batch_size]
                stored.copy_(reduced)
                if self.nonfinite == "warn":
                    return  # the whole buffer is checked once, in result()
            self._nonfinite(key, stored)
            return
        # With a mask, the boolean indexing below copies each input's tokens anyway.
        stored = reduced.to("cpu", copy=copy and mask is None)
        keep = None if mask is None else mask.to("cpu")
        self._nonfinite(key, stored, keep)
        array = stored.numpy()
        parts = self.parts.setdefault(key, [])
        before = len(parts)
        if keep is None:
            parts.extend(array[i] for i in range(array.shape[0]))
        else:
            keep = keep.numpy()
            parts.extend(array[i][keep[i]] for i in range(array.shape[0]))
        if self.sized:
            self.stored_bytes += sum(cloud.nbytes for cloud in parts[before:])

    def result(self, names, index):
        if self.unit == "dataset":
            keys = [(name, reduction) for name in names
                    for reduction in self.settings(name)[2]]
            cells = np.empty(len(keys), dtype=object)
            for k, key in enumerate(keys):
                if key in self.buffers:
                    self._nonfinite(key, self.buffers[key], offset=0)
                    cells[k] = self.buffers[key].numpy()
                else:
                    cells[k] = torch.cat(self.parts[key]).numpy()
            if self.multi:
                labels = pd.MultiIndex.from_tuples(keys, names=["layer", "reduce"])
            else:
                labels = pd.Index([name for name, _ in keys], name="layer")
            return pd.Series(cells, index=labels, dtype=object)
        columns = {}
        for name in names:
            parts = self.parts[(name, None)]
            column = np.empty(len(parts), dtype=object)
            for i, cell in enumerate(parts):
                column[i] = cell
            columns[name] = column
        frame = pd.DataFrame(columns, index=index)
        frame.columns.name = "layer"
        return frame


def _multi_reduce(reduce):
    """Several reductions of one layer: the dataset unit's index is then (layer, reduce)."""
    if isinstance(reduce, dict):
        return any(not isinstance(value, str) for value in reduce.values())
    return not isinstance(reduce, str)


def _all_finite(values):
    """True if every value is finite: one sum, no boolean temporary (a sum of finite values
    that overflows says False; the caller then checks exactly)."""
    if values.numel() == 0 or not values.is_floating_point():
        return True
    return math.isfinite(float(values.sum()))


def _check_finite_inputs(batch, args, start, bad_inputs, cast_overflow):
    """Record inputs that are not finite once cast to the model's dtype (positional input)."""
    if not isinstance(args, torch.Tensor) or _all_finite(args):
        return
    finite = torch.isfinite(args).reshape(args.shape[0], -1).all(1)
    if bool(finite.all()):
        return
    rows = torch.nonzero(~finite).flatten().cpu()
    original = batch.args
    if original is not args and original.is_floating_point():
        was_finite = torch.isfinite(original[rows.to(original.device)]).reshape(
            len(rows), -1).all(1).cpu()
        cast_overflow.extend((rows[was_finite] + start).tolist())
        rows = rows[~was_finite]
    bad_inputs.extend((rows + start).tolist())


def _explain_forward_error(exc, args, kwargs, float_dtype, label):
    """A ValueError for torch's dtype and shape errors on the first layer, or None."""
    message = str(exc)
    tensors = [args] if isinstance(args, torch.Tensor) else [
        v for v in kwargs.values() if isinstance(v, torch.Tensor)]
    if not tensors:
        return None
    first = tensors[0]
    dtype_error = re.search(r"same dtype|expected scalar type|Input type .* and weight type|"
                            r"should be the same|not implemented for '(Long|Int|Bool|Byte)", message)
    if dtype_error and float_dtype is not None and not first.is_floating_point():
        kind = str(first.dtype).removeprefix("torch.")
        model_kind = str(float_dtype).removeprefix("torch.")
        return ValueError(
            f"LayerEmbedder: the inputs are {kind} but the model computes in {model_kind} "
            f"(torch: {message.splitlines()[0]}). Pass floating inputs, e.g. "
            f"X.astype('float32') (integer and bool inputs are passed as they are, for token "
            "ids); or, if X holds token ids, a model that starts with an embedding.")
    shapes = re.search(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and "
                       r"(\d+)x(\d+)\)", message)
    if shapes:
        got, wanted = int(shapes.group(2)), int(shapes.group(3))
        return ValueError(
            f"LayerEmbedder: the inputs of {label} have shape {tuple(first.shape)}, but a linear "
            f"layer of the model takes {wanted} features where it got {got} (torch: "
            f"{message.splitlines()[0]}). Pass inputs with the width the model expects, or "
            "check that X is the data this model was built for.")
    channels = re.search(r"expected input\[.*\] to have (\d+) channels, but got (\d+)", message)
    if channels:
        return ValueError(
            f"LayerEmbedder: the inputs of {label} have shape {tuple(first.shape)}, but a "
            f"convolution of the model expects {channels.group(1)} channels where it got "
            f"{channels.group(2)} (torch: {message.splitlines()[0]}). Pass inputs shaped "
            "(n_inputs, channels, height, width) as the model expects.")
    return None


class _SavedModule:
    """A torch module pickled through ``torch.save``.

    Plain pickling of tensors records storage addresses, so two copies of the same
    weights hash differently and ``Pipeline(memory=...)`` never finds its cached
    activations; ``torch.save`` writes the same bytes for the same weights.
    """

    def __init__(self, module):
        buffer = io.BytesIO()
        torch.save(module, buffer)
        self.data = buffer.getvalue()

    def load(self):
        return torch.load(io.BytesIO(self.data), weights_only=False)


class LayerEmbedder(FixedOutput, NoBoolNumbers, TransformerMixin, BaseEstimator,
                    auto_wrap_output_keys=None):
    """The activations of chosen layers of a torch model, as point clouds.

    ``transform(X)`` runs the model on the inputs ``X`` in eval mode without gradients, hooks
    the selected layers and returns a collection of clouds (see ``unit``) that
    ``PersistenceDiagram``, ``PHDimension`` and the other sktopo estimators consume.

    Parameters
    ----------
    model : torch.nn.Module
        The network. It is returned as is by ``get_params`` (``clone`` deep-copies it). Its
        train/eval mode, ``requires_grad`` flags and device are restored after each extraction.

    layers : str, type, torch.nn.Module or list of these
        The layers to read: a module name as ``model.named_modules()`` spells it
        (``"encoder.layer.3"``), a glob pattern, a module type (``torch.nn.ReLU``: every
        module of that type), a submodule of ``model``, or a list mixing these. In patterns
        ``*`` stays within one dotted component (``"encoder.layer.*"``: the blocks, not their
        submodules), ``**`` crosses dots (``"**.dense"``: every ``dense`` at any depth), ``?``
        is one character and ``[0-9]`` a class. Order: as given, and registration order inside
        a pattern or a type. Patterns are globs, never regular expressions. A module that runs
        more than once per forward pass (a ReLU reused in a ResNet block) gives one layer per
        call, named as ``ReLURankRegions`` names them: ``"name"`` for the first call,
        ``"name#2"``, ``"name#3"``, ... for the next, one name per call in every attribute and
        output; ``"name#2"`` in ``layers`` selects that call alone, ``"name#1"`` the first
        (named ``"name"``), ``"name"`` or ``"name#*"`` every call.

    unit : {"dataset", "sample"}, default="dataset"
        - ``"dataset"``: a ``pandas.Series`` indexed by layer name (index name ``"layer"``);
          each cloud is an array ``(n_inputs, n_features)``: one point per input, after
          ``reduce`` and ``n_components``.
        - ``"sample"``: a ``pandas.DataFrame`` with one row per input and one column per
          layer; each cell is that input's own cloud: its valid tokens ``(T_valid, D)`` for
          token outputs ``(B, T, D)`` (padding tokens are never points), its spatial positions
          ``(H * W, C)`` for feature maps ``(B, C, H, W)``. Layers with one vector per input
          are an error in this unit.

    reduce : {"auto", "mean", "flatten", "project"}, list of these, or dict, default="auto"
        How the dataset unit makes one point of each input's activation.
        ``"mean"``: global average pooling over every axis but the batch and the features
        (feature maps ``(B, C, *spatial)`` -> ``(B, C)``; tokens ``(B, T, D)`` -> mean over
        the valid tokens, respecting the attention mask). ``"flatten"``: all values of the
        activation (an error for padded token outputs). ``"project"``: the flattened activation
        through the random projection of ``n_components`` (never materialised in float64).
        ``"auto"``: study A's choice, feature maps and tokens mean-pooled, vectors kept as they
        are (today the same as ``"mean"``). Vectors ``(B, D)`` are never pooled.
        A list (``["mean", "flatten", "project"]``) computes several reductions in ONE forward
        pass; the output is then indexed by ``(layer, reduce)``. A dict maps layer names or
        glob patterns to a reduction or a list (layers it does not name use ``"auto"``).
        Ignored by the sample unit.

    n_components : int, default=None
        Dimension of a seeded Gaussian random projection (entries N(0, 1/n_components), fixed
        per layer by ``random_state``), applied batch by batch on the device so memory stays
        bounded. With one reduction per layer, its points are projected (``"mean"`` then a
        projection; ``"flatten"`` is then the same as ``"project"``); with several reductions
        per layer, only ``"project"`` is projected. In the sample unit it projects the features
        of every token or position.

    layout : {"auto", "tokens", "channels"} or dict, default="auto"
        How to read outputs with 3 or more axes: ``"tokens"`` is ``(B, T, D)``,
        ``"channels"`` is ``(B, C, *spatial)``. ``"auto"``: 4 or more axes are channels; 3
        axes are tokens unless the module is a 1-D convolution, pooling or normalisation
        layer. A dict maps layer names (or glob patterns) to a layout.

    output : int, str, tuple, callable or dict, default=None
        Which tensor of a module's output to use. None: the first tensor found; for a dict or
        a Hugging Face ``ModelOutput``, ``last_hidden_state`` first, then ``hidden_states``
        (its last element if a tuple), then the first tensor value; for a tuple or list, the
        first tensor in order, depth first (an LSTM's ``(out, (h, c))`` gives ``out``). An
        int indexes a tuple/list, a str is a key or attribute, a tuple is a path of these
        (``(1, 0)`` gives an LSTM's ``h``), a callable maps the output to a tensor. A dict
        maps layer names (or glob patterns) to such selectors, per layer.

    device : str or torch.device, default="auto"
        Where the forward pass runs: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
        ``"cuda"``, ``"cuda:1"``, ``"mps"``/``"xpu"`` where available, or a ``torch.device``;
        anything else (``"meta"``) is refused before the model is touched. The model is moved
        there for the extraction and moved back afterwards (exactly: a move between devices does
        not change values).

    batch_size : int, default=256
        Inputs per forward pass (for arrays, tensors, Datasets and texts; a DataLoader keeps
        its own batches). Results do not depend on it beyond floating-point rounding.

    max_inputs : int, default=None
        If set and smaller than the number of inputs, a random subset of this size (seeded by
        ``random_state``) is extracted; the kept inputs stay in their original order and their
        positions are in the output index (sample unit) or ``result.attrs["inputs"]``.

    tokenizer : callable, default=None
        A Hugging Face tokenizer, needed when ``X`` holds texts (a list or Series of str, or
        a Dataset/DataLoader of texts). Each batch is tokenized with padding and truncation
        and the attention mask is passed to the model; padding tokens are never points and
        never enter a mean.

    tokenizer_kwargs : dict, default=None
        Extra keyword arguments for the tokenizer (e.g. ``{"max_length": 128}``).

    dtype : {"float32", "float64"}, default="float32"
        dtype of the returned clouds (activations are cast before reduction).

    stop_early : bool, default=True
        End each forward pass after the last selected layer has run (by raising a private
        exception from its hook), so later modules are not computed. The first batch always
        runs in full: it learns which selected layer runs last and checks that each runs
        exactly once.

    nonfinite : {"warn", "raise"}, default="warn"
        What to do when a layer gives NaN or infinite values (a diverged model, or float64
        inputs beyond float32's range cast to inf): ``"warn"`` once per call, naming the layers
        and the inputs' positions in ``X``, and return the clouds; ``"raise"``: a ValueError at
        the first such batch.

    memory_limit : int, str or None, default="4GiB"
        Largest memory the returned clouds may take, in bytes or as a string such as
        ``"16GiB"``. The whole output (``n_inputs x features x itemsize`` per layer and
        reduction, all layers: with ``reduce="flatten"`` every value of each activation) is
        estimated from the first batch's shapes before the output is allocated; above the
        limit a :class:`MemoryError` names the largest layers and suggests
        ``reduce="mean"``, ``n_components``, fewer layers or ``max_inputs``. The sample unit
        extrapolates the first batch's clouds per input; a DataLoader of unknown length is
        checked as its batches come. ``None`` disables the check.

    n_threads : int, default=None
        torch intra-op threads during the forward passes (restored afterwards); None keeps
        torch's setting. Small models on a busy machine run fastest with 1.

    random_state : int, RandomState instance or None, default=None
        Seeds the input subsample (``max_inputs``) and the random projections.

    verbose : int, default=0
        If positive, a progress bar over batches.

    Attributes
    ----------
    layer_names_ : list of str
        One name per selected call, in output order: the output's index (or columns) exactly,
        ``"name"`` for a module's first call and ``"name#k"`` for its k-th. ``fit(X)`` runs the
        model on the first inputs of ``X`` to count how often each selected module runs;
        ``fit()`` without inputs does not run it, so a module selected for every call is
        listed by its first call only (its other calls, ``"name#2"``, ..., are found by
        ``fit(X)``, as ``fit_transform`` and a Pipeline do).

    layers_ : list of torch.nn.Module
        The module of each call, aligned with ``layer_names_`` (a module that runs twice
        appears twice).

    device_ : torch.device
        The device the forward passes run on.

    projection_seed_ : int or None
        Seed of the random projections (None without ``n_components``).

    memory_limit_ : int or None
        ``memory_limit`` in bytes.

    Notes
    -----
    Extraction is thread-safe: sktopo holds a lock per model while it hooks, moves and
    switches a model to eval mode, so calls from several threads over the same model run one at
    a time and every module's train/eval flag is restored.

    Examples
    --------
    >>> import torch
    >>> from sktopo import LayerEmbedder
    >>> from sktopo.nn.models import DigitsMLP
    >>> model = DigitsMLP(random_state=0)
    >>> X = torch.rand(100, 64)
    >>> clouds = LayerEmbedder(model, torch.nn.ReLU, device="cpu").fit_transform(X)
    >>> clouds.index.tolist()
    ['relu1', 'relu2', 'relu3']
    >>> clouds["relu2"].shape
    (100, 64)
    """

    _parameter_constraints = {
        "model": [torch.nn.Module],
        "layers": [str, type, tuple, list, torch.nn.Module],
        "unit": [StrOptions({"dataset", "sample"})],
        "reduce": [StrOptions(set(_REDUCTIONS)), list, tuple, dict],
        "n_components": [None, Interval(Integral, 1, None, closed="left")],
        "layout": [StrOptions({"auto", "tokens", "channels"}), dict],
        "output": [None, Integral, str, tuple, list, callable, dict],
        "device": [str, torch.device],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_inputs": [None, Interval(Integral, 1, None, closed="left")],
        "tokenizer": [None, callable],
        "tokenizer_kwargs": [None, dict],
        "dtype": "no_validation",
        "stop_early": ["boolean"],
        "nonfinite": [StrOptions({"warn", "raise"})],
        "memory_limit": [Interval(Real, 0, None, closed="neither"), str, None],
        "n_threads": [None, Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, model, layers, *, unit="dataset", reduce="auto", n_components=None,
                 layout="auto", output=None, device="auto", batch_size=256, max_inputs=None,
                 tokenizer=None, tokenizer_kwargs=None, dtype="float32", stop_early=True,
                 nonfinite="warn", memory_limit="4GiB", n_threads=None, random_state=None,
                 verbose=0):
        self.model = model
        self.layers = layers
        self.unit = unit
        self.reduce = reduce
        self.n_components = n_components
        self.layout = layout
        self.output = output
        self.device = device
        self.batch_size = batch_size
        self.max_inputs = max_inputs
        self.tokenizer = tokenizer
        self.tokenizer_kwargs = tokenizer_kwargs
        self.dtype = dtype
        self.stop_early = stop_early
        self.nonfinite = nonfinite
        self.memory_limit = memory_limit
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Check the parameters and resolve the layers into calls.

        Parameters
        ----------
        X : inputs as for :meth:`transform`, or None
            When given, one forward pass of its first inputs (at most 2, or a DataLoader's
            first batch) counts the calls of each selected module, so that ``layer_names_``
            names every call the output will hold. None runs nothing (see ``layer_names_``).
        y : ignored

        Returns
        -------
        self : LayerEmbedder
        """
        selected = self._resolve()
        if X is not None:
            self._set_calls(self._calls(X, selected))
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit and transform in one forward pass over X (its first batch counts the calls).

        Parameters
        ----------
        X : inputs as for :meth:`transform`
        y : ignored

        Returns
        -------
        clouds : pandas.Series or pandas.DataFrame
            As :meth:`transform`; ``layer_names_`` is its index (or columns).
        """
        self._resolve()
        result, calls = self._extract(X)
        self._set_calls(calls)
        return result

    def _resolve(self):
        """Check the parameters and resolve the selection; the model is not run. Returns the
        ``(name, module, call)`` triples of ``resolve_layers``."""
        from ..topology.persistence import parse_memory

        _torch_dtype(self.dtype)
        self.memory_limit_ = parse_memory(self.memory_limit)
        # the device first: nothing is done with a model for a device it cannot come back from
        self.device_ = torch.device(resolve_device(self.device, owner="LayerEmbedder"))
        _check_reduce(self.reduce, self.n_components)
        selected = resolve_layers(self.model, self.layers)
        self._selection = [(name, call) for name, _, call in selected]
        # not run yet: a module selected for every call is listed by its first call
        self._set_calls({call_name(name, call or 1): name for name, _, call in selected},
                        counted=False)
        self.projection_seed_ = None
        if self.n_components is not None:
            self.projection_seed_ = int(
                check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        return selected

    def _set_calls(self, calls, counted=True):
        """Name the calls ``calls`` ({output name: module name}) and check the per-layer
        parameters against them; until they are ``counted`` a key may name a later call
        ("name#2") of a module selected for every call."""
        named = dict(self.model.named_modules())
        self.layer_names_ = list(calls)
        self.layers_ = [named[name] for name in calls.values()]
        self._calls_counted = counted
        names = list(self.layer_names_)
        if not counted:
            every = {name for name, call in self._selection if call is None}
            for param in ("output", "layout", "reduce"):
                keys = getattr(self, param)
                for key in keys if isinstance(keys, dict) else ():
                    base, sep, _ = key.rpartition("#") if isinstance(key, str) else ("", "", "")
                    if sep and base in every:
                        names.append(key)
        resolve_selectors(self.output, names)
        for param in ("layout", "reduce"):
            if isinstance(getattr(self, param), dict):
                resolve_selectors(getattr(self, param), names, param)
        self._layouts()

    def _calls(self, X, selected):
        """{output name: module name} of the calls ``selected`` makes on X's first inputs."""
        with warnings.catch_warnings():  # e.g. a shuffling DataLoader: transform says so
            warnings.simplefilter("ignore")
            inputs = Inputs(X, batch_size=2, tokenizer=self.tokenizer,
                            tokenizer_kwargs=self.tokenizer_kwargs)
            batch = next(iter(inputs), None)
        if batch is None:
            raise ValueError("LayerEmbedder: X holds no inputs.")
        label = _batch_label(inputs.positions, 0, batch.size)
        with prepared_model(self.model, self.device_, owner="LayerEmbedder") as model, \
                LayerHooks(selected, lambda *_: None, stop_early=False) as hooks, \
                torch_threads(self.n_threads), torch.no_grad():
            args, kwargs = batch.to(self.device_, floating_dtype(model))
            self._forward(hooks, model, args, kwargs, label, floating_dtype(model))
            return {name: hooks.module_of(name) for name in hooks.names()}

    def _layouts(self):
        layouts = resolve_selectors(self.layout, self.layer_names_, "layout")
        for name, layout in layouts.items():
            if layout is None:
                layouts[name] = "auto"
            elif layout not in ("auto", "tokens", "channels"):
                raise ValueError(f"layout for layer {name!r} must be 'auto', 'tokens' or "
                                 f"'channels'; got {layout!r}.")
        return layouts

    def transform(self, X):
        """Run the model on ``X`` and return the selected layers' clouds.

        Parameters
        ----------
        X : array-like, torch.Tensor, dict of arrays, list of str, Dataset or DataLoader
            The inputs, first axis = inputs. Texts need ``tokenizer``; a dict (e.g. a
            tokenizer's output) is passed as keyword arguments; for a Dataset or DataLoader the
            first element of each item is the input. A DataLoader is read in its own order
            (a shuffling one with a warning: the rows then follow that order).

        Returns
        -------
        clouds : pandas.Series or pandas.DataFrame
            ``unit="dataset"``: Series indexed by layer; ``unit="sample"``: DataFrame with one
            row per input and one column per layer. ``attrs["inputs"]`` holds the positions
            of the extracted inputs (a ``range`` when all were used, else a tuple).
        """
        check_is_fitted(self, "layer_names_")
        result, calls = self._extract(X)
        if self._calls_counted and list(calls) != self.layer_names_:
            raise ValueError(
                f"LayerEmbedder: the forward pass made the calls {list(calls)} of the selected "
                f"layers, but the one in fit made {self.layer_names_}: the model's control flow "
                "depends on its input. Select layers the forward pass always calls the same "
                "number of times, or fit on these inputs.")
        return result

    def _extract(self, X):
        """(clouds, {output name: module name}) of one extraction over X."""
        named = dict(self.model.named_modules())
        selections = []
        for name, call in self._selection:
            if name not in named:
                raise ValueError(f"LayerEmbedder: layer {name!r} is no longer in the model (was "
                                 "it replaced after fit?); call fit again.")
            selections.append((name, named[name], call))
        inputs = Inputs(X, batch_size=self.batch_size, tokenizer=self.tokenizer,
                        tokenizer_kwargs=self.tokenizer_kwargs, max_inputs=self.max_inputs,
                        random_state=self.random_state)
        collector = _Collector(self, None if inputs.positions is None else len(inputs.positions),
                               inputs.n_batches)
        batches = progress(inputs, verbose=self.verbose, total=inputs.n_batches,
                           desc="LayerEmbedder", unit="batch")
        bad_inputs, cast_overflow = [], []
        with prepared_model(self.model, self.device_, owner="LayerEmbedder") as model, \
                LayerHooks(selections, collector.on_output, stop_early=self.stop_early) as hooks, \
                torch_threads(self.n_threads), torch.no_grad():
            # no_grad rather than inference_mode: tensors a model caches during the pass
            # (rotary tables, buffers) must stay usable for training afterwards.
            float_dtype = floating_dtype(model)
            start = 0
            for batch in batches:
                args, kwargs = batch.to(self.device_, float_dtype)
                _check_finite_inputs(batch, args, start, bad_inputs, cast_overflow)
                label = _batch_label(inputs.positions, start, batch.size)
                collector.start_batch(batch.size, batch.mask, label)
                self._forward(hooks, model, args, kwargs, label, float_dtype)
                if start == 0 and collector.needs_probe:
                    if self._probe(hooks, collector, model, batch, float_dtype, label):
                        collector.discard_batch()
                        collector.start_batch(batch.size, batch.mask, label)
                        self._forward(hooks, model, args, kwargs, label, float_dtype)
                collector.end_batch()
                start += batch.size
        names = hooks.names()
        result = collector.result(names, inputs.index)
        # Not an array: pandas compares attrs with == when concatenating.
        positions = inputs.positions
        result.attrs["inputs"] = (range(len(positions)) if positions[-1] == len(positions) - 1
                                  else tuple(positions.tolist()))
        if collector.bad:
            self._warn_nonfinite(collector.bad, positions, bad_inputs, cast_overflow)
        return result, {name: hooks.module_of(name) for name in names}

    def _forward(self, hooks, model, args, kwargs, label, float_dtype):
        """One forward pass through the hooks; torch's dtype and shape errors explained."""
        try:
            if args is None:
                hooks.run(lambda: model(**kwargs), label)
            else:
                hooks.run(lambda: model(args, **kwargs), label)
        except RuntimeError as exc:
            explained = _explain_forward_error(exc, args, kwargs, float_dtype, label)
            if explained is None:
                raise
            raise explained from exc

    def _probe(self, hooks, collector, model, batch, float_dtype, label):
        """Find the batch axis of ambiguous outputs with a smaller batch; True if a layer's
        batch axis is not the one its first-batch output was read with."""
        size = 1 if batch.size == 2 else 2
        probe = batch.head(size)
        args, kwargs = probe.to(self.device_, float_dtype)
        collector.probing = True
        try:
            self._forward(hooks, model, args, kwargs, f"a probe of {size} input(s) of {label}",
                          float_dtype)
        finally:
            collector.probing = False
        wrong = False
        for name, shape in collector.needs_probe.items():
            small = collector.probe_shapes.get(name, ())
            moved = [i for i, (n, m) in enumerate(zip(shape, small)) if n != m]
            if len(small) != len(shape) or len(moved) != 1 or small[moved[0]] != size:
                raise ValueError(
                    f"LayerEmbedder: cannot tell which axis of layer {name!r}'s output is the "
                    f"batch: its shape is {shape} for {batch.size} inputs and {small} for "
                    f"{size}. Pass output= a callable that returns a batch-first tensor "
                    f"{_SEQUENCE_FIRST_HINT}.")
            if collector.axes[name] != moved[0]:
                collector.axes[name] = moved[0]
                wrong = True
        collector.needs_probe = {}
        return wrong

    def _warn_nonfinite(self, bad, positions, bad_inputs, cast_overflow):
        lines = []
        for name, rows in bad.items():
            at = _listed(positions[sorted(set(rows))])
            lines.append(f"layer {name!r}: {len(set(rows))} input(s), at positions [{at}] of X")
        cause = ""
        if cast_overflow:
            cause = (f" Inputs at positions [{_listed(positions[cast_overflow])}] of X are finite "
                     "but exceed the range of the model's float dtype: the cast made them inf.")
        elif bad_inputs:
            cause = (f" X itself holds NaN or inf at positions "
                     f"[{_listed(positions[bad_inputs])}].")
        warnings.warn(
            "LayerEmbedder: NaN or infinite values in the clouds of " + "; ".join(lines) + "."
            + cause + " Downstream estimators refuse such clouds: remove those inputs, rescale "
            "X, or pass nonfinite='raise' to stop at the first one.", UserWarning, stacklevel=3)

    def __getstate__(self):
        state = dict(super().__getstate__())
        if isinstance(state.get("model"), torch.nn.Module):
            state["model"] = _SavedModule(state["model"])
        # the selected modules live inside the model: rebuilt from their names on load
        state.pop("layers_", None)
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model"), _SavedModule):
            state = {**state, "model": state["model"].load()}
        super().__setstate__(state)
        if "layer_names_" in state and isinstance(self.model, torch.nn.Module):
            named = dict(self.model.named_modules())
            self.layers_ = [named[name] if name in named else named[split_call(name)[0]]
                            for name in self.layer_names_]
            if "_selection" not in state:  # pickled before the selection was kept
                self._selection = [split_call(name) if name not in named else (name, None)
                                   for name in self.layer_names_]
                self._calls_counted = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.string = True
        tags.input_tags.dict = True
        tags.target_tags.required = False
        return tags
