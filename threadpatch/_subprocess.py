"""Cancellable ``subprocess`` waits: ``Popen.wait``, ``communicate()``, ``run()``.

The stdlib's ``Popen._wait`` without a timeout blocks in ``waitpid`` (in C,
not interruptible by threadpatch); with a timeout it polls ``waitpid(WNOHANG)``
between ``time.sleep`` calls.  :func:`popen_wait` replaces it on the class:
it waits on a Linux *pidfd* (``os.pidfd_open``, readable once the child has
exited) in the core's descriptor wait, then reaps the child with the
stdlib's own ``_try_wait`` / ``_handle_exitstatus`` under ``_waitpid_lock``.
So a wait is a cancellation point, a timeout raises the stdlib's
``TimeoutExpired``, and ``wait()``'s KeyboardInterrupt handling (which calls
``_wait``) is unchanged.  Where no pidfd can be had (an old kernel, a
seccomp filter) the stdlib's timed wait runs, which polls ``waitpid`` between
``time.sleep`` calls (cancellable under the ``time`` set, at most 50 ms late).

What happens to the child when a wait is cancelled, by caller:

* ``Popen.wait()`` / ``communicate()``: ``ThreadCancelled`` propagates and
  the child is left running, as the stdlib leaves it on any exception but
  KeyboardInterrupt (the caller keeps its ``Popen`` and may kill it;
  ``communicate()`` keeps the output read so far and can be called again).
* ``with Popen(...)`` (so also ``run()``, ``call()``, ``check_call()``,
  ``check_output()``): the stdlib's ``__exit__`` waits for the child "to
  avoid zombies" — which a cancelled thread cannot do, every wait raising at
  once.  :func:`popen_exit` kills a child still running and reaps it under
  a :func:`threadpatch.shield` (SIGKILL makes that wait short), then lets the
  cancellation propagate.  ``run()`` itself kills the child on any exception
  (the stdlib's code), so for ``run()`` this only adds the reaping.

``communicate()`` without a timeout and with a single pipe takes a stdlib
shortcut that reads (or writes) the pipe with one blocking call.
:func:`communicate` sends that case through a wait-then-read loop instead:
the output is the same, including bytes the caller had already buffered in
a binary ``proc.stdout`` by a partial read.  (In text mode, characters that a
partial ``readline()`` had already decoded are not returned, as with the
stdlib's own selector path, ``communicate(timeout=...)``.)  Every other case runs
the stdlib method, whose ``_communicate`` waits in a selector: the patch
set makes ``subprocess._PopenSelector`` a cancellable one.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import select
import subprocess as _std
from typing import IO, TYPE_CHECKING, Any

from . import _core
from ._core import _natives
from ._fileio import FileIO
from ._selectors import PollSelector, unwrap

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["PopenSelector", "communicate", "popen_exit", "popen_wait"]

_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
_PIPE_BUF = select.PIPE_BUF
_wait_fd = _core.wait_fd
_deadline_after = _core.deadline_after
_seconds_left = _core.seconds_left
_pidfd_open = getattr(os, "pidfd_open", None)
_READ_SIZE = 32768  # what the stdlib's _communicate reads per call


_orig_wait = unwrap(_std.Popen.__dict__["_wait"])
_orig_exit = unwrap(_std.Popen.__dict__["__exit__"])
_orig_communicate = unwrap(_std.Popen.__dict__["communicate"])

#: What ``subprocess._PopenSelector`` becomes: the stdlib picks PollSelector on Linux.
PopenSelector = PollSelector


def _reap(proc: _std.Popen[Any], flags: int) -> bool:
    """Reap ``proc`` if it has exited (``waitpid`` with ``flags``); True once it has a code.

    The caller holds ``proc._waitpid_lock``, as the stdlib's ``_try_wait`` requires.
    """
    if proc.returncode is not None:
        return True  # another thread reaped it
    pid, sts = proc._try_wait(flags)  # type: ignore[attr-defined]
    if pid == proc.pid:
        proc._handle_exitstatus(sts)  # type: ignore[attr-defined]
        return True
    return False


def popen_wait(self: _std.Popen[Any], timeout: float | None) -> int:
    """Replacement for ``Popen._wait`` (POSIX): wait on a pidfd, then reap.

    Args:
        timeout: seconds, or None to wait until the child exits.

    Returns:
        The child's return code (``-signal`` if a signal ended it).

    Raises:
        subprocess.TimeoutExpired: ``timeout`` passed first (the child runs on).

    Cancellation:
        ``ThreadCancelled`` (or ``DeadlineExpired``) propagates and the child is
        left running and unreaped; a later ``wait()`` reaps it.
    """
    if self.returncode is not None:
        return self.returncode
    lock = self._waitpid_lock  # type: ignore[attr-defined]
    # Already exited (the common case of a short child): no descriptor needed.
    if lock.acquire(False):
        try:
            if _reap(self, os.WNOHANG):
                return self.returncode  # type: ignore[return-value]
        finally:
            lock.release()
    if _pidfd_open is None:  # pragma: no cover - Python built without pidfd_open
        return _orig_wait(self, timeout)  # type: ignore[no-any-return]
    try:
        pidfd = _pidfd_open(self.pid)
    except ProcessLookupError:
        # Reaped meanwhile (by another thread or a waitpid(-1)): the stdlib's
        # wait knows what to do (its waitpid returns at once).
        return _orig_wait(self, timeout)  # type: ignore[no-any-return]
    except OSError:
        # No pidfd here (ENOSYS on an old kernel, EPERM from a seccomp
        # filter): the stdlib's *timed* wait, which polls between sleeps
        # (cancellation points when the time set is on), never its blocking
        # waitpid.  An infinite timeout is a wait without one.
        return _orig_wait(self, math.inf if timeout is None else timeout)  # type: ignore[no-any-return]
    deadline = _deadline_after(timeout)
    reason = ("subprocess.wait", self.pid)
    try:
        while True:
            if not _wait_fd(pidfd, _POLLIN, deadline, reason):
                if self.returncode is not None:
                    return self.returncode  # reaped by another thread at the wire
                raise _std.TimeoutExpired(self.args, timeout)  # type: ignore[arg-type]
            # The child has exited: reap it.  Another thread may hold the lock
            # while it reaps (or in the stdlib's blocking waitpid, which now
            # returns at once): wait for it as the stdlib does.
            remaining = _seconds_left(deadline)
            if not lock.acquire(True, -1 if remaining == _core.INFINITE else max(remaining, 0)):
                raise _std.TimeoutExpired(self.args, timeout)  # type: ignore[arg-type]
            try:
                # The kernel makes a pidfd readable once the child is a
                # zombie: WNOHANG reaps it; a blocking waitpid for a child
                # known to have exited returns at once (a belt and braces).
                if _reap(self, os.WNOHANG) or _reap(self, 0):
                    return self.returncode  # type: ignore[return-value]
            finally:
                lock.release()
    finally:
        os.close(pidfd)


def popen_exit(
    self: _std.Popen[Any],
    exc_type: type[BaseException] | None,
    value: BaseException | None,
    traceback: TracebackType | None,
) -> None:
    """Replacement for ``Popen.__exit__``: on a cancellation, kill and reap the child.

    Every other way out is the stdlib's (close the pipes; wait for the child,
    or only briefly after a KeyboardInterrupt).
    """
    if exc_type is None or not issubclass(exc_type, _core.ThreadCancelled):
        return _orig_exit(self, exc_type, value, traceback)  # type: ignore[no-any-return]
    # The thread is cancelled: every wait would raise at once and leave a
    # zombie.  Kill a child still running and reap it under a shield.
    with _core.shield():
        try:
            for stream in (self.stdout, self.stderr):
                if stream:
                    stream.close()
            if self.stdin:
                self.stdin.close()
        except OSError:
            pass  # flushing stdin to a dead child: the cancellation is what matters
        finally:
            if self.returncode is None:
                with contextlib.suppress(OSError):  # gone: send_signal handles ESRCH
                    self.kill()
                self.wait()
    return None


def _fits_now(stream: IO[Any], input: Any) -> bool:
    """Whether writing ``input`` to ``stream``'s pipe now cannot block.

    True when the pipe has room (``POLLOUT``: a free page) and ``input`` is at
    most ``PIPE_BUF`` bytes (a str: at most 4 bytes a character), and for what
    is no descriptor (a test's mock): there the stdlib's code decides.
    """
    # A str: any encoding's worst case, with a BOM.
    size = 4 * len(input) + 4 if isinstance(input, str) else memoryview(input).nbytes
    try:
        poller = _natives.poll()
        poller.register(stream.fileno(), _POLLOUT)
        ready = poller.poll(0)
    except (TypeError, ValueError, OSError):
        return True
    return bool(ready) and size <= _PIPE_BUF


def _read_one_pipe(self: _std.Popen[Any], stream: IO[Any]) -> Any:
    """Read ``stream`` (the child's stdout or stderr) to its end, waiting in the core.

    Over a C ``FileIO`` each read follows a wait for readiness, so it never
    blocks: on a buffered stream ``read1`` returns what the buffer holds
    first, else makes one read of the pipe (ready, or at its end).  Over
    :class:`threadpatch._fileio.FileIO` the read waits in the core itself.
    """
    text: tuple[str, str | None] | None = None
    binary: Any = stream
    if isinstance(stream, io.TextIOWrapper):
        text = (stream.encoding, stream.errors)
        binary = stream.buffer
    read = getattr(binary, "read1", binary.read)  # a raw FileIO (bufsize=0) reads once
    fd = binary.fileno()
    reason = ("subprocess.communicate", self.pid)
    # Over threadpatch's FileIO (a Popen made with the io set on) the read is
    # itself a cancellation point, and it returns what the buffer already
    # holds without waiting for the pipe, which a readiness wait would do.
    waits = not isinstance(getattr(binary, "raw", binary), FileIO)
    chunks: list[bytes] = []
    try:
        while True:
            if waits:
                _wait_fd(fd, _POLLIN, _core.INFINITE, reason)
            chunk = read(_READ_SIZE)
            if chunk is None:
                continue  # a spurious readiness on a non-blocking descriptor
            if not chunk:
                break
            chunks.append(chunk)
    except BaseException:
        # Cancelled (or interrupted): what was read is kept where the stdlib's
        # selector loop keeps it, so the next communicate() -- that loop, as
        # after a TimeoutExpired -- returns it with the rest.
        self._fileobj2output = {stream: chunks}  # type: ignore[attr-defined]
        self._communication_started = True  # type: ignore[attr-defined]
        raise
    data = b"".join(chunks)
    stream.close()
    if text is not None:
        return self._translate_newlines(data, *text)  # type: ignore[attr-defined]
    return data


def communicate(
    self: _std.Popen[Any], input: Any = None, timeout: float | None = None
) -> tuple[Any, Any]:
    """Replacement for ``Popen.communicate``: the single-pipe shortcut waits in the core.

    Same arguments, result and errors as the stdlib method.

    Cancellation:
        ``ThreadCancelled`` propagates and the child is left running (see the
        module docstring); what it had read is kept for the next call, as
        after a ``TimeoutExpired``.
    """
    streams = (self.stdin, self.stdout, self.stderr)
    if (
        timeout is not None
        or self._communication_started  # type: ignore[attr-defined]
        or streams.count(None) != 2
    ):
        # Several pipes or a timeout: the stdlib's selector loop (cancellable
        # through _PopenSelector).  No pipe at all: a plain wait().
        return _orig_communicate(self, input, timeout)  # type: ignore[no-any-return]
    stdout = stderr = None
    if self.stdin:
        if not input or _fits_now(self.stdin, input):
            # The shortcut's one write cannot block: the stdlib's own code.
            return _orig_communicate(self, input, timeout)  # type: ignore[no-any-return]
        # More than the pipe takes at once: the stdlib's selector loop writes
        # it without blocking and, as _stdin_write, ignores a broken pipe.
        # (KeyboardInterrupt handling stays the shortcut's: wait()'s.)
        try:
            stdout, stderr = self._communicate(input, None, None)  # type: ignore[attr-defined]
        finally:
            self._communication_started = True  # type: ignore[attr-defined]
    elif self.stdout:
        stdout = _read_one_pipe(self, self.stdout)
    else:
        stderr = _read_one_pipe(self, self.stderr)  # type: ignore[arg-type]
    self.wait()
    return (stdout, stderr)
