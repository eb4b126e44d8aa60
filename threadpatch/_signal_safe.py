"""Signal handlers and our RLock: the locks a signal handler takes stay native.

A signal handler runs in the main thread between two bytecodes of whatever
that thread was doing, possibly inside our own acquire/release/wait code.
``_thread.RLock`` is safe there: owner and count change inside one C call,
and a handler that waits for it waits on the lock's own semaphore, apart
from the wait it interrupted.  Ours is not, on either core (evidence:
tests/test_sync_signals.py, both implementations): a handler that waits for
the RLock while the thread already waits for it parks on the same
per-thread parker, consumes the wake-up meant for the interrupted wait, and
that wait then sleeps forever on a free lock.  (A handler's release inside a
release used to deadlock on the lot's internal lock; lots are lock-free now.)

Making every wait re-entrant would cost each wait its own parker (the whole
point of the per-thread parker is that a wait allocates nothing), so the
rule is the other way round: *a lock a signal handler takes is native*.
Who takes locks in signal handlers: trio's entry queue (``run_sync_soon``
from its SIGINT handler; trio asserts its RLock is ``_thread``'s); not
asyncio (``call_soon_threadsafe`` and its signal handlers append to a deque
and write to the self-pipe, no lock), nor ``signal.set_wakeup_fd`` users;
``logging`` only if a program logs in a handler, which logging documents as
unsafe with any non-native lock.  Only an RLock can be taken in a handler
at all (a handler taking a plain Lock its thread holds deadlocks natively),
and those locks guard a few bytecodes, never a wait worth cancelling.  So
the patched ``threading.RLock`` returns a native RLock while a function
wrapped by :func:`makes_signal_safe_locks` runs in this thread (the patch
tables wrap an event loop's set-up, e.g. ``trio.run``'s), and ours
everywhere else: plain ``threading.RLock()`` stays cancellable.
"""

from __future__ import annotations

import functools
import sys
import warnings
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ._core import _natives
from ._locks import RLock

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["makes_signal_safe_locks", "patched_rlock"]

T = TypeVar("T")
P = ParamSpec("P")
_native_rlock = _natives.RLock

_signal_safe = _natives.local()


def patched_rlock(*args: Any, **kwargs: Any) -> Any:
    """``threading.RLock()`` under the patch: ours, or native for a signal-safe set-up.

    Returns a cancellable :class:`RLock`, except while a function wrapped by
    :func:`makes_signal_safe_locks` runs in the calling thread: then the
    native ``_thread.RLock``, which a signal handler may take.  Arguments are
    ignored, as the native factory ignores them (warning about them from
    Python 3.13 on, as it does).
    """
    if (args or kwargs) and sys.version_info >= (3, 13):
        warnings.warn(
            "Passing arguments to RLock is deprecated and will be removed in 3.15",
            DeprecationWarning,
            stacklevel=2,
        )
    if getattr(_signal_safe, "depth", 0):
        return _native_rlock()
    return RLock()


def makes_signal_safe_locks(func: Callable[P, T]) -> Callable[P, T]:
    """Wrap ``func`` so that the RLocks it makes (patched ``threading.RLock``) are native.

    For code that builds objects whose locks signal handlers take (an event
    loop's run machinery): cancelling a wait on them would gain nothing, and
    only the native RLock is safe to re-enter from a handler.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        depth: int = getattr(_signal_safe, "depth", 0)
        _signal_safe.depth = depth + 1
        try:
            return func(*args, **kwargs)
        finally:
            _signal_safe.depth = depth

    return wrapper
