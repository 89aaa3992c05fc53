"""``LayerEmbedder``: the layers of a torch model as point clouds."""

import io
from numbers import Integral

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._device import resolve_device, torch_dtype
from ._capture import LayerHooks, prepared_model
from ._inputs import Inputs
from ._layers import resolve_layers
from ._outputs import resolve_selectors, select_tensor
from ._reduce import Projections, infer_layout, points, pool, token_mask


def _torch_dtype(dtype):
    return torch_dtype(dtype, owner="LayerEmbedder")


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


class _Collector:
    """Receives each layer's output from its hook, reduces it on the device, keeps it on CPU.

    Dataset unit with a known number of inputs: each batch is written straight into one
    preallocated ``(n_inputs, n_features)`` CPU tensor (a single copy; no concatenation at the
    end). On the CPU the copy happens inside the hook, before any later in-place operation of
    the model can change the output; on an accelerator the reduced batch is kept there (a
    private copy if it is a view) and copied once the forward pass has been queued.
    """

    def __init__(self, unit, reduce, selectors, layouts, projections, dtype, n_inputs):
        self.unit = unit
        self.reduce = reduce
        self.selectors = selectors
        self.layouts = layouts
        self.project = projections
        self.dtype = dtype
        self.n_inputs = n_inputs
        self.buffers = {}
        self.parts = {name: [] for name in selectors}
        self._pending = {}
        self._warned = set()
        self._batch_size = None
        self._mask = None
        self._offset = 0

    def start_batch(self, batch_size, mask):
        self._batch_size = batch_size
        self._mask = mask
        self._pending = {}

    def on_output(self, name, module, output):
        tensor = select_tensor(output, self.selectors[name], name)
        if tensor.ndim == 0 or tensor.shape[0] != self._batch_size:
            raise ValueError(
                f"Layer {name!r}: its output has shape {tuple(tensor.shape)}, whose first axis "
                f"is not the batch ({self._batch_size} inputs). LayerEmbedder needs the batch "
                "first (e.g. batch_first=True for RNNs and nn.MultiheadAttention); pick another "
                "layer, or pass output= a callable that returns a batch-first tensor.")
        layout = infer_layout(tensor, module, self.layouts[name])
        mask = token_mask(tensor, self._mask, name, self._warned) if layout == "tokens" else None
        # (no detach needed: the pass runs under no_grad)
        values = tensor if tensor.dtype == self.dtype else tensor.to(self.dtype)
        if self.unit == "dataset":
            reduced = self.project(pool(values, layout, self.reduce, mask, name), name)
        else:
            reduced = self.project(points(values, layout, name), name)
        if reduced.device.type == "cpu":
            # Copied now, before a later in-place op (ReLU(inplace=True)) can change a view.
            into_buffer = self.unit == "dataset" and self.n_inputs is not None
            self._store(name, reduced, mask,
                        copy=not into_buffer and _shares_storage(reduced, tensor))
        else:
            # A view of the module's output would change under later in-place ops before
            # the copy to the host, so copy it on the device now.
            if _shares_storage(reduced, tensor):
                reduced = reduced.clone()
            self._pending[name] = (reduced, mask)

    def end_batch(self):
        for name, (reduced, mask) in self._pending.items():
            self._store(name, reduced, mask, copy=False)
        self._pending = {}
        self._offset += self._batch_size

    def _store(self, name, reduced, mask, copy):
        if self.unit == "dataset":
            buffer = self.buffers.get(name)
            if buffer is None and self.n_inputs is not None:
                buffer = torch.empty((self.n_inputs, *reduced.shape[1:]), dtype=self.dtype)
                self.buffers[name] = buffer
            if buffer is None:
                self.parts[name].append(reduced.to("cpu", copy=copy))
                return
            if reduced.shape[1:] != buffer.shape[1:]:
                raise ValueError(
                    f"Layer {name!r} gives points of shape {tuple(reduced.shape[1:])} for the "
                    f"inputs from {self._offset} on, but {tuple(buffer.shape[1:])} before; "
                    "all inputs must give the same number of features (use reduce='mean').")
            buffer[self._offset:self._offset + self._batch_size].copy_(reduced)
            return
        # With a mask, the boolean indexing below copies each input's tokens anyway.
        array = reduced.to("cpu", copy=copy and mask is None).numpy()
        if mask is None:
            self.parts[name].extend(array[i] for i in range(array.shape[0]))
        else:
            keep = mask.to("cpu").numpy()
            self.parts[name].extend(array[i][keep[i]] for i in range(array.shape[0]))

    def result(self, names, index):
        if self.unit == "dataset":
            cells = np.empty(len(names), dtype=object)
            for k, name in enumerate(names):
                if name in self.buffers:
                    cells[k] = self.buffers[name].numpy()
                else:
                    cells[k] = torch.cat(self.parts[name]).numpy()
            return pd.Series(cells, index=pd.Index(names, name="layer"), dtype=object)
        columns = {}
        for name in names:
            column = np.empty(len(self.parts[name]), dtype=object)
            for i, cell in enumerate(self.parts[name]):
                column[i] = cell
            columns[name] = column
        frame = pd.DataFrame(columns, index=index)
        frame.columns.name = "layer"
        return frame


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


class LayerEmbedder(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
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
        a pattern or a type. Each selected module must run exactly once per forward pass.

    unit : {"dataset", "sample"}, default="dataset"
        - ``"dataset"``: a ``pandas.Series`` indexed by layer name (index name ``"layer"``);
          each cloud is an array ``(n_inputs, n_features)``: one point per input, after
          ``reduce`` and ``n_components``.
        - ``"sample"``: a ``pandas.DataFrame`` with one row per input and one column per
          layer; each cell is that input's own cloud: its valid tokens ``(T_valid, D)`` for
          token outputs ``(B, T, D)`` (padding tokens are never points), its spatial positions
          ``(H * W, C)`` for feature maps ``(B, C, H, W)``. Layers with one vector per input
          are an error in this unit.

    reduce : {"auto", "mean", "flatten"}, default="auto"
        How the dataset unit makes one point of each input's activation.
        ``"mean"``: global average pooling over every axis but the batch and the features
        (feature maps ``(B, C, *spatial)`` -> ``(B, C)``; tokens ``(B, T, D)`` -> mean over
        the valid tokens, respecting the attention mask). ``"flatten"``: all values of the
        activation (an error for padded token outputs). ``"auto"``: study A's choice, feature
        maps and tokens mean-pooled, vectors kept as they are (today the same as ``"mean"``).
        Vectors ``(B, D)`` are never changed. Ignored by the sample unit.

    n_components : int, default=None
        If set, a seeded Gaussian random projection of each point to this many dimensions
        (entries N(0, 1/n_components), fixed per layer by ``random_state``), applied batch by
        batch on the device so memory stays bounded. In the sample unit it projects the
        features of every token or position.

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
        ``"cuda"``, ``"cuda:1"``, or a ``torch.device``. The model is moved there for the
        extraction and moved back afterwards.

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

    random_state : int, RandomState instance or None, default=None
        Seeds the input subsample (``max_inputs``) and the random projections.

    verbose : int, default=0
        If positive, a progress bar over batches.

    Attributes
    ----------
    layer_names_ : list of str
        Names of the selected layers, in output order.

    layers_ : list of torch.nn.Module
        The selected modules, aligned with ``layer_names_``.

    device_ : torch.device
        The device the forward passes run on.

    projection_seed_ : int or None
        Seed of the random projections (None without ``n_components``).

    Examples
    --------
    >>> import torch
    >>> from sktopo.nn.embedder import LayerEmbedder
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
        "reduce": [StrOptions({"auto", "mean", "flatten"})],
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
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, model, layers, *, unit="dataset", reduce="auto", n_components=None,
                 layout="auto", output=None, device="auto", batch_size=256, max_inputs=None,
                 tokenizer=None, tokenizer_kwargs=None, dtype="float32", stop_early=True,
                 random_state=None, verbose=0):
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
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Check the parameters and resolve the layers; ``X`` and ``y`` are ignored.

        Parameters
        ----------
        X : ignored
        y : ignored

        Returns
        -------
        self : LayerEmbedder
        """
        _torch_dtype(self.dtype)
        selected = resolve_layers(self.model, self.layers)
        self.layer_names_ = [name for name, _ in selected]
        self.layers_ = [module for _, module in selected]
        resolve_selectors(self.output, self.layer_names_)
        self._layouts()
        self.device_ = torch.device(resolve_device(self.device, owner="LayerEmbedder"))
        self.projection_seed_ = None
        if self.n_components is not None:
            self.projection_seed_ = int(
                check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        return self

    def _layouts(self):
        layouts = resolve_selectors(self.layout, self.layer_names_)
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
        named = dict(self.model.named_modules())
        missing = [name for name in self.layer_names_ if name not in named]
        if missing:
            raise ValueError(f"Layers {missing} are no longer in the model (was it replaced "
                             "after fit?); call fit again.")
        layers = [(name, named[name]) for name in self.layer_names_]
        inputs = Inputs(X, batch_size=self.batch_size, tokenizer=self.tokenizer,
                        tokenizer_kwargs=self.tokenizer_kwargs, max_inputs=self.max_inputs,
                        random_state=self.random_state)
        collector = _Collector(
            self.unit, self.reduce, resolve_selectors(self.output, self.layer_names_),
            self._layouts(), Projections(self.n_components, self.projection_seed_),
            _torch_dtype(self.dtype),
            None if inputs.positions is None else len(inputs.positions))

        batches = inputs
        if self.verbose:
            from tqdm.auto import tqdm

            batches = tqdm(inputs, total=inputs.n_batches, desc="LayerEmbedder", unit="batch")
        model = self.model
        with prepared_model(model, self.device_) as float_dtype, \
                LayerHooks(layers, collector.on_output, stop_early=self.stop_early) as hooks, \
                torch.no_grad():
            # no_grad rather than inference_mode: tensors a model caches during the pass
            # (rotary tables, buffers) must stay usable for training afterwards.
            start = 0
            for batch in batches:
                args, kwargs = batch.to(self.device_, float_dtype)
                collector.start_batch(batch.size, batch.mask)
                label = _batch_label(inputs.positions, start, batch.size)
                if args is None:
                    hooks.run(lambda: model(**kwargs), label)
                else:
                    hooks.run(lambda: model(args, **kwargs), label)
                collector.end_batch()
                start += batch.size
        result = collector.result(self.layer_names_, inputs.index)
        # Not an array: pandas compares attrs with == when concatenating.
        positions = inputs.positions
        result.attrs["inputs"] = (range(len(positions)) if positions[-1] == len(positions) - 1
                                  else tuple(positions.tolist()))
        return result

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
            self.layers_ = [self.model.get_submodule(name) for name in self.layer_names_]

    def set_output(self, *, transform=None):
        """No-op kept for Pipeline.set_output: the output is always pandas.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None
            Ignored.

        Returns
        -------
        self : LayerEmbedder
        """
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.string = True
        tags.input_tags.dict = True
        tags.target_tags.required = False
        return tags
