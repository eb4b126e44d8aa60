"""Cancellable ``Semaphore``, ``BoundedSemaphore``, ``Event`` and ``Barrier``, on ``Condition``.

Drop-in replacements for the ``threading`` classes: same signatures, return
values, exceptions and reprs, but every wait is a cancellation point.  Each
is built on a :class:`~threadpatch._conditions.Condition`, as in
``threading``, and waits with ``Condition.wait_as`` so that a snapshot names
the semaphore, event or barrier a thread waits for.
"""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING, NamedTuple

from ._conditions import Condition, wait_for
from ._core import _natives

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Barrier",
    "BarrierStatistics",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Event",
    "EventStatistics",
    "Semaphore",
    "SemaphoreStatistics",
]

#: The stdlib class itself, so ``except threading.BrokenBarrierError`` works.
BrokenBarrierError = threading.BrokenBarrierError

_allocate_lock = _natives.allocate_lock


class SemaphoreStatistics(NamedTuple):
    """A snapshot of a :class:`Semaphore`: its value and the number of waiters."""

    value: int
    waiting: int


class EventStatistics(NamedTuple):
    """A snapshot of an :class:`Event`: its flag and the number of waiters."""

    is_set: bool
    waiting: int


class BarrierStatistics(NamedTuple):
    """A snapshot of a :class:`Barrier`."""

    parties: int
    n_waiting: int
    broken: bool


# -- Semaphores ------------------------------------------------------------------
#
# Semaphore, Event and Barrier guard their state with a
# *native* lock under their Condition.  It is only ever held for a few
# statements (every wait is in Condition.wait, which releases it), so waiting
# for it is not blocking in the user's sense and must not be a cancellation
# point: a cancelled thread's ``release()`` or ``set()`` -- clean-up, as in
# ``with sem:`` -- must not fail because another thread was inside ``acquire``
# at that moment.  The waits themselves stay cancellable.


class Semaphore:
    """A cancellable ``threading.Semaphore``."""

    __module__ = "threadpatch"

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._cond = Condition(_allocate_lock())  # native: see the note above Semaphore
        self._value = value

    def __repr__(self) -> str:
        cls = type(self)
        return f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}: value={self._value}>"

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Decrement the counter, waiting while it is zero.

        Returns:
            True if decremented; False if non-blocking or the timeout passed.

        Raises:
            ValueError: a timeout with ``blocking=False``.
            ThreadCancelled: cancelled (or a deadline expired) while waiting.

        Cancellation:
            The counter is unchanged, and a release meant for this waiter
            goes to the next one.
        """
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        cond = self._cond
        with cond:
            if not self._value and blocking:
                reason = ("semaphore", self)
                wait_for(lambda t: cond.wait_as(reason, t), self._available, timeout)
            if not self._value:
                return False
            self._value -= 1
            return True

    def _available(self) -> int:
        return self._value

    __enter__ = acquire

    def release(self, n: int = 1) -> None:
        """Increment the counter by ``n`` and wake up to ``n`` waiters."""
        if n < 1:
            raise ValueError("n must be one or more")
        with self._cond:
            self._value += n
            self._cond.notify(n)

    def __exit__(self, t: object, v: object, tb: object) -> None:
        self.release()

    def statistics(self) -> SemaphoreStatistics:
        """A snapshot: ``value`` and the number of ``waiting`` threads."""
        return SemaphoreStatistics(self._value, len(self._cond._waiters))


class BoundedSemaphore(Semaphore):
    """A semaphore whose ``release`` may not raise the value above the initial one."""

    __module__ = "threadpatch"

    def __init__(self, value: int = 1) -> None:
        super().__init__(value)
        self._initial_value = value

    def __repr__(self) -> str:
        cls = type(self)
        return (
            f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}:"
            f" value={self._value}/{self._initial_value}>"
        )

    def release(self, n: int = 1) -> None:
        """As :meth:`Semaphore.release`; ValueError if released too many times."""
        if n < 1:
            raise ValueError("n must be one or more")
        with self._cond:
            if self._value + n > self._initial_value:
                raise ValueError("Semaphore released too many times")
            self._value += n
            self._cond.notify(n)


# -- Event -----------------------------------------------------------------------


class Event:
    """A cancellable ``threading.Event``."""

    __module__ = "threadpatch"

    def __init__(self) -> None:
        self._cond = Condition(_allocate_lock())  # native: see the note above Semaphore
        self._flag: bool = False

    def __repr__(self) -> str:
        cls = type(self)
        status = "set" if self._flag else "unset"
        return f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}: {status}>"

    def _at_fork_reinit(self) -> None:
        self._cond._at_fork_reinit()

    def is_set(self) -> bool:
        """True once :meth:`set` has been called (and not :meth:`clear` since)."""
        return self._flag

    def isSet(self) -> bool:
        """Deprecated alias of :meth:`is_set`, as in ``threading``."""
        warnings.warn(
            "isSet() is deprecated, use is_set() instead", DeprecationWarning, stacklevel=2
        )
        return self.is_set()

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def clear(self) -> None:
        """Reset the flag."""
        with self._cond:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set; return it (False if the timeout passed).

        Cancellation:
            The wait ends; the event is not affected.
        """
        if self._flag:
            return True
        with self._cond:
            signaled: bool = self._flag
            if not signaled:
                signaled = self._cond.wait_as(("event", self), timeout)
            return signaled

    def statistics(self) -> EventStatistics:
        """A snapshot: ``is_set`` and the number of ``waiting`` threads."""
        return EventStatistics(self._flag, len(self._cond._waiters))


# -- Barrier ---------------------------------------------------------------------


class Barrier:
    """A cancellable ``threading.Barrier``.

    A party cancelled in :meth:`wait` breaks the barrier, as :meth:`abort`
    would: the other parties raise ``BrokenBarrierError``.
    """

    __module__ = "threadpatch"

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
    ) -> None:
        if parties < 1:
            raise ValueError("parties must be > 0")
        self._cond = Condition(_allocate_lock())  # native: see the note above Semaphore
        self._action = action
        self._timeout = timeout
        self._parties = parties
        self._state = 0  # 0 filling, 1 draining, -1 resetting, -2 broken
        self._count = 0

    def __repr__(self) -> str:
        cls = type(self)
        if self.broken:
            return f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}: broken>"
        return (
            f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}:"
            f" waiters={self.n_waiting}/{self.parties}>"
        )

    def wait(self, timeout: float | None = None) -> int:
        """Wait until ``parties`` threads have called it; return this party's index.

        Raises:
            BrokenBarrierError: the barrier is or became broken (abort, reset,
                timeout, failed action, cancelled party).
            ThreadCancelled: cancelled (or a deadline expired) while waiting.

        Cancellation:
            The barrier breaks, as if :meth:`abort` had been called.
        """
        if timeout is None:
            timeout = self._timeout
        with self._cond:
            self._enter()
            index = self._count
            self._count += 1
            try:
                if index + 1 == self._parties:
                    self._release()
                else:
                    self._wait(timeout)
                return index
            finally:
                self._count -= 1
                self._exit()

    def _enter(self) -> None:
        while self._state in (-1, 1):
            self._cond.wait_as(("barrier", self))
        if self._state < 0:
            raise BrokenBarrierError
        assert self._state == 0

    def _release(self) -> None:
        try:
            if self._action:
                self._action()
            self._state = 1
            self._cond.notify_all()
        except BaseException:
            self._break()
            raise

    def _wait(self, timeout: float | None) -> None:
        try:
            reason = ("barrier", self)
            passed = wait_for(
                lambda t: self._cond.wait_as(reason, t), lambda: self._state != 0, timeout
            )
        except BaseException:
            if self._state == 0:  # cancelled before the barrier tripped
                self._break()
            raise
        if not passed:
            self._break()
            raise BrokenBarrierError
        if self._state < 0:
            raise BrokenBarrierError
        assert self._state == 1

    def _exit(self) -> None:
        if self._count == 0 and self._state in (-1, 1):
            self._state = 0
            self._cond.notify_all()

    def reset(self) -> None:
        """Return to the initial state; current waiters get ``BrokenBarrierError``."""
        with self._cond:
            if self._count > 0:
                if self._state in (0, -2):
                    self._state = -1
            else:
                self._state = 0
            self._cond.notify_all()

    def abort(self) -> None:
        """Break the barrier: current and future waiters get ``BrokenBarrierError``."""
        with self._cond:
            self._break()

    def _break(self) -> None:
        self._state = -2
        self._cond.notify_all()

    @property
    def parties(self) -> int:
        """The number of threads needed to trip the barrier."""
        return self._parties

    @property
    def n_waiting(self) -> int:
        """The number of threads waiting now."""
        return self._count if self._state == 0 else 0

    @property
    def broken(self) -> bool:
        """True if the barrier is broken."""
        return self._state == -2

    def statistics(self) -> BarrierStatistics:
        """A snapshot: ``parties``, ``n_waiting`` and ``broken``."""
        return BarrierStatistics(self._parties, self.n_waiting, self.broken)
