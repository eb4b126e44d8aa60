"""Per-thread operations stay O(1) with many waiters: nobody scans a FIFO of waiters.

Every wait queues its waiter in a FIFO; a waiter that is cancelled (or woken)
leaves it again.  On a ``deque`` that removal compares the leaver with every
waiter before it, so with n waiters each cancellation cost O(n) and
cancelling them all O(n^2).  These tests count those comparisons: the
waiters are stand-ins for the threads' states whose ``==`` records each call,
and leaving (or being woken from) a FIFO of many waiters must make none.
Outcomes are asserted, not timings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import _sync
from threadpatch._core import _state, _wait

if TYPE_CHECKING:
    from collections.abc import Callable

N = 200  # with a scan, cancelling these newest first compares ~N**2 / 2 times


class _Counted:
    """A waiter standing in for a ThreadState; counts ``==`` against other waiters."""

    __slots__ = ("blocked_on", "blocked_since", "blocked_until", "compared", "state")

    def __init__(self, state: _state.ThreadState, compared: list[object]) -> None:
        self.state = state
        self.compared = compared
        self.blocked_on: object = None
        self.blocked_since = 0.0
        self.blocked_until = 0.0

    def park(self, timeout: float | None = None) -> None:
        self.state.park(timeout)

    def unpark(self) -> None:
        self.state.unpark()

    def __eq__(self, other: object) -> bool:
        self.compared.append(other)  # list.append: atomic under the GIL
        return self is other

    __hash__ = object.__hash__


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Make every thread wait as a :class:`_Counted`; the list of its comparisons."""
    calls: list[object] = []
    real = _wait.current_state

    def counted_state() -> Any:
        return _Counted(real(), calls)

    # The one place where a wait picks the calling thread's waiter.
    monkeypatch.setattr(_wait, "current_state", counted_state)
    return calls


def _spawn_blocked(
    target: Callable[[], object], wait_all_threads_blocked: Callable[..., None]
) -> list[threadpatch.Thread[Any]]:
    threads = [threadpatch.spawn(target) for _ in range(N)]
    wait_all_threads_blocked(expected=N)
    return threads


def _cancel_newest_first(threads: list[threadpatch.Thread[Any]]) -> None:
    # One at a time, newest first: each leaver is the last of its FIFO,
    # which a scan from the front reaches only after every other waiter.
    for thread in reversed(threads):
        assert thread.cancel(timeout=10)
    assert all(thread.cancelled for thread in threads)


def _assert_no_scan(compared: list[object]) -> None:
    assert not compared, f"waiters were compared {len(compared)} times: a FIFO was scanned"


LOCKS = [
    pytest.param(impl[kind], id=f"{name}-{impl[kind].__name__}")
    for name, impl in sorted(_sync.LOCK_IMPLEMENTATIONS.items())
    for kind in (0, 1)
]


@pytest.mark.parametrize("lock_type", LOCKS)
def test_cancelled_lock_waiters_leave_without_a_scan(
    lock_type: type[Any], compared: list[object], wait_all_threads_blocked: Callable[..., None]
) -> None:
    lock = lock_type()
    lock.acquire()
    threads = _spawn_blocked(lock.acquire, wait_all_threads_blocked)
    _cancel_newest_first(threads)
    _assert_no_scan(compared)
    assert lock.statistics().waiting == 0
    lock.release()
    assert lock.acquire(blocking=False)  # still usable, nobody left queued
    lock.release()


@pytest.mark.parametrize("lock_type", LOCKS)
def test_woken_lock_waiters_leave_without_a_scan(
    lock_type: type[Any], compared: list[object], wait_all_threads_blocked: Callable[..., None]
) -> None:
    lock = lock_type()
    lock.acquire()
    passed: list[int] = []

    def take_and_pass_on(i: int) -> None:
        with lock:
            passed.append(i)

    threads = [threadpatch.spawn(take_and_pass_on, i) for i in range(N)]
    wait_all_threads_blocked(expected=N)
    lock.release()  # each waiter takes it, leaves the FIFO and wakes the next
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(passed) == list(range(N))
    _assert_no_scan(compared)


def test_cancelled_event_waiters_leave_without_a_scan(
    compared: list[object], wait_all_threads_blocked: Callable[..., None]
) -> None:
    event = threadpatch.Event()
    threads = _spawn_blocked(event.wait, wait_all_threads_blocked)
    _cancel_newest_first(threads)
    _assert_no_scan(compared)
    assert event.statistics().waiting == 0


def test_cancelled_condition_waiters_leave_without_a_scan(
    compared: list[object], wait_all_threads_blocked: Callable[..., None]
) -> None:
    cond = threadpatch.Condition()

    def wait() -> None:
        with cond:
            cond.wait()

    threads = _spawn_blocked(wait, wait_all_threads_blocked)
    _cancel_newest_first(threads)
    _assert_no_scan(compared)
    assert cond.statistics().waiting == 0
    with cond:
        cond.notify()  # nobody left to notify: no error, nothing queued


@pytest.mark.parametrize("queue_type", [threadpatch.Queue, threadpatch.SimpleQueue])
def test_queue_getters_leave_without_a_scan(
    queue_type: type[Any], compared: list[object], wait_all_threads_blocked: Callable[..., None]
) -> None:
    q = queue_type()
    _cancel_newest_first(_spawn_blocked(q.get, wait_all_threads_blocked))
    _assert_no_scan(compared)
    # Woken getters leave the FIFO too: each looks for itself there on the way out.
    threads = _spawn_blocked(q.get, wait_all_threads_blocked)
    for i in range(N):
        q.put(i)
    assert sorted(t.join(timeout=10) for t in threads) == list(range(N))
    _assert_no_scan(compared)
    assert q.qsize() == 0


def test_queue_condition_waiters_leave_without_a_scan(
    compared: list[object], wait_all_threads_blocked: Callable[..., None]
) -> None:
    q: threadpatch.Queue[int] = threadpatch.Queue()

    def wait() -> bool:
        with q.not_empty:
            return q.not_empty.wait()

    _cancel_newest_first(_spawn_blocked(wait, wait_all_threads_blocked))
    _assert_no_scan(compared)
    threads = _spawn_blocked(wait, wait_all_threads_blocked)
    with q.not_empty:
        q.not_empty.notify_all()
    assert [t.join(timeout=10) for t in threads] == [True] * N
    _assert_no_scan(compared)
