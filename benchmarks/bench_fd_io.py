"""Patched os.read / os.write (threadpatch._os) against the stdlib's, in the same run.

The calls never wait here: each reads a pipe that has data, a cached regular
file, or writes to a pipe with room, so what is measured is what the patch
adds to the syscall (the ``RWF_NOWAIT`` preadv2/pwritev2 and the argument
checks), for the C fast path and for the pure-Python reference.  Each batch
of calls is timed alone: filling or draining the pipe (or seeking the file
back) between batches is not counted.  Alternating rounds, the median of each
side.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import statistics
import tempfile
import time
from typing import TYPE_CHECKING, Any

from benchmarks._harness import Row, Table
from threadpatch import _os

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: Asked of the kernel for the benchmark's pipes (fs.pipe-max-size is 1 MiB by default).
PIPE_SIZE = 1 << 20
ROUNDS = 7
BATCHES = 5
TARGETS = {"c": 1.3, "python": 5.0}


@contextlib.contextmanager
def _pipe() -> Iterator[tuple[int, int, int]]:
    """A pipe ``(r, w, capacity)``, as large as the kernel lets us make it."""
    r, w = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    try:
        yield r, w, fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    finally:
        os.close(r)
        os.close(w)


def _drain(fd: int) -> None:
    os.set_blocking(fd, False)
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 1 << 20):
            pass
    os.set_blocking(fd, True)


def _batched(
    call: Callable[[Any, Any], object], fd: int, arg: object, count: int, setup: Callable[[], None]
) -> float:
    """Seconds per call of ``count`` calls ``call(fd, arg)``, after an untimed ``setup()``."""
    total = 0.0
    for _ in range(BATCHES):
        setup()
        t0 = time.perf_counter()
        for _ in range(count):
            call(fd, arg)
        total += time.perf_counter() - t0
    return total / (BATCHES * count)


def _compare(
    ours: Callable[[Any, Any], object],
    native: Callable[[Any, Any], object],
    fd: int,
    arg: object,
    count: int,
    setup: Callable[[], None],
) -> tuple[float, float]:
    _batched(ours, fd, arg, count, setup)  # warm up
    _batched(native, fd, arg, count, setup)
    a, b = [], []
    for _ in range(ROUNDS):
        a.append(_batched(ours, fd, arg, count, setup))
        b.append(_batched(native, fd, arg, count, setup))
    return statistics.median(a), statistics.median(b)


def _pipe_read(table: Table, impl: str, read: Callable[[int, int], bytes], size: int) -> None:
    with _pipe() as (r, w, capacity):
        count = min(capacity // size, 20000)
        chunk = b"x" * (size * count)

        def fill() -> None:
            _drain(r)
            os.write(w, chunk)

        _row(
            table,
            impl,
            f"{size:,}-byte read, ready pipe",
            _compare(read, os.read, r, size, count, fill),
        )


def _file_read(table: Table, impl: str, read: Callable[[int, int], bytes]) -> None:
    count = 1000
    with tempfile.TemporaryFile() as f:
        f.write(b"y" * (4096 * count))
        f.flush()
        fd = f.fileno()
        os.read(fd, 4096)  # in the page cache

        def rewind() -> None:
            os.lseek(fd, 0, os.SEEK_SET)

        _row(
            table,
            impl,
            "4 KiB read, regular file (cached)",
            _compare(read, os.read, fd, 4096, count, rewind),
        )


def _pipe_write(table: Table, impl: str, write: Callable[[int, bytes], int], size: int) -> None:
    with _pipe() as (r, w, capacity):
        count = min(capacity // size, 20000)

        def empty() -> None:
            _drain(r)

        what = f"{size:,}-byte write, pipe with room"
        _row(table, impl, what, _compare(write, os.write, w, b"z" * size, count, empty))


def _row(table: Table, impl: str, what: str, result: tuple[float, float]) -> None:
    ours, native = result
    limit = TARGETS[impl]
    table.add(Row(f"os {what} ({impl})", ours, native, f"<= {limit:g}x", ours / native <= limit))


def run() -> Table:
    table = Table("patched os.read / os.write (ratio to the stdlib)")
    for impl, (read, _readinto, write) in _os.IMPLEMENTATIONS.items():
        _pipe_read(table, impl, read, 1)
        _pipe_read(table, impl, read, 65536)
        _file_read(table, impl, read)
        _pipe_write(table, impl, write, 1)
        _pipe_write(table, impl, write, 4096)
    return table


if __name__ == "__main__":
    run()
