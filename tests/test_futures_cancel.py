"""threadpatch.futures: ``Future.cancel()`` stops running work; the worker goes on.

Also the ``futures`` patch set (the standard ``ThreadPoolExecutor`` behaves so),
and unmodified ``requests.get`` to a stalled loopback server cancelled by each
route (``Future.cancel()``, ``shutdown(cancel_futures=True)``, a ``CancelScope``
in the work, ``map``'s timeout), with no thread or descriptor left behind.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from tests._helpers import wait_until
from tests.servers import EchoServer, SilentServer, fd_count
from threadpatch import CancelScope, ScopeCancelled, _core, futures
from threadpatch.futures import ThreadPoolExecutor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

# Native: the tests' own gates must not be cancellation points.
_NativeEvent = threading.Event


class Job:
    """A work item that blocks in a cancellable wait and records what happened."""

    def __init__(self) -> None:
        self.started = _NativeEvent()
        self.in_finally = _NativeEvent()
        self.gate = _NativeEvent()  # holds the finally open until the test lets go
        self.hold_finally = False
        self.log: list[object] = []
        self.ident: int | None = None

    def __call__(self) -> str:
        self.ident = threading.get_ident()
        self.started.set()
        try:
            threadpatch.Event().wait()  # only a cancellation ends it
        except ScopeCancelled as exc:
            self.log.append(type(exc))
            raise
        finally:
            self.log.append("finally")
            self.in_finally.set()
            if self.hold_finally:
                assert self.gate.wait(10)
        return "not reached"


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(1)
    try:
        yield executor
    finally:  # a failed test must not leave its blocked work for the join
        executor.shutdown(wait=True, cancel_futures=True)


def _submit_blocked(
    pool: concurrent.futures.Executor, job: Job, wait_blocked: Callable[..., None]
) -> concurrent.futures.Future[str]:
    """``pool.submit(job)``, once the job waits (parked: the only blocked thread)."""
    future = pool.submit(job)
    assert job.started.wait(10)
    wait_blocked(expected=1)
    return future


# -- Future.cancel() on running work ------------------------------------------------


def test_cancel_stops_running_work_and_the_worker_takes_the_next_item(
    pool: ThreadPoolExecutor, wait_all_threads_blocked: Callable[..., None]
) -> None:
    job = Job()
    future = _submit_blocked(pool, job, wait_all_threads_blocked)
    assert future.running()
    assert future.cancel() is True
    with pytest.raises(CancelledError):
        future.result(timeout=10)
    assert future.cancelled()
    assert future.done()
    assert job.log == [ScopeCancelled, "finally"]
    # The same worker thread runs the next item: it was not cancelled.
    assert pool.submit(threading.get_ident).result(timeout=10) == job.ident


def test_the_future_ends_cancelled_only_once_the_call_has_stopped(
    pool: ThreadPoolExecutor, wait_all_threads_blocked: Callable[..., None]
) -> None:
    job = Job()
    job.hold_finally = True
    future = _submit_blocked(pool, job, wait_all_threads_blocked)
    assert future.cancel()
    assert job.in_finally.wait(10)
    # The call's finally is still running: not cancelled yet, not done.
    assert not future.done()
    assert not future.cancelled()
    assert future.running()
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(timeout=0)
    job.gate.set()
    with pytest.raises(CancelledError):
        future.result(timeout=10)
    assert future.cancelled()


def test_done_callbacks_and_waiters_see_the_cancel_once(
    pool: ThreadPoolExecutor, wait_all_threads_blocked: Callable[..., None]
) -> None:
    job = Job()
    calls: list[object] = []
    future = _submit_blocked(pool, job, wait_all_threads_blocked)
    future.add_done_callback(calls.append)
    assert future.cancel()
    assert future.cancel()  # again: still True, nothing more happens
    done, not_done = concurrent.futures.wait([future], timeout=10)
    assert done == {future}
    assert not not_done
    assert list(concurrent.futures.as_completed([future], timeout=10)) == [future]
    assert calls == [future]
    future.add_done_callback(calls.append)  # added after: called at once, as usual
    assert calls == [future, future]


def test_a_waiter_registered_before_the_cancel_is_woken(
    pool: ThreadPoolExecutor, wait_all_threads_blocked: Callable[..., None]
) -> None:
    job = Job()
    future = _submit_blocked(pool, job, wait_all_threads_blocked)
    result: list[object] = []

    def waiter() -> None:
        done, _ = concurrent.futures.wait(
            [future], timeout=10, return_when=concurrent.futures.FIRST_COMPLETED
        )
        result.append(done)

    t = threading.Thread(target=waiter)
    t.start()
    wait_until(lambda: future._waiters, message="the waiter registered")  # type: ignore[attr-defined]
    assert future.cancel()
    t.join(10)
    assert result == [{future}]


def test_cancel_of_pending_and_finished_futures_is_the_stdlib_s(
    pool: ThreadPoolExecutor, wait_all_threads_blocked: Callable[..., None]
) -> None:
    job = Job()
    running = _submit_blocked(pool, job, wait_all_threads_blocked)
    ran = []
    pending = pool.submit(ran.append, "pending ran")
    assert pending.cancel() is True  # pending: never runs
    assert pending.cancelled()
    assert running.cancel()
    finished = pool.submit(int, "7")
    assert finished.result(timeout=10) == 7
    assert finished.cancel() is False
    assert not finished.cancelled()
    assert ran == []
    assert isinstance(running, futures.Future)
    assert isinstance(running, concurrent.futures.Future)


def test_work_that_catches_the_cancel_still_ends_cancelled(
    pool: ThreadPoolExecutor, wait_all_threads_blocked: Callable[..., None]
) -> None:
    started = _NativeEvent()

    def stubborn() -> str:
        started.set()
        try:
            threadpatch.Event().wait()
        except BaseException:
            return "returned anyway"
        return "not reached"

    future = pool.submit(stubborn)
    assert started.wait(10)
    wait_all_threads_blocked(expected=1)
    assert future.cancel()
    with pytest.raises(CancelledError):
        future.result(timeout=10)
    assert pool.submit(lambda: "next").result(timeout=10) == "next"


def test_work_that_never_blocks_runs_to_its_end_and_ends_cancelled(
    pool: ThreadPoolExecutor,
) -> None:
    started, go_on = _NativeEvent(), _NativeEvent()

    def cpu_bound() -> int:
        started.set()
        assert go_on.wait(10)  # native: not a cancellation point
        return sum(range(1000))

    future = pool.submit(cpu_bound)
    assert started.wait(10)
    assert future.cancel()
    go_on.set()
    with pytest.raises(CancelledError):
        future.result(timeout=10)


def test_cancel_from_inside_the_work(pool: ThreadPoolExecutor) -> None:
    box: list[concurrent.futures.Future[Any]] = []
    ready = _NativeEvent()

    def cancels_itself() -> None:
        assert ready.wait(10)
        box[0].cancel()
        threadpatch.sleep(60)

    box.append(pool.submit(cancels_itself))
    ready.set()
    with pytest.raises(CancelledError):
        box[0].result(timeout=10)


def test_errors_and_results_are_the_stdlib_s(pool: ThreadPoolExecutor) -> None:
    assert pool.submit(pow, 2, 8).result(timeout=10) == 256
    assert isinstance(pool.submit(lambda: 1 / 0).exception(timeout=10), ZeroDivisionError)
    with ThreadPoolExecutor(1) as other:
        inner = other.submit(threadpatch.sleep, 60)
        assert inner.cancel()  # pending or running: either way it stops
    assert inner.cancelled()
    with pytest.raises(RuntimeError, match="after shutdown"):
        other.submit(int)


def test_a_cancelled_worker_thread_is_replaced(
    pool: ThreadPoolExecutor, wait_all_threads_blocked: Callable[..., None]
) -> None:
    job = Job()
    future = _submit_blocked(pool, job, wait_all_threads_blocked)
    (worker,) = pool._threads  # type: ignore[attr-defined]
    assert threadpatch.cancel(worker, timeout=10)
    assert future.cancelled()
    assert job.log == ["finally"]  # a thread cancel, not the scope's
    assert pool.submit(lambda: "new worker").result(timeout=10) == "new worker"


# -- shutdown and map ------------------------------------------------------------------


def test_shutdown_cancel_futures_cancels_running_and_pending_items(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    pool = ThreadPoolExecutor(2)
    jobs = [Job(), Job()]
    running = [pool.submit(job) for job in jobs]
    for job in jobs:
        assert job.started.wait(10)
    wait_all_threads_blocked(expected=2)
    pending = pool.submit(int)
    pool.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in running)
    assert pending.cancelled()
    assert all(job.log == [ScopeCancelled, "finally"] for job in jobs)
    assert not any(t.is_alive() for t in pool._threads)  # type: ignore[attr-defined]


def test_shutdown_without_cancel_futures_lets_running_work_finish(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    pool = ThreadPoolExecutor(1)
    gate = threadpatch.Event()
    future = pool.submit(gate.wait, 10)
    wait_all_threads_blocked(expected=1)
    pool.shutdown(wait=False)
    gate.set()
    assert future.result(timeout=10) is True
    pool.shutdown(wait=True)


def test_map_past_its_timeout_cancels_the_items_still_running() -> None:
    jobs = [Job(), Job()]
    with ThreadPoolExecutor(2) as pool:
        results = pool.map(lambda job: job(), jobs, timeout=0.05)
        with pytest.raises(concurrent.futures.TimeoutError):
            list(results)
    # Leaving the with block joined the workers: both calls were stopped.
    assert all(job.log == [ScopeCancelled, "finally"] for job in jobs)


# -- requests, unmodified, against a stalled server ---------------------------------------


def _wait_for_receivers(count: int) -> None:
    """Wait until ``count`` threads are parked in a socket receive (the stalled requests)."""

    def receiving() -> bool:
        states = [s for s in _core.all_states() if not s.finished and s.parked]
        return sum(1 for s in states if (s.blocked_on or ("",))[0] == "recv") >= count

    wait_until(receiving, message=f"{count} thread(s) blocked in recv")


def _get(url: str) -> object:
    import requests

    return requests.get(url, timeout=60)


@pytest.fixture
def stalled() -> Iterator[str]:
    """A server that never answers, and a check that the test leaves nothing behind.

    No descriptor (the server's side included: it is closed first) and no
    thread is left once the test is over; the test runs patched.
    """
    import requests  # noqa: F401 - imported (and whatever it caches made) before counting

    fds = fd_count()
    threads = _our_threads()
    with SilentServer() as server, threadpatch.patched():
        host, port = server.address
        yield f"http://{host}:{port}/"
    assert _our_threads() <= threads
    assert fd_count() == fds


def _our_threads() -> set[threading.Thread]:
    """Every thread but the test servers' (one more for each connection they accept)."""
    return {t for t in threading.enumerate() if "Server-" not in t.name}


@pytest.mark.parametrize("route", ["future.cancel", "shutdown", "scope", "map"])
def test_requests_get_to_a_stalled_server_is_cancelled(stalled: str, route: str) -> None:
    scope = CancelScope()

    def fetch_in_scope(url: str) -> object:
        with scope:
            return _get(url)
        return "cancelled by the scope"

    pool = ThreadPoolExecutor(2)
    try:
        if route == "map":
            with pytest.raises(concurrent.futures.TimeoutError):
                list(pool.map(_get, [stalled, stalled], timeout=0.2))
        else:
            future = pool.submit(fetch_in_scope if route == "scope" else _get, stalled)
            _wait_for_receivers(1)
            if route == "future.cancel":
                assert future.cancel()
                with pytest.raises(CancelledError):
                    future.result(timeout=10)
            elif route == "shutdown":
                pool.shutdown(cancel_futures=True)
                assert future.cancelled()
            else:
                scope.cancel()
                assert future.result(timeout=10) == "cancelled by the scope"
        if route != "shutdown":
            # The executor is reused afterwards: a request that gets an answer.
            with EchoServer() as echo:
                host, port = echo.address
                assert pool.submit(_echo_roundtrip, host, port).result(timeout=10) == b"ping"
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after a failure: no hang


def _echo_roundtrip(host: str, port: int) -> bytes:
    import socket

    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"ping")
        return sock.recv(4)


# -- the futures patch set: the standard executor ------------------------------------------


def test_futures_is_off_by_default_in_patch_all(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    with threadpatch.patched(), concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert not threadpatch.is_patched("futures")
        gate = threading.Event()  # patched: cancellable
        future = pool.submit(gate.wait, 10)
        wait_all_threads_blocked(expected=1)
        assert future.cancel() is False  # the stdlib's answer for running work
        gate.set()
        assert future.result(timeout=10) is True


@pytest.mark.parametrize("made", ["before", "while"])
def test_the_futures_set_makes_the_stdlib_executor_cancel_running_work(
    made: str, wait_all_threads_blocked: Callable[..., None]
) -> None:
    early = concurrent.futures.ThreadPoolExecutor(1) if made == "before" else None
    with threadpatch.patched(futures=True):
        assert threadpatch.is_patched("futures")
        pool = early or concurrent.futures.ThreadPoolExecutor(1)
        with pool:
            job = Job()
            future = _submit_blocked(pool, job, wait_all_threads_blocked)
            assert future.cancel() is True
            with pytest.raises(CancelledError):
                future.result(timeout=10)
            assert pool.submit(lambda: 5).result(timeout=10) == 5
            job2 = Job()
            second = _submit_blocked(pool, job2, wait_all_threads_blocked)
            pool.shutdown(cancel_futures=True)
            assert second.cancelled()
    assert concurrent.futures.ThreadPoolExecutor.submit is threadpatch.original(
        "concurrent.futures.thread.ThreadPoolExecutor", "submit"
    )
    assert "submit" in vars(concurrent.futures.ThreadPoolExecutor)
    assert not isinstance(
        concurrent.futures.ThreadPoolExecutor(1).submit(int).result(timeout=10), futures.Future
    )


def test_the_futures_set_is_restored_exactly() -> None:
    cls = concurrent.futures.ThreadPoolExecutor
    before = dict(vars(cls))
    with threadpatch.patched(futures=True):
        assert vars(cls)["submit"] is not before["submit"]
        assert vars(cls)["shutdown"] is not before["shutdown"]
    assert all(vars(cls)[name] is value for name, value in before.items())


def test_python_m_threadpatch_futures_runs_a_program_with_the_set_on(tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(
        textwrap.dedent(
            """
        import socket, threading
        from concurrent.futures import ThreadPoolExecutor, CancelledError
        import threadpatch

        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        started = threading.Event()

        def fetch():
            with socket.create_connection(server.getsockname()) as s:
                started.set()
                return s.recv(1)        # the server never answers

        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(fetch)
            started.wait(10)
            print("cancel:", future.cancel())
            try:
                future.result(10)
            except CancelledError:
                print("cancelled:", future.cancelled())
            print("next:", pool.submit(lambda: "ran").result(10))
        print("flag:", threadpatch.is_patched("futures"))
        server.close()
        """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "threadpatch", "--futures", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:4] == [
        "cancel: True",
        "cancelled: True",
        "next: ran",
        "flag: True",
    ]
