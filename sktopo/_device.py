"""One rule for the ``device`` parameter of every estimator."""

from __future__ import annotations

__all__ = ["resolve_device"]


def resolve_device(device, *, owner: str | None = None) -> str:
    """Canonical device string: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    ``"auto"`` is CUDA when torch sees a GPU, else the CPU. ``"cpu"`` never imports
    torch, so numpy-only paths stay light. Asking for a GPU that is not there is
    an error rather than a silent fall-back to the CPU.
    """
    prefix = f"{owner}: " if owner else ""
    if isinstance(device, str) and device == "cpu":
        return "cpu"
    import torch

    if isinstance(device, str) and device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{prefix}device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or a torch.device; "
            f"got {device!r}."
        ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{prefix}device={device!r} was asked for, but CUDA is not available here; "
                f"use device='auto' (CUDA when available) or device='cpu'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"{prefix}device={device!r} but only {torch.cuda.device_count()} CUDA device(s) "
                f"are visible."
            )
    return str(resolved)
