"""One rule for ``device``, one parser for ``dtype``, one helper for torch's threads.

The device rule, applied by every estimator with a ``device`` parameter:

- the default is ``"auto"``: CUDA when torch sees a GPU, else the CPU;
- ``"cpu"``, ``"cuda"``, ``"cuda:<index>"`` and a ``torch.device`` are accepted, and the other
  accelerators of the running torch build (``"mps"``, ``"xpu"``) when they are available;
- anything else (``"meta"``, an unknown name, a GPU that is not there) is a ``ValueError``
  raised before any model or data is touched. There is no silent fall-back to the CPU.

``resolve_device("cpu")`` never imports torch, and neither does ``resolve_device("auto")`` where
CUDA surely is not there (:func:`cuda_possible`), so numpy-only paths stay light.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from functools import lru_cache

__all__ = ["cuda_possible", "resolve_device", "torch_dtype", "torch_threads"]

_ACCELERATORS = ("mps", "xpu")
_DTYPE_NAMES = ("float32", "float64")


def _prefix(owner):
    return f"{owner}: " if owner else ""


def _accelerator_available(torch, kind):
    backend = torch.backends.mps if kind == "mps" else getattr(torch, kind, None)
    try:
        return bool(backend is not None and backend.is_available())
    except Exception:  # a half-built backend: treat as absent
        return False


def cuda_possible() -> bool:
    """False when CUDA surely is not there, without importing torch (seconds on a busy machine).

    A cheap pre-check for ``device="auto"``: torch not installed, or not imported yet on a
    Linux machine without the NVIDIA driver. Otherwise torch decides.
    """
    if "torch" in sys.modules:
        return True
    return _cuda_possible_without_torch()


@lru_cache(maxsize=1)
def _cuda_possible_without_torch() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    if sys.platform.startswith("linux") and not os.path.exists("/proc/driver/nvidia/version"):
        return False
    return True


def resolve_device(device, *, owner: str | None = None) -> str:
    """Canonical device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ...).

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:<index>"``, ``"mps"``, ``"xpu"`` or a
        ``torch.device``.
    owner : str, optional
        Name of the estimator or function, put at the start of error messages.

    Returns
    -------
    device : str

    Raises
    ------
    ValueError
        For a device this torch build or machine does not have, and for devices data cannot
        come back from (``"meta"``).
    """
    prefix = _prefix(owner)
    if isinstance(device, str) and (device == "cpu" or (device == "auto" and not cuda_possible())):
        return "cpu"
    import torch

    if isinstance(device, str) and device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    allowed = ("'auto', 'cpu', 'cuda', 'cuda:<index>', 'mps' or 'xpu' (where available) or a "
               "torch.device")
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"{prefix}device must be {allowed}; got {device!r}.")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"{prefix}device must be {allowed}; got {device!r}.") from exc
    if resolved.type == "cpu":
        return "cpu"
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{prefix}device={device!r} was asked for, but CUDA is not available here; "
                f"use device='auto' (CUDA when available) or device='cpu'.")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"{prefix}device={device!r} but only {torch.cuda.device_count()} CUDA device(s) "
                f"are visible.")
        return str(resolved)
    if resolved.type in _ACCELERATORS:
        if not _accelerator_available(torch, resolved.type):
            raise ValueError(
                f"{prefix}device={device!r} was asked for, but this torch build "
                f"({torch.__version__}) or machine has no {resolved.type} device; use "
                f"device='auto' (CUDA when available) or device='cpu'.")
        return str(resolved)
    raise ValueError(
        f"{prefix}device={device!r} is not supported: sktopo runs on {allowed}. (Tensors "
        f"cannot be read back from a '{resolved.type}' device, so a model moved there would "
        f"lose its weights.)")


def torch_dtype(dtype, *, owner: str | None = None, allowed=_DTYPE_NAMES):
    """The torch floating dtype named by ``dtype``.

    Parameters
    ----------
    dtype : str, numpy dtype, numpy scalar type or torch.dtype
        ``"float32"``, ``"float64"``, ``np.float32``, ``torch.float64``, ...
    owner : str, optional
        Name of the estimator or function, put at the start of error messages.
    allowed : tuple of str, default=("float32", "float64")
        The dtype names accepted.

    Returns
    -------
    dtype : torch.dtype

    Raises
    ------
    ValueError
        For any other dtype (the message lists the allowed names).
    """
    import numpy as np
    import torch

    name = None
    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    elif dtype is not None and not isinstance(dtype, bool):
        if isinstance(dtype, str):
            dtype_text = dtype.removeprefix("torch.")
        else:
            dtype_text = dtype
        try:
            name = np.dtype(dtype_text).name
        except (TypeError, ValueError):
            name = None
    if name not in allowed:
        names = " or ".join(repr(a) for a in allowed)
        raise ValueError(f"{_prefix(owner)}dtype must be {names} (a string, a numpy or a torch "
                         f"dtype); got {dtype!r}.")
    return getattr(torch, name)


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run the block with ``torch.set_num_threads(n_threads)``; restore the count afterwards.

    ``None`` leaves torch's setting alone. Small models run fastest on one thread on a busy
    machine: more intra-op threads than free cores make every operation wait for the slowest.
    """
    if n_threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == n_threads:
        yield
        return
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
