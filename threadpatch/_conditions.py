"""A cancellable ``Condition``, and ``wait_for``, the stdlib's predicate loop.

A drop-in replacement for ``threading.Condition``: same signature, return
values, exceptions and repr, but every wait is a cancellation point.

* ``Condition`` parks its waiters in a :class:`~threadpatch._core.ParkingLot`:
  ``notify`` picks and unparks; a waiter that is cancelled after being
  notified passes the notification on, so ``Semaphore`` and ``Barrier``
  (built on it, as in ``threading``) never lose a wake-up.  The lock is
  re-acquired under a shield, so a cancelled ``wait`` still leaves the lock
  held for the ``with`` block.
* Primitives built on a condition wait with :meth:`Condition.wait_as`, so a
  snapshot names the semaphore, event or barrier a thread waits for.
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from . import _core
from ._core import _natives
from ._locks import NATIVE_LOCK_TYPE, PLAIN_LOCK_TYPES, RLock

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Condition", "ConditionStatistics", "wait_for"]

T = TypeVar("T")

_allocate_lock = _natives.allocate_lock
_shield = _core.shield
_ParkingLot = _core.ParkingLot


def wait_for(
    wait: Callable[[float | None], object], predicate: Callable[[], T], timeout: float | None
) -> T:
    """``Condition.wait_for`` over any ``wait(timeout)``: the stdlib's loop."""
    result = predicate()
    if result:
        return result
    deadline = _core.deadline_after(timeout)
    waittime = timeout
    while True:
        wait(waittime)
        result = predicate()
        if result:
            return result
        left = _core.seconds_left(deadline)
        if left <= 0:
            return result
        waittime = None if left == _core.INFINITE else left


class ConditionStatistics(NamedTuple):
    """A snapshot of a :class:`Condition`: the number of threads in ``wait``."""

    waiting: int


# -- Condition -------------------------------------------------------------------


class Condition:
    """A cancellable ``threading.Condition``.

    Works with this module's locks, with native locks and with ``threading``'s.
    """

    __module__ = "threadpatch"

    def __init__(self, lock: Any = None) -> None:
        if lock is None:
            lock = RLock()
        self._lock = lock
        self.acquire: Callable[..., bool] = lock.acquire
        self.release: Callable[[], None] = lock.release
        # The private protocol of RLocks, with threading's fallbacks for others.
        self._is_owned: Callable[[], bool] = getattr(lock, "_is_owned", self._probe_owned)
        self._release_save: Callable[[], Any] = getattr(
            lock, "_release_save", self._plain_release_save
        )
        self._acquire_restore: Callable[[Any], None] = getattr(
            lock, "_acquire_restore", self._plain_acquire_restore
        )
        # A non-blocking try to re-take one of our plain Locks without a shield.
        self._try_reacquire: Callable[[], bool] | None = None
        if type(lock) in PLAIN_LOCK_TYPES:
            self._is_owned = lock.locked
            self._try_reacquire = lock._try_acquire
        elif type(lock) is NATIVE_LOCK_TYPE:
            self._is_owned = lock.locked
            self._try_reacquire = functools.partial(lock.acquire, False)
        self._lot = _ParkingLot()
        self._waiters = self._lot.waiters

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()
        self._lot = _ParkingLot()
        self._waiters = self._lot.waiters

    def __enter__(self) -> bool:
        return self._lock.__enter__()  # type: ignore[no-any-return]

    def __exit__(self, *args: object) -> Any:
        return self._lock.__exit__(*args)

    def __repr__(self) -> str:
        return f"<Condition({self._lock}, {len(self._waiters)})>"

    # Fallbacks for locks without the private protocol (as threading does).
    def _plain_release_save(self) -> None:
        self._lock.release()

    def _plain_acquire_restore(self, state: object) -> None:
        self._lock.acquire()

    def _probe_owned(self) -> bool:
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def _reacquire(self, saved: Any) -> None:
        # The lock is held again on every way out of wait(), also when an
        # asynchronous exception (Ctrl-C's KeyboardInterrupt) lands in here:
        # then it is taken all the same, and the exception raised after.
        error: BaseException | None = None
        while True:
            try:
                try_reacquire = self._try_reacquire
                if try_reacquire is None or not try_reacquire():
                    with _shield():
                        self._acquire_restore(saved)
                break
            except BaseException as exc:
                if error is None:
                    error = exc
                if self._held_by_me():
                    break
        if error is not None:
            try:
                raise error
            finally:
                error = None

    def _held_by_me(self) -> bool:
        # Whether the calling thread holds the lock, as precisely as the lock
        # can say: its owner if it records one, else "held by someone".
        owner = getattr(self._lock, "_owner", None)
        if type(owner) is int and type(self._lock) in PLAIN_LOCK_TYPES:
            return owner == _natives.get_ident()
        return bool(self._is_owned())

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify (or the timeout), re-acquire the lock.

        Returns:
            True if notified, False if the timeout passed.

        Raises:
            RuntimeError: the lock is not held.
            ThreadCancelled: cancelled (or a deadline expired) while waiting.

        Cancellation:
            The lock is re-acquired before the exception propagates (so a
            ``with cond:`` block exits cleanly); a notification this waiter
            received is passed on to the next waiter.
        """
        return self.wait_as(("condition", self), timeout)

    def wait_as(self, reason: object, timeout: float | None = None) -> bool:
        """:meth:`wait`, recording ``reason`` as what the thread waits for.

        For primitives built on a condition (Semaphore, Event, Barrier,
        queues), so that a snapshot names them rather than their condition.
        """
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        saved: Any = None

        def unlock() -> None:
            nonlocal saved
            saved = self._release_save()

        return self._lot.park(
            _core.deadline_after(timeout),
            reason,
            unlock,
            lambda: self._reacquire(saved),
        )

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        """Wait until ``predicate()`` is true; return its last value.

        Cancellation:
            As :meth:`wait`: the lock is held again when the exception propagates.
        """
        return wait_for(self.wait, predicate, timeout)

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiters; RuntimeError if the lock is not held."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        self._notify(n)

    def _notify(self, n: int) -> None:
        if self._waiters:
            self._lot.unpark(n)

    def notify_all(self) -> None:
        """Wake every waiter; RuntimeError if the lock is not held."""
        self.notify(len(self._waiters))

    def notifyAll(self) -> None:
        """Deprecated alias of :meth:`notify_all`, as in ``threading``."""
        warnings.warn(
            "notifyAll() is deprecated, use notify_all() instead", DeprecationWarning, stacklevel=2
        )
        self.notify_all()

    def statistics(self) -> ConditionStatistics:
        """A snapshot: the number of ``waiting`` threads."""
        return ConditionStatistics(len(self._waiters))
