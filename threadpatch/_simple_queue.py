"""A cancellable ``queue.SimpleQueue``: an unbounded FIFO whose ``get`` is a cancellation point.

``SimpleQueue`` takes no lock at all (deque and ParkingLot operations are
atomic), so ``put`` stays re-entrant (it may run from a ``__del__`` during a ``put``):
a getter registers itself *before* its last look at the deque, and a putter
appends *before* it looks for getters, so one of the two always sees the other.
"""

from __future__ import annotations

import queue as _stdlib_queue
from collections import deque
from typing import Generic, NamedTuple, TypeVar

from ._core import ParkingLot, deadline_after

__all__ = ["SimpleQueue", "SimpleQueueStatistics"]

T = TypeVar("T")
Empty = _stdlib_queue.Empty


class SimpleQueueStatistics(NamedTuple):
    """A snapshot of a :class:`SimpleQueue`."""

    qsize: int
    waiting: int


class SimpleQueue(Generic[T]):
    """A cancellable ``queue.SimpleQueue``: unbounded FIFO, re-entrant ``put``."""

    __module__ = "threadpatch"
    __slots__ = ("__weakref__", "_lot", "_queue", "_waiters")

    def __init__(self) -> None:
        self._queue: deque[T] = deque()
        self._lot = ParkingLot()
        self._waiters = self._lot.waiters

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item``; never blocks (``block`` and ``timeout`` are ignored)."""
        self._queue.append(item)
        if self._waiters:
            self._lot.unpark_one()

    def put_nowait(self, item: T) -> None:
        """``put(item, block=False)``."""
        self.put(item, False)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return an item, waiting for one if the queue is empty.

        Raises:
            Empty: non-blocking, or the timeout passed, with no item.
            ValueError: a negative timeout.
            ThreadCancelled: cancelled (or a deadline expired) while waiting.

        Cancellation:
            No item is taken.
        """
        if timeout is None or not block:
            try:
                return self._queue.popleft()
            except IndexError:
                if not block:
                    raise Empty from None
        elif timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        return self._get_slow(deadline_after(timeout))

    def _get_slow(self, deadline: float) -> T:
        # The getter is queued before its last look at the deque, and a put
        # appends before it looks for getters: one always sees the other.
        queue = self._queue
        got: list[T] = []

        def take() -> bool:
            try:
                got.append(queue.popleft())
            except IndexError:
                return False
            return True

        if not self._lot.park_until(take, deadline, ("queue.get", self)):
            raise Empty
        return got[0]

    def get_nowait(self) -> T:
        """``get(block=False)``."""
        return self.get(False)

    def empty(self) -> bool:
        """True if the queue is empty (approximately)."""
        return not self._queue

    def qsize(self) -> int:
        """The approximate number of items."""
        return len(self._queue)

    def statistics(self) -> SimpleQueueStatistics:
        """A snapshot: ``qsize`` and the number of ``waiting`` getters."""
        return SimpleQueueStatistics(len(self._queue), len(self._waiters))
