"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

import time


def best_time(fn, repeat=1, *, clock=time.perf_counter):
    """``(best seconds, result of the last call)`` over ``repeat`` calls of ``fn()``.

    ``clock``: ``time.perf_counter`` (wall clock) or ``time.process_time`` (CPU time of this
    process, which other work on a shared machine disturbs less).
    """
    best, result = float("inf"), None
    for _ in range(repeat):
        start = clock()
        result = fn()
        best = min(best, clock() - start)
    return best, result
