"""Cancellable ``Lock`` and ``RLock``: the stdlib's locks, with waits that are cancellation points.

Same signatures, return values, exceptions and reprs as ``threading.Lock`` and
``threading.RLock``; a wait in ``acquire`` raises
:class:`~threadpatch.ThreadCancelled` when the thread is cancelled or a
``timeout_after`` deadline expires, and the lock is then not held.

How it works::

    acquire()                       release()
    ---------                       ---------
    native.acquire(False) --ok-->   native.release()
       | busy                       if lot.waiters:      <- a dict check, no call
       v                                lot.unpark_one() --unpark--+
    lot.park_until(try_acquire)                                    |
       parks on the thread's own parker  <-------------------------+
       (cancel / deadline wake it too; then it raises, lock not held)

* Each lock keeps a *native* lock underneath: the uncontended path is one
  native non-blocking acquire and never touches the hub.  Waiters register in
  a :class:`~threadpatch._core.ParkingLot` before their last try, so a
  release only does extra work when someone waits, and no wake-up is lost.
  Releases let a running thread barge in, as native locks do, so a contended
  lock is not a convoy.
* The fast paths (acquire, release, ``with``) run in C when the optional
  accelerator is built (see :mod:`threadpatch._accel`): two C calls per
  acquire and release, like the native lock.  Otherwise the pure-Python
  reference cores below do the same in one Python frame each.  Waiting is
  the core's one wait API either way.
* A lock remembers the ident of the thread that last acquired it (``_owner``
  on Lock, ``_owner_count()`` on RLock) for :func:`threadpatch.find_deadlocks`.
* Locks a signal handler takes stay native: see :mod:`threadpatch._signal_safe`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar

from . import _accel, _core
from ._core import _natives

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "IMPLEMENTATION",
    "LOCK_IMPLEMENTATIONS",
    "PLAIN_LOCK_TYPES",
    "Lock",
    "LockStatistics",
    "PyLock",
    "PyRLock",
    "RLock",
    "RLockStatistics",
]

T = TypeVar("T")
P = ParamSpec("P")

_allocate_lock = _natives.allocate_lock
_native_rlock = _natives.RLock
_get_ident = _natives.get_ident
_shield = _core.shield
_ParkingLot = _core.ParkingLot
_WaitQueue = _core.WaitQueue


def _validate_acquire_args(*args: Any, **kwargs: Any) -> None:
    # A fresh native lock is free, so this never waits: it only raises the
    # very errors (and messages) the native lock raises on this Python.
    probe = _allocate_lock()
    probe.acquire(*args, **kwargs)


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

    def _new_lot(self) -> None:
        # The core reads ``_waiters`` (the lot's queue) on every release.
        # Both slots belong to the concrete classes (core + these methods).
        self._lot = _ParkingLot()  # type: ignore[misc]
        self._waiters = self._lot.waiters  # type: ignore[misc]


class _PyLockCore:
    """Pure-Python fast paths of :class:`Lock` (the reference for ``_speedups.LockCore``)."""

    __slots__ = ("__weakref__", "_block", "_owner", "_waiters")

    if TYPE_CHECKING:

        def _acquire_slow(self, *args: Any, **kwargs: Any) -> bool: ...
        def _acquire_blocking(self) -> bool: ...
        def _wake(self) -> None: ...

    def __init__(self) -> None:
        self._block = _allocate_lock()
        self._waiters: _core.WaitQueue[Any] = _WaitQueue()
        # The ident of the thread that acquired it (0 when free), for the
        # deadlock finder; a Lock may be released by any thread.
        self._owner = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        # Any ``blocking`` is valid with the default timeout, so the one
        # comparison is the whole argument check of the fast path.
        if timeout == -1 and self._block.acquire(False):
            self._owner = _get_ident()
            return True
        return self._acquire_slow(blocking, timeout)

    def __enter__(self) -> bool:
        # acquire() without the argument check: ``with`` passes none.
        if self._block.acquire(False):
            self._owner = _get_ident()
            return True
        return self._acquire_blocking()

    def release(self) -> None:
        self._owner = 0  # before the release: a new owner's ident must stay
        self._block.release()
        if self._waiters:
            self._wake()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._owner = 0  # before the release: a new owner's ident must stay
        self._block.release()
        if self._waiters:
            self._wake()

    def locked(self) -> bool:
        return self._block.locked()

    def _try_acquire(self) -> bool:
        if self._block.acquire(False):
            self._owner = _get_ident()
            return True
        return False

    def _at_fork_reinit(self) -> None:
        self._block = _allocate_lock()
        self._owner = 0


class _LockMethods(_LockCommon):
    """Lock's public surface on top of a core (docstrings live here)."""

    __slots__ = ()

    if TYPE_CHECKING:

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
        def release(self) -> None: ...
        def locked(self) -> bool: ...

    # The native lock's obsolete synonyms, which old code still calls.
    def acquire_lock(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Obsolete synonym of ``acquire`` (as on ``_thread.lock``)."""
        return self.acquire(blocking, timeout)

    def release_lock(self) -> None:
        """Obsolete synonym of ``release`` (as on ``_thread.lock``)."""
        self.release()

    def locked_lock(self) -> bool:
        """Obsolete synonym of ``locked`` (as on ``_thread.lock``)."""
        return self.locked()

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
        self._new_lot()

    def _at_fork_reinit(self) -> None:
        # In a forked child only the forking thread survives: start afresh.
        _PyLockCore._at_fork_reinit(self)
        self._new_lot()


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
        self._new_lot()

    def _at_fork_reinit(self) -> None:
        # In a forked child only the forking thread survives: start afresh.
        _PyRLockCore._at_fork_reinit(self)
        self._new_lot()


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
            self._new_lot()

        def _at_fork_reinit(self) -> None:
            _CLockCore._at_fork_reinit(self)
            self._new_lot()

    class CRLock(_RLockMethods, _CRLockCore):
        __doc__ = PyRLock.__doc__
        __module__ = "threadpatch"
        __slots__ = ("_lot",)

        def __init__(self) -> None:
            self._new_lot()

        def _at_fork_reinit(self) -> None:
            _CRLockCore._at_fork_reinit(self)
            self._new_lot()

    LOCK_IMPLEMENTATIONS["c"] = (CLock, CRLock)

for _lock_cls, _rlock_cls in LOCK_IMPLEMENTATIONS.values():
    _lock_cls.__name__ = _lock_cls.__qualname__ = "Lock"
    _rlock_cls.__name__ = _rlock_cls.__qualname__ = "RLock"

#: Exact types whose ``locked()`` tells Condition whether the lock is held
#: (ours and the native one).
PLAIN_LOCK_TYPES = tuple(impl[0] for impl in LOCK_IMPLEMENTATIONS.values())
NATIVE_LOCK_TYPE = type(_allocate_lock())

if TYPE_CHECKING:
    Lock = PyLock
    RLock = PyRLock
else:
    Lock, RLock = LOCK_IMPLEMENTATIONS[IMPLEMENTATION]
