"""A cancellable ``threading.Thread.join``.

``Thread.join`` waits in C: on the thread's ``_tstate_lock`` (3.11, 3.12) or
on its ``_handle`` (3.13).  Neither can be woken by threadpatch, and there is
no descriptor to poll.  :func:`join` keeps the standard semantics and makes the
wait a cancellation point by parking the joiner on its own parker, so a
cancellation or deadline wakes it at once:

* if the awaited thread is known to threadpatch (spawned, or adopted because
  it used threadpatch), its end unparks the joiner through a done callback;
  the joiner then finishes with a brief native join (the thread is already
  tearing down);
* otherwise the joiner re-checks the thread every :data:`SLICE` seconds.

The original ``join`` does every check (not started, joining oneself) and the
final clean-up, so behaviour and error messages are the standard library's on
every version, without looking at version-specific internals.
"""

from __future__ import annotations

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
        The join ends with ``ThreadCancelled`` at once; the awaited thread is
        not affected.
    """
    if _core.is_hub_thread():
        _original_join(self, timeout)
        return
    _original_join(self, 0)  # the standard checks; returns at once
    if not self.is_alive():
        return
    if _core.in_ctrl_c_cleanup():
        _core.cancel(self, blocking=False)
    me = _core.current_state()
    deadline = _core.deadline_after(None if timeout is None else max(timeout, 0))
    # Only a state the thread has bound ends with it: one made for it by a
    # cancel (see state_for_thread) is not finished if it ends without using
    # threadpatch, so that one is polled like an unknown thread.
    target = _core.state_for_thread(self)
    watching = (
        target is not None and target.for_thread is None and target.add_done_callback(me.unpark)
    )
    try:
        ended = _core.wait_until(
            lambda: not self.is_alive() or (watching and target is not None and target.finished),
            deadline,
            ("join", self),
            every=_core.INFINITE if watching else SLICE,
        )
    finally:
        if watching and target is not None:
            target.remove_done_callback(me.unpark)
    if not ended:
        me.check()
        return
    if self.is_alive():
        # Its threadpatch state is gone: the OS thread ends in moments.
        left = _core.seconds_left(deadline)
        _original_join(self, None if left == _core.INFINITE else max(left, 0))
        return
    _original_join(self, 0)  # let threading tidy up, as its own join does
