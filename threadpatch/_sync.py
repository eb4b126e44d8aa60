"""Cancellable Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event and Barrier.

Drop-in replacements for the ``threading`` classes: same signatures, return
values, exceptions and reprs, but every wait is a cancellation point (a
cancelled thread, or an expired ``timeout_after`` deadline, raises
:class:`~threadpatch.ThreadCancelled` there).

How it works::

    acquire()                       release()
    ---------                       ---------
    native.acquire(False) --ok-->   native.release()
       | busy                       if lot.waiters:      <- a list check, no call
       v                                lot.unpark_one() --unpark--+
    lot.park_until(try_acquire)                                    |
       parks on the thread's own parker  <-------------------------+
       (cancel / deadline wake it too; then it raises, lock not held)

* ``Lock`` and ``RLock`` keep a *native* lock underneath: the uncontended path
  is one native non-blocking acquire and never touches the hub.  Waiters
  register in a :class:`~threadpatch._core.ParkingLot` before their last try,
  so a release only does extra work when someone waits, and no wake-up is
  lost.  Releases let a running thread barge in, as native locks do, so a
  contended lock is not a convoy.
* The fast paths (acquire, release, ``with``) run in C when the optional
  ``threadpatch._speedups`` extension is built: two C calls per acquire and
  release, like the native lock.  Otherwise (or with the environment variable
  ``THREADPATCH_PURE_PYTHON=1`` at import) the pure-Python reference cores
  below do the same in one Python frame each.  Waiting is Python either way.
* ``Condition`` keeps a FIFO of (waiter, notified) entries.  ``notify``
  marks and unparks; a waiter that is cancelled after being notified passes the
  notification on, so ``Semaphore`` and ``Barrier`` (built on it, as in
  ``threading``) never lose a wake-up.  The lock is re-acquired under a shield,
  so a cancelled ``wait`` still leaves the lock held for the ``with`` block.
* In the hub thread nothing parks on the hub: lock and condition waiters
  wait on a private native lock, as ``threading`` does.
* Locks a signal handler takes stay native (:func:`makes_signal_safe_locks`):
  see "Signal handlers" below.
* Every FIFO of waiters is a :class:`~threadpatch._core.WaitQueue`: a waiter
  that leaves early (cancelled, timed out) unlinks itself in O(1), so
  cancelling 10,000 waiters costs 10,000 times one, not n squared.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar

from . import _accel, _core
from ._core import _natives

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = [
    "Barrier",
    "BarrierStatistics",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Condition",
    "ConditionStatistics",
    "Event",
    "EventStatistics",
    "Lock",
    "LockStatistics",
    "RLock",
    "RLockStatistics",
    "Semaphore",
    "SemaphoreStatistics",
    "makes_signal_safe_locks",
    "patched_rlock",
]

T = TypeVar("T")
P = ParamSpec("P")

#: The stdlib class itself, so ``except threading.BrokenBarrierError`` works.
BrokenBarrierError = threading.BrokenBarrierError

_allocate_lock = _natives.allocate_lock
_native_rlock = _natives.RLock
_monotonic = _natives.monotonic
_is_hub_thread = _core.is_hub_thread
_current_state = _core.current_state
_shield = _core.shield
_ParkingLot = _core.ParkingLot
_WaitQueue = _core.WaitQueue


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


def _validate_acquire_args(*args: Any, **kwargs: Any) -> None:
    # A fresh native lock is free, so this never waits: it only raises the
    # very errors (and messages) the native lock raises on this Python.
    probe = _allocate_lock()
    probe.acquire(*args, **kwargs)


# -- statistics ------------------------------------------------------------------


class LockStatistics(NamedTuple):
    """A snapshot of a :class:`Lock`: whether it is held, how many threads wait."""

    locked: bool
    waiting: int


class RLockStatistics(NamedTuple):
    """A snapshot of an :class:`RLock`: owner thread ident (0 if free), recursion depth, waiters."""

    locked: bool
    owner: int
    depth: int
    waiting: int


class ConditionStatistics(NamedTuple):
    """A snapshot of a :class:`Condition`: the number of threads in ``wait``."""

    waiting: int


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


# -- Lock and RLock ----------------------------------------------------------------
#
# Each class is a *core* (the fast paths: try the native lock, release it, wake
# only if the waiter deque is non-empty) plus ``_LockCommon`` (waiting, reprs,
# statistics).  The core is the C type from ``_speedups`` when it is built, or
# the pure-Python reference below; both call back into the same slow paths:
#
#   core.acquire() --busy, blocking--> self._acquire_blocking()  -> park
#   core.acquire(<other arguments>) -> self._acquire_slow(*args, **kwargs)
#   core.release() --waiters--> self._wake()                     -> unpark one


_speedups = _accel.speedups
#: ``"c"`` when Lock and RLock run on the C accelerator, ``"python"`` otherwise.
IMPLEMENTATION = _accel.IMPLEMENTATION


def _acquire_args(blocking: bool = True, timeout: float = -1) -> tuple[bool, float]:
    return blocking, timeout


class _LockCommon:
    """What Lock and RLock share over either core: waiting, wake-ups, set-up."""

    __slots__ = ()

    if TYPE_CHECKING:
        _lot: _core.ParkingLot
        _waiters: _core.WaitQueue[Any]

        def _try_acquire(self) -> bool: ...

    def _acquire_slow(self, *args: Any, **kwargs: Any) -> bool:
        # Any call the fast path did not take: validate it with a native
        # lock first (the very errors and messages of this Python), then one
        # more try, then wait.
        _validate_acquire_args(*args, **kwargs)
        blocking, timeout = _acquire_args(*args, **kwargs)
        if self._try_acquire():
            return True
        if not blocking:
            return False
        return self._wait(None if timeout == -1 else float(timeout))

    def _acquire_blocking(self) -> bool:
        # acquire()/__enter__ found the lock busy: wait without a timeout.
        return self._wait(None)

    def _wait(self, seconds: float | None) -> bool:
        return self._lot.park_until(
            self._try_acquire, _core.deadline_after(seconds), ("lock", self)
        )

    def _wake(self) -> None:
        self._lot.unpark_one()


class _PyLockCore:
    """Pure-Python fast paths of :class:`Lock` (the reference for ``_speedups.LockCore``)."""

    __slots__ = ("__weakref__", "_block", "_waiters")

    if TYPE_CHECKING:

        def _acquire_slow(self, *args: Any, **kwargs: Any) -> bool: ...
        def _acquire_blocking(self) -> bool: ...
        def _wake(self) -> None: ...

    def __init__(self) -> None:
        self._block = _allocate_lock()
        self._waiters: _core.WaitQueue[Any] = _WaitQueue()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        # Any ``blocking`` is valid with the default timeout, so the one
        # comparison is the whole argument check of the fast path.
        if timeout == -1 and self._block.acquire(False):
            return True
        return self._acquire_slow(blocking, timeout)

    def __enter__(self) -> bool:
        # acquire() without the argument check: ``with`` passes none.
        if self._block.acquire(False):
            return True
        return self._acquire_blocking()

    def release(self) -> None:
        self._block.release()
        if self._waiters:
            self._wake()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._block.release()
        if self._waiters:
            self._wake()

    def locked(self) -> bool:
        return self._block.locked()

    def _try_acquire(self) -> bool:
        return self._block.acquire(False)

    def _at_fork_reinit(self) -> None:
        self._block = _allocate_lock()


class _LockMethods(_LockCommon):
    """Lock's public surface on top of a core (docstrings live here)."""

    __slots__ = ()

    if TYPE_CHECKING:

        def locked(self) -> bool: ...

    def __repr__(self) -> str:
        cls = type(self)
        state = "locked" if self.locked() else "unlocked"
        return f"<{state} {cls.__module__}.{cls.__qualname__} object at {id(self):#x}>"

    def statistics(self) -> LockStatistics:
        """A snapshot: ``locked`` and the number of ``waiting`` threads."""
        return LockStatistics(self.locked(), len(self._waiters))


class PyLock(_LockMethods, _PyLockCore):
    """A cancellable ``threading.Lock``.

    Any thread may release it.  ``acquire(blocking=True, timeout=-1)`` waits
    as ``threading.Lock.acquire`` does (ValueError for a timeout with
    ``blocking=False`` or a negative one) and is a cancellation point: if
    cancelled while waiting, it raises ThreadCancelled and the lock is not
    held.  A free lock is still acquired by a cancelled thread: that does not
    block.
    """

    __module__ = "threadpatch"
    __slots__ = ("_lot",)

    def __init__(self) -> None:
        super().__init__()
        self._lot = _ParkingLot()
        self._waiters = self._lot.waiters

    def _at_fork_reinit(self) -> None:
        # In a forked child only the forking thread survives: start afresh.
        _PyLockCore._at_fork_reinit(self)
        self._lot = _ParkingLot()
        self._waiters = self._lot.waiters


class _PyRLockCore:
    """Pure-Python fast paths of :class:`RLock` (the reference for ``_speedups.RLockCore``)."""

    __slots__ = ("__weakref__", "_block", "_waiters")

    if TYPE_CHECKING:

        def _acquire_slow(self, *args: Any, **kwargs: Any) -> bool: ...
        def _acquire_blocking(self) -> bool: ...
        def _acquire_restore_slow(self) -> None: ...
        def _wake(self) -> None: ...

    def __init__(self) -> None:
        self._block: Any = _native_rlock()
        self._waiters: _core.WaitQueue[Any] = _WaitQueue()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout == -1 and self._block.acquire(False):
            return True
        return self._acquire_slow(blocking, timeout)

    def __enter__(self) -> bool:
        if self._block.acquire(False):
            return True
        return self._acquire_blocking()

    def release(self) -> None:
        block = self._block
        block.release()
        if self._waiters and not block._is_owned():
            self._wake()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        block = self._block
        block.release()
        if self._waiters and not block._is_owned():
            self._wake()

    def _try_acquire(self) -> bool:
        return bool(self._block.acquire(False))

    def _is_owned(self) -> bool:
        return bool(self._block._is_owned())

    def _recursion_count(self) -> int:
        return int(self._block._recursion_count())

    def _owner_count(self) -> tuple[int, int]:
        # The native RLock keeps owner and depth to itself, except in its repr.
        match = _OWNER_COUNT.search(repr(self._block))
        return (int(match[1]), int(match[2])) if match else (0, 0)

    def _release_save(self) -> tuple[int, int]:
        state: tuple[int, int] = self._block._release_save()
        if self._waiters:
            self._wake()
        return state

    def _acquire_restore(self, state: tuple[int, int]) -> None:
        block = self._block
        if not block.acquire(False):
            self._acquire_restore_slow()
        for _ in range(state[0] - 1):
            block.acquire(False)

    def _at_fork_reinit(self) -> None:
        self._block = _native_rlock()


_OWNER_COUNT = re.compile(r"owner=(\d+) count=(\d+)")


class _RLockMethods(_LockCommon):
    """RLock's public surface on top of a core."""

    __slots__ = ()

    if TYPE_CHECKING:

        def _owner_count(self) -> tuple[int, int]: ...

    def __repr__(self) -> str:
        cls = type(self)
        owner, count = self._owner_count()
        state = "locked" if count else "unlocked"
        return (
            f"<{state} {cls.__module__}.{cls.__qualname__} object owner={owner} "
            f"count={count} at {id(self):#x}>"
        )

    def _acquire_restore_slow(self) -> None:
        # Used by Condition.wait on the way out: it must end with the lock
        # held even if the thread is cancelled meanwhile, hence the shield.
        with _shield():
            self._lot.park_until(self._try_acquire, reason=("lock", self))

    def statistics(self) -> RLockStatistics:
        """A snapshot: ``locked``, ``owner`` ident, recursion ``count``, ``waiting``."""
        owner, count = self._owner_count()
        return RLockStatistics(bool(count), owner, count, len(self._waiters))


class PyRLock(_RLockMethods, _PyRLockCore):
    """A cancellable ``threading.RLock`` (re-entrant; only the owner may release).

    Waiting in ``acquire`` is a cancellation point (if cancelled, the lock is
    not held).  Also provides ``_is_owned``, ``_release_save``,
    ``_acquire_restore`` and ``_recursion_count`` so that
    ``threading.Condition`` works with it.
    """

    __module__ = "threadpatch"
    __slots__ = ("_lot",)

    def __init__(self) -> None:
        super().__init__()
        self._lot = _ParkingLot()
        self._waiters = self._lot.waiters

    def _at_fork_reinit(self) -> None:
        # In a forked child only the forking thread survives: start afresh.
        _PyRLockCore._at_fork_reinit(self)
        self._lot = _ParkingLot()
        self._waiters = self._lot.waiters


#: The lock classes of each implementation available in this process
#: ("python" always; "c" when the accelerator is built).  Tests run both.
LOCK_IMPLEMENTATIONS: dict[str, tuple[type[Any], type[Any]]] = {"python": (PyLock, PyRLock)}

if _speedups is not None:
    from ._speedups import LockCore as _CLockCore
    from ._speedups import RLockCore as _CRLockCore

    class CLock(_LockMethods, _CLockCore):
        __doc__ = PyLock.__doc__
        __module__ = "threadpatch"
        __slots__ = ("_lot",)

        def __init__(self) -> None:
            self._lot = _ParkingLot()
            self._waiters = self._lot.waiters

        def _at_fork_reinit(self) -> None:
            _CLockCore._at_fork_reinit(self)
            self._lot = _ParkingLot()
            self._waiters = self._lot.waiters

    class CRLock(_RLockMethods, _CRLockCore):
        __doc__ = PyRLock.__doc__
        __module__ = "threadpatch"
        __slots__ = ("_lot",)

        def __init__(self) -> None:
            self._lot = _ParkingLot()
            self._waiters = self._lot.waiters

        def _at_fork_reinit(self) -> None:
            _CRLockCore._at_fork_reinit(self)
            self._lot = _ParkingLot()
            self._waiters = self._lot.waiters

    LOCK_IMPLEMENTATIONS["c"] = (CLock, CRLock)

for _lock_cls, _rlock_cls in LOCK_IMPLEMENTATIONS.values():
    _lock_cls.__name__ = _lock_cls.__qualname__ = "Lock"
    _rlock_cls.__name__ = _rlock_cls.__qualname__ = "RLock"

#: Exact types whose ``locked()`` tells Condition whether the lock is held.
_PLAIN_LOCKS = tuple(impl[0] for impl in LOCK_IMPLEMENTATIONS.values())
_NATIVE_LOCK = type(_allocate_lock())

if TYPE_CHECKING:
    Lock = PyLock
    RLock = PyRLock
else:
    Lock, RLock = LOCK_IMPLEMENTATIONS[IMPLEMENTATION]


# -- Signal handlers ---------------------------------------------------------------
#
# A signal handler runs in the main thread between two bytecodes of whatever
# that thread was doing, possibly inside our own acquire/release/wait code.
# ``_thread.RLock`` is safe there: owner and count change inside one C call,
# and a handler that waits for it waits on the lock's own semaphore, apart
# from the wait it interrupted.  Ours is not, on either core (evidence:
# tests/test_sync_signals.py, both implementations): a handler that waits for
# the RLock while the thread already waits for it parks on the same
# per-thread parker, consumes the wake-up meant for the interrupted wait, and
# that wait then sleeps forever on a free lock.  (A handler's release inside a
# release used to deadlock on the lot's internal lock; lots are lock-free now.)
#
# Making every wait re-entrant would cost each wait its own parker (the whole
# point of the per-thread parker is that a wait allocates nothing), so the
# rule is the other way round: *a lock a signal handler takes is native*.
# Who takes locks in signal handlers: trio's entry queue (``run_sync_soon``
# from its SIGINT handler; trio asserts its RLock is ``_thread``'s); not
# asyncio (``call_soon_threadsafe`` and its signal handlers append to a deque
# and write to the self-pipe, no lock), nor ``signal.set_wakeup_fd`` users;
# ``logging`` only if a program logs in a handler, which logging documents as
# unsafe with any non-native lock.  Only an RLock can be taken in a handler
# at all (a handler taking a plain Lock its thread holds deadlocks natively),
# and those locks guard a few bytecodes, never a wait worth cancelling.  So
# the patched ``threading.RLock`` returns a native RLock while a function
# wrapped by :func:`makes_signal_safe_locks` runs in this thread (the patch
# tables wrap an event loop's set-up, e.g. ``trio.run``'s), and ours
# everywhere else: plain ``threading.RLock()`` stays cancellable.

_signal_safe = _natives.local()


def patched_rlock() -> Any:
    """``threading.RLock()`` under the patch: ours, or native for a signal-safe set-up.

    Returns a cancellable :class:`RLock`, except while a function wrapped by
    :func:`makes_signal_safe_locks` runs in the calling thread: then the
    native ``_thread.RLock``, which a signal handler may take.
    """
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
        if type(lock) in _PLAIN_LOCKS:
            self._is_owned = lock.locked
            self._try_reacquire = lock._try_acquire
        elif type(lock) is _NATIVE_LOCK:
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
        try_reacquire = self._try_reacquire
        if try_reacquire is not None and try_reacquire():
            return
        with _shield():
            self._acquire_restore(saved)

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

    def statistics(self) -> ConditionStatistics:
        """A snapshot: the number of ``waiting`` threads."""
        return ConditionStatistics(len(self._waiters))


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
