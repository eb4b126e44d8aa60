"""What threadpatch does not make cancellable behaves as docs/guide/limits.md says.

Each entry of the page is an entry here: a call that blocks, under
``patch_all()``, and what ends the block.  For every entry two things are
checked: ``cancel(timeout=...)`` returns False while the thread is in the
call (the request is kept and delivered at the next cancellation point after
the call returns), and a ``timeout_after`` deadline that passes during the
call does not fire (the call returns its result; the scope ends quietly).
Then the call is unblocked the way the page's workaround section says, so
no thread, process or descriptor outlives its test.  Regular-file I/O never
waits for readiness, so its entry checks that it is no cancellation point.
"""

from __future__ import annotations

import _queue
import _thread
import contextlib
import ctypes
import fcntl
import multiprocessing
import os
import signal
import sqlite3
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from tests._helpers import wait_until

if TYPE_CHECKING:
    import io
    import queue
    from collections.abc import Callable, Iterator

CANCEL_TIMEOUT = 0.1  # how long cancel() waits for a thread that cannot be interrupted
DEADLINE = 0.05
LIMITS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "guide" / "limits.md"


@pytest.fixture(autouse=True)
def _patch() -> Iterator[None]:
    with threadpatch.patched():
        yield


@dataclass
class Blocked:
    """A call that blocks until ``unblock()``, and what it then returns."""

    call: Callable[[], Any]
    unblock: Callable[[], None]
    check: Callable[[Any], bool]


@contextlib.contextmanager
def _pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    try:
        yield r, w
    finally:
        os.close(r)
        os.close(w)


def fifo_open(tmp_path: Path) -> Iterator[Blocked]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writers: list[int] = []
    opened: list[io.BufferedReader] = []

    def call() -> bool:
        opened.append(open(fifo, "rb"))  # noqa: SIM115 - closed below
        return True

    try:
        # O_RDWR never blocks on Linux, and is a writer: the reader's open returns.
        yield Blocked(call, lambda: writers.append(os.open(fifo, os.O_RDWR)), bool)
    finally:
        for f in opened:
            f.close()
        for fd in writers:
            os.close(fd)


_fork = multiprocessing.get_context("fork")


def mp_lock(tmp_path: Path) -> Iterator[Blocked]:
    lock = _fork.Lock()
    lock.acquire()
    yield Blocked(lock.acquire, lock.release, True.__eq__)


def mp_process_join(tmp_path: Path) -> Iterator[Blocked]:
    proc = _fork.Process(target=signal.pause)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with the hub running
        proc.start()
    try:
        yield Blocked(proc.join, proc.kill, lambda v: v is None and proc.exitcode == -9)
    finally:
        proc.kill()
        proc.join()
        proc.close()


def os_waitpid(tmp_path: Path) -> Iterator[Blocked]:
    pid = os.posix_spawnp("sleep", ["sleep", "60"], os.environ)
    reaped: list[int] = []

    def call() -> tuple[int, int]:
        result = os.waitpid(pid, 0)
        reaped.append(pid)
        return result

    try:
        yield Blocked(call, lambda: os.kill(pid, signal.SIGKILL), lambda v: v == (pid, 9))
    finally:
        if not reaped:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def os_system(tmp_path: Path) -> Iterator[Blocked]:
    pidfile = tmp_path / "pid"

    def kill() -> None:
        pid = wait_until(lambda: pidfile.exists() and pidfile.read_text().strip())
        os.kill(int(pid), signal.SIGKILL)

    yield Blocked(
        lambda: os.system(f"echo $$ > {pidfile}; exec sleep 60"),
        kill,
        lambda v: os.waitstatus_to_exitcode(v) == -9 or v == 9,
    )


def signal_pause(tmp_path: Path) -> Iterator[Blocked]:
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    idents: list[int] = []
    done: list[bool] = []

    def call() -> None:
        idents.append(threading.get_ident())
        signal.pause()
        done.append(True)

    def wake() -> None:
        # A signal sent before the thread is in pause() would be lost: send until it returns.
        def woken() -> bool:
            signal.pthread_kill(idents[0], signal.SIGUSR1)
            return bool(done)

        wait_until(woken)

    try:
        yield Blocked(call, wake, lambda v: v is None)
    finally:
        signal.signal(signal.SIGUSR1, previous)


def file_lock(tmp_path: Path) -> Iterator[Blocked]:
    path = tmp_path / "lock"
    path.touch()
    with open(path) as holder, open(path) as waiter:
        fcntl.flock(holder, fcntl.LOCK_EX)

        def release() -> None:
            fcntl.flock(holder, fcntl.LOCK_UN)

        yield Blocked(lambda: fcntl.flock(waiter, fcntl.LOCK_EX), release, lambda v: v is None)


def c_extension(tmp_path: Path) -> Iterator[Blocked]:
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(10)
    with _pipe() as (r, w):
        yield Blocked(lambda: libc.read(r, buf, 10), lambda: os.write(w, b"z") and None, (1).__eq__)


def sqlite_busy(tmp_path: Path) -> Iterator[Blocked]:
    path = tmp_path / "db.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")

    def call() -> bool:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("COMMIT")
        finally:
            conn.close()
        return True

    try:
        yield Blocked(call, lambda: holder.execute("COMMIT") and None, bool)
    finally:
        holder.close()


def native_lock(tmp_path: Path) -> Iterator[Blocked]:
    native = _thread.allocate_lock()  # as a lock made before patching is
    native.acquire()
    yield Blocked(native.acquire, native.release, True.__eq__)


def native_simple_queue(tmp_path: Path) -> Iterator[Blocked]:
    q: queue.SimpleQueue[int] = _queue.SimpleQueue()  # as one made before patching is
    yield Blocked(q.get, lambda: q.put(1), (1).__eq__)


ENTRIES: dict[str, Callable[..., Iterator[Blocked]]] = {
    "fifo-open": fifo_open,
    "multiprocessing-lock": mp_lock,
    "multiprocessing-join": mp_process_join,
    "os-waitpid": os_waitpid,
    "os-system": os_system,
    "signal-pause": signal_pause,
    "file-lock": file_lock,
    "c-extension": c_extension,
    "sqlite-busy": sqlite_busy,
    "native-lock": native_lock,
    "native-simple-queue": native_simple_queue,
}


@contextlib.contextmanager
def entry(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Blocked]:
    factory = ENTRIES[name]
    kwargs: dict[str, Any] = {"tmp_path": tmp_path}
    if "monkeypatch" in factory.__code__.co_varnames:
        kwargs["monkeypatch"] = monkeypatch
    gen = factory(**kwargs)
    try:
        yield next(gen)
    finally:
        gen.close()


def _sleeping(thread: threadpatch.Thread) -> bool:
    """The thread is asleep in the kernel (in the call, or about to be)."""
    try:
        stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("S", "D")


@pytest.mark.parametrize("name", ENTRIES)
def test_cancel_waits_for_the_call(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with entry(name, tmp_path, monkeypatch) as blocked:
        entered: list[bool] = []
        results: list[Any] = []

        def body() -> None:
            entered.append(True)
            results.append(blocked.call())
            threadpatch.checkpoint()  # the kept request is delivered here

        thread = threadpatch.spawn(body)
        wait_until(lambda: entered and _sleeping(thread), message="the thread entered the call")
        assert not thread.cancel(timeout=CANCEL_TIMEOUT)
        assert thread.is_alive()
        assert not results
        blocked.unblock()
        assert thread.wait(timeout=10)
        assert thread.cancelled
        assert blocked.check(results[0]), results


@pytest.mark.parametrize("name", ENTRIES)
def test_deadline_does_not_fire(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with entry(name, tmp_path, monkeypatch) as blocked:
        scopes: list[threadpatch.DeadlineScope] = []

        def body() -> tuple[Any, bool, bool]:
            with threadpatch.timeout_after(DEADLINE) as scope:
                scopes.append(scope)
                value = blocked.call()
            return value, scope.timed_out, scope.expired

        thread = threadpatch.spawn(body)
        wait_until(lambda: scopes and scopes[0].timed_out, message="the deadline passed")
        assert thread.is_alive()
        blocked.unblock()
        value, timed_out, expired = thread.join(timeout=10)
        assert blocked.check(value), value
        assert (timed_out, expired) == (True, False)


def test_regular_file_io_is_no_cancellation_point(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"x" * 100_000)

    def body() -> tuple[bytes, int]:
        threadpatch.cancel(threadpatch.current())  # recorded: raised at the next wait
        with open(path, "rb") as f:
            data = f.read()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            written = os.write(fd, b"y")
        finally:
            os.close(fd)
        try:
            threadpatch.checkpoint()
        except threadpatch.ThreadCancelled:
            return data, written
        raise AssertionError("the cancellation was lost")

    assert threadpatch.spawn(body).join(timeout=10) == (b"x" * 100_000, 1)


def test_the_page_lists_every_entry() -> None:
    page = LIMITS_PAGE.read_text()
    for name in [*ENTRIES, "regular-file-io", "deadline-at-exit"]:
        assert f'<a id="{name}"></a>' in page, f"docs/guide/limits.md has no entry {name!r}"
