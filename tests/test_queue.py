"""Queue, LifoQueue, PriorityQueue and SimpleQueue: stdlib behaviour plus cancellation."""

from __future__ import annotations

import queue
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import (
    Empty,
    Event,
    Full,
    LifoQueue,
    PriorityQueue,
    Queue,
    SimpleQueue,
    ThreadCancelled,
    ThreadError,
    ThreadTimeout,
    _core,
    _queue,
    spawn,
    timeout_after,
)

from ._helpers import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

QUEUES = [Queue, LifoQueue, PriorityQueue, SimpleQueue]


def test_exceptions_are_stdlib() -> None:
    assert Empty is queue.Empty
    assert Full is queue.Full
    if sys.version_info >= (3, 13):
        assert threadpatch.ShutDown is queue.ShutDown  # type: ignore[attr-defined]
        assert hasattr(Queue, "shutdown")
    else:
        assert not hasattr(threadpatch, "ShutDown")
        assert not hasattr(Queue, "shutdown")


def test_orders_and_sizes() -> None:
    for qtype, expect in ((Queue, [3, 1, 2]), (LifoQueue, [2, 1, 3]), (PriorityQueue, [1, 2, 3])):
        q: Queue[int] = qtype(maxsize=3)
        for item in (3, 1, 2):
            q.put(item)
        assert q.full()
        assert q.qsize() == 3
        with pytest.raises(Full):
            q.put_nowait(9)
        with pytest.raises(Full):
            q.put(9, timeout=0.01)
        assert [q.get() for _ in range(3)] == expect
        assert q.empty()
        with pytest.raises(Empty):
            q.get_nowait()
        with pytest.raises(Empty):
            q.get(timeout=0.01)
        with pytest.raises(ValueError, match="non-negative"):
            q.get(timeout=-1)
    assert Queue[int] is not None  # generic, like queue.Queue


def test_negative_timeout_raises_even_without_waiting() -> None:
    q: Queue[int] = Queue(maxsize=2)
    q.put(1)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    with pytest.raises(ValueError, match="non-negative"):
        q.put(2, timeout=-1)
    assert q.qsize() == 1
    sq: SimpleQueue[int] = SimpleQueue()
    sq.put(1)
    with pytest.raises(ValueError, match="non-negative"):
        sq.get(timeout=-1)


def test_fast_paths_never_park(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> Any:
        raise AssertionError("the fast path parked")

    monkeypatch.setattr(_core.ParkingLot, "park", boom)
    monkeypatch.setattr(_core.ParkingLot, "park_until", boom)
    monkeypatch.setattr(_core.ThreadState, "park", boom)
    q: Queue[int] = Queue(maxsize=2)
    q.put(1)
    q.put(2, timeout=1)
    assert q.get() == 1
    assert q.get(timeout=1) == 2
    sq: SimpleQueue[int] = SimpleQueue()
    sq.put(1)
    assert sq.get() == 1


def test_task_done_and_join(wait_all_threads_blocked: Callable[..., None]) -> None:
    q: Queue[int] = Queue()
    for i in range(3):
        q.put(i)
    joiner = spawn(q.join)
    wait_all_threads_blocked(expected=1)
    assert q.statistics().joiners_waiting == 1
    for _ in range(3):
        q.get()
        q.task_done()
    joiner.join(timeout=5)
    with pytest.raises(ValueError, match="too many"):
        q.task_done()


# -- cancellation --------------------------------------------------------------------


@pytest.mark.parametrize("qtype", QUEUES)
def test_cancelled_get_loses_no_item(
    qtype: type[Queue[int]], wait_all_threads_blocked: Callable[..., None]
) -> None:
    q = qtype()
    t = spawn(q.get)
    wait_all_threads_blocked(expected=1)
    assert t.cancel(timeout=5)
    assert t.cancelled
    stats = q.statistics()
    assert (
        stats.getters_waiting if isinstance(stats, _queue.QueueStatistics) else stats.waiting
    ) == 0
    q.put(7)
    assert q.get(timeout=1) == 7


def test_woken_then_cancelled_getter_hands_item_on(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    q: Queue[str] = Queue()
    first = spawn(q.get)
    wait_all_threads_blocked(expected=1)
    second = spawn(q.get, True, 10)
    wait_all_threads_blocked(expected=2)
    with q.mutex:
        # "first" is cancelled; before it can re-take the mutex, an item
        # arrives and its wake-up goes to "first", which must pass it on.
        first.cancel(blocking=False)
        q._put("item")
        q.unfinished_tasks += 1
        q._getters.unpark_one()
    assert first.wait(5)
    assert first.cancelled
    assert second.join(timeout=5) == "item"


def test_simplequeue_woken_then_cancelled_hands_item_on(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    q: SimpleQueue[str] = SimpleQueue()
    first = spawn(q.get)
    wait_all_threads_blocked(expected=1)
    second = spawn(q.get, True, 10)
    wait_all_threads_blocked(expected=2)
    first.cancel(blocking=False)
    q.put("item")  # may wake "first", which is cancelled: it must pass it on
    assert first.wait(5)
    assert first.cancelled
    assert second.join(timeout=5) == "item"


def test_cancelled_put_adds_nothing(wait_all_threads_blocked: Callable[..., None]) -> None:
    q: Queue[int] = Queue(maxsize=1)
    q.put(1)
    t = spawn(q.put, 2)
    wait_all_threads_blocked(expected=1)
    assert q.statistics().putters_waiting == 1
    assert t.cancel(timeout=5)
    assert t.cancelled
    assert q.get() == 1
    assert q.empty()
    assert q.unfinished_tasks == 1
    assert q.statistics().putters_waiting == 0


def test_blocked_put_proceeds_after_get(wait_all_threads_blocked: Callable[..., None]) -> None:
    q: Queue[int] = Queue(maxsize=1)
    q.put(1)
    t = spawn(q.put, 2)
    wait_all_threads_blocked(expected=1)
    assert q.get() == 1
    t.join(timeout=5)
    assert q.get() == 2


def test_cancel_before_get() -> None:
    q: Queue[int] = Queue()
    q.put(1)
    outcome: list[object] = []

    def body() -> None:
        threadpatch.current().cancel()
        outcome.append(q.get())  # an item is there: no blocking, it works
        try:
            q.get()
        except ThreadCancelled:
            outcome.append("cancelled")

    spawn(body).join(timeout=5)
    assert outcome == [1, "cancelled"]


def test_cancel_after_get_is_noop() -> None:
    q: Queue[int] = Queue()
    q.put(1)
    t = spawn(q.get)
    assert t.join(timeout=5) == 1
    assert t.cancel()
    assert not t.cancelled


@pytest.mark.parametrize("qtype", QUEUES)
def test_deadline_on_get(qtype: type[Queue[int]]) -> None:
    q = qtype()

    def body() -> int:
        with timeout_after(0.02):
            return q.get()

    with pytest.raises(ThreadError) as info:
        spawn(body).join(timeout=5)
    assert isinstance(info.value.__cause__, ThreadTimeout)
    q.put(1)
    assert q.get_nowait() == 1


def test_deadline_on_put_and_join() -> None:
    q: Queue[int] = Queue(maxsize=1)
    q.put(1)
    with pytest.raises(ThreadTimeout), timeout_after(0.02):
        q.put(2)
    with pytest.raises(ThreadTimeout), timeout_after(0.02):
        q.join()
    assert q.qsize() == 1
    stats = q.statistics()
    assert (stats.putters_waiting, stats.joiners_waiting) == (0, 0)


def test_cancel_plain_thread_in_get(wait_all_threads_blocked: Callable[..., None]) -> None:
    q: Queue[int] = Queue()
    outcome = []

    def body() -> None:
        try:
            q.get()
        except ThreadCancelled:
            outcome.append("cancelled")

    t = threading.Thread(target=body)
    t.start()
    wait_all_threads_blocked(expected=1)
    assert threadpatch.cancel(t, timeout=5)
    t.join(5)
    assert outcome == ["cancelled"]


def test_hub_thread_waits_natively() -> None:
    q: Queue[int] = Queue()
    sq: SimpleQueue[int] = SimpleQueue()
    done, results = Event(), []

    def in_hub() -> None:
        for get in (q.get, sq.get):
            try:
                get(timeout=0.01)
            except Empty:
                results.append("empty")
        done.set()

    _core.get_hub().call_at(_core._natives.monotonic(), in_hub)
    assert done.wait(10)
    assert results == ["empty", "empty"]


def test_many_threads_mixed_kinds() -> None:
    q: Queue[int] = Queue(maxsize=5)
    got: list[int] = []
    lock = threading.Lock()

    def consume() -> None:
        while (item := q.get()) >= 0:
            with lock:
                got.append(item)

    consumers = [spawn(consume) for _ in range(2)]
    plain = threading.Thread(target=consume)
    plain.start()
    producer = threading.Thread(target=lambda: [q.put(i) for i in range(300)])
    producer.start()
    for i in range(300, 600):
        q.put(i)
    producer.join(10)
    for _ in range(3):
        q.put(-1)
    for c in consumers:
        c.join(timeout=10)
    plain.join(10)
    assert sorted(got) == list(range(600))


@pytest.mark.skipif(sys.version_info < (3, 13), reason="Queue.shutdown is new in 3.13")
def test_shutdown_wakes_blocked_getters_and_putters(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    shut_down = queue.ShutDown  # type: ignore[attr-defined]
    empty: Queue[int] = Queue()
    full: Queue[int] = Queue(maxsize=1)
    full.put(1)
    getter = spawn(empty.get)
    putter = spawn(full.put, 2)
    wait_all_threads_blocked(expected=2)
    empty.shutdown()
    full.shutdown(immediate=True)
    for t in (getter, putter):
        assert t.wait(5)
        assert isinstance(t.exception, shut_down)
    assert full.empty()
    full.join()  # immediate shutdown counted the dropped item done


# -- not_empty / not_full / all_tasks_done (stdlib compatibility) ------------------


def test_conditions_are_bound_to_the_mutex() -> None:
    q: Queue[int] = Queue()
    for cond in (q.not_empty, q.not_full, q.all_tasks_done):
        assert isinstance(cond, _queue.QueueCondition)
        assert repr(cond).startswith("<Condition(<unlocked _thread.lock object")
        with pytest.raises(RuntimeError, match="un-acquired"):
            cond.wait(0)
        with pytest.raises(RuntimeError, match="un-acquired"):
            cond.notify()
        with pytest.raises(RuntimeError, match="un-acquired"):
            cond.notify_all()
        with cond:
            assert q.mutex.locked()
            assert cond.wait(0) is False
            assert cond.wait(0.001) is False
            assert cond.wait_for(lambda: 0, timeout=0.001) == 0
            assert cond.wait_for(lambda: 5) == 5
            cond.notify(3)  # nobody waits: a no-op
            cond.notify_all()
            assert cond.statistics().waiting == 0
        assert not q.mutex.locked()
        assert cond.acquire(False)
        cond.release()


def test_clear_queue_idiom_releases_join(wait_all_threads_blocked: Callable[..., None]) -> None:
    q: Queue[int] = Queue()
    for i in range(3):
        q.put(i)
    joiner = spawn(q.join)
    wait_all_threads_blocked(expected=1)
    assert q.all_tasks_done.statistics().waiting == 1
    with q.mutex:  # the idiom from code written for queue.Queue
        q.queue.clear()
        q.all_tasks_done.notify_all()
        q.unfinished_tasks = 0
    joiner.join(timeout=5)
    assert q.empty()
    assert q.statistics().joiners_waiting == 0


def test_notify_not_full_wakes_a_blocked_put(wait_all_threads_blocked: Callable[..., None]) -> None:
    q: Queue[int] = Queue(maxsize=1)
    q.put(1)
    putter = spawn(q.put, 2)
    wait_all_threads_blocked(expected=1)
    with q.not_full:
        q.queue.clear()
        q.not_full.notify()
    putter.join(timeout=5)
    assert q.get_nowait() == 2


def test_notify_not_empty_without_item_lets_get_wait_on(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    q: Queue[str] = Queue()
    getter = spawn(q.get, True, 10)
    wait_all_threads_blocked(expected=1)
    with q.not_empty:
        q.not_empty.notify()  # a wake-up with nothing to take
    wait_until(lambda: q.statistics().getters_waiting == 1, message="the getter back in line")
    wait_all_threads_blocked(expected=1)
    q.put("item")
    assert getter.join(timeout=5) == "item"


class BatchQueue(Queue[str]):
    """A subclass as found in the wild: own storage, and its own waits on not_empty."""

    def _init(self, maxsize: int) -> None:
        self.queue: dict[str, int] = {}  # coalesces duplicates, counting them

    def _qsize(self) -> int:
        return len(self.queue)

    def _put(self, item: str) -> None:
        self.queue[item] = self.queue.get(item, 0) + 1

    def _get(self) -> str:
        key = next(iter(self.queue))
        del self.queue[key]
        return key

    def get_batch(self, timeout: float | None = None) -> dict[str, int]:
        with self.not_empty:
            if not self.not_empty.wait_for(self._qsize, timeout):
                raise Empty
            batch, self.queue = self.queue, {}
            self.not_full.notify_all()
            return batch


def test_subclass_waiting_on_not_empty(wait_all_threads_blocked: Callable[..., None]) -> None:
    q = BatchQueue(maxsize=2)
    # The stdlib surface on the subclass's storage.
    q.put("a")
    q.put("a")
    assert q.qsize() == 1
    assert q.get() == "a"
    with pytest.raises(Empty):
        q.get_batch(timeout=0.001)

    # Woken by the queue's own put().
    waiter = spawn(q.get_batch, 10)
    wait_all_threads_blocked(expected=1)
    assert q.statistics().getters_waiting == 1
    q.put("x")
    assert waiter.join(timeout=5) == {"x": 1}

    # Woken by notify() after items were added under the mutex.
    waiter = spawn(q.get_batch, 10)
    wait_all_threads_blocked(expected=1)
    with q.mutex:
        q._put("y")
        q._put("y")
        q._put("z")
        q.not_empty.notify()
    assert waiter.join(timeout=5) == {"y": 2, "z": 1}

    # A putter blocked on the full queue is woken by the batch's not_full.notify_all().
    q.put("p")
    q.put("q")
    putter = spawn(q.put, "r")
    wait_all_threads_blocked(expected=1)
    assert q.get_batch() == {"p": 1, "q": 1}
    putter.join(timeout=5)
    assert q.get_nowait() == "r"


def test_cancelled_wait_on_not_empty(wait_all_threads_blocked: Callable[..., None]) -> None:
    q = BatchQueue()
    owned: list[bool] = []

    def body() -> None:
        with q.not_empty:
            try:
                q.not_empty.wait()
            except ThreadCancelled:
                owned.append(q.mutex.locked())
                raise

    t = spawn(body)
    wait_all_threads_blocked(expected=1)
    assert t.cancel(timeout=5)
    assert t.cancelled
    assert owned == [True]  # the mutex was held again when it raised
    assert not q.mutex.locked()  # and released by the with block
    assert q.statistics().getters_waiting == 0

    # A deadline on the subclass's own wait.
    with pytest.raises(ThreadTimeout), timeout_after(0.01):
        q.get_batch()
    assert not q.mutex.locked()


def test_notified_then_cancelled_condition_waiter_passes_it_on(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    q: Queue[int] = Queue()
    first = spawn(q.get)  # an internal getter, parked first
    wait_all_threads_blocked(expected=1)

    def cond_waiter() -> bool:
        with q.not_empty:
            return q.not_empty.wait(10)

    second = spawn(cond_waiter)
    wait_all_threads_blocked(expected=2)
    # Under the mutex, neither can leave its wait: cancel the first (the
    # internal getter; it wakes and blocks on the mutex to leave), then
    # notify, which pops it.  Leaving, it must hand the wake-up on.
    with q.mutex:
        first.cancel(blocking=False)
        q.not_empty.notify()
    assert first.wait(5)
    assert first.cancelled
    assert second.join(timeout=5) is True
