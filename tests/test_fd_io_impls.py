"""Patched ``os.read`` / ``os.write``: the C fast path, the Python reference and the stdlib agree.

threadpatch/_os.py is the reference; threadpatch/_speedups_fdio.c does the
first try in C and hands every other case to it.  Each case of the table runs
on fresh descriptors three times, with ``os.read`` / ``os.readv`` / ``os.write``
and with each implementation's ``read`` / ``readinto`` / ``write``, and the
outcomes (results, or exception type and ``args``) must be the same.  Then
the point of the patch: a thread blocked in a read of an empty pipe or a
write to a full one is cancelled, on each implementation.
"""

from __future__ import annotations

import array
import contextlib
import enum
import errno
import fcntl
import os
import socket
import tempfile
import termios
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

import threadpatch
from tests._helpers import closing_fds
from threadpatch import _os
from threadpatch._core import ThreadCancelled

if TYPE_CHECKING:
    from collections.abc import Callable


class Ops(NamedTuple):
    read: Callable[[Any, Any], bytes]
    readinto: Callable[[Any, Any], int]
    write: Callable[[Any, Any], int]


NATIVE = Ops(os.read, lambda fd, buf: os.readv(fd, [buf]), os.write)


def _impl(name: str) -> Ops:
    """Implementation ``name`` of _os; skips (fails on CI) if the C one is not built."""
    if name not in _os.IMPLEMENTATIONS:
        pure = os.environ.get("THREADPATCH_PURE_PYTHON", "").strip().lower()
        if os.environ.get("CI") == "true" and pure in ("", "0", "false", "no", "off"):
            pytest.fail("the C accelerator must be built on CI (only the pure-Python leg lacks it)")
        pytest.skip("the C accelerator is not built (or THREADPATCH_PURE_PYTHON=1)")
    return Ops(*_os.IMPLEMENTATIONS[name])


IMPLS = ["python", "c"]


class Fd(enum.IntEnum):
    ZERO = 0


def _outcome(func: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", func())
    except Exception as exc:  # the outcome is compared, whatever it is
        return ("raised", type(exc), exc.args)


def _fill(fd: int) -> int:
    """Make the pipe whose write end is ``fd`` full; the bytes written."""
    blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)
    total = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            total += os.write(fd, b"\0" * 65536)
    os.set_blocking(fd, blocking)
    return total


def _drain(fd: int) -> bytes:
    """Everything readable now on ``fd`` (made non-blocking for the drain)."""
    blocking = os.get_blocking(fd)
    os.set_blocking(fd, False)
    out = bytearray()
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            out += chunk
    os.set_blocking(fd, blocking)
    return bytes(out)


def _closed_fd() -> int:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    return r


# -- the cases: each returns what it saw, run with NATIVE and each implementation --


def ready_pipe(op: Ops) -> Any:
    r, w = os.pipe()
    with closing_fds(r, w):
        return (op.write(w, b"abcdef"), op.read(r, 2), op.read(r, 100), _drain(r))


def ready_pipe_readinto(op: Ops) -> Any:
    r, w = os.pipe()
    with closing_fds(r, w):
        os.write(w, b"abcdef")
        small, big = bytearray(2), bytearray(100)
        return (op.readinto(r, small), small, op.readinto(r, big), bytes(big[:5]))


def eof(op: Ops) -> Any:
    r, w = os.pipe()
    with closing_fds(r, w):
        os.write(w, b"x")
        os.close(w)
        return (op.read(r, 10), op.read(r, 10), op.readinto(r, bytearray(3)))


def zero_length(op: Ops) -> Any:
    r, w = os.pipe()
    with closing_fds(r, w):
        return (op.read(r, 0), op.write(w, b""), op.readinto(r, bytearray()), _drain(r))


def negative_length(op: Ops) -> Any:
    r, w = os.pipe()
    with closing_fds(r, w):
        os.write(w, b"x")
        return (_outcome(lambda: op.read(r, -1)), _outcome(lambda: op.read(r, -(2**70))))


def huge_length(op: Ops) -> Any:
    r, w = os.pipe()
    with closing_fds(r, w):
        return _outcome(lambda: op.read(r, 2**70))


def bad_fd(op: Ops) -> Any:
    fd = _closed_fd()
    return (
        _outcome(lambda: op.read(fd, 1)),
        _outcome(lambda: op.write(fd, b"x")),
        _outcome(lambda: op.readinto(fd, bytearray(1))),
        _outcome(lambda: op.read(-1, 1)),
        _outcome(lambda: op.write(-1, b"x")),
        _outcome(lambda: op.read(2**40, 1)),
    )


def wrong_direction(op: Ops) -> Any:
    r, w = os.pipe()
    with closing_fds(r, w):
        return (_outcome(lambda: op.read(w, 1)), _outcome(lambda: op.write(r, b"x")))


def odd_arguments(op: Ops) -> Any:
    r, w = os.pipe()
    with closing_fds(r, w):
        os.write(w, b"abcdef")
        return (
            _outcome(lambda: op.read(str(r), 1)),
            _outcome(lambda: op.read(float(r), 1)),
            _outcome(lambda: op.read(r, 1.0)),
            _outcome(lambda: op.read(r, "1")),
            _outcome(lambda: op.read(r, True)),
            _outcome(lambda: op.read(Fd(r) if r == 0 else enum.IntEnum("F", {"FD": r}).FD, 1)),
            _outcome(lambda: op.read(r, enum.IntEnum("N", {"N": 2}).N)),
            _outcome(lambda: op.read(None, 1)),
            _outcome(lambda: op.write(w, "text")),
            _outcome(lambda: op.write(w, 5)),
            _outcome(lambda: op.write(float(w), b"x")),
            _outcome(lambda: op.write(enum.IntEnum("G", {"FD": w}).FD, b"z")),
            _outcome(lambda: op.write(True if w == 1 else w, b"y")),
            _outcome(lambda: op.readinto(r, b"immutable")),
            _outcome(lambda: op.readinto(r, "text")),
            _drain(r),
        )


def buffers(op: Ops) -> Any:
    r, w = os.pipe()
    with closing_fds(r, w):
        out = [
            op.write(w, bytearray(b"ab")),
            op.write(w, memoryview(b"cd")),
            op.write(w, memoryview(b"efghij").cast("B", (2, 3))),
            op.write(w, array.array("i", [1, 2])),
            op.write(w, memoryview(array.array("h", [3, 4, 5]))),
            _outcome(lambda: op.write(w, memoryview(b"klmnop")[::2])),
            _drain(r),
        ]
        os.write(w, bytes(range(40)))
        a = array.array("i", [0, 0])
        grid = memoryview(bytearray(6)).cast("B", (2, 3))
        out += [
            op.readinto(r, a),
            a.tobytes(),
            op.readinto(r, grid),
            grid.tobytes(),
            op.readinto(r, memoryview(bytearray(4))),
            _outcome(lambda: op.readinto(r, memoryview(bytearray(8))[::2])),
            _drain(r),
        ]
        return out


def regular_file(op: Ops) -> Any:
    data = bytes(range(256)) * 40
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        fd = f.fileno()
        os.lseek(fd, 0, os.SEEK_SET)
        whole = op.read(fd, 100000)
        at_end = op.read(fd, 10)
        os.lseek(fd, 1000, os.SEEK_SET)
        part = op.read(fd, 4096)
        pos = os.lseek(fd, 0, os.SEEK_CUR)
        buf = bytearray(3000)
        into = op.readinto(fd, buf)
        return (whole == data, len(whole), at_end, part == data[1000:5096], pos, into, bytes(buf))


def append_file(op: Ops) -> Any:
    with tempfile.NamedTemporaryFile() as f:
        f.write(b"start")
        f.flush()
        fd = os.open(f.name, os.O_WRONLY | os.O_APPEND)
        with closing_fds(fd):
            os.lseek(fd, 0, os.SEEK_SET)
            counts = (op.write(fd, b"-one"), op.write(fd, b"-two" * 3000))
        with open(f.name, "rb") as check:
            return (counts, check.read())


def dev_null_zero(op: Ops) -> Any:
    null = os.open(os.devnull, os.O_RDWR)
    zero = os.open("/dev/zero", os.O_RDONLY)
    with closing_fds(null, zero):
        buf = bytearray(b"\1" * 10)
        return (
            op.read(null, 10),
            op.write(null, b"x" * 100000),
            op.read(zero, 4096),
            op.readinto(zero, buf),
            buf,
        )


def socket_pair(op: Ops) -> Any:
    a, b = socket.socketpair()
    with a, b:
        return (op.write(a.fileno(), b"hello"), op.read(b.fileno(), 3), op.read(b.fileno(), 9))


def non_blocking_pipe(op: Ops) -> Any:
    r, w = os.pipe2(os.O_NONBLOCK)
    with closing_fds(r, w):
        empty = _outcome(lambda: op.read(r, 10))
        empty_into = _outcome(lambda: op.readinto(r, bytearray(10)))
        _fill(w)
        full = _outcome(lambda: op.write(w, b"x"))
        return (empty, empty_into, full)


def pty_pair(op: Ops) -> Any:
    master, slave = os.openpty()
    with closing_fds(master, slave):
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO  # no echo: what the master reads is only what the slave wrote
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        sent = op.write(master, b"line\n")
        got = op.read(slave, 100)
        back = op.write(slave, b"out")
        buf = bytearray(20)
        n = op.readinto(master, buf)
        while n < 3:  # a terminal hands output over in pieces
            n += op.readinto(master, memoryview(buf)[n:])
        return (sent, got, back, bytes(buf[:n]))


CASES: dict[str, Callable[[Ops], Any]] = {
    f.__name__: f
    for f in (
        ready_pipe,
        ready_pipe_readinto,
        eof,
        zero_length,
        negative_length,
        huge_length,
        bad_fd,
        wrong_direction,
        odd_arguments,
        buffers,
        regular_file,
        append_file,
        dev_null_zero,
        socket_pair,
        non_blocking_pipe,
        pty_pair,
    )
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("impl", IMPLS)
def test_same_outcome_as_native(impl: str, case: Callable[[Ops], Any]) -> None:
    ops = _impl(impl)
    assert _outcome(lambda: case(ops)) == _outcome(lambda: case(NATIVE))


def test_module_functions_are_the_chosen_implementation() -> None:
    chosen = "c" if "c" in _os.IMPLEMENTATIONS else "python"
    assert (_os.read, _os.readinto, _os.write) == _os.IMPLEMENTATIONS[chosen]
    if os.environ.get("THREADPATCH_PURE_PYTHON", "").strip().lower() not in ("", "0", "false"):
        assert chosen == "python"


# -- cancellation ----------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
def test_read_of_empty_pipe_is_cancellable(
    impl: str, wait_all_threads_blocked: Callable[..., None]
) -> None:
    ops = _impl(impl)
    r, w = os.pipe()
    with closing_fds(r, w):
        t = threadpatch.spawn(ops.read, r, 10)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert isinstance(t.exception, ThreadCancelled)
        buf = bytearray(4)
        t = threadpatch.spawn(ops.readinto, r, buf)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert isinstance(t.exception, ThreadCancelled)
        # Nothing consumed; the pipe still works, and a waiting read is woken by data.
        t = threadpatch.spawn(ops.read, r, 10)
        wait_all_threads_blocked(expected=1)
        os.write(w, b"data")
        assert t.join(timeout=10) == b"data"


@pytest.mark.parametrize("impl", IMPLS)
def test_write_to_full_pipe_is_cancellable(
    impl: str, wait_all_threads_blocked: Callable[..., None]
) -> None:
    ops = _impl(impl)
    r, w = os.pipe()
    with closing_fds(r, w):
        filled = _fill(w)
        t = threadpatch.spawn(ops.write, w, b"x")
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert isinstance(t.exception, ThreadCancelled)
        assert len(_drain(r)) == filled  # nothing of the cancelled write went out


@pytest.mark.parametrize("impl", IMPLS)
def test_cancel_after_partial_write_returns_the_count(
    impl: str, wait_all_threads_blocked: Callable[..., None]
) -> None:
    ops = _impl(impl)
    r, w = os.pipe()
    with closing_fds(r, w):
        room = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
        counts: list[int] = []
        reached: list[bool] = []

        def writer() -> None:
            counts.append(ops.write(w, b"y" * (room * 3)))
            reached.append(True)
            threadpatch.checkpoint()
            reached.append(False)  # never: the pending cancellation is raised above

        t = threadpatch.spawn(writer)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert isinstance(t.exception, ThreadCancelled)
        assert reached == [True]
        assert 0 < counts[0] < room * 3
        assert len(_drain(r)) == counts[0]  # every byte accounted for


def test_write_error_after_partial_write_returns_the_count() -> None:
    # EPIPE after part of the data went out: a short write, as the syscall reports one.
    for impl in IMPLS:
        if impl not in _os.IMPLEMENTATIONS:
            continue
        ops = Ops(*_os.IMPLEMENTATIONS[impl])
        r, w = os.pipe()
        with closing_fds(r, w):
            room = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
            t = threadpatch.spawn(ops.write, w, b"z" * (room * 10))
            # The reader takes one chunk and closes: the writer then gets EPIPE.
            os.read(r, 65536)
            os.close(r)
            n = t.join(timeout=10)
            assert 0 < n < room * 10
            with pytest.raises(BrokenPipeError) as info:
                ops.write(w, b"z")
            assert info.value.errno == errno.EPIPE


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("evict_from", [0, 65536], ids=["cold", "tail_cold"])
def test_regular_file_pages_not_in_cache(impl: str, evict_from: int, tmp_path: Any) -> None:
    # RWF_NOWAIT refuses (EAGAIN) or stops short at pages not in the page
    # cache; the read goes on with the plain call and still returns everything.
    ops = _impl(impl)
    data = os.urandom(1 << 20)
    path = tmp_path / "cold"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    with closing_fds(fd):
        os.fsync(fd)
        for call in ("read", "readinto"):
            os.pread(fd, len(data), 0)
            os.posix_fadvise(fd, evict_from, 0, os.POSIX_FADV_DONTNEED)
            os.lseek(fd, 0, os.SEEK_SET)
            if call == "read":
                assert ops.read(fd, len(data) + 10) == data
            else:
                buf = bytearray(len(data) + 10)
                assert ops.readinto(fd, buf) == len(data)
                assert buf[: len(data)] == data
            assert os.lseek(fd, 0, os.SEEK_CUR) == len(data)
