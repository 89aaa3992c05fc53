"""Run independent tasks over joblib, in order, with an optional progress bar.

The estimators that loop over clouds or pairs of diagrams (``n_jobs``,
``verbose``) share this: joblib when more than one worker would help, a plain
loop otherwise (no process start-up for one job), and a tqdm bar over the
results as they arrive. The worker count comes from
:func:`joblib.effective_n_jobs`, so ``joblib.parallel_config(backend="dask",
n_jobs=...)`` reaches the work even with ``n_jobs=None``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from numbers import Integral
from typing import Callable, Iterable

from sklearn.utils._param_validation import Interval

__all__ = ["N_JOBS", "check_n_jobs", "effective_jobs", "gc_paused", "lazy_parallel",
           "one_blas_thread", "run_parallel"]

# the ``_parameter_constraints`` entry of every ``n_jobs``: None, -1, -2, ... or 1, 2, ...
# (0 means nothing to joblib; it must not quietly run as one job)
N_JOBS = [
    Interval(Integral, None, -1, closed="right"),
    Interval(Integral, 1, None, closed="left"),
    None,
]


def check_n_jobs(n_jobs, owner: str = "n_jobs"):
    """Return ``n_jobs`` if joblib understands it; ValueError for 0 or a non-integer."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral) or n_jobs == 0:
        raise ValueError(
            f"{owner}: n_jobs must be None, a positive number of workers or a negative one "
            f"(-1 = all cores); got {n_jobs!r}."
        )
    return int(n_jobs)


def effective_jobs(n_jobs) -> int:
    """Number of workers joblib would use for ``n_jobs`` (at least 1).

    Raises
    ------
    ValueError
        If ``n_jobs`` is 0 or not an integer.
    """
    from joblib import effective_n_jobs

    check_n_jobs(n_jobs)
    try:
        return max(1, int(effective_n_jobs(n_jobs)))
    except Exception:  # unusual backends may not report a count
        return 1


def run_parallel(
    function: Callable,
    tasks: Iterable[tuple],
    *,
    n_jobs=None,
    verbose=0,
    desc: str | None = None,
    unit: str = "it",
    prefer: str | None = None,
) -> list:
    """``[function(*task) for task in tasks]``, over joblib when it helps.

    Parameters
    ----------
    function : callable
        Called as ``function(*task)``; bind fixed keyword arguments with
        :func:`functools.partial`. Must be picklable for process backends.
    tasks : iterable of tuple
        Positional arguments of each call.
    n_jobs : int or None, default=None
        joblib's ``n_jobs``. At most one worker per task is started; with one
        worker the calls run here, in a loop.
    verbose : int, default=0
        Show a tqdm progress bar over the tasks when positive.
    desc, unit : str
        Label and unit of the progress bar.
    prefer : {"threads", "processes"} or None, default=None
        joblib's soft hint: ``"threads"`` for work that releases the GIL
        (nothing is pickled, and warnings reach the caller); a backend the
        user configured still wins.

    Returns
    -------
    results : list
        One result per task, in the order of ``tasks`` whatever ``n_jobs``.
    """
    from ._progress import progress

    tasks = list(tasks)
    workers = min(effective_jobs(n_jobs), len(tasks))
    if workers <= 1:
        results = (function(*task) for task in tasks)
    else:
        from joblib import delayed

        # joblib's process workers start with OMP_NUM_THREADS = cores // workers, which
        # torch honours when a task imports it: workers x torch threads stay within the cores
        results = lazy_parallel(workers, prefer)(delayed(function)(*task) for task in tasks)
    return list(progress(results, verbose=verbose, total=len(tasks), desc=desc, unit=unit))


def lazy_parallel(n_jobs, prefer=None):
    """A ``joblib.Parallel`` that yields results as they come, where the backend can.

    The configured backend wins (``joblib.parallel_config(backend=...)``); one that
    cannot return a generator (``"multiprocessing"``) returns the list instead. Where
    the work goes to joblib's threads, plain threads run it instead (:class:`_ThreadMap`,
    the same results in the same order, without joblib's 10 ms polling).
    No ``prefer=None`` is passed: an explicit None would override a
    ``parallel_config(prefer=...)`` context.
    """
    from joblib import Parallel

    hint = {"prefer": prefer} if prefer is not None else {}
    probe = Parallel(n_jobs=n_jobs, **hint)  # cheap: no worker starts before a call
    threads = effective_jobs(n_jobs)
    if type(probe._backend).__name__ == "ThreadingBackend" and threads > 1:
        # joblib's own threads hand results back by polling every 10 ms: 10-25 ms per
        # call of a few hundred small clouds, more than their work. Plain threads, in order.
        return _ThreadMap(threads)
    lazy = getattr(probe._backend, "supports_return_generator", True)
    return Parallel(n_jobs=n_jobs, return_as="generator" if lazy else "list", **hint)


class _ThreadMap:
    """``Parallel(prefer="threads")(delayed(f)(...) for ...)`` without joblib's polling.

    Results come in order, as a generator, each as soon as it is done; the first
    error is raised where its result would have come.
    """

    def __init__(self, n_threads):
        self.n_threads = int(n_threads)

    def __call__(self, calls):
        from concurrent.futures import ThreadPoolExecutor

        def results():
            with ThreadPoolExecutor(self.n_threads) as pool:
                futures = [pool.submit(f, *args, **kwargs) for f, args, kwargs in calls]
                try:
                    for future in futures:
                        yield future.result()
                finally:
                    for future in futures:
                        future.cancel()

        return results()


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # scans the loaded libraries once (milliseconds)


def one_blas_thread():
    """Context manager: the process's BLAS libraries run one thread each meanwhile.

    For the batched kernels of many small clouds: their products (64 x 384 by
    384 x 64) are too small for BLAS threads to pay for their hand-offs, and the
    cores go to the chunks' own threads or workers instead (OpenBLAS's default
    two threads made the products twice as costly in CPU for the same wall time
    on an idle 2-core machine, and 3-20x slower on a busy one). The controller
    is made once; setting the limit costs tens of microseconds.
    """
    return _blas_controller().limit(limits=1, user_api="blas")


@contextlib.contextmanager
def gc_paused():
    """Context manager: Python's cyclic garbage collector waits meanwhile.

    For loops that make thousands of small objects per call (a diagram or a
    feature row per cloud): every few hundred allocations the collector walks
    the young objects, and now and then every object of the process (with
    torch imported, hundreds of thousands): 20% of the H0 time of 64-point
    clouds. Those objects hold no reference cycles, so nothing waits for the
    collector; its previous state is restored on exit, also on error.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
