"""``multiprocessing.connection.Connection`` reading and writing with the cancellable os calls.

``Connection._recv``/``_send`` take ``os.read``/``os.write`` as default
arguments, bound when the module was imported, so patching ``os`` alone does
not reach a module imported before.  These replacements (the
``multiprocessing`` patch set, on the class) call the stdlib's methods with
:mod:`threadpatch._os`'s functions instead.
"""

from __future__ import annotations

from multiprocessing import connection as _std
from typing import Any

from . import _os
from ._selectors import unwrap

__all__ = ["connection_recv", "connection_send"]

_orig_recv = unwrap(_std.Connection.__dict__["_recv"])
_orig_send = unwrap(_std.Connection.__dict__["_send"])


def connection_recv(self: Any, size: int, read: Any = None) -> Any:
    """``Connection._recv`` reading with the cancellable ``os.read``."""
    return _orig_recv(self, size, _os.read if read is None else read)


def connection_send(self: Any, buf: Any, write: Any = None) -> None:
    """``Connection._send`` writing with the cancellable ``os.write``."""
    _orig_send(self, buf, _os.write if write is None else write)
