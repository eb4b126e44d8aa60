"""A cancellable ``threading.Thread.join``.

``Thread.join`` waits in C: on the thread's ``_tstate_lock`` (3.11, 3.12) or
on its ``_handle`` (3.13).  Neither can be woken by threadpatch, and there is
no descriptor to poll.  :func:`join` keeps the standard semantics and makes the
wait a cancellation point by waiting natively in short slices and checking for
cancellation and deadlines between them, so a cancelled joiner leaves within
one slice (:data:`SLICE` seconds).  A thread that ends wakes the joiner at
once: the native wait returns as soon as the thread is gone.

The original ``join`` does every check (not started, joining oneself) and the
final clean-up, so behaviour and error messages are the standard library's on
every version, without looking at version-specific internals.
"""

from __future__ import annotations

import math
import threading

from . import _core
from ._core import _natives

__all__ = ["SLICE", "join"]

#: Longest native wait between two looks at cancellation (seconds).
SLICE = 0.01

_original_join = threading.Thread.join
_monotonic = _natives.monotonic


def join(self: threading.Thread, timeout: float | None = None) -> None:
    """Wait until the thread ends, or ``timeout`` seconds (``threading.Thread.join``).

    Raises:
        RuntimeError: joining the current thread, or a thread not started.

    Cancellation:
        The join ends with ``ThreadCancelled`` (within :data:`SLICE` s); the
        awaited thread is not affected.
    """
    if _core.is_hub_thread():
        _original_join(self, timeout)
        return
    _original_join(self, 0)  # the standard checks; returns at once
    if not self.is_alive():
        return
    state = _core.current_state()
    deadline = math.inf if timeout is None else _monotonic() + max(timeout, 0)
    while True:
        state.check()
        remaining = deadline - _monotonic()
        if remaining <= 0:
            return
        state.parked = True  # blocked, for diagnostics and tests
        try:
            _original_join(self, min(remaining, SLICE))
        finally:
            state.parked = False
        if not self.is_alive():
            return
