"""Cancellable ``select()``, ``poll()`` objects and ``epoll`` objects.

Same signatures, results, timeouts and errors as the :mod:`select` module,
but a thread blocked in them can be cancelled or hit a ``timeout_after``
deadline.

How it works::

    select(r, w, x, t)
      native select(r, w, x, 0)  -- validates the arguments exactly like the
        |                           stdlib and answers at once if anything is
        |                           ready (the hot path: one native call)
      fds = each object's fileno(), read once (as the native call does)
      loop:
        _core.wait_fds(fds, deadline, ("select", fds))
        the answer from the poll's revents, in the stdlib's shape
        until something is ready or the timeout has passed

Everything a native call reads at entry is read once, at entry, and reused
after every wait: the descriptors of ``select()``'s objects, a ``poll``
object's registrations, an ``epoll`` object's descriptor.  Another thread may
close an object while we wait; the answer then is the native one (a closed
descriptor is reported ready, as Linux's own select() and poll() do), never
a ``ValueError`` from asking the closed object for its ``fileno()`` again.

The core's ``wait_fds`` owns the wait: a cancellation raises
:class:`ThreadCancelled` out of it, the hub thread (curio uses selectors)
waits there in a native ``poll``, and the deadline passes there.  ``poll``
and ``epoll`` objects work the same way around their native object (an epoll
descriptor is itself readable while events are pending, so one descriptor is
all we watch).

Timeouts of zero go straight to the native call.  Arguments are validated before
anything else; unusual timeout values are checked by the native call itself
(against a descriptor that is always ready, so it cannot block), which gives
the stdlib's exact exception types and messages.
"""

from __future__ import annotations

import math
import operator
import os
import select as _stdlib_select
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from . import _core
from ._core import _natives

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["epoll", "poll", "select"]


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


FileDescriptorLike: TypeAlias = "int | _HasFileno"

# Captured when threadpatch is imported, before any patching.
_native_select = _stdlib_select.select
_native_poll = _natives.poll
_native_epoll: Any = getattr(_stdlib_select, "epoll", None)
_wait_fds = _core.wait_fds
_deadline_after = _core.deadline_after

POLLIN = _natives.POLLIN
POLLOUT = _natives.POLLOUT
POLLPRI: int = _stdlib_select.POLLPRI
_POLLHUP: int = _stdlib_select.POLLHUP
_POLLERR: int = _stdlib_select.POLLERR
_POLLNVAL: int = _stdlib_select.POLLNVAL
# What select() waits for in each list, and the revents it counts as ready
# there (Linux's POLLIN_SET, POLLOUT_SET and POLLEX_SET: a descriptor closed
# while the call waits is POLLNVAL, ready in every list it is in).
_READ_EVENTS = POLLIN | _stdlib_select.POLLRDNORM | _stdlib_select.POLLRDBAND
_WRITE_EVENTS = POLLOUT | _stdlib_select.POLLWRNORM | _stdlib_select.POLLWRBAND
_READ_SET = _READ_EVENTS | _POLLHUP | _POLLERR | _POLLNVAL
_WRITE_SET = _WRITE_EVENTS | _POLLERR | _POLLNVAL
_EXCEPT_SET = POLLPRI | _POLLNVAL
_INT_MAX = 2**31 - 1
_INT_MIN = -(2**31)
# Seconds well inside what CPython's time conversion accepts (about 9.22e9 s).
_SANE_SECONDS = 9.2e9
_DEFAULT_POLL_MASK = POLLIN | POLLPRI | POLLOUT
# When poll() reports only HUP/ERR/NVAL on a descriptor that select() does not
# count as ready (e.g. one only in xlist), look at it again this often instead
# of spinning.
_STICKY_RECHECK = 0.05


def _with_ready_fd(call: Callable[[int], object]) -> None:
    """Run ``call(fd)`` with a descriptor that is always writable, then close it.

    Used to let a native call validate an unusual timeout: with a ready
    descriptor it returns at once when the value is valid.
    """
    fd = os.eventfd(0, os.EFD_CLOEXEC)
    try:
        call(fd)
    finally:
        os.close(fd)


def _index_or_float(value: Any) -> float:
    return value if isinstance(value, float) else float(operator.index(value))


def _select_timeout(timeout: Any) -> float:
    """Seconds for ``select()`` (``inf`` for None), with the stdlib's errors."""
    if timeout is None:
        return math.inf
    if isinstance(timeout, int | float) and -_SANE_SECONDS < timeout < _SANE_SECONDS:
        if timeout < 0:
            raise ValueError("timeout must be non-negative")
        return float(timeout)
    if not isinstance(timeout, int | float):
        try:
            operator.index(timeout)
        except TypeError:
            raise TypeError("timeout must be a float or None") from None
    _with_ready_fd(lambda fd: _native_select((), (fd,), (), timeout))
    return _index_or_float(timeout)


def _poll_timeout(timeout: Any) -> float:
    """Seconds for ``poll.poll(milliseconds)`` (``inf`` for None or negative)."""
    if timeout is None:
        return math.inf
    if isinstance(timeout, int | float) and _INT_MIN <= timeout <= _INT_MAX:
        return math.inf if timeout < 0 else timeout / 1000
    if not isinstance(timeout, int | float):
        try:
            operator.index(timeout)
        except TypeError:
            raise TypeError("timeout must be an integer or None") from None

    def check(fd: int) -> None:
        p = _native_poll()
        p.register(fd, POLLOUT)
        p.poll(timeout)

    _with_ready_fd(check)
    ms = _index_or_float(timeout)
    return math.inf if ms < 0 else ms / 1000


def _epoll_timeout(timeout: Any) -> float:
    """Seconds for ``epoll.poll(seconds)`` (``inf`` for None or negative)."""
    if timeout is None:
        return math.inf
    if isinstance(timeout, int | float) and -2_000_000 < timeout < 2_000_000:
        return math.inf if timeout < 0 else float(timeout)
    if not isinstance(timeout, int | float):
        try:
            operator.index(timeout)
        except TypeError:
            raise TypeError("timeout must be an integer or None") from None

    def check(fd: int) -> None:
        ep = _native_epoll()
        try:
            ep.register(fd, _stdlib_select.EPOLLOUT)
            ep.poll(timeout)
        finally:
            ep.close()

    _with_ready_fd(check)
    seconds = _index_or_float(timeout)
    return math.inf if seconds < 0 else seconds


def _fileno(obj: Any) -> int:
    """The descriptor of an int or an object with ``fileno()`` (already validated)."""
    if isinstance(obj, int):
        return int(obj)
    return int(obj.fileno())


def _as_list(seq: Any) -> list[Any]:
    if type(seq) is list:
        return seq
    try:
        return list(seq)
    except TypeError:
        raise TypeError("arguments 1-3 must be sequences") from None


# -- select() -------------------------------------------------------------------


def select(
    rlist: Iterable[Any],
    wlist: Iterable[Any],
    xlist: Iterable[Any],
    timeout: float | None = None,
    /,
) -> tuple[list[Any], list[Any], list[Any]]:
    """Wait until one or more file descriptors are ready for some kind of I/O.

    Same as :func:`select.select`: three iterables of descriptors (ints or
    objects with ``fileno()``) to wait for reading, writing and exceptional
    conditions; ``timeout`` in seconds, None to wait forever.

    Returns:
        Three lists, the ready subsets of the arguments (empty on timeout).

    Raises:
        TypeError, ValueError, OverflowError, OSError: as :func:`select.select`.

    Cancellation:
        A cancelled or expired wait raises :class:`ThreadCancelled`
        (:class:`DeadlineExpired`); nothing is consumed.  Descriptors that are
        already ready are reported even in a cancelled thread.
    """
    tt = type(timeout)
    if (tt is float or tt is int) and 0 <= timeout < _SANE_SECONDS:  # type: ignore[operator]
        seconds: float = timeout  # type: ignore[assignment]
    else:
        seconds = _select_timeout(timeout)
    if type(rlist) is not list:
        rlist = _as_list(rlist)
    if type(wlist) is not list:
        wlist = _as_list(wlist)
    if type(xlist) is not list:
        xlist = _as_list(xlist)
    result = _native_select(rlist, wlist, xlist, 0)
    if result[0] or result[1] or result[2] or seconds == 0:
        return result
    # The descriptors, read once as the native call reads them: another thread
    # may close an object while we wait, and its fileno() is then -1.
    fds = ([_fileno(o) for o in rlist], [_fileno(o) for o in wlist], [_fileno(o) for o in xlist])
    return _wait_select((rlist, wlist, xlist), fds, seconds)


_LIST_EVENTS = (_READ_EVENTS, _WRITE_EVENTS, POLLPRI)
_LIST_SETS = (_READ_SET, _WRITE_SET, _EXCEPT_SET)


def _wait_select(
    lists: tuple[list[Any], list[Any], list[Any]],
    fds: tuple[list[int], list[int], list[int]],
    seconds: float,
) -> tuple[list[Any], list[Any], list[Any]]:
    """Wait for the descriptors ``fds`` of ``lists``; the ready objects, as select() gives them."""
    masks: dict[int, int] = {}  # what to poll for
    counts: dict[int, int] = {}  # the revents select() counts as ready
    for numbers, events, ready_set in zip(fds, _LIST_EVENTS, _LIST_SETS, strict=True):
        for fd in numbers:
            masks[fd] = masks.get(fd, 0) | events
            counts[fd] = counts.get(fd, 0) | ready_set
    deadline = _deadline_after(seconds)
    reason = ("select", fds)
    sticky: set[int] = set()
    while True:
        watch = list(masks.items())
        until = deadline
        if sticky:
            watch = [(fd, m) for fd, m in watch if fd not in sticky]
            until = min(deadline, _deadline_after(_STICKY_RECHECK))
            sticky = set()  # after this bounded wait, look at them again
        got = _wait_fds(watch, until, reason)
        if got:
            revents = dict(got)
            r, w, x = (
                [obj for obj, fd in zip(objs, numbers, strict=True) if revents.get(fd, 0) & ready]
                for objs, numbers, ready in zip(lists, fds, _LIST_SETS, strict=True)
            )
            if r or w or x:
                return r, w, x
            for fd, events in got:
                if not events & counts[fd]:
                    sticky.add(fd)  # only HUP/ERR where select() does not count them
        elif until == deadline:
            return [], [], []  # the deadline passed (wait_fds looked once more first)


# -- poll objects ----------------------------------------------------------------


class poll:  # the stdlib's name
    """A cancellable ``select.poll()`` object (make one with :func:`poll`).

    ``register``, ``modify``, ``unregister`` and ``poll`` behave as on the
    native object; ``poll(timeout)`` takes milliseconds (None or negative:
    forever).
    """

    __module__ = "threadpatch.select"
    __slots__ = ("_fds", "_native", "_running")

    def __init__(self) -> None:
        self._native = _native_poll()
        self._fds: dict[int, int] = {}
        self._running = False

    def register(self, fd: FileDescriptorLike, eventmask: int = _DEFAULT_POLL_MASK, /) -> None:
        """Register a descriptor (an int or an object with ``fileno()``)."""
        self._native.register(fd, eventmask)
        self._fds[_fileno(fd)] = operator.index(eventmask)

    def modify(self, fd: FileDescriptorLike, eventmask: int, /) -> None:
        """Change the events of a registered descriptor (``FileNotFoundError`` if not)."""
        self._native.modify(fd, eventmask)
        self._fds[_fileno(fd)] = operator.index(eventmask)

    def unregister(self, fd: FileDescriptorLike, /) -> None:
        """Forget a descriptor (``KeyError`` if it is not registered)."""
        self._native.unregister(fd)
        self._fds.pop(_fileno(fd), None)

    def poll(self, timeout: float | None = None, /) -> list[tuple[int, int]]:
        """Wait for events; return a list of ``(fd, revents)`` pairs.

        Args:
            timeout: milliseconds; None or negative waits forever.

        Raises:
            RuntimeError: another thread is polling this object.

        Cancellation:
            A cancelled or expired wait raises :class:`ThreadCancelled`;
            events already pending are returned even in a cancelled thread.
        """
        seconds = _poll_timeout(timeout)
        if self._running:
            raise RuntimeError("concurrent poll() invocation")
        native = self._native
        ready = native.poll(0)
        if ready or seconds == 0:
            return ready
        self._running = True
        try:
            deadline = _deadline_after(seconds)
            fds = list(self._fds.items())  # the registrations, read once as the native call does
            reason = ("poll", self)
            while True:
                got = _wait_fds(fds, deadline, reason)
                ready = native.poll(0)
                if ready or not got:  # events, or the deadline passed
                    return ready
        finally:
            self._running = False


# -- epoll objects ---------------------------------------------------------------

if _native_epoll is not None:
    _DEFAULT_EPOLL_MASK = _stdlib_select.EPOLLIN | _stdlib_select.EPOLLPRI | _stdlib_select.EPOLLOUT

    class epoll:  # the stdlib's name
        """A cancellable ``select.epoll`` object.

        The native type cannot be subclassed, so this wraps one; every method
        but :meth:`poll` is the native object's.
        """

        __module__ = "threadpatch.select"
        __slots__ = ("__weakref__", "_native")

        def __init__(self, sizehint: int = -1, flags: int = 0) -> None:
            self._native = _native_epoll(sizehint, flags)

        @classmethod
        def fromfd(cls, fd: int, /) -> epoll:
            """Make an epoll object from a descriptor (which it then owns)."""
            self = cls.__new__(cls)
            self._native = _native_epoll.fromfd(fd)
            return self

        @property
        def closed(self) -> bool:
            """True if the epoll descriptor is closed."""
            return bool(self._native.closed)

        def close(self) -> None:
            """Close the epoll descriptor (idempotent)."""
            self._native.close()

        def fileno(self) -> int:
            """The epoll descriptor (``ValueError`` once closed)."""
            return int(self._native.fileno())

        def register(self, fd: FileDescriptorLike, eventmask: int = _DEFAULT_EPOLL_MASK) -> None:
            """Register a descriptor (``FileExistsError`` if it already is)."""
            self._native.register(fd, eventmask)

        def modify(self, fd: FileDescriptorLike, eventmask: int) -> None:
            """Change the events of a registered descriptor."""
            self._native.modify(fd, eventmask)

        def unregister(self, fd: FileDescriptorLike) -> None:
            """Remove a registered descriptor."""
            self._native.unregister(fd)

        def __enter__(self) -> epoll:
            self._native.__enter__()
            return self

        def __exit__(self, *exc_info: object) -> None:
            self._native.close()

        def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
            """Wait for events; return a list of ``(fd, events)`` pairs.

            Args:
                timeout: seconds; None or negative waits forever.
                maxevents: at most this many events (-1: no limit).

            Cancellation:
                A cancelled or expired wait raises :class:`ThreadCancelled`;
                events already pending are returned even in a cancelled thread.
            """
            native = self._native
            if native.closed:
                raise ValueError("I/O operation on closed epoll object")
            seconds = _epoll_timeout(timeout)
            ready: list[tuple[int, int]] = native.poll(0, maxevents)
            if ready or seconds == 0:
                return ready
            deadline = _deadline_after(seconds)
            fds = [(native.fileno(), POLLIN)]
            reason = ("epoll", self)
            while True:
                got = _wait_fds(fds, deadline, reason)
                if native.closed:
                    # Closed by another thread while we waited: the native
                    # call, already inside epoll_wait(), would return what it
                    # had (nothing, unless an event came first) rather than
                    # fail.  The events can no longer be read: nothing.
                    return []
                ready = native.poll(0, maxevents)
                if ready or not got:  # events, or the deadline passed
                    return ready

else:  # pragma: no cover - not Linux
    epoll = None  # type: ignore[assignment, misc]
