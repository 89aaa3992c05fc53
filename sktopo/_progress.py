"""The one progress-bar wrapper: tqdm over an iterable when ``verbose``, the iterable otherwise."""

from __future__ import annotations

__all__ = ["progress"]


def progress(iterable, *, verbose=0, total=None, desc=None, unit="it"):
    """``iterable``, wrapped in a tqdm bar when ``verbose`` is positive.

    Parameters
    ----------
    iterable : iterable
    verbose : int, default=0
        No bar (and no tqdm import) when 0 or False.
    total : int, optional
        Length, for iterables without ``len``.
    desc, unit : str
        Label and unit of the bar.

    Returns
    -------
    iterable
    """
    if not verbose:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit)
