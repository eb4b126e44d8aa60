"""File objects over pipes, FIFOs, terminals and sockets whose reads and writes are cancellable.

The C ``io.FileIO`` reads with ``read(2)`` itself, so a thread in
``sys.stdin.readline()``, ``proc.stdout.readline()`` or ``open(fifo).read()``
waits in the kernel where no other thread can reach it.  :class:`FileIO` is
a subclass of ``io.FileIO`` whose ``readinto``/``read``/``readall``/``write``
go through :mod:`threadpatch._os` (one ``RWF_NOWAIT`` syscall, then a wait in
the core on ``EAGAIN``: a cancellation point).  The C ``BufferedReader``,
``BufferedWriter``, ``BufferedRandom`` and ``TextIOWrapper`` call their raw
object's methods by name when it is not exactly ``io.FileIO``, so the whole
C stack over it is cancellable, and ``isinstance(f, io.FileIO)`` holds.

:func:`open` replaces ``io.open`` / ``builtins.open`` (patch set ``io``).  A
regular file (and a block device, ``/dev/null`` and the other memory devices,
which never wait) keeps the stdlib's own stack, untouched: the stdlib's
``open`` runs, and its raw file's cached ``seekable()`` (the buffered layer
asked for the position already) tells a regular file apart with no further
syscall.  Opened by path, an unseekable file that waits for a peer has its
descriptor duplicated onto a new stack and the stdlib's closed.  Opened by
descriptor (``os.fdopen``, ``subprocess``), one ``fstat`` decides first.
Anything that waits for a peer (a FIFO, a socket, a terminal, other
character devices) gets the same stack as ``io.open`` builds — buffer size,
line buffering for terminals, ``mode`` and ``name``, the text wrapper's
arguments — on :class:`FileIO`.  Invalid arguments always reach the stdlib's
``open``, so every error is its own.

:func:`install_stdin` / :func:`restore_stdin` (the set's hooks) swap the
interpreter's own ``sys.stdin`` over a pipe or terminal for an equivalent
stack on :class:`FileIO` (fd 0, not closed by it) and put the original back.
Bytes the original had already read ahead stay in it: patch before reading
standard input (``python -m threadpatch`` and ``THREADPATCH_AUTOPATCH`` do).

Cancellation: a cancelled read raises ``ThreadCancelled`` having read
nothing (what the pipe holds stays there for the next read); a cancelled
write returns the count already written (a short write), the cancellation
being raised at the next cancellation point, so the buffered writer above
keeps every byte not yet written.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import warnings
from typing import Any

from . import _os

__all__ = ["FileIO", "install_stdin", "is_waitable", "open", "restore_stdin"]

_open = io.open
_fstat = os.fstat
_close = os.close
_dup = os.dup
_TextIOWrapper = io.TextIOWrapper
_BUFFERED = frozenset({io.BufferedReader, io.BufferedWriter, io.BufferedRandom})
_readinto = _os.readinto
_write = _os.write
_S_ISREG = stat.S_ISREG
_S_ISFIFO = stat.S_ISFIFO
_S_ISCHR = stat.S_ISCHR
_S_ISSOCK = stat.S_ISSOCK
_major = os.major
_MEM_MAJOR = 1  # Linux /dev/null, /dev/zero, /dev/full, /dev/(u)random: never wait
_SMALLCHUNK = io.DEFAULT_BUFFER_SIZE
_base = io.FileIO


def is_waitable(st: os.stat_result) -> bool:
    """Whether a descriptor of this kind can wait for a peer (and so gets :class:`FileIO`)."""
    mode = st.st_mode
    if _S_ISREG(mode):
        return False
    if _S_ISFIFO(mode) or _S_ISSOCK(mode):
        return True
    return _S_ISCHR(mode) and _major(st.st_rdev) != _MEM_MAJOR


class FileIO(io.FileIO):
    """``io.FileIO`` whose reads and writes are cancellation points.

    Same constructor, attributes and results as ``io.FileIO``: a
    non-blocking descriptor returns None where it would block, a closed file
    raises ``ValueError``, reading a write-only file (or writing a read-only
    one) raises ``io.UnsupportedOperation``; every such error comes from the
    C method itself.

    Cancellation:
        ``ThreadCancelled`` from a read leaves the data where it was; a write
        cancelled after part of the data went out returns that count.
    """

    def __repr__(self) -> str:
        # The stdlib's, naming the class as io.FileIO's does (3.13 names the subclass).
        text = super().__repr__()
        if type(self) is FileIO and text.startswith("<FileIO "):
            return "<_io.FileIO " + text[len("<FileIO ") :]
        return text

    def readinto(self, buffer: Any, /) -> int | None:
        """Read into ``buffer``; the count read (0 at EOF), None if a non-blocking file has none."""
        if not self.readable():  # closed: ValueError; write-only: False
            return super().readinto(buffer)
        try:
            return _readinto(self.fileno(), buffer)
        except BlockingIOError:
            return None
        except (TypeError, BufferError):
            # Not a writable contiguous buffer: refused before any read; the stdlib's message.
            return super().readinto(buffer)

    def read(self, size: int | None = -1, /) -> bytes | None:  # type: ignore[override]
        """Read at most ``size`` bytes (to EOF if negative or None), as ``io.FileIO.read``."""
        if size is None or not self.readable():
            return super().read(size)  # readall, or the stdlib's error
        try:
            length = size.__index__()
        except (AttributeError, TypeError):
            return super().read(size)  # the stdlib's TypeError
        if length < 0:
            return self.readall()
        if length == 0:
            return b""
        buffer = bytearray(length)
        try:
            got = _readinto(self.fileno(), buffer)
        except BlockingIOError:
            return None
        if got < length:
            del buffer[got:]
        return bytes(buffer)

    def readall(self) -> bytes:
        """Read until EOF, as ``io.FileIO.readall``: None if a non-blocking file has nothing yet."""
        if not self.readable():
            return super().readall()  # the stdlib's error (EBADF on a write-only file)
        fd = self.fileno()
        buffer = bytearray(_SMALLCHUNK)
        got = 0
        while True:
            if got == len(buffer):
                # io.FileIO's growth: by an eighth once large, else by 256 + its size.
                size = len(buffer)
                grow = size >> 3 if size > 65536 else 256 + size
                buffer.extend(bytes(max(grow, _SMALLCHUNK)))
            with memoryview(buffer) as view, view[got:] as free:
                try:
                    count = _readinto(fd, free)
                except BlockingIOError:
                    if got:
                        break
                    return None  # type: ignore[return-value]
            if count == 0:
                break
            got += count
        del buffer[got:]
        return bytes(buffer)

    def write(self, data: Any, /) -> int | None:  # type: ignore[override]
        """Write ``data``; the count written, None if a non-blocking file has no room."""
        if not self.writable():
            return super().write(data)
        try:
            view = memoryview(data)
        except TypeError:
            return super().write(data)  # the stdlib's TypeError
        fd = self.fileno()
        with view:
            if not view.c_contiguous:
                return super().write(data)
            try:
                return _write(fd, view)
            except BlockingIOError:
                return None


def _raw_mode(mode: str) -> str | None:
    """The mode ``io.open`` gives its ``FileIO``, or None if ``io.open`` refuses ``mode``."""
    modes = set(mode)
    if modes - set("axrwb+t") or len(mode) > len(modes):
        return None
    if "t" in modes and "b" in modes:
        return None
    kinds = [c for c in "xrwa" if c in modes]
    if len(kinds) != 1:
        return None
    return kinds[0] + ("+" if "+" in modes else "")


def _valid(mode: Any, buffering: Any, encoding: Any, errors: Any, newline: Any) -> str | None:
    """The raw mode if ``io.open`` accepts these arguments as far as it checks them itself."""
    if mode.__class__ is not str or buffering.__class__ is not int:
        return None
    if encoding is not None and not isinstance(encoding, str):
        return None
    if errors is not None and not isinstance(errors, str):
        return None
    raw_mode = _raw_mode(mode)
    if raw_mode is not None and "b" in mode and (encoding, errors, newline) != (None, None, None):
        return None
    return raw_mode


def _stack(
    raw: FileIO,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
) -> Any:
    """What ``io.open`` builds over its raw file, over ``raw`` (closed if that fails)."""
    result: Any = raw
    try:
        line_buffering = False
        if buffering == 1 or (buffering < 0 and raw.isatty()):
            buffering = -1
            line_buffering = True
        if buffering < 0:
            buffering = raw._blksize  # type: ignore[attr-defined]
        binary = "b" in mode
        if buffering == 0:
            if binary:
                return result
            raise ValueError("can't have unbuffered text I/O")
        buffer: Any
        if "+" in mode:
            buffer = io.BufferedRandom(raw, buffering)
        elif "r" in mode:
            buffer = io.BufferedReader(raw, buffering)
        else:
            buffer = io.BufferedWriter(raw, buffering)
        result = buffer
        if binary:
            return result
        text = io.TextIOWrapper(buffer, encoding, errors, newline, line_buffering)
        result = text
        text.mode = mode  # type: ignore[misc]
        return result
    except BaseException:
        result.close()
        raise


def open(
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Any = None,
) -> Any:
    """``io.open``: the stdlib's own file object for a regular file, a cancellable one for a pipe.

    Same arguments, results and errors as ``io.open``.

    Cancellation:
        Reads and writes of a FIFO, socket or terminal are cancellation
        points (:class:`FileIO`); opening a FIFO still waits in the kernel
        for the other end (docs/guide/limits.md).
    """
    if file.__class__ is int:
        try:
            waitable = is_waitable(_fstat(file))
        except (OSError, OverflowError):
            waitable = False
        if not waitable:
            return _open(file, mode, buffering, encoding, errors, newline, closefd, opener)
        raw_mode = _valid(mode, buffering, encoding, errors, newline)
        if raw_mode is None:
            return _open(file, mode, buffering, encoding, errors, newline, closefd, opener)
        if "b" in mode and buffering == 1:
            warnings.warn(
                "line buffering (buffering=1) isn't supported in binary mode, "
                "the default buffer size will be used",
                RuntimeWarning,
                2,
            )
        raw = FileIO(file, raw_mode, closefd, opener=opener)
        return _stack(raw, mode, buffering, encoding, errors, newline)
    f: Any = _open(file, mode, buffering, encoding, errors, newline, closefd, opener)
    cls = f.__class__
    raw = f.buffer.raw if cls is _TextIOWrapper else f.raw if cls in _BUFFERED else f
    # io.open's buffered layer has asked the raw file for its position, which
    # cached whether it is seekable: a regular file costs no syscall here.
    if raw.seekable():
        return f
    return _take_over(f, raw, mode, buffering, encoding, errors, newline)


def _take_over(
    f: Any,
    raw: Any,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
) -> Any:
    """``f`` (io.open's file over a path) as :class:`FileIO`'s stack if it waits for a peer.

    The descriptor is duplicated for the new stack and ``f`` is closed: a
    file opened by path has a descriptor number nobody knows yet.
    """
    try:
        waitable = is_waitable(_fstat(raw.fileno()))
    except (OSError, ValueError):
        waitable = False
    if not waitable:
        return f
    name = raw.name
    try:
        fd = _dup(raw.fileno())
    except OSError:
        return f  # out of descriptors: the stdlib's file, as it is
    f.close()
    try:
        ours = FileIO(fd, raw.mode.replace("b", ""), True)
        ours.name = name
    except BaseException:
        _close(fd)
        raise
    return _stack(ours, mode, buffering, encoding, errors, newline)


# -- sys.stdin ------------------------------------------------------------------

_installed: list[tuple[Any, Any]] = []  # (original, ours) while the set is applied


def _stdin_replacement(original: Any) -> Any | None:
    """A stack equivalent to the interpreter's ``sys.stdin`` over :class:`FileIO`, or None."""
    if not isinstance(original, io.TextIOWrapper):
        return None
    try:
        fd = original.fileno()
        waitable = is_waitable(_fstat(fd))
    except (OSError, ValueError):
        return None
    if not waitable:
        return None
    raw = FileIO(fd, "r", closefd=False)
    raw.name = getattr(original, "name", fd)  # "<stdin>"
    size = raw._blksize  # type: ignore[attr-defined]  # as the interpreter's io.open(fd, "rb", -1)
    text = io.TextIOWrapper(
        io.BufferedReader(raw, size),  # type: ignore[type-var]
        encoding=original.encoding,
        errors=original.errors,
        # The interpreter makes stdin with newline="\n" on POSIX: no translation.
        newline="\n",
        line_buffering=original.line_buffering,
        write_through=original.write_through,
    )
    text.mode = getattr(original, "mode", "r")  # type: ignore[misc]
    return text


def install_stdin() -> None:
    """Replace the interpreter's ``sys.stdin`` over a pipe or terminal (the AFTER_APPLY hook)."""
    original = sys.stdin
    if original is None or original is not sys.__stdin__:
        return  # the program's own stdin (or none): left alone
    ours = _stdin_replacement(original)
    if ours is not None:
        sys.stdin = ours
        _installed.append((original, ours))


def restore_stdin() -> str | None:
    """Put the interpreter's ``sys.stdin`` back (AFTER_RESTORE); a warning if it could not."""
    if not _installed:
        return None
    original, ours = _installed.pop()
    if sys.stdin is not ours:
        return (
            f"sys.stdin was replaced by someone else while patched (it is {sys.stdin!r}); "
            "threadpatch left it as it is"
        )
    sys.stdin = original
    return None
