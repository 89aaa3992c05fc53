"""sktopo._parallel.run_parallel: results in task order, in a loop or over joblib."""

import os

import joblib
import numpy as np
import pytest

from sktopo._parallel import effective_jobs, run_parallel


def _pid_and_sum(a, b):
    return os.getpid(), a + b


def test_results_in_order_over_joblib():
    tasks = [(k, 10 * k) for k in range(7)]
    with joblib.parallel_config(backend="threading"):
        out = run_parallel(_pid_and_sum, tasks, n_jobs=2, verbose=1, desc="test")
    assert [total for _, total in out] == [11 * k for k in range(7)]


def test_one_worker_runs_here():
    out = run_parallel(_pid_and_sum, [(1, 2), (3, 4)], n_jobs=None)
    assert out == [(os.getpid(), 3), (os.getpid(), 7)]
    # a single task never starts workers either
    assert run_parallel(_pid_and_sum, [(1, 2)], n_jobs=2) == [(os.getpid(), 3)]
    assert run_parallel(_pid_and_sum, [], n_jobs=2) == []


def test_effective_jobs_follows_context():
    assert effective_jobs(None) == 1
    with joblib.parallel_config(n_jobs=2):
        assert effective_jobs(None) == 2


def test_n_jobs_zero_is_refused_not_run_as_one():
    import pytest

    with pytest.raises(ValueError, match="n_jobs must be None"):
        run_parallel(_pid_and_sum, [(1, 2), (3, 4)], n_jobs=0)
    with pytest.raises(ValueError, match="n_jobs must be None"):
        effective_jobs(0)
    assert effective_jobs(-1) >= 1


def test_estimators_refuse_n_jobs_zero_in_fit():
    import numpy as np
    import pytest

    import sktopo

    clouds = [np.random.default_rng(0).normal(size=(30, 2))]
    diagrams = sktopo.PersistenceDiagram().fit_transform(clouds)
    for est, X in [(sktopo.PHDimension(n_jobs=0), clouds), (sktopo.TwoNN(n_jobs=0), clouds),
                   (sktopo.DiagramDistance(n_jobs=0), diagrams),
                   (sktopo.PersistenceDiagram(n_jobs=0), clouds)]:
        with pytest.raises(ValueError, match="n_jobs"):
            est.fit_transform(X)


def _torch_threads_in_task(_):
    import torch

    return torch.get_num_threads()


def test_process_workers_do_not_oversubscribe_torch_threads():
    # issue 11.13: n workers x one torch thread per core would oversubscribe the machine;
    # joblib gives each process worker cores // workers threads, and torch must honour it
    import os

    import torch

    from sktopo._parallel import run_parallel

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads = run_parallel(_torch_threads_in_task, [(i,) for i in range(4)], n_jobs=2)
        assert all(2 * t <= max(os.cpu_count(), 2) for t in threads), threads
        assert torch.get_num_threads() == 2  # the calling process keeps its own setting
    finally:
        torch.set_num_threads(before)


def test_gc_paused_restores_the_collector_state_also_on_error():
    import gc

    from sktopo._parallel import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: the inner one leaves it to the outer
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with gc_paused():
            raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a collector the caller disabled stays disabled
    finally:
        gc.enable()


@pytest.mark.parametrize("make", [
    lambda: __import__("sktopo").PersistenceDiagram((0,), n_jobs=2),
    lambda: __import__("sktopo").PersistenceDiagram((0, 1), n_jobs=2),
    lambda: __import__("sktopo").PersistenceDiagram((0, 1), n_jobs=2, backend="ripser"),
    lambda: __import__("sktopo").PHDimension(n_jobs=2, random_state=0),
    lambda: __import__("sktopo").TwoNN(n_jobs=2),
])
def test_the_multiprocessing_backend_reaches_the_batches(make):
    # issue 22 item 14: joblib's "multiprocessing" backend cannot return a generator; every
    # batched estimator raised joblib's raw "does not support return_as=generator"
    import joblib

    clouds = [np.random.default_rng(k).normal(size=(40, 5)) for k in range(8)]
    est = make()
    a = est.fit_transform(clouds)
    with joblib.parallel_config(backend="multiprocessing"):
        b = est.fit_transform(clouds)
    if isinstance(a, list):
        assert all(x == y for x, y in zip(a, b))
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_thread_work_skips_joblib_polling_unless_a_backend_is_configured():
    # joblib's threads hand results back by polling every 10 ms (10-25 ms per call of a
    # few hundred small clouds); plain threads do the default case, in order
    import joblib
    from joblib import delayed

    from sktopo._parallel import _ThreadMap, lazy_parallel

    runner = lazy_parallel(2, "threads")
    assert isinstance(runner, _ThreadMap)
    assert list(runner(delayed(pow)(k, 2) for k in range(20))) == [k * k for k in range(20)]

    def fails(k):
        if k == 3:
            raise ValueError("cloud 3")
        return k

    results = lazy_parallel(2, "threads")(delayed(fails)(k) for k in range(6))
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="cloud 3"):
        next(results)
    with joblib.parallel_config(backend="loky"):
        assert not isinstance(lazy_parallel(2, "threads"), _ThreadMap)
    assert not isinstance(lazy_parallel(1, "threads"), _ThreadMap)
