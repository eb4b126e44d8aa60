"""``os.read`` / ``os.write`` under the ``os`` patch set: cancellation points on what can wait.

Every descriptor that makes a plain ``read``/``write`` wait for a peer — a
pipe, a FIFO, a terminal, a socket — is tried the same ways: ``cancel()``,
a ``timeout_after`` deadline, a plain ``threading.Thread`` cancelled with
``threadpatch.cancel``, another thread closing the descriptor.  Each time
nothing is lost: what the peer sends afterwards is read by the next call.
What stays the stdlib's — non-blocking descriptors, regular files, errors —
is compared with the native functions.  The implementation under test is
whichever ``os.read`` the patch installs (C, or Python under
``THREADPATCH_PURE_PYTHON=1``).
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing
import os
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from tests._helpers import closing_fds, wait_until
from threadpatch._core import _natives

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

NATIVE_READ = _natives.read
NATIVE_WRITE = _natives.write


@pytest.fixture(autouse=True)
def _patch() -> Iterator[None]:
    with threadpatch.patched():
        yield


@dataclass
class Peer:
    """A descriptor a thread waits on, and how its other end makes the wait end."""

    call: Callable[[], Any]  # the blocking call (os.read or os.write)
    release: Callable[[], None]  # the peer sends (or drains): the next call returns
    check: Callable[[Any], bool]  # what that next call returns
    fd: int  # the descriptor waited on
    kind: str  # the wait's kind in threadpatch.snapshot()


def _fill(fd: int) -> None:
    os.set_blocking(fd, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            NATIVE_WRITE(fd, b"\0" * 65536)
    os.set_blocking(fd, True)


def pipe_read(tmp_path: Path) -> Iterator[Peer]:
    r, w = os.pipe()
    with closing_fds(r, w):
        yield Peer(
            lambda: os.read(r, 10), lambda: NATIVE_WRITE(w, b"x") and None, b"x".__eq__, r, "read"
        )


def pipe_write(tmp_path: Path) -> Iterator[Peer]:
    r, w = os.pipe()
    with closing_fds(r, w):
        _fill(w)

        def drain() -> None:
            os.set_blocking(r, False)
            with contextlib.suppress(BlockingIOError):
                while NATIVE_READ(r, 1 << 20):
                    pass

        yield Peer(lambda: os.write(w, b"y" * 10), drain, (10).__eq__, w, "write")


def fifo_read(tmp_path: Path) -> Iterator[Peer]:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(path, os.O_WRONLY)
    os.set_blocking(r, True)
    with closing_fds(r, w):
        yield Peer(
            lambda: os.read(r, 10), lambda: NATIVE_WRITE(w, b"f") and None, b"f".__eq__, r, "read"
        )


def terminal_read(tmp_path: Path) -> Iterator[Peer]:
    master, slave = os.openpty()
    with closing_fds(master, slave):
        yield Peer(
            lambda: os.read(slave, 10),
            lambda: NATIVE_WRITE(master, b"line\n") and None,
            b"line\n".__eq__,
            slave,
            "read",
        )


def socket_read(tmp_path: Path) -> Iterator[Peer]:
    a, b = socket.socketpair()
    with a, b:
        yield Peer(
            lambda: os.read(a.fileno(), 10),
            lambda: b.send(b"s") and None,
            b"s".__eq__,
            a.fileno(),
            "read",
        )


_fork = multiprocessing.get_context("fork")


def mp_connection_recv(tmp_path: Path) -> Iterator[Peer]:
    a, b = _fork.Pipe()
    with a, b:
        yield Peer(a.recv, lambda: b.send({"n": 1}), {"n": 1}.__eq__, a.fileno(), "read")


def mp_queue_get(tmp_path: Path) -> Iterator[Peer]:
    q = _fork.Queue()
    try:
        yield Peer(q.get, lambda: q.put(1), (1).__eq__, q._reader.fileno(), "read")  # type: ignore[attr-defined]
    finally:
        q.close()
        q.join_thread()


PEERS: dict[str, Callable[[Path], Iterator[Peer]]] = {
    "pipe-read": pipe_read,
    "pipe-write": pipe_write,
    "fifo-read": fifo_read,
    "terminal-read": terminal_read,
    "socket-read": socket_read,
    "multiprocessing-connection": mp_connection_recv,
    "multiprocessing-queue": mp_queue_get,
}


@pytest.fixture(params=list(PEERS))
def peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Peer]:
    gen = PEERS[request.param](tmp_path)
    try:
        yield next(gen)
    finally:
        gen.close()


def _waiting(thread: threading.Thread | threadpatch.Thread, kind: str) -> bool:
    return any(s.ident == thread.ident and s.kind == kind for s in threadpatch.snapshot())


def test_cancel_ends_the_wait_and_loses_nothing(peer: Peer) -> None:
    outcome: list[BaseException] = []

    def body() -> None:
        try:
            peer.call()
        except threadpatch.ThreadCancelled as exc:
            outcome.append(exc)
            raise

    thread = threadpatch.spawn(body)
    wait_until(lambda: _waiting(thread, peer.kind), message="the thread waits in the call")
    snap = next(s for s in threadpatch.snapshot() if s.ident == thread.ident)
    assert snap.subject == peer.fd
    assert snap.reason.startswith(f"os.{peer.kind} on fd {peer.fd} (")
    assert thread.cancel(timeout=5)
    assert thread.cancelled
    assert isinstance(outcome[0], threadpatch.ThreadCancelled)
    peer.release()
    assert peer.check(peer.call())  # the cancelled call took nothing


def test_deadline_expires_in_the_call(peer: Peer) -> None:
    def body() -> bool:
        with threadpatch.ignore_after(0.05) as scope:
            peer.call()
        return scope.expired

    assert threadpatch.spawn(body).join(timeout=10) is True
    peer.release()
    assert peer.check(peer.call())


def test_plain_thread_is_cancelled(peer: Peer) -> None:
    outcome: list[BaseException] = []

    def body() -> None:
        try:
            peer.call()
        except threadpatch.ThreadCancelled as exc:
            outcome.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    wait_until(lambda: _waiting(thread, peer.kind), message="the thread waits in the call")
    assert threadpatch.cancel(thread, timeout=5)
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(outcome[0], threadpatch.ThreadCancelled)


def test_a_peer_ends_the_wait(peer: Peer) -> None:
    thread = threadpatch.spawn(peer.call)
    wait_until(lambda: _waiting(thread, peer.kind), message="the thread waits in the call")
    peer.release()
    assert peer.check(thread.join(timeout=10))


def test_closing_the_descriptor_under_a_reader_ends_it_with_ebadf() -> None:
    # The stdlib's read would go on waiting (closing a descriptor does not wake
    # a thread in read(2)); here the wait sees it closed and the read says so.
    r, w = os.pipe()
    with closing_fds(w):
        thread = threadpatch.spawn(os.read, r, 10)
        wait_until(lambda: _waiting(thread, "read"), message="the thread waits in the call")
        os.close(r)
        with pytest.raises(threadpatch.ThreadError) as info:
            thread.join(timeout=10)
        assert isinstance(info.value.__cause__, OSError)
        assert info.value.__cause__.errno == errno.EBADF


def test_large_write_to_a_pipe_writes_everything() -> None:
    # A blocking write writes it all, waiting for room as often as it must.
    r, w = os.pipe()
    data = bytes(range(256)) * 2048  # 512 KiB: several pipe buffers
    with closing_fds(r, w):
        thread = threadpatch.spawn(os.write, w, data)
        got = bytearray()
        while len(got) < len(data):
            got += os.read(r, 1 << 16)
        assert thread.join(timeout=10) == len(data)
        assert bytes(got) == data


def test_cancel_after_part_of_a_write_returns_the_count() -> None:
    # Part of the data went out: the call returns the count (a short write,
    # as a signal makes one) and the cancellation comes at the next wait.
    r, w = os.pipe()
    with closing_fds(r, w):
        data = b"z" * (1 << 20)
        written: list[int] = []

        def body() -> None:
            written.append(os.write(w, data))
            threadpatch.checkpoint()
            written.append(-1)  # never: the checkpoint raises

        thread = threadpatch.spawn(body)
        wait_until(lambda: _waiting(thread, "write"), message="the writer waits for room")
        first = os.read(r, 1 << 16)  # make room once: the writer goes on, then waits again
        wait_until(lambda: _waiting(thread, "write"), message="the writer waits again")
        assert thread.cancel(timeout=5)
        assert thread.cancelled
        assert len(written) == 1
        assert 0 < written[0] < len(data)
        os.set_blocking(r, False)
        rest = bytearray(first)
        with contextlib.suppress(BlockingIOError):
            while chunk := NATIVE_READ(r, 1 << 20):
                rest += chunk
        assert len(rest) == written[0]  # exactly what the count says went out


# -- what stays the stdlib's -----------------------------------------------------------


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as exc:  # compared as data
        return type(exc).__name__, exc.args


@pytest.fixture
def fds(tmp_path: Path) -> Iterator[dict[str, int]]:
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 64)
    r, w = os.pipe()
    nr, nw = os.pipe()
    os.set_blocking(nr, False)
    os.set_blocking(nw, False)
    table = {
        "pipe-r": r,
        "pipe-w": w,
        "nonblocking-r": nr,
        "nonblocking-w": nw,
        "file": os.open(path, os.O_RDWR),
        "append": os.open(path, os.O_WRONLY | os.O_APPEND),
        "null": os.open(os.devnull, os.O_RDWR),
        "closed": 987_654,  # never open (and never reused by the opens above)
    }
    _fill(nw)
    os.set_blocking(nw, False)
    try:
        yield table
    finally:
        for name, fd in table.items():
            if name != "closed":
                os.close(fd)


READS: list[tuple[str, Any, Any]] = [
    ("pipe-r", 0, None),
    ("pipe-r", -1, None),
    ("pipe-r", 1.5, None),
    ("pipe-r", "3", None),
    ("nonblocking-r", 10, None),
    ("pipe-w", 10, None),
    ("file", 100, None),
    ("file", 1 << 20, None),
    ("null", 10, None),
    ("closed", 10, None),
    ("closed", 0, None),
]


@pytest.mark.parametrize(("name", "length", "_"), READS)
def test_read_results_and_errors_are_the_stdlibs(
    fds: dict[str, int], name: str, length: Any, _: Any
) -> None:
    fd = fds[name]
    if name == "file":
        mine = _outcome(lambda: os.read(fd, length))
        os.lseek(fd, 0, os.SEEK_SET)
        assert mine == _outcome(lambda: NATIVE_READ(fd, length))
    else:
        assert _outcome(lambda: os.read(fd, length)) == _outcome(lambda: NATIVE_READ(fd, length))


WRITES: list[tuple[str, Any]] = [
    ("pipe-w", b""),
    ("pipe-w", bytearray(b"ab")),
    ("pipe-w", memoryview(b"abcd").cast("B", (2, 2))),
    ("pipe-w", memoryview(bytes(8)).cast("i")),
    ("pipe-w", "text"),
    ("pipe-w", 5),
    ("nonblocking-w", b"x" * 10),
    ("pipe-r", b"x"),
    ("null", b"x" * 100),
    ("closed", b"x"),
]


@pytest.mark.parametrize(("name", "data"), WRITES)
def test_write_results_and_errors_are_the_stdlibs(
    fds: dict[str, int], name: str, data: Any
) -> None:
    fd = fds[name]
    assert _outcome(lambda: os.write(fd, data)) == _outcome(lambda: NATIVE_WRITE(fd, data))


def test_regular_files_read_and_append_as_before(fds: dict[str, int]) -> None:
    fd = fds["file"]
    os.lseek(fd, 10, os.SEEK_SET)
    assert os.read(fd, 5) == bytes(range(10, 15))  # from the current position
    assert os.lseek(fd, 0, os.SEEK_CUR) == 15
    assert len(os.read(fd, 1 << 20)) == 256 * 64 - 15  # to the end in one call
    assert os.read(fd, 10) == b""
    assert os.write(fds["append"], b"tail") == 4
    os.lseek(fd, -4, os.SEEK_END)
    assert os.read(fd, 10) == b"tail"


def test_int_like_arguments_are_taken(fds: dict[str, int]) -> None:
    class Index:
        def __init__(self, value: int) -> None:
            self.value = value

        def __index__(self) -> int:
            return self.value

    NATIVE_WRITE(fds["pipe-w"], b"abc")
    assert os.read(Index(fds["pipe-r"]), True) == b"a"  # type: ignore[arg-type]
    assert os.write(Index(fds["pipe-w"]), b"d") == 1  # type: ignore[arg-type]
    assert os.read(fds["pipe-r"], Index(10)) == b"bcd"  # type: ignore[arg-type]


def test_eof_of_a_pipe_is_empty_bytes() -> None:
    r, w = os.pipe()
    with closing_fds(r):
        NATIVE_WRITE(w, b"last")
        os.close(w)
        assert os.read(r, 10) == b"last"
        assert os.read(r, 10) == b""


def test_the_core_keeps_native_descriptor_io() -> None:
    # The wake-up descriptor of every waiting thread is read and written with
    # the functions captured at import, not with whatever os.read is now.
    assert _natives.read is threadpatch.original("os", "read")
    assert _natives.write is threadpatch.original("os", "write")
