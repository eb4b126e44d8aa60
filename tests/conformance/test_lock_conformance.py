"""CPython's ``test.lock_tests`` run against threadpatch's primitives.

The suites come from the interpreter's own ``test`` package (never copied), so
each Python of the matrix checks the behaviour of its own ``threading``.

Lock and RLock have two implementations (see threadpatch/_locks.py): the C
accelerator, active when built, and the pure-Python reference.  The classes
without a prefix test what ``threadpatch`` exports (and the primitives built
on it); the ``PurePython`` classes test the reference explicitly, and skip
when it already is the active implementation.

Skipped tests and why:

* ``*ConditionAsRLockTests.test_recursion_count``: ``Condition`` does not
  expose ``_recursion_count()``; CPython's test_threading skips it for the
  same reason.
* ``PurePython*``: every test, when the pure-Python implementation is the
  active one (the unprefixed classes already ran them).
"""

from __future__ import annotations

from typing import Any

import pytest
from test import lock_tests

import threadpatch
from threadpatch import _sync

REFERENCE_IS_ACTIVE = _sync.IMPLEMENTATION == "python"
skip_if_active = pytest.mark.skipif(
    REFERENCE_IS_ACTIVE, reason="the pure-Python implementation is active: tested above"
)


class LockTests(lock_tests.LockTests):
    locktype = staticmethod(threadpatch.Lock)


class RLockTests(lock_tests.RLockTests):
    locktype = staticmethod(threadpatch.RLock)


class ConditionAsRLockTests(lock_tests.RLockTests):
    # A Condition is usable as an RLock, as in test_threading.
    locktype = staticmethod(threadpatch.Condition)

    def test_recursion_count(self) -> None:
        self.skipTest("Condition does not expose _recursion_count() (as in test_threading)")


class EventTests(lock_tests.EventTests):
    eventtype = staticmethod(threadpatch.Event)


class ConditionTests(lock_tests.ConditionTests):
    condtype = staticmethod(threadpatch.Condition)


class SemaphoreTests(lock_tests.SemaphoreTests):
    semtype = staticmethod(threadpatch.Semaphore)


class BoundedSemaphoreTests(lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(threadpatch.BoundedSemaphore)


class BarrierTests(lock_tests.BarrierTests):
    barriertype = staticmethod(threadpatch.Barrier)


# -- the pure-Python reference implementation of Lock and RLock ------------------


def _pure_condition(lock: Any = None) -> threadpatch.Condition:
    return threadpatch.Condition(_sync.PyRLock() if lock is None else lock)


@skip_if_active
class PurePythonLockTests(lock_tests.LockTests):
    locktype = staticmethod(_sync.PyLock)


@skip_if_active
class PurePythonRLockTests(lock_tests.RLockTests):
    locktype = staticmethod(_sync.PyRLock)


@skip_if_active
class PurePythonConditionAsRLockTests(lock_tests.RLockTests):
    locktype = staticmethod(_pure_condition)

    def test_recursion_count(self) -> None:
        self.skipTest("Condition does not expose _recursion_count() (as in test_threading)")


@skip_if_active
class PurePythonConditionTests(lock_tests.ConditionTests):
    # The suite's conditions use their default lock: the reference RLock.
    condtype = staticmethod(_pure_condition)
