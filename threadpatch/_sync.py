"""Cancellable Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event and Barrier.

Drop-in replacements for the ``threading`` classes: same signatures, return
values, exceptions and reprs, but every wait is a cancellation point (a
cancelled thread, or an expired ``timeout_after`` deadline, raises
:class:`~threadpatch.ThreadCancelled` there).  The locks live in
:mod:`threadpatch._locks`, Condition in :mod:`threadpatch._conditions`, the
rest (built on Condition) in :mod:`threadpatch._semaphores`; every wait goes
through the core's one wait API (``threadpatch._core._wait``).
"""

from __future__ import annotations

from ._conditions import Condition, ConditionStatistics, wait_for
from ._locks import (
    IMPLEMENTATION,
    LOCK_IMPLEMENTATIONS,
    Lock,
    LockStatistics,
    PyLock,
    PyRLock,
    RLock,
    RLockStatistics,
)
from ._semaphores import (
    Barrier,
    BarrierStatistics,
    BoundedSemaphore,
    BrokenBarrierError,
    Event,
    EventStatistics,
    Semaphore,
    SemaphoreStatistics,
)
from ._signal_safe import makes_signal_safe_locks, patched_rlock

__all__ = [
    "IMPLEMENTATION",
    "LOCK_IMPLEMENTATIONS",
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
    "PyLock",
    "PyRLock",
    "RLock",
    "RLockStatistics",
    "Semaphore",
    "SemaphoreStatistics",
    "makes_signal_safe_locks",
    "patched_rlock",
    "wait_for",
]
