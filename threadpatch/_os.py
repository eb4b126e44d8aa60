"""Cancellable ``os.read`` and ``os.write`` on pipes, FIFOs, terminals and sockets.

A read of an empty pipe (or a write to a full one) blocks in the kernel,
where no other thread can reach it.  The descriptor's own mode cannot be
changed to make it wait in the core instead: ``O_NONBLOCK`` belongs to the
open file, shared with every process that has it (a shell's terminal, the
other end of ``python x.py | less``).  So each call asks the kernel not to
block *this call only*, as the socket layer does with ``MSG_DONTWAIT``:

1. One ``preadv2``/``pwritev2`` with ``RWF_NOWAIT`` at the current position
   (offset -1).  Data there, or room: that is the whole call, one syscall as
   for ``os.read`` itself.
2. ``EAGAIN``: the descriptor would block.  Then, and only then, what it is
   is looked up (``fcntl(F_GETFL)``, ``fstat``): a descriptor the caller made
   non-blocking gets the stdlib's ``BlockingIOError``; a regular file or block
   device (``RWF_NOWAIT`` refuses a read that must go to the disk) gets the
   plain call, uncancellable as before (see docs/guide/limits.md); anything
   else waits in the core (:func:`threadpatch._core.wait_fd`, a cancellation
   point) and tries again.
3. ``EOPNOTSUPP`` (terminals and ptys, some character devices, kernels before
   pipes took ``RWF_NOWAIT``): the same look-up, then a wait for readiness
   followed by the plain call.  Two threads reading one terminal can still
   race for a line between the wait and the read; the loser then blocks as
   it would without threadpatch.

The results are the stdlib's.  A short read on a regular file (``RWF_NOWAIT``
stops at the first page not in the page cache) is completed with a plain
read, so a regular file still returns everything up to its end.  A write to a
pipe, socket or terminal writes everything, waiting for room as often as it
must, as a blocking write does; if the thread is cancelled after part of the
data went out, the call returns the count written (a short write, as when a
signal interrupts a blocking write) and the cancellation is raised at the
thread's next cancellation point, so no byte goes unaccounted for.

Arguments the fast path does not take (not an ``int``, a negative count, a
closed descriptor) go to the plain call, so every error is the stdlib's.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
from typing import Any

from . import _core
from ._accel import speedups as _speedups
from ._core import _natives

__all__ = ["close", "read", "readinto", "write"]

_read = _natives.read
_close = os.close
_write = _natives.write
_preadv = os.preadv
_readv = os.readv
_pwritev = os.pwritev
_fstat = os.fstat
_strerror = os.strerror
_SSIZE_MAX = sys.maxsize
_fcntl = fcntl.fcntl
_F_GETFL = fcntl.F_GETFL
_O_NONBLOCK = os.O_NONBLOCK
_NOWAIT = os.RWF_NOWAIT
_S_ISREG = stat.S_ISREG
_S_ISBLK = stat.S_ISBLK
_EAGAIN = errno.EAGAIN
_EOPNOTSUPP = errno.EOPNOTSUPP
_POLLIN = _natives.POLLIN
_POLLOUT = _natives.POLLOUT
_wait_fd = _core.wait_fd
_INFINITE = _core.INFINITE
_ThreadCancelled = _core.ThreadCancelled

#: ``RWF_NOWAIT`` errors after which the descriptor is looked at: it would
#: block (``EAGAIN``), or it does not take the flag (``EOPNOTSUPP``; ``EINVAL``
#: from kernels that do not know it).
_NOT_NOW = frozenset({errno.EAGAIN, errno.EOPNOTSUPP, errno.EINVAL})


#: Who waits on which descriptor, so that :func:`close` can wake them.
_waiting: dict[int, list[_core.Parker]] = {}
_waiting_lock = _natives.allocate_lock()
_current_waiter = _core.current_waiter


def _wait(fd: int, events: int, kind: str) -> None:
    """Wait in the core until ``fd`` is ready (or closed by :func:`close`)."""
    waiter = _current_waiter()
    with _waiting_lock:
        _waiting.setdefault(fd, []).append(waiter)
    try:
        _wait_fd(fd, events, _INFINITE, (kind, fd))
    finally:
        with _waiting_lock:
            waiters = _waiting[fd]
            waiters.remove(waiter)
            if not waiters:
                del _waiting[fd]


def close(fd: int) -> None:
    """``os.close(fd)``, which also ends the waits of other threads on ``fd``.

    A thread in the kernel's ``read`` is not woken when another thread closes
    the descriptor (the stdlib's read waits on); a thread waiting here is, and
    its call then fails as a call on a closed descriptor does (``EBADF``).
    """
    _close(fd)
    if _waiting:
        with _waiting_lock:
            waiters = list(_waiting.get(fd, ()))
        for waiter in waiters:
            # A thread's state ends its descriptor wait; the hub's native
            # waiter polls natively and notices on its own.
            getattr(waiter, "wake", waiter.unpark)()


def _on_disk(fd: int) -> bool:
    """Whether ``fd`` is a regular file or block device: readiness means nothing there."""
    mode = _fstat(fd).st_mode
    return _S_ISREG(mode) or _S_ISBLK(mode)


def _waits(fd: int) -> bool:
    """Whether the plain call on ``fd`` would wait for a peer (and so should wait here)."""
    return not (_fcntl(fd, _F_GETFL) & _O_NONBLOCK) and not _on_disk(fd)


def _bytes_view(obj: Any) -> memoryview:
    """``obj``'s buffer as a flat view of bytes (``TypeError`` if it has none)."""
    view = memoryview(obj)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view


def read(fd: int, length: int, /) -> bytes:
    """``os.read(fd, length)``, a cancellation point while the descriptor has nothing to read."""
    if fd.__class__ is not int or length.__class__ is not int:
        try:
            fd, length = fd.__index__(), length.__index__()
        except (AttributeError, TypeError):
            return _read(fd, length)  # the stdlib's TypeError
    if length <= 0 or fd < 0 or length > _SSIZE_MAX:
        return _read(fd, length)  # b"" at once, or the stdlib's error
    buffer = bytearray(length)
    try:
        got = _preadv(fd, (buffer,), -1, _NOWAIT)
    except OSError as exc:
        if exc.errno not in _NOT_NOW:
            raise
        err = exc.errno
    else:
        if got == length:
            return bytes(buffer)
        return _read_done(fd, buffer, got)
    return _read_slow(fd, length, err)


def _read_done(fd: int, buffer: bytearray, got: int) -> bytes:
    """What :func:`read` returns once a ``RWF_NOWAIT`` read of ``len(buffer)`` got ``got``."""
    if got == len(buffer):
        return bytes(buffer)
    length = len(buffer)
    del buffer[got:]
    if got and _on_disk(fd):
        # RWF_NOWAIT stopped at a page not in the cache: read the rest.
        buffer += _read(fd, length - got)
    return bytes(buffer)


def _read_slow(fd: int, length: int, err: int) -> bytes:
    """The rest of :func:`read` after its first ``RWF_NOWAIT`` read failed with ``err``.

    Also the C fast path's (``_speedups.fd_read``) way out for every case it
    does not finish itself: ``fd`` and ``length`` are ints, ``length > 0``.
    """
    if not _wait_readable(fd, err):
        return _read(fd, length)
    buffer = bytearray(length)
    got = _read_nowait_when_ready(fd, buffer)
    return _read(fd, length) if got is None else _read_done(fd, buffer, got)


def _wait_readable(fd: int, err: int) -> bool:
    """After a ``RWF_NOWAIT`` read of ``fd`` failed with ``err``: wait, cancellably.

    The one wait of :func:`read` and :func:`readinto`.  True: ``fd`` is
    readable now, to be read again with ``RWF_NOWAIT`` (which can still find
    nothing: another reader was first).  False: make the plain call, which
    returns at once (the descriptor supports no ``RWF_NOWAIT`` but is ready,
    or does not wait: non-blocking, on disk) or raises the stdlib's error.
    """
    if err not in _NOT_NOW:
        raise OSError(err, _strerror(err))  # as the syscall raised it
    try:
        waits = _waits(fd)
    except OSError:
        return False  # the plain call raises the stdlib's error for it
    if not waits:
        return False
    _wait(fd, _POLLIN, "read")
    return err == _EAGAIN


def _read_nowait_when_ready(fd: int, buffer: Any) -> int | None:
    """Once :func:`_wait_readable` said so: read ``fd`` into ``buffer`` with ``RWF_NOWAIT``.

    Waits again while the read finds nothing (another reader was first).
    Returns the count read, or None where the plain call is to be made.
    """
    while True:
        try:
            return _preadv(fd, (buffer,), -1, _NOWAIT)
        except OSError as exc:
            if exc.errno not in _NOT_NOW:
                raise
            if not _wait_readable(fd, exc.errno):
                return None


def readinto(fd: int, buffer: Any, /) -> int:
    """``os.readv(fd, [buffer])`` with ``os.read``'s waits: the count read into ``buffer``.

    For file objects (:mod:`threadpatch._fileio`): no copy.  A descriptor the
    caller made non-blocking raises ``BlockingIOError`` as ``os.read`` does.
    """
    try:
        whole = memoryview(buffer)
    except TypeError:
        return _readv(fd, (buffer,))  # the stdlib's TypeError
    with whole:
        if whole.readonly:
            return _readv(fd, (buffer,))  # the stdlib's BufferError
        view = _bytes_view(whole)
        length = view.nbytes
        if length == 0:
            return 0
        try:
            got = _preadv(fd, (view,), -1, _NOWAIT)
        except OSError as exc:
            if exc.errno not in _NOT_NOW:
                raise
            err = exc.errno
        else:
            return _readinto_done(fd, view, got)
        return _readinto_wait(fd, view, err)


def _readinto_done(fd: int, view: memoryview, got: int) -> int:
    """What :func:`readinto` returns once a ``RWF_NOWAIT`` read into ``view`` got ``got``."""
    if got and got < view.nbytes and _on_disk(fd):
        return got + _readv(fd, (view[got:],))
    return got


def _readinto_wait(fd: int, view: memoryview, err: int) -> int:
    """The rest of :func:`readinto` after its first ``RWF_NOWAIT`` read failed with ``err``."""
    if not _wait_readable(fd, err):
        return _readv(fd, (view,))
    got = _read_nowait_when_ready(fd, view)
    return _readv(fd, (view,)) if got is None else _readinto_done(fd, view, got)


def _readinto_slow(fd: int, buffer: Any, err: int) -> int:
    """:func:`_readinto_wait` for the C fast path (``_speedups.fd_readinto``)."""
    with memoryview(buffer) as whole:
        return _readinto_wait(fd, _bytes_view(whole), err)


def write(fd: int, data: Any, /) -> int:
    """``os.write(fd, data)``, a cancellation point while the descriptor has no room."""
    if fd.__class__ is not int:
        try:
            fd = fd.__index__()
        except (AttributeError, TypeError):
            return _write(fd, data)  # the stdlib's TypeError
    try:
        whole = memoryview(data)
    except TypeError:
        return _write(fd, data)  # the stdlib's TypeError
    with whole:
        view = _bytes_view(whole)
        total = view.nbytes
        if total == 0 or fd < 0:
            return _write(fd, data)
        try:
            written = _pwritev(fd, (view,), -1, _NOWAIT)
        except OSError as exc:
            if exc.errno not in _NOT_NOW:
                raise
            written, err = 0, exc.errno
        else:
            if written == total:
                return written
            err = 0
        return _write_loop(fd, data, view, written, err)


def _write_loop(fd: int, data: Any, view: memoryview, written: int, err: int) -> int:
    """The rest of :func:`write` once ``written`` bytes went out, the last try failing with ``err``.

    ``err`` is 0 when the last ``RWF_NOWAIT`` write succeeded (perhaps in part).
    """
    total = view.nbytes
    if err and err not in _NOT_NOW:
        if written:
            return written  # a short write, as the syscall reports one
        raise OSError(err, _strerror(err))  # as the syscall raised it
    while True:
        if err:
            try:
                waits = _waits(fd)
            except OSError:
                if written:
                    return written
                return _write(fd, data)
            if not waits:
                if written and _on_disk(fd):
                    return written + _write(fd, view[written:])
                return written or _write(fd, data)  # the stdlib's BlockingIOError
            if not _wait_for_room(fd, written):
                return written
            if err != _EAGAIN:
                return written + _write(fd, view[written:])
        else:
            if written >= total:
                return written
            if _on_disk(fd):
                try:
                    return written + _write(fd, view[written:])
                except OSError:
                    return written
        try:
            written += _pwritev(fd, (view[written:],), -1, _NOWAIT)
        except OSError as exc:
            if exc.errno not in _NOT_NOW:
                if written:
                    return written  # a short write, as the syscall reports one
                raise
            err = exc.errno
        else:
            err = 0


def _write_slow(fd: int, data: Any, written: int, err: int) -> int:
    """:func:`_write_loop` for the C fast path (``_speedups.fd_write``).

    ``fd`` is an int, ``data`` a non-empty buffer, of which ``written``
    bytes went out before the last try failed with ``err`` (or 0).
    """
    with memoryview(data) as whole:
        return _write_loop(fd, data, _bytes_view(whole), written, err)


def _wait_for_room(fd: int, written: int) -> bool:
    """Wait until ``fd`` can take more; False if cancelled after ``written`` bytes went out.

    With nothing written the cancellation propagates.  With part of the data
    written the caller returns that count: the cancellation stays pending
    (it is sticky) and is raised at the thread's next cancellation point.
    """
    try:
        _wait(fd, _POLLOUT, "write")
    except _ThreadCancelled:
        if written:
            return False
        raise
    return True


#: The implementations of ``(read, readinto, write)`` in this process: the
#: pure-Python reference above always, the C fast paths
#: (``threadpatch/_speedups_fdio.c``) when the accelerator is built.  Tests run both.
IMPLEMENTATIONS: dict[str, tuple[Any, Any, Any]] = {"python": (read, readinto, write)}

if _speedups is not None and hasattr(_speedups, "fd_read"):
    # The C functions finish the common case and hand every other one to the
    # slow paths above, so the behaviour is defined here, once.
    _speedups.fd_io_bind(read, readinto, write, _read_slow, _readinto_slow, _write_slow)
    IMPLEMENTATIONS["c"] = (_speedups.fd_read, _speedups.fd_readinto, _speedups.fd_write)
    read, readinto, write = IMPLEMENTATIONS["c"]  # the C ones are the module's
