"""Cancellable selectors: the stdlib classes with a cancellable wait.

:class:`SelectSelector`, :class:`PollSelector` and :class:`EpollSelector`
subclass the :mod:`selectors` classes and replace only the method that
blocks, so registration, ``get_map()``, ``modify()``, the errors and the
shape of ``select()``'s result are the stdlib's own.

The waiting logic is written as plain functions that work on *any* instance
of the stdlib classes, because the patch layer installs them on the stdlib
classes themselves (``socketserver._ServerSelector``,
``subprocess._PopenSelector`` and ``DefaultSelector`` are bound at import, so
only a class-level patch reaches them).  :data:`CLASS_PATCHES` is the table
it uses::

    (stdlib class, attribute) -> replacement function

How a wait works: ``select(timeout)`` first calls the stdlib method with a
timeout of 0 (the answer if anything is ready: the hot path).  Otherwise the
thread waits in the core's ``wait_fds`` on the registered descriptors (for
epoll: on the epoll descriptor itself, readable while events are pending),
then asks the stdlib method again with a timeout of 0, until something is
ready or the timeout has passed.  A timeout of 0 or less goes straight to the
stdlib method; the core's wait owns cancellation, the hub thread and the
deadline.  What the
stdlib method's native call reads at entry (the registered descriptors, the
epoll descriptor) is read once, at entry: another thread closing a registered
file or the selector while we wait gets the stdlib's answer, not an error.
"""

from __future__ import annotations

import math
import selectors as _std
from typing import TYPE_CHECKING, Any

from . import _core
from . import _select as _tp_select

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "CLASS_PATCHES",
    "DefaultSelector",
    "EpollSelector",
    "PollSelector",
    "SelectSelector",
    "unwrap",
]

_POLLIN = _tp_select.POLLIN
_POLLOUT = _tp_select.POLLOUT
_wait_fds = _core.wait_fds
_deadline_after = _core.deadline_after
_INT_MAX = 2**31 - 1
# selectors.EVENT_READ/WRITE (1, 2) -> poll masks, indexed by key.events.
_POLL_MASK = (0, _POLLIN, _POLLOUT, _POLLIN | _POLLOUT)


def unwrap(func: Any) -> Any:
    """The stdlib function under any patch wrappers (``__wrapped__``).

    For a module imported after patching: it must capture the stdlib method,
    not recurse into its own replacement.
    """
    while hasattr(func, "__wrapped__"):
        func = func.__wrapped__
    return func


_orig_select_select = unwrap(_std.SelectSelector.__dict__["_select"])
_orig_poll_like_select = unwrap(_std._PollLikeSelector.__dict__["select"])
_has_epoll = hasattr(_std, "EpollSelector")
_orig_epoll_select = unwrap(_std.EpollSelector.__dict__["select"]) if _has_epoll else None


def select_selector_select(
    self: _std.SelectSelector,
    r: Any,
    w: Any,
    x: Any,
    timeout: float | None = None,
) -> tuple[list[Any], list[Any], list[Any]]:
    """Replacement for ``SelectSelector._select`` (stdlib: ``select.select``).

    Cancellation:
        As :func:`threadpatch.select.select`.
    """
    return _tp_select.select(r, w, x, timeout)


def _wait_ms(timeout: Any) -> float | None:
    """Seconds to wait for a poll-like ``select(timeout)``; None: pass through."""
    if timeout is None:
        return math.inf
    if timeout <= 0:
        return None
    ms = math.ceil(timeout * 1e3)
    if ms > _INT_MAX:
        return None  # the stdlib call raises OverflowError at once
    return float(ms) / 1e3


def poll_like_select(self: Any, timeout: float | None = None) -> list[tuple[_std.SelectorKey, int]]:
    """Replacement for ``_PollLikeSelector.select`` (PollSelector, DevpollSelector).

    Same results and timeout semantics as the stdlib method (None: forever;
    0 or negative: don't wait).

    Cancellation:
        A cancelled or expired wait raises :class:`ThreadCancelled`; events
        already pending are returned even in a cancelled thread.
    """
    seconds = _wait_ms(timeout)
    if seconds is None:
        return _orig_poll_like_select(self, timeout)  # type: ignore[no-any-return]
    ready: list[tuple[_std.SelectorKey, int]] = _orig_poll_like_select(self, 0)
    if ready:
        return ready
    # The registrations, read once as the native poll() call reads them.
    fds = [(fd, _POLL_MASK[key.events & 3]) for fd, key in self._fd_to_key.items()]
    _wait_fds(fds, _deadline_after(seconds), ("selector", self))
    # Events came, or the deadline passed: the native poll() would have
    # returned them, and the stdlib method keeps those of keys still
    # registered (none, if another thread unregistered them or closed the
    # selector).
    return _orig_poll_like_select(self, 0)  # type: ignore[no-any-return]


def epoll_selector_select(
    self: Any, timeout: float | None = None
) -> list[tuple[_std.SelectorKey, int]]:
    """Replacement for ``EpollSelector.select``.

    Waits on the epoll descriptor itself, which is readable while events are
    pending, so the cost does not grow with the number of registrations.

    Cancellation:
        As :func:`poll_like_select`.
    """
    assert _orig_epoll_select is not None
    seconds = _wait_ms(timeout)
    if seconds is None:
        return _orig_epoll_select(self, timeout)  # type: ignore[no-any-return]
    ready: list[tuple[_std.SelectorKey, int]] = _orig_epoll_select(self, 0)
    if ready:
        return ready
    deadline = _deadline_after(seconds)
    fds = [(self._selector.fileno(), _POLLIN)]
    reason = ("selector", self)
    while True:
        got = _wait_fds(fds, deadline, reason)
        if self._selector.closed:
            # Closed by another thread while we waited (close() also forgets
            # every key): the stdlib method would have returned no keys.
            return []
        ready = _orig_epoll_select(self, 0)
        if ready or not got:  # events, or the deadline passed
            return ready


#: What the patch layer installs on the stdlib classes:
#: ``(class, attribute name) -> replacement``.  Each replacement is a plain
#: function taking the selector as ``self``.
CLASS_PATCHES: dict[tuple[type, str], Callable[..., Any]] = {
    (_std.SelectSelector, "_select"): select_selector_select,
    (_std._PollLikeSelector, "select"): poll_like_select,
}
if _has_epoll:
    CLASS_PATCHES[(_std.EpollSelector, "select")] = epoll_selector_select


class SelectSelector(_std.SelectSelector):
    """Select-based selector whose ``select()`` is cancellable."""

    __module__ = "threadpatch.selectors"
    _select = select_selector_select


class PollSelector(_std.PollSelector):
    """Poll-based selector whose ``select()`` is cancellable."""

    __module__ = "threadpatch.selectors"
    select = poll_like_select


DefaultSelector: type[_std.BaseSelector]

if _has_epoll:

    class EpollSelector(_std.EpollSelector):
        """Epoll-based selector whose ``select()`` is cancellable."""

        __module__ = "threadpatch.selectors"
        select = epoll_selector_select


# The stdlib's choice, made at its import: epoll > poll > select on Linux.
_STD_DEFAULT = _std.DefaultSelector
if _has_epoll and issubclass(_STD_DEFAULT, _std.EpollSelector):
    DefaultSelector = EpollSelector
elif issubclass(_STD_DEFAULT, _std.PollSelector):
    DefaultSelector = PollSelector
else:
    DefaultSelector = SelectSelector
