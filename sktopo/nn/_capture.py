"""Forward hooks and model hygiene for activation extraction.

- ``prepared_model``: the one way sktopo readies a user's model for inference: eval mode on the
  device, holding the model's lock, restoring afterwards every module's train/eval flag, every
  parameter's ``requires_grad`` and the device, even when the forward pass raises.
- ``LayerHooks``: one forward hook per selected layer; hooks are removed on exit whatever
  happens. After the first batch (a full forward pass, which also learns the order in which the
  layers run and how often each runs) the hook of the last call to be read raises a private
  exception that ends the forward pass early: later modules are never computed.
- ``ModuleCalls``: the forward-hook mechanism under LayerHooks and the ReLU tracer
  (``_relu_network``): hooks on named modules that number each module's calls in a pass
  (``name``, ``name#2``, ... as ``call_name`` spells them) and may replace a call's output.
"""

import contextlib
import copy
import threading
import weakref

import torch

from .._device import resolve_device, torch_dtype

# One re-entrant lock per model: hooks, train/eval flags and the device are properties of the
# model shared by every thread, so two extractions over one model must not interleave (the
# second would record the first's eval mode as the "original" and restore it for good).
_LOCKS = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


class _StopForward(BaseException):
    """Raised by the last hook to end a forward pass early.

    A BaseException, like KeyboardInterrupt, so that a model's own ``except Exception`` blocks
    do not swallow it.
    """


def model_lock(model):
    """The re-entrant lock that serialises sktopo's use of ``model`` across threads."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


def floating_dtype(model):
    """dtype of the model's first floating parameter (or buffer); None if it has none."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    for tensor in model.buffers():
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def _same_device(a, b):
    return a.type == b.type and (b.index is None or a.index is None or a.index == b.index)


@contextlib.contextmanager
def prepared_model(model, device, *, dtype=None, owner=None):
    """Yield ``model`` ready for inference on ``device``; restore it on exit.

    Parameters
    ----------
    model : torch.nn.Module
    device : str or torch.device
        Checked with the shared device rule (``sktopo._device.resolve_device``) before the
        model is touched: a device the weights could not come back from is refused.
    dtype : str or torch.dtype, optional
        Floating dtype the caller needs. When the model's floating tensors have another dtype,
        a deep copy is cast and yielded (the user's model is never cast: float64 -> float32 ->
        float64 would not give the weights back); otherwise the model itself is yielded.
    owner : str, optional
        Estimator name for error messages.

    Yields
    ------
    model : torch.nn.Module
        In eval mode on ``device``: the model itself (moved there and back; a move between
        devices is exact), or the cast copy. A model whose tensors already sit on several
        devices (model parallel) is left where it is; only the inputs go to ``device``.
    """
    prefix = f"{owner}: " if owner else ""
    target = torch.device(resolve_device(device, owner=owner))
    wanted = None if dtype is None else torch_dtype(dtype, owner=owner)
    with model_lock(model):
        tensors = [*model.parameters(), *model.buffers()]
        devices = {t.device for t in tensors}
        if any(d.type == "meta" for d in devices):
            kind, name = next((kind, name) for kind, named in (
                ("parameter", model.named_parameters()), ("buffer", model.named_buffers()))
                for name, t in named if t.device.type == "meta")
            raise ValueError(
                f"{prefix}the model's {kind} {name!r} is on the 'meta' device (a shape without "
                "values); load its weights (e.g. load_state_dict(..., assign=True)) before "
                "using it.")
        if wanted is not None and any(t.is_floating_point() and t.dtype != wanted
                                      for t in tensors):
            copied = copy.deepcopy(model).to(device=target, dtype=wanted)
            yield copied.eval()
            return
        modules = list(model.modules())
        modes = [module.training for module in modules]
        params = list(model.parameters())
        grads = [param.requires_grad for param in params]
        original = next(iter(devices)) if len(devices) == 1 else None
        move = original is not None and not _same_device(original, target)
        try:
            if move:
                model.to(target)
            if any(modes):
                model.eval()
            yield model
        finally:
            if move:
                model.to(original)
            # Only touch what changed: Module.__setattr__ is slow and this runs on every call.
            for module, training in zip(modules, modes):
                if module.training != training:
                    module.training = training
            for param, requires_grad in zip(params, grads):
                if param.requires_grad != requires_grad:
                    param.requires_grad_(requires_grad)


class ModuleCalls:
    """Context manager: forward hooks on named modules that number each module's calls.

    ``modules`` holds ``(name, module)`` pairs (one hook per module). After every call,
    ``on_call(name, count, module, args, output)`` runs with ``count`` the call's number
    (1, 2, ...) for that module since the last ``reset()``; a return value other than None
    replaces the call's output, as a forward hook's does. With ``keep_input``, ``args`` are the
    values the module received even when it works in place (``inplace=True``): such a module
    gets a copy, so the caller's tensor is left untouched too.
    """

    def __init__(self, modules, on_call, *, keep_input=False):
        self.modules = list(modules)
        self.on_call = on_call
        self.keep_input = keep_input
        self.counts = {}
        self._handles = []

    def reset(self):
        self.counts = {}

    def _hooks(self, name):
        kept = []

        def pre_hook(module, args):
            kept.append(args)
            if getattr(module, "inplace", False):
                return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
            return None

        def hook(module, args, output):
            if kept:
                args = kept.pop()
            count = self.counts[name] = self.counts.get(name, 0) + 1
            return self.on_call(name, count, module, args, output)

        return (pre_hook if self.keep_input else None), hook

    def __enter__(self):
        try:
            for name, module in self.modules:
                pre_hook, hook = self._hooks(name)
                if pre_hook is not None:
                    self._handles.append(module.register_forward_pre_hook(pre_hook))
                self._handles.append(module.register_forward_hook(hook))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        return False


class LayerHooks:
    """Context manager calling ``on_output(name, module, output)`` for each selected call.

    ``layers`` holds ``(name, module, call)`` triples as ``resolve_layers`` gives them (the
    module's name): ``call`` None reads every call of the module, an int k only the k-th. Each
    call is named by ``call_name``: ``name`` for the first, ``name#2``, ... for the next, here
    and in every output. Use ``run(forward, label)`` for each batch; it returns once every
    selected call has produced its output (stopping the forward pass early when
    ``stop_early``) and checks that every batch makes the same calls as the first.
    """

    def __init__(self, layers, on_output, *, stop_early=True):
        from ._layers import call_name

        self._call_name = call_name
        self.layers = layers
        self.on_output = on_output
        self.stop_early = stop_early
        self.stop_after = None
        self.order = None
        self._seen = []
        self._module_of = {}  # output name -> the module's name
        # module -> (module name, wanted calls or None for every call); one hook per module
        self._wanted = {}
        for base, module, call in layers:
            name, wanted = self._wanted.get(id(module), (base, set()))
            if call is None or wanted is None:
                wanted = None
            else:
                wanted.add(call)
            self._wanted[id(module)] = (name, wanted)
        modules = {id(module): module for _, module, _ in layers}
        self._calls = ModuleCalls(
            [(name, modules[key]) for key, (name, _) in self._wanted.items()], self._on_call)
        self._wanted_by_name = {name: wanted for name, wanted in self._wanted.values()}

    def _on_call(self, name, count, module, args, output):
        wanted = self._wanted_by_name[name]
        if wanted is not None and count not in wanted:
            return
        out_name = self._call_name(name, count)
        self._module_of[out_name] = name
        self._seen.append(out_name)
        self.on_output(out_name, module, output)
        if out_name == self.stop_after:
            raise _StopForward

    def __enter__(self):
        self._calls.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self._calls.__exit__(*exc_info)

    def module_of(self, name):
        """The module's name of the output ``name`` (after a batch that made that call)."""
        return self._module_of[name]

    def names(self):
        """Output names in selection order (after the first batch): calls expanded."""
        names = []
        for base, _, call in self.layers:
            if call is None:
                names += [n for n in self.order if self._module_of[n] == base]
            else:
                names.append(self._call_name(base, call))
        return list(dict.fromkeys(names))

    def run(self, forward, batch_label):
        """Run ``forward()`` for one batch; ``batch_label`` names it in error messages."""
        self._seen = []
        self._calls.reset()
        try:
            forward()
        except _StopForward:
            pass
        except Exception as exc:
            exc.add_note(f"(raised during the forward pass of {batch_label}, while sktopo "
                         "was extracting layer activations)")
            raise
        if self.order is None:
            self._check_first(batch_label)
            self.order = list(self._seen)
            if self.stop_early:
                self.stop_after = self.order[-1]
        elif self._seen != self.order:
            missing = [n for n in self.order if n not in self._seen]
            raise ValueError(
                f"The forward pass of {batch_label} made the calls {self._seen} of the selected "
                f"layers, but the first batch made {self.order}"
                + (f" ({missing} did not run)" if missing else "") + ": the model's control "
                "flow depends on its input. Select layers the forward pass always calls the "
                "same number of times.")

    def _check_first(self, batch_label):
        missing = []
        for base, module, call in self.layers:
            runs = self._calls.counts.get(base, 0)
            if runs == 0:
                missing.append(base)
            elif call is not None and call > runs:
                raise ValueError(
                    f"Layer {base + '#' + str(call)!r} asks for call {call} of module {base!r} "
                    f"({type(module).__name__}), but it runs {runs} time(s) per forward pass. "
                    f"Select {base!r} (every call: {base!r}, {base + '#2'!r}, ...) or a call "
                    f"from 1 to {runs}.")
        if missing:
            raise ValueError(
                f"Layers {list(dict.fromkeys(missing))} did not run in the forward pass of "
                f"{batch_label}: they are not used by the model's forward (or only under "
                "conditions this input did not meet). Select layers the forward pass calls.")
