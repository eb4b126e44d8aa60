"""Cancellable Queue, LifoQueue and PriorityQueue (SimpleQueue: ``_simple_queue``).

Same signatures, return values and exceptions as the ``queue`` module; the
exception classes *are* the stdlib ones (``queue.Empty``, ``queue.Full`` and,
from Python 3.13, ``queue.ShutDown``), so existing ``except queue.Empty:``
clauses keep working.  Every wait (``get``, ``put``, ``join``) is a
cancellation point.

How it works::

    get()                                  put(item)
    -----                                  ---------
    with mutex (native):                   with mutex (native):
        item there? take it, wake a            room? _put(item); if getters:
        putter if one waits, return  <--unpark--    getters.popleft().unpark()
        else: getters.append(me)
    park on my own parker (cancel and deadlines wake it too)
    with mutex: took a wake-up but was cancelled? pass it on

``Queue`` uses one native mutex and three FIFOs of parked waiters instead of
three Conditions on a Lock: a ``put`` to a non-full queue and a ``get`` from a
non-empty one are a native ``with mutex`` plus a list check, and never touch
the hub.  The stdlib's ``not_empty``, ``not_full`` and ``all_tasks_done`` are
Condition-compatible *views* of those FIFOs bound to ``mutex``: waiting on
``q.not_empty`` queues the caller among the getters, so a ``put`` wakes it,
and ``q.not_empty.notify()`` wakes a parked ``get`` (which re-checks), exactly
as with the stdlib's Conditions.  The fast paths never touch the views.

A waiter that was woken but is cancelled before it could take its item (or
slot) hands the wake-up to the next waiter, so a cancelled ``get`` loses no
item and a cancelled ``put`` adds none.

Like ``threading``, the subclass hooks ``_init``, ``_qsize``, ``_put`` and
``_get`` define the storage; ``LifoQueue`` and ``PriorityQueue`` override them.
"""

from __future__ import annotations

import heapq
import queue as _stdlib_queue
from collections import deque
from typing import Any, Generic, NamedTuple, TypeVar

from ._conditions import Condition
from ._core import INFINITE, ParkingLot, _natives, deadline_after
from ._simple_queue import SimpleQueue, SimpleQueueStatistics

__all__ = [
    "Empty",
    "Full",
    "LifoQueue",
    "PriorityQueue",
    "Queue",
    "QueueCondition",
    "QueueStatistics",
    "SimpleQueue",
    "SimpleQueueStatistics",
    "stdlib_queue_init",
]

T = TypeVar("T")

Empty = _stdlib_queue.Empty
Full = _stdlib_queue.Full
#: ``queue.ShutDown`` on Python 3.13+, else None (and ``Queue.shutdown`` is absent).
_ShutDown: type[Exception] | None = getattr(_stdlib_queue, "ShutDown", None)
if _ShutDown is not None:
    ShutDown = _ShutDown
    __all__ += ["ShutDown"]

_allocate_lock = _natives.allocate_lock


class QueueStatistics(NamedTuple):
    """A snapshot of a :class:`Queue`."""

    qsize: int
    maxsize: int
    unfinished_tasks: int
    getters_waiting: int
    putters_waiting: int
    joiners_waiting: int


class QueueCondition(Condition):
    """``Queue.not_empty`` / ``not_full`` / ``all_tasks_done``: a Condition over ``mutex``.

    Supports what code written for ``queue.Queue`` does with them: ``with
    cond:``, ``wait(timeout)``, ``wait_for``, ``notify(n)``, ``notify_all()``.
    The waiters are the queue's own FIFO of parked getters, putters or
    joiners, so the queue's ``put``/``get``/``task_done`` notify these
    waiters and ``notify`` wakes the queue's own waits (which re-check their
    condition, as with the stdlib).
    """

    __module__ = "threadpatch"

    def __init__(self, mutex: Any, lot: ParkingLot) -> None:
        super().__init__(mutex)
        # Its waiters are the queue's own: a put, get or task_done wakes them.
        self._lot = lot
        self._waiters = lot.waiters


class Queue(Generic[T]):
    """A cancellable ``queue.Queue``: FIFO, optionally bounded (``maxsize > 0``).

    ``mutex`` is a native lock guarding the storage (``with q.mutex:`` works
    as with the stdlib class).  ``not_empty``, ``not_full`` and
    ``all_tasks_done`` are :class:`QueueCondition` objects on ``mutex``, for
    code that waits on or notifies them as it would the stdlib's Conditions.
    """

    __module__ = "threadpatch"

    queue: Any

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._init(maxsize)
        self.mutex = _allocate_lock()
        self._getters = ParkingLot()
        self._putters = ParkingLot()
        self._joiners = ParkingLot()
        self.not_empty = QueueCondition(self.mutex, self._getters)
        self.not_full = QueueCondition(self.mutex, self._putters)
        self.all_tasks_done = QueueCondition(self.mutex, self._joiners)
        self.unfinished_tasks = 0
        self.is_shutdown = False

    # -- waiting (called with the mutex held; returns with it held) ------------

    def _park(self, lot: ParkingLot, deadline: float, kind: str) -> bool:
        """Release the mutex, park in ``lot`` until woken or ``deadline``, re-take the mutex.

        Returns False when the deadline passed without a wake-up.
        """
        mutex = self.mutex
        return lot.park(deadline, (kind, self), mutex.release, mutex.acquire)

    # -- task tracking ---------------------------------------------------------

    def task_done(self) -> None:
        """Mark one formerly enqueued task done (wakes ``join`` at zero).

        Raises:
            ValueError: called more times than there were items.
        """
        with self.mutex:
            unfinished = self.unfinished_tasks - 1
            if unfinished <= 0:
                if unfinished < 0:
                    raise ValueError("task_done() called too many times")
                self._joiners.unpark_all()
            self.unfinished_tasks = unfinished

    def join(self) -> None:
        """Block until every item put has been marked done with :meth:`task_done`.

        Cancellation:
            The wait ends; the queue is not affected.
        """
        with self.mutex:
            while self.unfinished_tasks:
                self._park(self._joiners, INFINITE, "queue.join")

    # -- sizes -----------------------------------------------------------------

    def qsize(self) -> int:
        """The approximate number of items."""
        with self.mutex:
            return self._qsize()

    def empty(self) -> bool:
        """True if the queue is empty (approximately)."""
        with self.mutex:
            return not self._qsize()

    def full(self) -> bool:
        """True if the queue is full (approximately)."""
        with self.mutex:
            return 0 < self.maxsize <= self._qsize()

    # -- put / get -------------------------------------------------------------

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item``, waiting for a free slot if the queue is bounded and full.

        Raises:
            Full: non-blocking, or the timeout passed, with no free slot.
            ShutDown: the queue was shut down (Python 3.13+).
            ValueError: a negative timeout.
            ThreadCancelled: cancelled (or a deadline expired) while waiting.

        Cancellation:
            The item is not added.
        """
        with self.mutex:
            if self.is_shutdown:
                raise _ShutDown  # type: ignore[misc]
            maxsize = self.maxsize
            if maxsize > 0 and (self._qsize() >= maxsize or (block and timeout is not None)):
                self._wait_for_room(block, timeout)
            self._put(item)
            self.unfinished_tasks += 1
            if self._getters.waiters:
                self._getters.unpark_one()

    def _wait_for_room(self, block: bool, timeout: float | None) -> None:
        maxsize = self.maxsize
        if not block:
            if self._qsize() >= maxsize:
                raise Full
            return
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        deadline = deadline_after(timeout)
        while self._qsize() >= maxsize:
            if not self._park(self._putters, deadline, "queue.put") and self._qsize() >= maxsize:
                raise Full
            if self.is_shutdown:
                raise _ShutDown  # type: ignore[misc]

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return an item, waiting for one if the queue is empty.

        Raises:
            Empty: non-blocking, or the timeout passed, with no item.
            ShutDown: the queue was shut down and is empty (Python 3.13+).
            ValueError: a negative timeout.
            ThreadCancelled: cancelled (or a deadline expired) while waiting.

        Cancellation:
            No item is taken: it stays for the next getter.
        """
        with self.mutex:
            if not self._qsize() or (block and timeout is not None):
                self._wait_for_item(block, timeout)
            item = self._get()
            if self._putters.waiters:
                self._putters.unpark_one()
            return item

    def _wait_for_item(self, block: bool, timeout: float | None) -> None:
        if self.is_shutdown and not self._qsize():
            raise _ShutDown  # type: ignore[misc]
        if not block:
            if not self._qsize():
                raise Empty
            return
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        deadline = deadline_after(timeout)
        while not self._qsize():
            if not self._park(self._getters, deadline, "queue.get") and not self._qsize():
                raise Empty
            if self.is_shutdown and not self._qsize():
                raise _ShutDown  # type: ignore[misc]

    def put_nowait(self, item: T) -> None:
        """``put(item, block=False)``."""
        return self.put(item, block=False)

    def get_nowait(self) -> T:
        """``get(block=False)``."""
        return self.get(block=False)

    if _ShutDown is not None:

        def shutdown(self, immediate: bool = False) -> None:
            """Shut the queue down: ``put`` raises ShutDown, ``get`` once empty.

            With ``immediate``, drop the remaining items (counting them done,
            which may release ``join``).
            """
            with self.mutex:
                self.is_shutdown = True
                if immediate:
                    while self._qsize():
                        self._get()
                        if self.unfinished_tasks > 0:
                            self.unfinished_tasks -= 1
                    self._joiners.unpark_all()
                self._getters.unpark_all()
                self._putters.unpark_all()

    def statistics(self) -> QueueStatistics:
        """A snapshot of sizes and of the threads waiting in get, put and join."""
        with self.mutex:
            return QueueStatistics(
                self._qsize(),
                self.maxsize,
                self.unfinished_tasks,
                len(self._getters.waiters),
                len(self._putters.waiters),
                len(self._joiners.waiters),
            )

    # -- storage hooks (override in subclasses) --------------------------------

    def _init(self, maxsize: int) -> None:
        self.queue = deque()

    def _qsize(self) -> int:
        return len(self.queue)

    def _put(self, item: T) -> None:
        self.queue.append(item)

    def _get(self) -> T:
        return self.queue.popleft()  # type: ignore[no-any-return]


class _ListQueue(Queue[T]):
    """Storage in a list (as the stdlib's LifoQueue and PriorityQueue)."""

    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _qsize(self) -> int:
        return len(self.queue)


class PriorityQueue(_ListQueue[T]):
    """A cancellable ``queue.PriorityQueue``: lowest entry first."""

    __module__ = "threadpatch"

    def _put(self, item: T) -> None:
        heapq.heappush(self.queue, item)

    def _get(self) -> T:
        return heapq.heappop(self.queue)  # type: ignore[no-any-return]


class LifoQueue(_ListQueue[T]):
    """A cancellable ``queue.LifoQueue``: last in, first out."""

    __module__ = "threadpatch"

    def _put(self, item: T) -> None:
        self.queue.append(item)

    def _get(self) -> T:
        return self.queue.pop()  # type: ignore[no-any-return]


# -- the stdlib Queue while patched ---------------------------------------------

_stdlib_queue_init = _stdlib_queue.Queue.__init__


def stdlib_queue_init(self: _stdlib_queue.Queue[Any], maxsize: int = 0) -> None:
    """``queue.Queue.__init__`` under the patch: a native ``mutex`` under cancellable conditions.

    The stdlib Queue builds its ``mutex`` and conditions from ``threading``
    names, so while patched its mutex would be a threadpatch ``Lock``, whose
    contended acquire is a cancellation point: a ``put_nowait()`` or
    ``get_nowait()`` in a cancelled thread's clean-up (urllib3 returning a
    connection to its pool) would fail whenever another thread was inside
    the queue for a few statements.  The mutex is only ever held for those
    few statements, so it is native here, as in threadpatch's own Queue;
    the waits (``not_empty``, ``not_full``, ``all_tasks_done``) stay
    cancellable.  Subclasses (``LifoQueue``, ``PriorityQueue``, users') run
    their ``_init`` as usual.
    """
    _stdlib_queue_init(self, maxsize)
    if not isinstance(self.not_empty, Condition):
        return  # the threading set is off: the stdlib's own objects, untouched
    mutex = _natives.allocate_lock()
    self.mutex = mutex
    self.not_empty = Condition(mutex)  # type: ignore[assignment]
    self.not_full = Condition(mutex)  # type: ignore[assignment]
    self.all_tasks_done = Condition(mutex)  # type: ignore[assignment]
