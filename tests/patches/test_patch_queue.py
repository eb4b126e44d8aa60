"""The stdlib queue classes while patched: clean-up puts and gets in cancelled threads."""

from __future__ import annotations

import queue
import sys

import threadpatch
from tests._helpers import wait_until
from threadpatch import _sync


def test_cancelled_thread_puts_without_waiting_while_another_thread_is_inside() -> None:
    # urllib3 returns a connection to its pool (a LifoQueue) this way in the
    # finally of a cancelled request: the put must not fail just because
    # another thread held the queue's mutex for a few statements.
    with threadpatch.patched():
        q: queue.Queue[int] = queue.Queue()
    outcome: list[BaseException | None] = []

    def body() -> None:
        threadpatch.current().cancel()  # recorded: raised at the next blocking point
        try:
            q.put_nowait(1)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    def ended_or_waits_for_the_mutex() -> bool:
        frame = sys._current_frames().get(t.ident or 0)
        waits = frame is not None and frame.f_code is _sync.Condition.__enter__.__code__
        return t.done() or waits

    with q.mutex:  # another thread is inside put() or get()
        t = threadpatch.spawn(body)
        wait_until(ended_or_waits_for_the_mutex, message="the thread ended or at the mutex")
    t.join(timeout=10)
    assert outcome == [None]
    assert q.get_nowait() == 1


def test_stdlib_queues_made_while_patched_keep_cancellable_waits(wait_all_threads_blocked) -> None:
    with threadpatch.patched():
        queues = [queue.Queue(), queue.LifoQueue(), queue.PriorityQueue()]
    for q in queues:
        assert isinstance(q.not_empty, _sync.Condition)
        assert q.not_empty._lock is q.mutex is q.not_full._lock is q.all_tasks_done._lock
        t = threadpatch.spawn(q.get)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=10)
        assert t.cancelled
        q.put(5)  # after unpatching, the queue still works
        assert q.get_nowait() == 5


def test_stdlib_queue_untouched_without_the_threading_set() -> None:
    with threadpatch.patched(threading=False, queue=True):
        q: queue.Queue[int] = queue.Queue()
    assert type(q.not_empty) is threadpatch.original("threading", "Condition")
