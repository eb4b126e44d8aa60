"""threadpatch.to_thread / from_thread: cancelling the task stops the thread, both ways.

asyncio and trio (and anyio on both); unmodified ``requests.get`` to a stalled
loopback server inside ``to_thread``, cancelled by the task's cancellation and
by its deadline; ``from_thread`` to the loop that started the thread and to the
hub's curio kernel; the ``asyncio`` patch set; Ctrl-C in ``asyncio.run()``.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sniffio

import threadpatch
from tests.servers import SilentServer, fd_count
from tests.test_ctrl_c_programs import interrupt
from threadpatch import _bridges, _core, _workers

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

trio = pytest.importorskip("trio")

TIMEOUT = 10.0
_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


@pytest.fixture(autouse=True)
def _workers_end() -> Iterator[None]:
    yield
    threadpatch.shutdown_idle_workers()
    assert _workers.pool.count == 0, "a worker is still busy after its test"


def _busy_workers() -> list[_core.ThreadState]:
    """Workers of the pool blocked in their job (not idle)."""
    return [
        s
        for s in _core.all_states()
        if s.name == "threadpatch.to_thread"
        and not s.finished
        and s.parked
        and s.blocked_on is not None
        and s.blocked_on[0] != "to_thread idle"
    ]


async def _asyncio_until(predicate: Callable[[], object]) -> None:
    """Poll a state nothing signals (a thread parked), bounded."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, "the awaited state never came"
        await asyncio.sleep(0.001)


async def _trio_until(predicate: Callable[[], object]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, "the awaited state never came"
        await trio.sleep(0.001)


def _blocked(log: list[str], release: threadpatch.Event | None = None) -> str:
    """A call that blocks in a threadpatch wait; records its clean-up."""
    try:
        (release or threadpatch.Event()).wait()
        return "released"
    except threadpatch.ThreadCancelled as exc:
        log.append(type(exc).__name__)
        raise
    finally:
        log.append("finally")


def _thread_deadline() -> float:
    """The earliest deadline of the calling thread's scopes (``math.inf``: none)."""
    scopes = _core.current_state().scopes
    return min((getattr(s, "deadline", math.inf) for s in scopes), default=math.inf)


# -- asyncio ------------------------------------------------------------------------


def test_asyncio_result_arguments_and_context() -> None:
    def job(a: int, *, b: int) -> tuple[int, str, str | None, bool]:
        try:
            library: str | None = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = None
        in_loop = threading.current_thread() is threading.main_thread()
        return a + b, _var.get(), library, in_loop

    async def main() -> tuple[int, str, str | None, bool]:
        _var.set("task's")
        return await threadpatch.to_thread(job, 1, b=2)

    assert asyncio.run(main()) == (3, "task's", None, False)


def test_asyncio_exception_is_raised_in_the_task() -> None:
    def fail() -> None:
        raise KeyError("from the thread")

    async def main() -> None:
        await threadpatch.to_thread(fail)

    with pytest.raises(KeyError, match="from the thread"):
        asyncio.run(main())


def test_asyncio_task_cancel_stops_the_thread_before_the_await_returns() -> None:
    log: list[str] = []

    async def main() -> None:
        task = asyncio.ensure_future(threadpatch.to_thread(_blocked, log))
        await _asyncio_until(_busy_workers)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert log == ["ScopeCancelled", "finally"]  # before the task saw its cancellation

    asyncio.run(main())


def test_asyncio_cancel_again_while_the_thread_stops_still_waits_for_it() -> None:
    log: list[str] = []
    stopping = threadpatch.Event()
    finish = threadpatch.Event()

    def slow_cleanup() -> None:
        try:
            threadpatch.Event().wait()
        finally:
            stopping.set()
            with threadpatch.shield():
                finish.wait(TIMEOUT)
            log.append("finally")

    async def main() -> None:
        task = asyncio.ensure_future(threadpatch.to_thread(slow_cleanup))
        await _asyncio_until(_busy_workers)
        task.cancel()
        await _asyncio_until(stopping.is_set)
        task.cancel()  # a second cancel while the thread runs its clean-up
        await asyncio.sleep(0)
        assert not task.done()
        finish.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert log == ["finally"]

    asyncio.run(main())


def test_asyncio_timeout_expires_in_the_thread() -> None:
    log: list[str] = []

    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await threadpatch.to_thread(_blocked, log)
        assert log[-1] == "finally"
        # DeadlineExpired (the thread's own deadline) or ThreadCancelled (the
        # loop's timeout came first): either way a ThreadCancelled subclass.
        assert log[0] in ("DeadlineExpired", "ScopeCancelled")

    asyncio.run(main())


def test_asyncio_deadline_expires_in_the_thread_while_the_loop_is_busy() -> None:
    # The loop is blocked past the deadline: only the thread's own deadline can
    # stop the call; the task still ends by its asyncio.timeout.
    log: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                loop.call_soon(_core._natives.sleep, 0.3)
                await threadpatch.to_thread(_blocked, log)
        assert log == ["DeadlineExpired", "finally"]

    asyncio.run(main())


def test_asyncio_an_expiry_the_call_turned_into_another_error_is_still_a_timeout() -> None:
    def wraps_errors() -> None:
        try:
            threadpatch.Event().wait()
        except BaseException as exc:
            raise RuntimeError("wrapped") from exc

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                loop.call_soon(_core._natives.sleep, 0.3)  # only the thread sees the deadline
                await threadpatch.to_thread(wraps_errors)

    asyncio.run(main())


def test_asyncio_the_thread_sees_the_tasks_deadline() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert await threadpatch.to_thread(_thread_deadline) == math.inf
        async with asyncio.timeout(600) as outer:
            async with asyncio.timeout(300) as inner:
                seen = await threadpatch.to_thread(_thread_deadline)
                when = inner.when()
                assert when is not None
                assert abs(seen - when) < 1  # one clock; the deadlines are minutes apart
                inner.reschedule(loop.time() + 900)
                seen = await threadpatch.to_thread(_thread_deadline)
                assert abs(seen - (outer.when() or 0)) < 1  # the earlier one wins
        soon = time.monotonic() + 100
        seen = await threadpatch.to_thread_until(soon, _thread_deadline)
        assert abs(seen - soon) < 1

    asyncio.run(main())


def test_asyncio_deadline_lookup_limits() -> None:
    from threadpatch import _asyncio

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(300):
            other = asyncio.ensure_future(threadpatch.to_thread(_thread_deadline))
            assert await other == math.inf  # another task's timeout is not its own
            handles = [loop.call_later(1000, int) for _ in range(_asyncio.SCAN_LIMIT)]
            assert await threadpatch.to_thread(_thread_deadline) == math.inf  # too many to look
            for handle in handles:
                handle.cancel()

    asyncio.run(main())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="wait_for uses asyncio.timeout on 3.12+")
def test_asyncio_wait_for_deadline_is_seen() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        seen = await asyncio.wait_for(threadpatch.to_thread(_thread_deadline), 300)
        assert start + 299 < seen < loop.time() + 301

    asyncio.run(main())


def test_to_thread_until_raises_thread_timeout() -> None:
    log: list[str] = []

    async def main() -> None:
        with pytest.raises(threadpatch.ThreadTimeout):
            await threadpatch.to_thread_until(time.monotonic() + 0.05, _blocked, log)
        assert log == ["DeadlineExpired", "finally"]

    asyncio.run(main())


@pytest.mark.parametrize(("deadline", "error"), [("soon", TypeError), (math.nan, ValueError)])
def test_to_thread_until_checks_its_deadline(deadline: Any, error: type[Exception]) -> None:
    async def main() -> None:
        await threadpatch.to_thread_until(deadline, int)

    with pytest.raises(error, match="deadline"):
        asyncio.run(main())


def test_requests_to_a_stalled_server_cancelled_by_task_cancel_and_by_timeout() -> None:
    requests = pytest.importorskip("requests")
    fds = fd_count()
    with SilentServer() as server:
        url = "http://{}:{}/".format(*server.address)

        async def main() -> None:
            task = asyncio.ensure_future(threadpatch.to_thread(requests.get, url))
            await _asyncio_until(_busy_workers)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await threadpatch.to_thread(requests.get, url, timeout=60)
            # the pool works afterwards
            assert await threadpatch.to_thread(len, "abc") == 3

        with threadpatch.patched():
            asyncio.run(main())
        threadpatch.shutdown_idle_workers()
    assert fd_count() == fds  # the server's side of the connections closed with it


def test_queued_job_cancelled_never_runs_and_the_pool_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_workers, "MAX_WORKERS", 2)
    ran: list[int] = []
    release = threadpatch.Event()

    def job(i: int) -> int:
        ran.append(i)
        release.wait()
        return i

    async def main() -> None:
        tasks = [asyncio.ensure_future(threadpatch.to_thread(job, i)) for i in range(4)]
        await _asyncio_until(lambda: len(_busy_workers()) == 2)
        assert _workers.pool.count == 2
        assert len(_workers.pool.queue) == 2
        tasks[3].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks[3]
        release.set()
        assert await asyncio.gather(*tasks[:3]) == [0, 1, 2]
        assert sorted(ran) == [0, 1, 2]

    asyncio.run(main())


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "threadpatch.to_thread"]


def _blocked_in(log: list[str], idents: list[int]) -> str:
    idents.append(threading.get_ident())
    return _blocked(log)


def test_asyncio_a_cancelled_job_leaves_its_worker_alive_and_reused() -> None:
    threadpatch.shutdown_idle_workers()
    threads_before = len(threading.enumerate())
    log: list[str] = []
    idents: list[int] = []

    async def main() -> None:
        first = await threadpatch.to_thread(threading.get_ident)
        assert await threadpatch.to_thread(threading.get_ident) == first
        fds = fd_count()
        for _ in range(3):
            task = asyncio.ensure_future(threadpatch.to_thread(_blocked_in, log, idents))
            await _asyncio_until(_busy_workers)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The same thread takes the next job: the job was cancelled, not the worker.
            assert await threadpatch.to_thread(threading.get_ident) == first
            assert _workers.pool.count == 1
            assert [t.ident for t in _pool_threads()] == [first]
        assert idents == [first] * 3
        assert log == ["ScopeCancelled", "finally"] * 3
        assert fd_count() == fds

    asyncio.run(main())
    threadpatch.shutdown_idle_workers()
    assert _workers.pool.count == 0
    assert not _pool_threads()
    assert len(threading.enumerate()) == threads_before


def test_trio_a_cancelled_job_leaves_its_worker_alive_and_reused() -> None:
    log: list[str] = []
    idents: list[int] = []

    async def main() -> None:
        first = await threadpatch.to_thread(threading.get_ident)
        for _ in range(2):
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:

                    async def cancel_when_blocked(scope: trio.CancelScope = scope) -> None:
                        await _trio_until(_busy_workers)
                        scope.cancel()

                    nursery.start_soon(cancel_when_blocked)
                    await threadpatch.to_thread(_blocked_in, log, idents)
            assert scope.cancelled_caught
            assert await threadpatch.to_thread(threading.get_ident) == first
            assert _workers.pool.count == 1
        assert idents == [first] * 2
        assert log == ["ScopeCancelled", "finally"] * 2

    trio.run(main)


def test_a_deadline_that_expired_in_a_job_leaves_its_worker_reused() -> None:
    log: list[str] = []

    async def main() -> None:
        first = await threadpatch.to_thread(threading.get_ident)
        with pytest.raises(threadpatch.ThreadTimeout):
            await threadpatch.to_thread_until(time.monotonic() + 0.01, _blocked, log)
        assert log == ["DeadlineExpired", "finally"]
        # The job's scope (and its deadline) ended with the job.
        assert await threadpatch.to_thread(_thread_deadline) == math.inf
        assert await threadpatch.to_thread(threading.get_ident) == first
        assert _workers.pool.count == 1

    asyncio.run(main())


def test_a_job_cancelled_before_its_worker_ran_it_never_blocks() -> None:
    # cancel() can come between the job's hand-over and its start: the
    # scope, cancelled before it is entered, cuts the call short at once.
    log: list[str] = []
    job = _workers.Job(_blocked, (log,), {}, math.inf, "asyncio", None)
    done = threadpatch.Event()
    job.notify = done.set
    job.status = _workers.RUNNING  # as submit() leaves it, before the worker runs it
    assert not _workers.cancel(job)
    job.run()
    job.notify()
    assert done.is_set()
    assert log == ["ScopeCancelled", "finally"]
    assert isinstance(job.error, threadpatch.ThreadCancelled)


def test_a_worker_thread_cancelled_in_a_job_leaves_the_pool_quietly() -> None:
    # threadpatch.cancel(worker) (as Ctrl-C's clean-up does) cancels the
    # thread, not only its job: the worker takes no other job.
    log: list[str] = []

    async def main() -> None:
        task = asyncio.ensure_future(threadpatch.to_thread(_blocked, log))
        await _asyncio_until(_busy_workers)
        (worker,) = _pool_threads()
        threadpatch.cancel(worker, blocking=False)
        with pytest.raises(threadpatch.ThreadCancelled) as info:
            await task
        assert not isinstance(info.value, threadpatch.ScopeCancelled)
        assert log == ["ThreadCancelled", "finally"]
        await _asyncio_until(lambda: not worker.is_alive())
        assert _workers.pool.count == 0
        # Another thread (idents may be reused by the system: compare the objects).
        assert await threadpatch.to_thread(threading.current_thread) is not worker
        assert _workers.pool.count == 1

    asyncio.run(main())


def test_idle_workers_end_after_idle_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_workers, "IDLE_SECONDS", 0.01)
    asyncio.run(threadpatch.to_thread(int))
    deadline = time.monotonic() + TIMEOUT
    while _workers.pool.count and time.monotonic() < deadline:
        _core._natives.sleep(0.001)
    assert _workers.pool.count == 0


def test_an_idle_worker_cancelled_leaves_the_pool_and_the_pool_goes_on() -> None:
    asyncio.run(threadpatch.to_thread(int))
    (idle,) = [t for t in threading.enumerate() if t.name == "threadpatch.to_thread"]
    assert threadpatch.cancel(idle, timeout=TIMEOUT)
    assert _workers.pool.count == 0
    assert asyncio.run(threadpatch.to_thread(int, "8")) == 8


def test_to_thread_in_a_forked_child() -> None:
    code = textwrap.dedent("""
        import asyncio, os, threadpatch
        assert asyncio.run(threadpatch.to_thread(int, "1")) == 1   # a worker now idles
        pid = os.fork()
        if pid == 0:
            code = 0 if asyncio.run(threadpatch.to_thread(int, "2")) == 2 else 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        print("ok")
    """)
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_to_thread_outside_an_event_loop_is_an_error() -> None:
    coro = threadpatch.to_thread(int)
    with pytest.raises(RuntimeError, match="asyncio or trio"):
        coro.send(None)


def test_to_thread_needs_a_callable() -> None:
    async def main() -> None:
        await threadpatch.to_thread(42)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="callable"):
        asyncio.run(main())


# -- from_thread with asyncio -------------------------------------------------------


def test_asyncio_from_thread_runs_on_the_loop() -> None:
    async def where(x: int, *, y: int) -> tuple[int, int]:
        await asyncio.sleep(0)
        return threading.get_ident(), x * y

    async def main() -> None:
        loop_thread = threading.get_ident()
        got = await threadpatch.to_thread(threadpatch.from_thread, where, 6, y=7)
        assert got == (loop_thread, 42)

    asyncio.run(main())


def test_asyncio_cancelling_the_task_cancels_the_coroutine_of_from_thread() -> None:
    log: list[str] = []
    started = threading.Event()

    async def coroutine() -> None:
        started.set()
        try:
            await asyncio.sleep(600)
        except asyncio.CancelledError:
            log.append("coroutine cancelled")
            raise

    def job() -> None:
        try:
            threadpatch.from_thread(coroutine)
        finally:
            log.append("thread finally")

    async def main() -> None:
        task = asyncio.ensure_future(threadpatch.to_thread(job))
        await _asyncio_until(started.is_set)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert log == ["coroutine cancelled", "thread finally"]

    asyncio.run(main())


def test_asyncio_coroutine_cancelled_by_its_loop_cancels_the_thread() -> None:
    after: list[str] = []

    async def cancelled_by_the_loop() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(600)

    def job() -> None:
        try:
            threadpatch.from_thread(cancelled_by_the_loop)
        finally:
            try:
                threadpatch.sleep(600)  # sticky: the thread is cancelled
            except threadpatch.ThreadCancelled:
                after.append("still cancelled")

    async def main() -> None:
        first = await threadpatch.to_thread(threading.get_ident)
        with pytest.raises(threadpatch.ThreadCancelled):
            await threadpatch.to_thread(job)
        assert after == ["still cancelled"]
        # The call was cancelled, not its worker: the same thread goes on.
        assert await threadpatch.to_thread(threading.get_ident) == first

    asyncio.run(main())


def test_asyncio_from_thread_errors_reach_the_thread() -> None:
    async def fail() -> None:
        raise ValueError("from the loop")

    def job() -> str:
        try:
            threadpatch.from_thread(fail)
        except ValueError as exc:
            return str(exc)
        return "no error"

    async def main() -> str:
        return await threadpatch.to_thread(job)

    assert asyncio.run(main()) == "from the loop"


def test_from_thread_in_the_loop_thread_is_an_error() -> None:
    async def nothing() -> None:
        pass

    async def main() -> None:
        with pytest.raises(RuntimeError, match="event loop"):
            threadpatch.from_thread(nothing)

    asyncio.run(main())


# -- the asyncio patch set ----------------------------------------------------------


def test_asyncio_set_is_off_by_default_and_replaces_to_thread_and_run_in_executor() -> None:
    from asyncio import base_events

    original = asyncio.to_thread
    with threadpatch.patched():
        assert not threadpatch.is_patched("asyncio")
        assert asyncio.to_thread is original
    with threadpatch.patched(asyncio=True):
        assert asyncio.to_thread is _bridges.to_thread_asyncio
        assert base_events.BaseEventLoop.run_in_executor is _bridges.run_in_executor
    assert asyncio.to_thread is original
    assert base_events.BaseEventLoop.run_in_executor is _bridges._original_run_in_executor


@pytest.mark.parametrize("route", ["to_thread", "run_in_executor"])
def test_patched_asyncio_calls_cancel_their_thread(route: str) -> None:
    log: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if route == "to_thread":
            task = asyncio.ensure_future(asyncio.to_thread(_blocked, log))
        else:
            task = asyncio.ensure_future(loop.run_in_executor(None, _blocked, log))
        await _asyncio_until(_busy_workers)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert log == ["ScopeCancelled", "finally"]
        assert await loop.run_in_executor(None, int, "5") == 5
        assert loop._default_executor is None  # type: ignore[attr-defined]

    with threadpatch.patched(asyncio=True):
        asyncio.run(main())


def test_patched_run_in_executor_serves_the_loops_own_calls() -> None:
    # asyncio's getaddrinfo (and sendfile's fallback, ...) go through run_in_executor(None).
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        assert loop._default_executor is None  # type: ignore[attr-defined]
        return infos

    with threadpatch.patched(asyncio=True):
        infos = asyncio.run(main())
    assert infos[0][4] == ("127.0.0.1", 80)


def test_asyncio_run_waits_for_a_run_in_executor_call_nobody_awaited() -> None:
    # As asyncio.run() waits for its default executor's threads: the call finishes.
    release = threadpatch.Event()
    finished: list[str] = []

    def call() -> None:
        release.wait(TIMEOUT)
        finished.append("finished")

    async def main() -> None:
        asyncio.get_running_loop().run_in_executor(None, call)
        await _asyncio_until(_busy_workers)
        asyncio.get_running_loop().call_soon(release.set)

    with threadpatch.patched(asyncio=True):
        asyncio.run(main())
    assert finished == ["finished"]


@pytest.mark.parametrize("flags", [{"futures": True}, {"futures": True, "asyncio": True}])
def test_run_in_executor_on_a_stdlib_executor_under_the_futures_set(flags: dict[str, bool]) -> None:
    # asyncio cancels the concurrent future of a cancelled task's
    # run_in_executor() call; under the futures set that stops running work.
    import concurrent.futures

    log: list[str] = []
    stopped = threadpatch.Event()
    idents: list[int] = []

    def blocked() -> str:
        idents.append(threading.get_ident())
        try:
            return _blocked(log)
        finally:
            stopped.set()

    async def main(pool: concurrent.futures.ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(pool, threading.get_ident)
        fds = fd_count()
        task = asyncio.ensure_future(loop.run_in_executor(pool, blocked))
        await _asyncio_until(lambda: idents)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _asyncio_until(stopped.is_set)  # asyncio does not wait for the thread
        assert log == ["ScopeCancelled", "finally"]
        assert idents == [first]
        # Reusable, on the same worker (max_workers=1: it would hang otherwise).
        assert await loop.run_in_executor(pool, threading.get_ident) == first
        assert len(pool._threads) == 1
        if flags.get("asyncio"):  # the default executor goes to the bridges' pool
            log.clear()
            task = asyncio.ensure_future(loop.run_in_executor(None, _blocked, log))
            await _asyncio_until(_busy_workers)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert log == ["ScopeCancelled", "finally"]
            assert await loop.run_in_executor(None, int, "3") == 3
            assert loop._default_executor is None  # type: ignore[attr-defined]
        assert fd_count() == fds

    threads_before = len(threading.enumerate())
    with threadpatch.patched(**flags):  # type: ignore[arg-type]
        assert threadpatch.is_patched("futures")
        assert threadpatch.is_patched("asyncio") == bool(flags.get("asyncio"))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            asyncio.run(main(pool))
    threadpatch.shutdown_idle_workers()
    assert len(threading.enumerate()) == threads_before


def test_patched_run_in_executor_keeps_an_explicit_executor() -> None:
    from concurrent.futures import ThreadPoolExecutor

    async def main() -> str:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1, thread_name_prefix="mine") as pool:
            return await loop.run_in_executor(pool, lambda: threading.current_thread().name)

    with threadpatch.patched(asyncio=True):
        assert asyncio.run(main()).startswith("mine")


# -- trio ---------------------------------------------------------------------------


def test_trio_result_arguments_and_context() -> None:
    def job(a: int, *, b: int) -> tuple[int, str, str | None]:
        try:
            library: str | None = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = None
        return a + b, _var.get(), library

    async def main() -> tuple[int, str, str | None]:
        _var.set("task's")
        return await threadpatch.to_thread(job, 1, b=2)

    assert trio.run(main) == (3, "task's", None)


def test_trio_cancel_stops_the_thread_before_the_await_returns() -> None:
    log: list[str] = []

    async def main() -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def cancel_when_blocked() -> None:
                    await _trio_until(_busy_workers)
                    scope.cancel()

                nursery.start_soon(cancel_when_blocked)
                await threadpatch.to_thread(_blocked, log)
        assert scope.cancelled_caught
        assert log == ["ScopeCancelled", "finally"]

    trio.run(main)


def test_trio_move_on_after_expires_in_the_thread() -> None:
    log: list[str] = []

    async def main() -> None:
        with trio.move_on_after(0.05) as scope:
            await threadpatch.to_thread(_blocked, log)
        assert scope.cancelled_caught
        assert log[-1] == "finally"
        assert log[0] in ("DeadlineExpired", "ScopeCancelled")

    trio.run(main)


def test_trio_deadline_expires_in_the_thread_while_the_loop_is_busy() -> None:
    log: list[str] = []

    async def main() -> None:
        token = trio.lowlevel.current_trio_token()
        with trio.move_on_after(0.05) as scope:
            token.run_sync_soon(_core._natives.sleep, 0.3)
            await threadpatch.to_thread(_blocked, log)
        assert scope.cancelled_caught
        assert log == ["DeadlineExpired", "finally"]

    trio.run(main)


def test_trio_the_thread_sees_the_tasks_deadline() -> None:
    async def main() -> None:
        assert await threadpatch.to_thread(_thread_deadline) == math.inf
        with trio.move_on_after(300):
            expected = time.monotonic() + (trio.current_effective_deadline() - trio.current_time())
            seen = await threadpatch.to_thread(_thread_deadline)
            assert abs(seen - expected) < 1

    trio.run(main)


def test_trio_requests_to_a_stalled_server_cancelled_by_move_on_after() -> None:
    requests = pytest.importorskip("requests")
    fds = fd_count()
    with SilentServer() as server:
        url = "http://{}:{}/".format(*server.address)

        async def main() -> None:
            with trio.move_on_after(0.1) as scope:
                await threadpatch.to_thread(requests.get, url)
            assert scope.cancelled_caught
            with trio.CancelScope() as outer:
                async with trio.open_nursery() as nursery:

                    async def cancel_when_blocked() -> None:
                        await _trio_until(_busy_workers)
                        outer.cancel()

                    nursery.start_soon(cancel_when_blocked)
                    await threadpatch.to_thread(requests.get, url, timeout=60)
            assert outer.cancelled_caught
            assert await threadpatch.to_thread(len, "ab") == 2

        with threadpatch.patched():
            trio.run(main)
        threadpatch.shutdown_idle_workers()
    assert fd_count() == fds  # the server's side of the connections closed with it


def test_trio_from_thread_runs_on_the_loop_and_cancellation_flows_both_ways() -> None:
    log: list[str] = []
    started = threading.Event()

    async def where() -> int:
        await trio.sleep(0)
        return threading.get_ident()

    async def forever() -> None:
        started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            log.append("coroutine cancelled")
            raise

    def job() -> None:
        try:
            threadpatch.from_thread(forever)
        finally:
            log.append("thread finally")

    async def main() -> None:
        assert await threadpatch.to_thread(threadpatch.from_thread, where) == threading.get_ident()
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def cancel_when_started() -> None:
                    await _trio_until(started.is_set)
                    scope.cancel()

                nursery.start_soon(cancel_when_started)
                await threadpatch.to_thread(job)
        assert log == ["coroutine cancelled", "thread finally"]

    trio.run(main)


# -- anyio --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_anyio_move_on_after_cancels_the_thread(backend: str) -> None:
    anyio = pytest.importorskip("anyio")
    log: list[str] = []

    async def main() -> None:
        with anyio.move_on_after(0.05) as scope:
            await threadpatch.to_thread(_blocked, log)
        assert scope.cancelled_caught
        assert log[-1] == "finally"

    anyio.run(main, backend=backend)


# -- from_thread on the hub's curio kernel -------------------------------------------


def test_curio_from_a_plain_thread() -> None:
    import curio

    async def add(a: int, b: int) -> tuple[int, int]:
        await curio.sleep(0)
        return threading.get_ident(), a + b

    hub_ident, total = threadpatch.spawn(threadpatch.from_thread, add, 2, 3).join(TIMEOUT)
    assert total == 5
    assert hub_ident == _core.get_hub().ident


def test_curio_cancelling_the_thread_cancels_the_coroutine() -> None:
    import curio

    log: list[str] = []
    started = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await curio.sleep(600)
        except curio.CancelledError:
            log.append("coroutine cancelled")
            raise

    t = threadpatch.spawn(threadpatch.from_thread, forever)
    assert started.wait(TIMEOUT)
    assert t.cancel(timeout=TIMEOUT)
    assert t.cancelled
    assert log == ["coroutine cancelled"]


def test_curio_deadline_of_the_thread_cancels_the_coroutine() -> None:
    import curio

    log: list[str] = []

    async def forever() -> None:
        try:
            await curio.sleep(600)
        finally:
            log.append("coroutine finally")

    with pytest.raises(threadpatch.ThreadTimeout):
        threadpatch.timeout_after(0.05, threadpatch.from_thread, forever)
    assert log == ["coroutine finally"]


def test_curio_coroutine_errors_reach_the_thread() -> None:
    async def fail() -> None:
        raise LookupError("in curio")

    with pytest.raises(LookupError, match="in curio"):
        threadpatch.from_thread(fail)


def test_curio_needs_a_coroutine_function_and_the_hub_survives() -> None:
    with pytest.raises(TypeError, match="coroutine function"):
        threadpatch.from_thread(len, "abc")  # type: ignore[arg-type]
    assert _core.get_hub().running
    assert threadpatch.timeout_after(5, threadpatch.sleep, 0) is None


def test_hub_run_coroutine_and_cancel_coroutine() -> None:
    import curio

    hub = _core.get_hub()
    outcomes: list[tuple[object, object, bool]] = []
    done = threading.Event()

    def on_done(value: object, error: BaseException | None, cancelled: bool) -> None:
        outcomes.append((value, type(error).__name__ if error else None, cancelled))
        done.set()

    async def value() -> int:
        return 42

    async def fail() -> None:
        raise OSError("in the kernel")

    async def forever() -> None:
        await curio.sleep(600)

    for coro_fn in (value, fail):
        done.clear()
        hub.run_coroutine(coro_fn(), on_done)
        assert done.wait(TIMEOUT)
    done.clear()
    handle = hub.run_coroutine(forever(), on_done)
    hub.cancel_coroutine(handle)
    assert done.wait(TIMEOUT)
    hub.cancel_coroutine(handle)  # once it has ended: a no-op
    hub.sync()
    assert outcomes == [(42, None, False), (None, "OSError", False), (None, None, True)]
    assert hub.running


# -- Ctrl-C -----------------------------------------------------------------------------

CTRL_C_PRELUDE = """
import asyncio, os, signal, socket, sys, threading, time
import threadpatch
from threadpatch import _core

def say(line):
    os.write(1, (line + "\\n").encode())

def announce_when_blocked(count):
    me = _core.current_state()
    def watch():
        while True:
            busy = [s for s in _core.all_states() if s.name == "threadpatch.to_thread"
                    and not s.finished and s.parked and s.blocked_on is not None]
            if len(busy) >= count:
                say("READY")
                return
            time.sleep(0.001)
    threading.Thread(target=watch, daemon=True).start()

silent = socket.socket()
silent.bind(("127.0.0.1", 0))
silent.listen(8)
URL = "http://127.0.0.1:%d/" % silent.getsockname()[1]

def worker(i, kind):
    try:
        if kind == "sleep":
            time.sleep(60)
        elif kind == "socket":
            a, b = socket.socketpair()
            a.recv(1)
        else:
            import requests
            requests.get(URL)
    finally:
        say(f"finally {i}")

async def main(to_thread):
    announce_when_blocked(2)
    await asyncio.gather(*(to_thread(worker, i, KIND) for i in range(2)))

async def forget(n):
    loop = asyncio.get_running_loop()
    for i in range(n):
        loop.run_in_executor(None, worker, i, KIND)   # nobody awaits them
    announce_when_blocked(n)
    await asyncio.sleep(3600)

async def trio_nursery():
    import trio
    announce_when_blocked(2)
    async with trio.open_nursery() as nursery:
        for i in range(2):
            nursery.start_soon(threadpatch.to_thread, worker, i, KIND)

def trio_main():
    import trio
    try:
        trio.run(trio_nursery)
    except BaseExceptionGroup as group:  # trio's nursery wraps the KeyboardInterrupt
        if group.subgroup(KeyboardInterrupt) is not None:
            raise KeyboardInterrupt from None
        raise
"""


def _interrupt(code: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    return interrupt(code, "cli", args)[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sleep", "socket", "requests"])
@pytest.mark.parametrize(
    "route",
    [
        "threadpatch.to_thread",
        "asyncio.to_thread",
        "run_in_executor",
        "run_in_executor alone",
        "trio",
    ],
)
def test_ctrl_c_in_asyncio_run_and_trio_run_stops_the_threads(route: str, kind: str) -> None:
    # The asyncio set alone (without asyncio_runner, whose Runner.close would
    # cancel a default executor's threads anyway), and with it.
    args = {
        "asyncio.to_thread": ["--asyncio", "--no-asyncio_runner"],
        "run_in_executor": ["--asyncio"],
        "run_in_executor alone": ["--asyncio", "--no-asyncio_runner"],
    }.get(route, [])
    run = {
        "trio": "trio_main()",
        "run_in_executor": "asyncio.run(forget(2))",
        "run_in_executor alone": "asyncio.run(forget(2))",
    }.get(route, f"asyncio.run(main({route}))")
    code = CTRL_C_PRELUDE + f"KIND = {kind!r}\n{run}\n"
    t0 = time.monotonic()
    result = _interrupt(code, args)
    assert {"finally 0", "finally 1"} <= set(result.stdout.splitlines()), result.stderr
    assert result.returncode == -signal.SIGINT, result.stderr
    assert "KeyboardInterrupt" in result.stderr
    assert time.monotonic() - t0 < 9  # bounded well inside communicate()'s timeout


def test_shutdown_idle_workers_ends_them() -> None:
    async def main() -> Any:
        return await asyncio.gather(*(threadpatch.to_thread(int, "1") for _ in range(3)))

    asyncio.run(main())
    assert _workers.pool.count >= 1
    threadpatch.shutdown_idle_workers()
    assert _workers.pool.count == 0
    assert not [t for t in threading.enumerate() if t.name == "threadpatch.to_thread"]


def test_pytest_plugin_ends_idle_workers_quietly_and_reports_busy_ones(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("""
        import asyncio, pytest, threadpatch

        @pytest.mark.threadpatch
        def test_idle_workers_are_no_leak():
            assert asyncio.run(threadpatch.to_thread(int, "3")) == 3

        @pytest.mark.threadpatch
        def test_a_call_left_running_is():
            async def main():
                asyncio.get_running_loop().run_in_executor(None, threadpatch.sleep, 60)
            loop = asyncio.new_event_loop()
            with threadpatch.patched(asyncio=True):
                loop.run_until_complete(main())
            loop.close()  # without shutdown_default_executor(): the call goes on
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*ThreadLeakWarning*test_a_call_left_running_is*to_thread*"])
    assert "test_idle_workers_are_no_leak left" not in result.stdout.str()


# -- the guide's examples ------------------------------------------------------------

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide" / "async-bridges.md"


def _guide_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_guide_blocks())))
def test_the_guides_examples_run(index: int) -> None:
    code = _guide_blocks()[index]
    env = {k: v for k, v in os.environ.items() if k != "THREADPATCH_AUTOPATCH"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "every example prints what happened"
