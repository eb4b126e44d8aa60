"""The one way a thread blocks: every primitive and every I/O wait comes here.

A primitive says *what* it waits for and what "ready" means; this module owns
everything else, in one place:

* the deadline arithmetic: callers pass an absolute deadline on the
  ``time.monotonic()`` clock (:func:`deadline_after` turns a timeout into
  one, ``math.inf`` is forever) and get False / 0 / ``[]`` when it passes;
* the cancellation check (the parker raises ``ThreadCancelled``,
  ``DeadlineExpired`` or ``HubError``, honouring shields) and spurious
  wake-ups (every loop re-checks what it waits for);
* the hub thread, which must never be interrupted: it waits on a native
  :class:`NativeWaiter` or a native ``poll``;
* the hand-off rule: a waiter that was picked by a wake-up but leaves without
  using it (cancelled, timed out) passes the wake-up to the next waiter;
* O(1) removal of a waiter that leaves early (:class:`WaitQueue`);
* the *reason*: while a thread waits here its :class:`ThreadState` records
  what for (``blocked_on``), since when (``blocked_since``) and until when
  (``blocked_until``), which :func:`threadpatch.snapshot` reads.  A reason is
  a tuple ``(kind, subject, ...)``: a short kind such as ``"lock"`` or
  ``"recv"`` and the object waited on (a lock, a queue, a socket, a thread).

The API::

    lot.park(deadline, reason, unlock, relock)    # wait to be picked by unpark_one/all
    lot.park_until(predicate, deadline, reason)   # wait in a lot until predicate()
    wait_until(done, deadline, reason)            # wait (no lot) until done()
    wait_fd(fd, events, deadline, reason)         # one descriptor ready: its revents
    wait_fds(fds, deadline, reason)               # several: the ready (fd, revents)
"""

from __future__ import annotations

import contextlib
import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol, TypeVar

from . import _natives
from ._hub import is_hub_thread
from ._registry import current_state

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ._state import ThreadState

__all__ = [
    "INFINITE",
    "NativeWaiter",
    "Parker",
    "ParkingLot",
    "WaitQueue",
    "current_waiter",
    "deadline_after",
    "seconds_left",
    "wait_fd",
    "wait_fds",
    "wait_until",
]

_T = TypeVar("_T")
_ABSENT = object()
_allocate_lock = _natives.allocate_lock
_monotonic = _natives.monotonic
_TIMEOUT_MAX = _natives.TIMEOUT_MAX

#: The deadline of a wait without one.
INFINITE = math.inf


def deadline_after(timeout: float | None) -> float:
    """The absolute deadline ``timeout`` seconds from now (``INFINITE`` for None).

    A timeout of 0 or less is a deadline that has passed: the wait only
    looks whether it is ready.  Validation of the timeout is the caller's
    (each stdlib API words its errors its own way).
    """
    if timeout is None:
        return INFINITE
    return _monotonic() + timeout


def seconds_left(deadline: float) -> float:
    """Seconds until ``deadline`` (``INFINITE`` stays infinite; <= 0 once passed)."""
    if deadline == INFINITE:
        return INFINITE
    return deadline - _monotonic()


# -- waiters -----------------------------------------------------------------------


class Parker(Protocol):
    """What can wait: a :class:`ThreadState`, or a :class:`NativeWaiter` in the hub."""

    blocked_on: object
    blocked_since: float
    blocked_until: float

    def park(self, timeout: float | None = None) -> None: ...
    def unpark(self) -> None: ...


class NativeWaiter:
    """A waiter for the hub thread: a plain native lock, never interrupted."""

    __slots__ = ("_lock", "blocked_on", "blocked_since", "blocked_until")

    def __init__(self) -> None:
        self._lock = _allocate_lock()
        self._lock.acquire()
        self.blocked_on: object = None
        self.blocked_since = 0.0
        self.blocked_until = INFINITE

    def park(self, timeout: float | None = None) -> None:
        if timeout is None:
            self._lock.acquire()
        elif timeout > 0:
            self._lock.acquire(True, min(timeout, _TIMEOUT_MAX))

    def unpark(self) -> None:
        with contextlib.suppress(RuntimeError):  # a permit is already there
            self._lock.release()


def current_waiter() -> Parker:
    """What the calling thread parks on: its ThreadState, or a native waiter in the hub."""
    if is_hub_thread():
        return NativeWaiter()
    return current_state()


def _park_while(
    waiter: Parker,
    waiting: Callable[[], bool],
    deadline: float,
    reason: object,
    every: float = INFINITE,
) -> bool:
    """Park ``waiter`` while ``waiting()``; False if ``deadline`` passed first.

    The one park loop: every wake-up (a permit, a spurious one, the main
    thread's slice, or ``every`` seconds for a condition nobody signals)
    re-checks ``waiting`` and the deadline.  The reason is recorded for the
    whole wait and cleared on every way out.
    """
    if not waiting():
        return True
    waiter.blocked_on = reason
    waiter.blocked_since = _monotonic()
    waiter.blocked_until = deadline
    park = waiter.park
    try:
        if deadline == INFINITE and every == INFINITE:
            while waiting():
                park()
            return True
        while waiting():
            remaining = deadline - _monotonic()
            if remaining <= 0:
                return False
            park(min(remaining, every))
        return True
    finally:
        waiter.blocked_on = None


def wait_until(
    done: Callable[[], bool],
    deadline: float = INFINITE,
    reason: object = None,
    waiter: Parker | None = None,
    every: float = INFINITE,
) -> bool:
    """Park the calling thread until ``done()``; False if ``deadline`` passed first.

    Whoever makes ``done()`` true unparks the waiter (the calling thread's
    state by default); for a condition nobody signals, ``every`` makes the
    wait look again at that interval.  A cancellation point: raises
    ``ThreadCancelled`` (or ``DeadlineExpired``, ``HubError``) when
    interrupted, except in the hub thread.
    """
    if waiter is None:
        waiter = current_waiter()
    return _park_while(waiter, lambda: not done(), deadline, reason, every)


# -- lots --------------------------------------------------------------------------


class WaitQueue(OrderedDict[_T, None]):
    """A FIFO of waiters with the ``deque`` methods waits use, each one O(1).

    A waiter that leaves (cancelled, timed out) removes itself from anywhere
    in the queue, and a woken waiter checks whether it is still queued: on a
    ``deque`` both scan, so with thousands of waiters every cancellation
    cost O(n).  Here the waiters are the keys of an ordered dict (a hash
    table threaded on a linked list): removal, membership and both ends are
    O(1), and the order stays first come, first served.

    A waiter is in the queue at most once: appending one that is already
    queued leaves it where it is.  Each operation is one C call, atomic under
    the GIL like the ``deque`` operations it replaces.
    """

    __slots__ = ()

    def append(self, waiter: _T) -> None:
        """Queue ``waiter`` last."""
        self[waiter] = None

    def appendleft(self, waiter: _T) -> None:
        """Queue ``waiter`` first (a woken waiter that keeps its place)."""
        self[waiter] = None
        # Another thread may pop it in between: then it has been woken again.
        with contextlib.suppress(KeyError):
            self.move_to_end(waiter, last=False)

    def popleft(self) -> _T:
        """Remove and return the first waiter; IndexError if none."""
        try:
            return self.popitem(last=False)[0]
        except KeyError:
            raise IndexError("pop from an empty WaitQueue") from None

    def remove(self, waiter: _T) -> None:
        """Remove ``waiter``; ValueError if it is not queued."""
        if not self.discard(waiter):
            raise ValueError(f"{waiter!r} is not queued")

    def discard(self, waiter: _T) -> bool:
        """Remove ``waiter`` if it is queued; return whether it was."""
        return self.pop(waiter, _ABSENT) is not _ABSENT


class ParkingLot:
    """A FIFO of parked threads; any thread can wake the first ``n`` or all of them.

    Lock-free: every operation on ``waiters`` is one atomic C call, so a lot
    may be used from a ``__del__`` or a signal handler that interrupted an
    operation on the same lot (a ``SimpleQueue.put`` must stay re-entrant).
    ``waiters`` may be tested for emptiness directly (a release that finds
    it empty wakes nobody, at the cost of one truth test).
    """

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: WaitQueue[Parker] = WaitQueue()

    def __len__(self) -> int:
        return len(self.waiters)

    def unpark_one(self) -> bool:
        """Wake the longest-waiting thread; False if nobody waits."""
        try:
            waiter = self.waiters.popleft()
        except IndexError:
            return False
        waiter.unpark()
        return True

    def unpark(self, n: int) -> int:
        """Wake up to ``n`` threads, longest-waiting first; return how many."""
        woken = 0
        while woken < n and self.unpark_one():
            woken += 1
        return woken

    def unpark_all(self) -> int:
        """Wake every thread waiting now; return how many."""
        # Only those queued now: one that re-queues meanwhile (woken, lost
        # the race) is not woken again, so this ends.
        return self.unpark(len(self.waiters))

    def _leave(self, waiter: Parker, used: bool) -> bool:
        """Take ``waiter`` out; True if a wake-up had picked it (then passed on unless used)."""
        picked = not self.waiters.discard(waiter)
        if picked and not used:
            self.unpark_one()
        return picked

    def park(
        self,
        deadline: float = INFINITE,
        reason: object = None,
        unlock: Callable[[], object] | None = None,
        relock: Callable[[], object] | None = None,
    ) -> bool:
        """Queue the calling thread and park until a wake-up picks it.

        ``unlock`` runs once the thread is queued (so a wake-up sent right
        after it is not lost), ``relock`` on every way out, before a wake-up
        that is not used is passed on: a condition variable's lock dance.

        Returns:
            True if picked by :meth:`unpark_one` / :meth:`unpark` /
            :meth:`unpark_all`, False if ``deadline`` passed first.  With a
            deadline that has passed it still queues, unlocks and relocks
            (as ``Condition.wait(0)`` does): True if a wake-up came between.

        Raises:
            ThreadCancelled: interrupted; if a wake-up had picked the thread
                it goes to the next waiter.
        """
        waiter = current_waiter()
        waiters = self.waiters
        waiters.append(waiter)
        if unlock is not None:
            unlock()
        try:
            _park_while(waiter, lambda: waiter in waiters, deadline, reason)
        except BaseException:
            try:
                if relock is not None:
                    relock()
            finally:
                self._leave(waiter, used=False)
            raise
        if relock is not None:
            try:
                relock()
            except BaseException:
                self._leave(waiter, used=False)  # a wake-up it cannot use: pass it on
                raise
        return self._leave(waiter, used=True)

    def park_until(
        self,
        predicate: Callable[[], bool],
        deadline: float = INFINITE,
        reason: object = None,
    ) -> bool:
        """Park the calling thread here until ``predicate()`` is true.

        ``predicate`` runs in the calling thread and may take what it waits
        for (a lock, an item): it is called at most once after returning True.

        Returns:
            True once the predicate held, False if ``deadline`` passed first.

        Raises:
            ThreadCancelled: cancelled or a deadline expired while waiting; the
                predicate did not succeed, and a wake-up this thread received
                is passed on to the next waiter so that none is lost.
        """
        if predicate():
            return True
        waiter = current_waiter()
        waiters = self.waiters
        waiters.append(waiter)
        ok = False

        def waiting() -> bool:
            nonlocal ok
            if predicate():
                ok = True
                return False
            if waiter not in waiters:
                # Woken, but another thread got there first: keep our place.
                waiters.appendleft(waiter)
            return True

        try:
            if not _park_while(waiter, waiting, deadline, reason):
                ok = predicate()
            return ok
        finally:
            self._leave(waiter, used=ok)


# -- descriptors -------------------------------------------------------------------


def _poll_ms(remaining: float) -> int | None:
    if remaining == INFINITE:
        return None
    return min(math.ceil(remaining * 1000), 2**31 - 1) if remaining > 0 else 0


def _native_wait_fds(fds: list[tuple[int, int]], deadline: float) -> list[tuple[int, int]]:
    # The hub thread: a native poll, never interrupted.
    poller = _natives.poll()
    for fd, events in fds:
        poller.register(fd, events)
    while True:
        remaining = seconds_left(deadline)
        ready = poller.poll(_poll_ms(remaining))
        if ready or remaining <= 0:
            return ready


def _begin(state: ThreadState, reason: object, deadline: float) -> None:
    state.blocked_on = reason
    state.blocked_since = _monotonic()
    state.blocked_until = deadline


def wait_fd(fd: int, events: int, deadline: float = INFINITE, reason: object = None) -> int:
    """Wait until descriptor ``fd`` has one of the poll ``events``; its ``revents``.

    Returns 0 once ``deadline`` has passed.  The same descriptor number is
    polled until then: a caller that must notice another thread closing its
    object reads the number again after each return.
    """
    if is_hub_thread():
        ready = _native_wait_fds([(fd, events)], deadline)
        return ready[0][1] if ready else 0
    state = current_state()
    wait = state.wait_fd
    _begin(state, reason, deadline)
    try:
        if deadline == INFINITE:
            while True:
                revents = wait(fd, events, None)
                if revents:
                    return revents
        while True:
            remaining = deadline - _monotonic()
            revents = wait(fd, events, remaining if remaining > 0 else 0)
            if revents or remaining <= 0:
                return revents
    finally:
        state.blocked_on = None


def wait_fds(
    fds: Iterable[tuple[int, int]], deadline: float = INFINITE, reason: object = None
) -> list[tuple[int, int]]:
    """Wait until one of ``fds`` (pairs of descriptor and poll event mask) is ready.

    Returns the ready ``(fd, revents)`` pairs, ``[]`` once ``deadline`` has
    passed (with a passed deadline it only looks, like a zero-timeout poll).
    """
    if type(fds) is not list:
        fds = list(fds)
    if is_hub_thread():
        return _native_wait_fds(fds, deadline)
    state = current_state()
    wait = state.wait_fds
    # The steps of _begin, inlined: select() and selectors wait here per call.
    state.blocked_on = reason
    state.blocked_since = _monotonic()
    state.blocked_until = deadline
    try:
        if deadline == INFINITE:
            while True:
                ready = wait(fds, None)
                if ready:
                    return ready
        while True:
            remaining = deadline - _monotonic()
            ready = wait(fds, remaining if remaining > 0 else 0)
            if ready or remaining <= 0:
                return ready
    finally:
        state.blocked_on = None
