"""Socket timeouts kept in Python, and the adoption of plain stdlib sockets.

A threadpatch socket's descriptor is always non-blocking at the C level (C
timeout 0.0); the timeout the user set lives in Python and ``gettimeout()``,
``getblocking()`` and ``timeout`` report it, so the stdlib semantics hold.

Our own :class:`threadpatch.socket.socket` keeps it in ``_tp_timeout``.  A
plain ``socket.socket`` (the patch layer installs the blocking methods on the
stdlib class) is *adopted* on its first blocking call: its timeout moves to a
weak side table and its C timeout becomes 0.0.  :func:`release_adopted` moves
the timeouts back (unpatching).  A stdlib ``ssl.SSLSocket`` (anything with an
``_sslobj`` that is not ours) is never adopted: its C-level SSL object reads
the C timeout, so its calls go straight to the native methods.

:data:`TIMEOUT_METHODS` holds ``settimeout``/``gettimeout``/``setblocking``/
``getblocking``/``timeout`` for plain stdlib sockets; install it on
``socket.socket`` together with the blocking methods.
"""

from __future__ import annotations

import _socket
import contextlib
import math
import operator
import sys
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket as _std
    from collections.abc import Callable

__all__ = [
    "TIMEOUT_METHODS",
    "adopt",
    "blocking_flag",
    "gettimeout",
    "parse_timeout",
    "release_adopted",
    "user_timeout",
]

_c_gettimeout = _socket.socket.gettimeout
_c_settimeout = _socket.socket.settimeout

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


# Timeouts of adopted plain stdlib sockets (their C timeout is 0.0).
_adopted: weakref.WeakKeyDictionary[_std.socket, float | None] = weakref.WeakKeyDictionary()


def adopt(sock: Any) -> bool:
    """Move a socket's C timeout into our bookkeeping; False if it must stay native."""
    timeout = _c_gettimeout(sock)
    if hasattr(sock, "_tp_timeout"):  # one of ours whose C timeout was reset under us
        sock._tp_timeout = timeout
    elif hasattr(sock, "_sslobj"):
        return False  # a stdlib SSLSocket: its C SSL object reads the C timeout
    else:
        _adopted[sock] = timeout
    _c_settimeout(sock, 0.0)
    return True


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
    """``socket.settimeout`` for plain stdlib sockets."""
    if hasattr(self, "_sslobj"):
        _c_settimeout(self, value)  # type: ignore[arg-type]
        return
    timeout = parse_timeout(value)
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
