"""CPython's ``test.lock_tests`` run against threadpatch's primitives.

The suites come from the interpreter's own ``test`` package (never copied), so
each Python of the matrix checks the behaviour of its own ``threading``.

Skipped tests and why:

* ``ConditionAsRLockTests.test_recursion_count``: ``Condition`` does not expose
  ``_recursion_count()``; CPython's test_threading skips it for the same reason.
"""

from __future__ import annotations

from test import lock_tests

import threadpatch


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
