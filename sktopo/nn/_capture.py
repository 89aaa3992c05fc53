"""Forward hooks and model hygiene for activation extraction.

- ``prepared_model``: eval mode on the device, restoring afterwards every module's train/eval
  flag, every parameter's ``requires_grad`` and the device, even when the forward pass raises.
- ``LayerHooks``: one forward hook per selected layer; hooks are removed on exit whatever
  happens. After the first batch (a full forward pass, which also learns the order in which the
  layers run and checks each runs exactly once) the hook of the last layer to run raises a
  private exception that ends the forward pass early: later modules are never computed.
"""

import contextlib


class _StopForward(BaseException):
    """Raised by the last hook to end a forward pass early.

    A BaseException, like KeyboardInterrupt, so that a model's own ``except Exception`` blocks
    do not swallow it.
    """


def _floating_dtype(model):
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    for tensor in model.buffers():
        if tensor.is_floating_point():
            return tensor.dtype
    return None


@contextlib.contextmanager
def prepared_model(model, device):
    """Put ``model`` in eval mode on ``device``; yield its floating dtype; restore on exit.

    A model whose parameters and buffers already sit on several devices (model parallel) is
    left where it is; only the inputs go to ``device``.
    """
    modules = list(model.modules())
    modes = [module.training for module in modules]
    params = list(model.parameters())
    grads = [param.requires_grad for param in params]
    devices = {t.device for t in params} | {t.device for t in model.buffers()}
    original = next(iter(devices)) if len(devices) == 1 else None
    move = original is not None and original != device
    try:
        if move:
            model.to(device)
        if any(modes):
            model.eval()
        yield _floating_dtype(model)
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


class LayerHooks:
    """Context manager calling ``on_output(name, module, output)`` for each selected layer.

    Use ``run(forward)`` for each batch; it returns once every layer has produced its output
    (stopping the forward pass early when ``stop_early``) and checks each ran exactly once.
    """

    def __init__(self, layers, on_output, *, stop_early=True):
        self.layers = layers
        self.on_output = on_output
        self.stop_early = stop_early
        self.stop_after = None
        self.order = None
        self._handles = []
        self._seen = []

    def _make_hook(self, name):
        def hook(module, args, output):
            if name in self._seen:
                raise ValueError(
                    f"Layer {name!r} ({type(module).__name__}) runs more than once in one "
                    "forward pass (a module reused, e.g. one nn.ReLU applied after several "
                    "layers), so its activation is ambiguous. Give each use its own module, "
                    "or select the modules around it.")
            self._seen.append(name)
            self.on_output(name, module, output)
            if name == self.stop_after:
                raise _StopForward
        return hook

    def __enter__(self):
        try:
            for name, module in self.layers:
                self._handles.append(module.register_forward_hook(self._make_hook(name)))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        return False

    def run(self, forward, batch_label):
        """Run ``forward()`` for one batch; ``batch_label`` names it in error messages."""
        self._seen = []
        try:
            forward()
        except _StopForward:
            pass
        except Exception as exc:
            exc.add_note(f"(raised during the forward pass of {batch_label}, while sktopo "
                         "was extracting layer activations)")
            raise
        missing = [name for name, _ in self.layers if name not in self._seen]
        if missing:
            raise ValueError(
                f"Layers {missing} did not run in the forward pass of {batch_label}: they are "
                "not used by the model's forward (or only under conditions this input did not "
                "meet). Select layers the forward pass calls.")
        if self.order is None:
            self.order = list(self._seen)
            if self.stop_early:
                self.stop_after = self.order[-1]
