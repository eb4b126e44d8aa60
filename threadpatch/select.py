"""Drop-in for the :mod:`select` module whose waits are cancellable.

``select``, ``poll`` and ``epoll`` are threadpatch's (see
:mod:`threadpatch._select`); every constant and ``error`` is the stdlib's own
object, so code can use this module wherever it used :mod:`select`.
"""

from __future__ import annotations

import select as _stdlib_select

from ._select import epoll as epoll
from ._select import poll as poll
from ._select import select as select

error = _stdlib_select.error

_OURS = {"select", "poll", "epoll"}
_CONSTANTS = [
    name
    for name in dir(_stdlib_select)
    if name.isupper() and not name.startswith("_") and name not in _OURS
]
globals().update({name: getattr(_stdlib_select, name) for name in _CONSTANTS})

__all__ = sorted(["epoll", "error", "poll", "select", *_CONSTANTS])
