"""Socket timeouts kept in Python, descriptor modes as the stdlib's, and adoption.

The descriptor of a socket has the stdlib's mode: blocking for a blocking
socket (no timeout), ``O_NONBLOCK`` for a socket with a timeout or a
non-blocking one, exactly as ``settimeout``/``setblocking`` leave it in the
stdlib; ``fileno()``/``detach()`` users (``multiprocessing.connection`` hands
the descriptor to ``os.read``) see what they would see without threadpatch.
The C timeout follows: ``None`` on a blocking socket, ``0.0`` on any other (a
C timeout above 0 would wait inside C, uncancellably); the timeout the user
set lives in Python and ``gettimeout()``, ``getblocking()`` and ``timeout``
report it.  The blocking methods never block in the system call: receives and
sends pass ``MSG_DONTWAIT``, and the calls without flags (``accept``,
``connect``, ``sendfile``) run with the descriptor ``O_NONBLOCK`` for the
call only (:func:`call_nonblocking`); both then wait in the core.

Our own :class:`threadpatch.socket.socket` keeps the timeout in
``_tp_timeout``.  A plain ``socket.socket`` (the patch layer installs the
blocking methods on the stdlib class) keeps it in a weak side table; one
that has a C timeout above 0 (set before patching, or by
``setdefaulttimeout``) is *adopted* on its first blocking call: its timeout
moves to the table and its C timeout becomes 0.0 (its descriptor is
``O_NONBLOCK`` already).  :func:`release_adopted` moves the timeouts back
(unpatching).  A stdlib ``ssl.SSLSocket`` (anything with an ``_sslobj`` that
is not ours) is never adopted: its C-level SSL object reads the C timeout, so
its calls go straight to the native methods.  threadpatch's TLS socket keeps
its descriptor non-blocking whatever the timeout (OpenSSL must never block):
its class sets ``_tp_fd_follows_timeout = False``.

:data:`TIMEOUT_METHODS` holds ``settimeout``/``gettimeout``/``setblocking``/
``getblocking``/``timeout`` for plain stdlib sockets; install it on
``socket.socket`` together with the blocking methods.
"""

from __future__ import annotations

import _socket
import contextlib
import math
import operator
import os
import sys
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

from ._core import _natives

if TYPE_CHECKING:
    import socket as _std
    from collections.abc import Callable

T = TypeVar("T")

__all__ = [
    "TIMEOUT_METHODS",
    "adopt",
    "blocking_flag",
    "call_nonblocking",
    "gettimeout",
    "parse_timeout",
    "release_adopted",
    "user_timeout",
]

_c_gettimeout = _socket.socket.gettimeout
_c_settimeout = _socket.socket.settimeout
_c_fileno = _socket.socket.fileno

# Version differences of the C socket, mirrored exactly.
if sys.version_info >= (3, 12):
    blocking_flag: Callable[[object], bool] = bool  # setblocking() takes any truth value
else:

    def blocking_flag(flag: object) -> bool:
        """``setblocking``'s flag as the 3.11 C socket reads it (an integer)."""
        return bool(operator.index(flag))  # type: ignore[arg-type]


_PYTIME = "C PyTime_t" if sys.version_info >= (3, 13) else "C _PyTime_t"


def parse_timeout(value: object) -> float | None:
    """Validate a socket timeout exactly as the C ``settimeout`` does."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("Invalid value NaN (not a number)")
        if value < 0:
            raise ValueError("Timeout value out of range")
        try:
            ns = math.ceil(value * 1e9)
        except OverflowError:
            raise OverflowError("timestamp out of range for platform time_t") from None
        if ns >= 2**63:
            raise OverflowError("timestamp out of range for platform time_t")
    else:
        seconds = operator.index(value)  # type: ignore[arg-type]
        if seconds < 0:
            raise ValueError("Timeout value out of range")
        ns = seconds * 1_000_000_000
        if ns >= 2**63:
            raise OverflowError(f"timestamp too large to convert to {_PYTIME}")
    return float(ns // 1_000_000_000) if ns % 1_000_000_000 == 0 else ns / 1e9


# Timeouts of plain stdlib sockets whose C timeout is 0.0 (set through our
# settimeout, or adopted); a missing entry means 0.0, a non-blocking socket.
_adopted: weakref.WeakKeyDictionary[_std.socket, float | None] = weakref.WeakKeyDictionary()


def adopt(sock: Any) -> bool:
    """Take over a socket whose C timeout is above 0; False if it must stay native.

    Its C timeout becomes 0.0 (its descriptor is ``O_NONBLOCK`` already, as
    the stdlib's timeout sockets are), and the timeout is kept in Python.
    """
    timeout = _c_gettimeout(sock)
    if hasattr(sock, "_tp_timeout"):  # one of ours whose C timeout was set under us
        sock._tp_timeout = timeout
    elif hasattr(sock, "_sslobj"):
        return False  # a stdlib SSLSocket: its C SSL object reads the C timeout
    else:
        _adopted[sock] = timeout
    _c_settimeout(sock, 0.0)
    return True


# Descriptors O_NONBLOCK for call_nonblocking(): fd -> calls running.
_toggled: dict[int, int] = {}
_toggled_lock = _natives.RLock()  # re-entrant: a signal handler may call in


def call_nonblocking(sock: Any, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` with ``sock``'s descriptor ``O_NONBLOCK`` during the call.

    For the calls of a blocking socket that take no flags (``accept``,
    ``connect``, ``sendfile``): the call then says EAGAIN or EINPROGRESS
    instead of blocking, and the caller waits in the core.  Concurrent calls
    on one descriptor share the mode: the first turns it on, the last one out
    turns blocking mode back on (if the socket is still blocking and still
    has that descriptor).  A descriptor that is non-blocking already is left
    alone.
    """
    fd = _c_fileno(sock)
    if fd < 0:
        return func(*args, **kwargs)  # closed: the call raises the stdlib's error
    with _toggled_lock:
        calls = _toggled.get(fd, 0)
        if not calls:
            if not os.get_blocking(fd):
                calls = -1  # not ours to toggle
            else:
                os.set_blocking(fd, False)
        if calls >= 0:
            _toggled[fd] = calls + 1
    if calls < 0:
        return func(*args, **kwargs)
    try:
        return func(*args, **kwargs)
    finally:
        with _toggled_lock:
            calls = _toggled.pop(fd, 1) - 1
            if calls:
                _toggled[fd] = calls
            elif _c_fileno(sock) == fd and _c_gettimeout(sock) is None:
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, True)


def _after_fork_in_child() -> None:
    global _toggled_lock
    _toggled_lock = _natives.RLock()
    _toggled.clear()  # the calls running in other threads are not running here


os.register_at_fork(after_in_child=_after_fork_in_child)


def release_adopted() -> None:
    """Give every adopted plain socket its timeout back at the C level (unpatching)."""
    for sock, timeout in list(_adopted.items()):
        with contextlib.suppress(OSError):  # closed
            _c_settimeout(sock, timeout)
    _adopted.clear()


def user_timeout(sock: Any) -> float | None:
    """The timeout the user set, for our sockets and adopted plain ones alike."""
    try:
        return sock._tp_timeout  # type: ignore[no-any-return]
    except AttributeError:
        return gettimeout(sock)


def gettimeout(self: Any) -> float | None:
    """``socket.gettimeout`` for plain stdlib sockets (see the module docstring)."""
    timeout = _c_gettimeout(self)
    if timeout == 0.0:
        return _adopted.get(self, 0.0)
    return timeout


def _settimeout(self: Any, value: object) -> None:
    """``socket.settimeout`` for plain stdlib sockets: the stdlib's descriptor mode."""
    if hasattr(self, "_sslobj"):
        _c_settimeout(self, value)  # type: ignore[arg-type]
        return
    timeout = parse_timeout(value)
    if timeout is None:
        _c_settimeout(self, None)  # blocking descriptor, as the stdlib's
        _adopted.pop(self, None)
        return
    _c_settimeout(self, 0.0)
    _adopted[self] = timeout


def _setblocking(self: Any, flag: object) -> None:
    """``socket.setblocking`` for plain stdlib sockets."""
    self.settimeout(None if blocking_flag(flag) else 0.0)


def _getblocking(self: Any) -> bool:
    """``socket.getblocking`` for plain stdlib sockets."""
    return user_timeout(self) != 0.0


TIMEOUT_METHODS: dict[str, Any] = {
    "settimeout": _settimeout,
    "gettimeout": gettimeout,
    "setblocking": _setblocking,
    "getblocking": _getblocking,
    "timeout": property(gettimeout, doc="the socket timeout (as gettimeout())"),
}
