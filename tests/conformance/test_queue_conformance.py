"""CPython's ``test.test_queue`` run against threadpatch's queues.

test_queue's mixins read every class and exception from a ``queue``
attribute; here it is a namespace holding threadpatch's classes and the stdlib
exception classes (which threadpatch re-exports as they are).

Skipped tests and why:

* ``CSimpleQueueTest.test_is_default``: asserts that ``SimpleQueue`` is the C
  implementation from ``_queue``, which ours is not by design.
"""

from __future__ import annotations

import queue
import types
import unittest

from test import test_queue

import threadpatch

ours = types.SimpleNamespace(
    Queue=threadpatch.Queue,
    LifoQueue=threadpatch.LifoQueue,
    PriorityQueue=threadpatch.PriorityQueue,
    SimpleQueue=threadpatch.SimpleQueue,
    _PySimpleQueue=threadpatch.SimpleQueue,
    Empty=threadpatch.Empty,
    Full=threadpatch.Full,
)
if hasattr(queue, "ShutDown"):
    ours.ShutDown = threadpatch.ShutDown  # type: ignore[attr-defined]


def test_exceptions_are_the_stdlib_classes() -> None:
    assert threadpatch.Empty is queue.Empty
    assert threadpatch.Full is queue.Full
    if hasattr(queue, "ShutDown"):
        assert threadpatch.ShutDown is queue.ShutDown  # type: ignore[attr-defined]


class QueueTest(test_queue.QueueTest, unittest.TestCase):
    queue = ours


class LifoQueueTest(test_queue.LifoQueueTest, unittest.TestCase):
    queue = ours


class PriorityQueueTest(test_queue.PriorityQueueTest, unittest.TestCase):
    queue = ours


class FailingQueueTest(test_queue.FailingQueueTest, unittest.TestCase):
    queue = ours


class SimpleQueueTest(test_queue.CSimpleQueueTest):
    # CSimpleQueueTest adds the re-entrancy test to BaseSimpleQueueTest.
    queue = ours

    def test_is_default(self) -> None:
        self.skipTest("asserts SimpleQueue is the C implementation from _queue")
