"""The thread_pool set: cancelling a ThreadPoolExecutor worker leaves the pool usable."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import threadpatch


def _worker_of(pool: ThreadPoolExecutor) -> threading.Thread:
    (worker,) = pool._threads  # type: ignore[attr-defined]
    return worker


@pytest.mark.parametrize("made", ["before", "while"])
def test_cancelled_job_ends_cancelled_and_the_next_job_runs(
    made: str, wait_all_threads_blocked, caplog: pytest.LogCaptureFixture
) -> None:
    pool = ThreadPoolExecutor(1) if made == "before" else None
    with threadpatch.patched():
        pool = pool or ThreadPoolExecutor(1)
        with pool:
            started = threading.Event()
            called = []

            def job() -> None:
                started.set()
                threading.Event().wait()  # blocks until cancelled

            first = pool.submit(job)
            first.add_done_callback(called.append)
            assert started.wait(timeout=10)
            queued = pool.submit(lambda: "queued ran")  # waits behind the blocked job
            wait_all_threads_blocked()
            worker = _worker_of(pool)
            assert threadpatch.cancel(worker, timeout=10)  # the worker ends
            assert first.cancelled()
            with pytest.raises(concurrent.futures.CancelledError):
                first.result(timeout=0)
            assert called == [first]
            # The cancelled worker took no further job; a new worker runs them.
            assert queued.result(timeout=10) == "queued ran"
            assert pool.submit(lambda: 42).result(timeout=10) == 42
    assert "Exception in worker" not in caplog.text


def test_cancelled_idle_worker_is_replaced(wait_all_threads_blocked) -> None:
    with threadpatch.patched(), ThreadPoolExecutor(1) as pool:
        assert pool.submit(lambda: 1).result(timeout=10) == 1
        wait_all_threads_blocked(expected=1)  # idle in its work queue
        assert threadpatch.cancel(_worker_of(pool), timeout=10)
        assert pool.submit(lambda: 2).result(timeout=10) == 2


def test_failing_and_normal_jobs_behave_as_the_stdlib(caplog: pytest.LogCaptureFixture) -> None:
    with threadpatch.patched(), ThreadPoolExecutor(2, initializer=lambda: None) as pool:
        ok = pool.submit(pow, 2, 10)
        bad = pool.submit(lambda: 1 / 0)
        assert ok.result(timeout=10) == 1024
        assert isinstance(bad.exception(timeout=10), ZeroDivisionError)
        assert list(pool.map(abs, [-1, -2], timeout=10)) == [1, 2]
    assert pool._shutdown  # type: ignore[attr-defined]
    with caplog.at_level(logging.CRITICAL), threadpatch.patched():
        broken = ThreadPoolExecutor(1, initializer=lambda: 1 / 0)
        with pytest.raises(concurrent.futures.thread.BrokenThreadPool):
            broken.submit(int).result(timeout=10)
        broken.shutdown()
    assert "Exception in initializer" in caplog.text


def test_stdlib_worker_after_unpatch() -> None:
    import concurrent.futures.thread as cft

    original = cft._worker
    with threadpatch.patched(thread_pool=True):
        assert cft._worker is not original
    assert cft._worker is original
