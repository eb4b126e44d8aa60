"""Event loops keep working in a patched process: trio, asyncio, anyio.

trio asserts that its entry queue's RLock is ``_thread``'s (the one RLock safe
to re-enter from a signal handler); the ``trio`` set keeps it native (see
threadpatch/_signal_safe.py).  In this process trio was imported
before patching; the child interpreters import it after, as
``python -m threadpatch`` does for a user's program.
"""

from __future__ import annotations

import asyncio
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING

import anyio
import pytest
import trio

import threadpatch
from threadpatch import _sync

if TYPE_CHECKING:
    from pathlib import Path

TIMEOUT = 60


@pytest.fixture(autouse=True)
def _short_lived_trio_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    # trio's thread cache keeps an idle worker for 10 s; the leak check would
    # cancel it (for good: cancellation is sticky) and the next test reusing
    # it would fail.  Idle workers of these tests exit at once instead.
    monkeypatch.setattr(trio._core._thread_cache, "IDLE_TIMEOUT", 0.01)


def _worker_job(n: int) -> int:
    # Patched blocking calls in the worker thread: a sleep and a queue hand-off.
    assert time.sleep is not threadpatch.original("time", "sleep")
    q: queue.Queue[int] = queue.Queue()
    threading.Thread(target=q.put, args=(n * 2,)).start()
    time.sleep(0.001)
    return q.get(timeout=10)


TRIO_PROGRAM = """
import queue, threading, time
import trio

async def double(n):
    await trio.sleep(0)
    return n * 2

def in_thread(n):
    q = queue.Queue()
    threading.Thread(target=q.put, args=(n,)).start()
    time.sleep(0.001)
    got = q.get(timeout=10)
    via_loop = trio.from_thread.run(double, got)
    return trio.from_thread.run_sync(lambda: via_loop + 1)

async def main():
    results = []
    async with trio.open_nursery() as nursery:
        for n in range(3):
            async def one(n=n):
                results.append(await trio.to_thread.run_sync(in_thread, n))
            nursery.start_soon(one)
    return sorted(results)

print(trio.run(main))
"""


def _script(tmp_path: Path, program: str) -> str:
    path = tmp_path / "program.py"
    path.write_text(textwrap.dedent(program))
    return str(path)


def _run_patched(tmp_path: Path, program: str) -> str:
    """Run ``program`` under ``python -m threadpatch``; its output (it must succeed)."""
    proc = subprocess.run(
        [sys.executable, "-m", "threadpatch", _script(tmp_path, program)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# -- trio --------------------------------------------------------------------------


def test_trio_run_with_threads_under_patch_all() -> None:
    threadpatch.patch_all()

    async def main() -> list[int]:
        results = []
        for n in range(3):
            doubled = await trio.to_thread.run_sync(_worker_job, n)
            results.append(doubled)

        def back_to_loop() -> int:
            token_value: int = trio.from_thread.run_sync(lambda: 7)

            async def async_part() -> int:
                await trio.sleep(0)
                return token_value + 1

            return trio.from_thread.run(async_part)

        results.append(await trio.to_thread.run_sync(back_to_loop))
        return results

    assert trio.run(main) == [0, 2, 4, 8]


def test_trio_imported_after_patching_runs_in_a_child(tmp_path: Path) -> None:
    assert _run_patched(tmp_path, TRIO_PROGRAM) == "[1, 3, 5]"


def test_trio_entry_queue_lock_is_native_and_plain_rlocks_are_ours(tmp_path: Path) -> None:
    program = """
    import threading, _thread
    import threadpatch
    threadpatch.patch_all()
    import trio
    from trio._core import _run

    async def main():
        return type(_run.GLOBAL_RUN_CONTEXT.runner.entry_queue.lock).__module__

    print(trio.run(main), type(threading.RLock()) is threadpatch.RLock)
    """
    proc = subprocess.run(
        [sys.executable, _script(tmp_path, program)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["_thread", "True"]


def test_trio_surfaces_keyboard_interrupt_in_a_child(tmp_path: Path) -> None:
    # SIGINT goes through trio's handler, which takes the entry queue's lock.
    program = """
    import signal, sys, threading, time
    import trio

    # The test run may be a background job, started with SIGINT ignored; trio
    # only installs its handler over the default one, as a terminal job has.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def worker(ready):
        ready.set()
        time.sleep(0.001)

    async def main():
        ready = threading.Event()
        await trio.to_thread.run_sync(worker, ready)
        print("ready", flush=True)
        await trio.sleep_forever()

    try:
        trio.run(main)
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
        sys.exit(0)
    sys.exit(3)
    """
    with subprocess.Popen(
        [sys.executable, "-m", "threadpatch", _script(tmp_path, program)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert out.strip() == "KeyboardInterrupt"


# -- asyncio -----------------------------------------------------------------------


def test_asyncio_executor_to_thread_and_call_soon_threadsafe_under_patch_all() -> None:
    threadpatch.patch_all()

    async def main() -> tuple[int, int, str]:
        loop = asyncio.get_running_loop()
        via_executor = await loop.run_in_executor(None, _worker_job, 5)
        via_to_thread = await asyncio.to_thread(_worker_job, 6)
        future: asyncio.Future[str] = loop.create_future()

        def from_thread() -> None:
            time.sleep(0.001)
            loop.call_soon_threadsafe(future.set_result, "threadsafe")

        thread = threading.Thread(target=from_thread)
        thread.start()
        got = await asyncio.wait_for(future, TIMEOUT)
        thread.join(timeout=10)
        return via_executor, via_to_thread, got

    assert asyncio.run(main()) == (10, 12, "threadsafe")


def test_asyncio_in_a_child_started_with_the_cli(tmp_path: Path) -> None:
    program = """
    import asyncio, queue, threading, time

    def job(n):
        q = queue.Queue()
        threading.Thread(target=q.put, args=(n,)).start()
        time.sleep(0.001)
        return q.get(timeout=10)

    async def main():
        loop = asyncio.get_running_loop()
        a = await loop.run_in_executor(None, job, 1)
        b = await asyncio.to_thread(job, 2)
        fut = loop.create_future()
        threading.Thread(target=lambda: loop.call_soon_threadsafe(fut.set_result, 3)).start()
        return [a, b, await asyncio.wait_for(fut, 30)]

    print(asyncio.run(main()))
    """
    assert _run_patched(tmp_path, program) == "[1, 2, 3]"


# -- anyio -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_anyio_to_thread_on_both_backends_under_patch_all(backend: str) -> None:
    threadpatch.patch_all()

    async def main() -> list[int]:
        first = await anyio.to_thread.run_sync(_worker_job, 1)

        def calls_back() -> int:
            return anyio.from_thread.run_sync(lambda: 40) + 2

        second = await anyio.to_thread.run_sync(calls_back)
        return [first, second]

    assert anyio.run(main, backend=backend) == [2, 42]


# -- the mechanism -----------------------------------------------------------------


def test_patched_rlock_is_cancellable_outside_signal_safe_set_up(
    wait_all_threads_blocked: object,
) -> None:
    threadpatch.patch_all()
    lock = threading.RLock()
    assert type(lock) is threadpatch.RLock
    native = _sync.makes_signal_safe_locks(threading.RLock)()
    assert type(native) is type(threadpatch.original("threading", "RLock")())
    with lock:
        t = threadpatch.spawn(lock.acquire)
        wait_all_threads_blocked()  # type: ignore[operator]
        assert t.cancel(timeout=10)
    assert t.cancelled
