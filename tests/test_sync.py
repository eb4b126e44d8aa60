"""Lock, RLock, Condition, Semaphore, Event and Barrier: stdlib behaviour plus cancellation."""

from __future__ import annotations

import gc
import importlib.util
import os
import subprocess
import sys
import threading
import weakref
from typing import TYPE_CHECKING

import pytest

import threadpatch
from threadpatch import (
    Barrier,
    BoundedSemaphore,
    BrokenBarrierError,
    Condition,
    Event,
    Lock,
    RLock,
    Semaphore,
    ThreadCancelled,
    ThreadError,
    ThreadTimeout,
    _core,
    _locks,
    _sync,
    spawn,
    timeout_after,
)

from ._helpers import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

#: Both implementations of Lock and RLock present here: "python" (the reference)
#: and, when the C accelerator is built, "c".  Lock tests run on each.
IMPLS = sorted(_sync.LOCK_IMPLEMENTATIONS)
LOCKS = [
    pytest.param(cls, id=f"{name}-{cls.__name__}")
    for name, pair in sorted(_sync.LOCK_IMPLEMENTATIONS.items())
    for cls in pair
]


LockPair = tuple[type[Lock], type[RLock]]


@pytest.fixture(params=IMPLS)
def locks(request: pytest.FixtureRequest) -> LockPair:
    """(Lock, RLock) of one implementation; tests unpack it over the module names."""
    pair: LockPair = _sync.LOCK_IMPLEMENTATIONS[request.param]
    return pair


def _cancelled(t: threadpatch.Thread[object]) -> bool:
    t.cancel(timeout=5)
    return t.cancelled


# -- stdlib surface --------------------------------------------------------------


@pytest.mark.parametrize("locktype", LOCKS)
def test_argument_validation_before_fast_path(locktype: Callable[[], Lock]) -> None:
    lock = locktype()
    with pytest.raises(ValueError, match="non-blocking"):
        lock.acquire(False, 1)
    with pytest.raises(ValueError, match="timeout"):
        lock.acquire(True, -5)
    with pytest.raises(TypeError):
        lock.acquire(True, "x")  # type: ignore[arg-type]
    assert lock._try_acquire()  # still free: validation came first


def test_lock_surface_and_repr(locks: LockPair) -> None:
    Lock, _ = locks
    lock = Lock()
    assert repr(lock).startswith("<unlocked threadpatch.Lock object at 0x")
    assert lock.acquire() is True
    assert lock.locked()
    assert repr(lock).startswith("<locked threadpatch.Lock object at 0x")
    assert lock.acquire(False) is False
    assert lock.acquire(timeout=0) is False
    assert lock.statistics() == threadpatch._sync.LockStatistics(locked=True, waiting=0)
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
    with lock:
        assert lock.locked()
    assert not lock.locked()


def test_rlock_surface_and_repr(locks: LockPair) -> None:
    _, RLock = locks
    lock = RLock()
    with lock, lock:
        assert lock._recursion_count() == 2
        assert "count=2" in repr(lock)
        assert repr(lock).startswith("<locked threadpatch.RLock object owner=")
        stats = lock.statistics()
        assert (stats.locked, stats.depth, stats.owner) == (True, 2, threading.get_ident())
    assert repr(lock).startswith("<unlocked threadpatch.RLock object owner=0 count=0")
    with pytest.raises(RuntimeError):
        lock.release()


def test_reprs_name_threadpatch() -> None:
    assert repr(Event()).startswith("<threadpatch.Event at 0x")
    assert repr(Semaphore(2)).endswith(": value=2>")
    assert repr(BoundedSemaphore(3)).endswith(": value=3/3>")
    assert repr(Barrier(2)).endswith(": waiters=0/2>")
    assert BrokenBarrierError is threading.BrokenBarrierError


def test_lock_release_from_another_thread(locks: LockPair) -> None:
    Lock, _ = locks
    lock = Lock()
    lock.acquire()
    spawn(lock.release).join(timeout=5)
    assert not lock.locked()


def test_stdlib_condition_works_with_our_rlock_and_lock(
    locks: LockPair,
) -> None:
    Lock, RLock = locks
    for lock in (RLock(), Lock()):
        cond = threading.Condition(lock)
        seen = []

        def waiter(cond: threading.Condition = cond, seen: list[bool] = seen) -> None:
            with cond:
                seen.append(cond.wait(timeout=10))

        t = spawn(waiter)
        wait_until(lambda cond=cond: cond._waiters, message="the waiter in wait()")  # type: ignore[misc]
        with cond:
            cond.notify()
        t.join(timeout=5)
        assert seen == [True]


# -- fast path ---------------------------------------------------------------------


def test_fast_paths_never_park(
    locks: LockPair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Lock, RLock = locks

    def boom(*args: object) -> None:
        raise AssertionError("the fast path parked")

    monkeypatch.setattr(_core.ThreadState, "park", boom)
    monkeypatch.setattr(_core.ParkingLot, "park_until", boom)
    # Nor do they leave the core for the Python slow paths or wake anyone.
    for name in ("_acquire_slow", "_acquire_blocking", "_wake"):
        monkeypatch.setattr(_locks._LockCommon, name, boom)
    for lock in (Lock(), RLock()):
        assert lock.acquire()
        lock.release()
        assert lock.acquire(True)
        lock.release()
        assert lock.acquire(blocking=False)
        lock.release()
        assert lock.acquire(timeout=-1)
        lock.release()
        with lock:
            pass
    rlock = RLock()
    with rlock, rlock:
        assert rlock._recursion_count() == 2
    ev = Event()
    ev.set()
    assert ev.wait()
    sem = Semaphore(1)
    with sem:
        pass


@pytest.mark.parametrize("impl", [_sync.IMPLEMENTATION])
def test_active_implementation_is_reported_and_consistent(impl: str) -> None:
    # The test id names the implementation in use: "...[c]" or "...[python]".
    assert impl in _sync.LOCK_IMPLEMENTATIONS
    assert (threadpatch.Lock, threadpatch.RLock) == _sync.LOCK_IMPLEMENTATIONS[impl]
    built = importlib.util.find_spec("threadpatch._speedups") is not None
    pure_requested = os.environ.get("THREADPATCH_PURE_PYTHON", "") not in ("", "0")
    assert impl == ("c" if built and not pure_requested else "python")
    for cls in (threadpatch.Lock, threadpatch.RLock):
        assert cls.__module__ == "threadpatch"
        assert cls.__qualname__ == cls.__name__ in ("Lock", "RLock")


@pytest.mark.parametrize("flag", ["1", "0"])
def test_pure_python_environment_variable(flag: str) -> None:
    code = (
        "import threadpatch, threadpatch._sync as s; "
        "print(s.IMPLEMENTATION, threadpatch.Lock is s.PyLock, threadpatch.RLock is s.PyRLock)"
    )
    env = {**os.environ, "THREADPATCH_PURE_PYTHON": flag}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    built = importlib.util.find_spec("threadpatch._speedups") is not None
    if flag == "1" or not built:
        assert out.stdout.split() == ["python", "True", "True"]
    else:
        assert out.stdout.split() == ["c", "False", "False"]


BAD_ACQUIRE_CALLS: list[tuple[tuple[object, ...], dict[str, object]]] = [
    ((False, 1), {}),
    ((True, -5), {}),
    ((True, "x"), {}),
    ((True, float("nan")), {}),
    ((True, 1e300), {}),
    ((), {"blocking": False, "timeout": 2}),
    ((1, 2, 3), {}),
    ((), {"nonsense": 1}),
    ((True,), {"blocking": False}),
]


@pytest.mark.parametrize(("args", "kwargs"), BAD_ACQUIRE_CALLS)
def test_c_acquire_errors_are_the_native_ones(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    if "c" not in _sync.LOCK_IMPLEMENTATIONS:
        pytest.skip("the C accelerator is not in use (not built, or THREADPATCH_PURE_PYTHON)")
    with pytest.raises(Exception) as native:  # noqa: PT011 - compared below
        threading.Lock().acquire(*args, **kwargs)  # type: ignore[arg-type]
    for cls in _sync.LOCK_IMPLEMENTATIONS["c"]:
        lock = cls()
        with pytest.raises(type(native.value)) as ours:
            lock.acquire(*args, **kwargs)
        assert str(ours.value) == str(native.value)
        assert lock._try_acquire()  # the failed call did not take it


@pytest.mark.parametrize("locktype", LOCKS)
def test_good_acquire_arguments(locktype: Callable[[], Lock]) -> None:
    lock = locktype()
    assert lock.acquire(True, -1.0) is True
    lock.release()
    assert lock.acquire(timeout=0) is True
    lock.release()
    assert lock.acquire(blocking=True, timeout=0.5) is True
    lock.release()
    assert lock.acquire(1) is True
    lock.release()
    holder = spawn(lock.acquire)
    holder.join(timeout=5)
    assert lock.acquire(False) is False
    assert lock.acquire(blocking=False) is False
    assert lock.acquire(True, 0) is False
    assert lock.acquire(timeout=0.001) is False
    assert lock.statistics().waiting == 0


def test_subclasses_and_weakrefs(locks: LockPair) -> None:
    Lock, RLock = locks
    for base in (Lock, RLock):

        class Mine(base):  # type: ignore[valid-type, misc]
            def __init__(self) -> None:
                super().__init__()
                self.extra = 1

        lock = Mine()
        ref = weakref.ref(lock)
        with lock:
            assert lock.extra == 1
            assert spawn(lambda lock=lock: lock.acquire(False)).join(timeout=5) is False
        assert f"{__name__}.test_subclasses_and_weakrefs.<locals>.Mine object" in repr(lock)
        del lock
        gc.collect()
        assert ref() is None


def test_rlock_condition_restores_depth_under_contention(
    locks: LockPair, wait_all_threads_blocked: Callable[..., None]
) -> None:
    # wait() releases every level; re-taking it while another thread holds
    # it goes through the slow path of _acquire_restore.
    _, RLock = locks
    rlock = RLock()
    cond = Condition(rlock)
    depth: list[int] = []

    def waiter() -> None:
        with cond, cond, cond:
            assert cond.wait(timeout=10)
            depth.append(rlock._recursion_count())

    t = spawn(waiter)
    wait_until(lambda: cond.statistics().waiting == 1, message="the waiter in wait()")
    wait_all_threads_blocked(expected=1)
    with rlock:
        cond.notify()
        # Notified, it now waits for the lock we hold.
        wait_until(lambda: rlock.statistics().waiting == 1, message="the waiter at the lock")
        wait_all_threads_blocked(expected=1)
    t.join(timeout=5)
    assert depth == [3]
    assert rlock.statistics() == _sync.RLockStatistics(False, 0, 0, 0)


def test_release_wakes_a_waiter_in_each_path(
    locks: LockPair, wait_all_threads_blocked: Callable[..., None]
) -> None:
    for locktype in locks:
        lock = locktype()
        lock.acquire()

        def waiter(lock: Lock = lock) -> bool:
            got = lock.acquire(timeout=10)
            lock.release()
            return got

        t = spawn(waiter)
        wait_all_threads_blocked(expected=1)
        lock.release()
        assert t.join(timeout=5) is True


# -- locks and cancellation ---------------------------------------------------------


@pytest.mark.parametrize("locktype", LOCKS)
def test_cancel_during_acquire(
    locktype: Callable[[], Lock], wait_all_threads_blocked: Callable[..., None]
) -> None:
    lock = locktype()
    with lock:
        t = spawn(lock.acquire)
        wait_all_threads_blocked(expected=1)
        assert lock.statistics().waiting == 1
        assert _cancelled(t)
        assert lock.statistics().waiting == 0
    # The cancelled waiter does not hold the lock.
    assert spawn(lambda: lock.acquire(False)).join(timeout=5) is True


@pytest.mark.parametrize("locktype", LOCKS)
def test_cancel_before_acquire(locktype: Callable[[], Lock]) -> None:
    lock, held = locktype(), locktype()
    held_by_other = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with held:
            held_by_other.set()
            release.wait(10)

    h = spawn(holder)
    held_by_other.wait(10)
    results: list[object] = []

    def body() -> None:
        threadpatch.current().cancel()  # only recorded: raised at a blocking point
        results.append(lock.acquire())  # free: completes without blocking
        lock.release()
        try:
            held.acquire()
        except ThreadCancelled:
            results.append("cancelled")

    spawn(body).join(timeout=5)
    release.set()
    h.join(timeout=5)
    assert results == [True, "cancelled"]


def test_cancel_after_acquire_is_a_noop(locks: LockPair) -> None:
    Lock, _ = locks
    lock = Lock()
    t = spawn(lock.acquire)
    assert t.join(timeout=5) is True
    assert t.cancel() is True
    assert not t.cancelled
    assert lock.locked()


def test_cancel_holder_releases_in_with(
    locks: LockPair,
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    Lock, _ = locks
    lock, never = Lock(), Event()

    def holder() -> None:
        with lock:
            never.wait()

    t = spawn(holder)
    wait_all_threads_blocked(expected=1)
    assert lock.locked()
    assert _cancelled(t)
    assert not lock.locked()


@pytest.mark.parametrize("locktype", LOCKS)
def test_deadline_on_acquire(locktype: Callable[[], Lock]) -> None:
    lock, held, done = locktype(), Event(), Event()

    def holder() -> None:
        with lock:
            held.set()
            done.wait(10)

    h = spawn(holder)
    held.wait(5)

    def body() -> bool:
        with timeout_after(0.05):
            return lock.acquire()

    with pytest.raises(ThreadError) as info:
        spawn(body).join(timeout=5)
    assert isinstance(info.value.__cause__, ThreadTimeout)
    assert lock.statistics().waiting == 0
    done.set()
    h.join(timeout=5)


def test_acquire_timeout_returns_false(locks: LockPair) -> None:
    Lock, _ = locks
    lock = Lock()
    lock.acquire()
    assert spawn(lambda: lock.acquire(timeout=0.01)).join(timeout=5) is False
    assert lock.statistics().waiting == 0


def test_cancel_plain_threading_thread_waiting_on_lock(
    locks: LockPair,
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    Lock, _ = locks
    lock, outcome = Lock(), []

    def body() -> None:
        try:
            lock.acquire()
        except ThreadCancelled:
            outcome.append("cancelled")

    with lock:
        t = threading.Thread(target=body)
        t.start()
        wait_all_threads_blocked(expected=1)
        assert threadpatch.cancel(t, timeout=5)
    t.join(5)
    assert outcome == ["cancelled"]


def test_main_thread_and_spawned_threads_share_a_lock(
    locks: LockPair,
) -> None:
    Lock, _ = locks
    lock, counter = Lock(), [0]

    def work() -> None:
        for _ in range(2000):
            with lock:
                counter[0] += 1

    threads = [spawn(work) for _ in range(3)]
    plain = threading.Thread(target=work)
    plain.start()
    work()
    for t in threads:
        t.join(timeout=10)
    plain.join(10)
    assert counter[0] == 5 * 2000


def test_hub_thread_blocks_natively(locks: LockPair) -> None:
    Lock, _ = locks
    lock, cond, done = Lock(), Condition(), Event()
    results: list[object] = []
    lock.acquire()

    def in_hub() -> None:
        assert _core.is_hub_thread()
        results.append(lock.acquire(timeout=0.01))
        with cond:
            results.append(cond.wait(0.01))
        done.set()

    hub = _core.get_hub()
    hub.call_at(_core._natives.monotonic(), in_hub)
    assert done.wait(10)
    assert results == [False, False]


# -- Condition ---------------------------------------------------------------------


def test_cancelled_condition_wait_reacquires_lock(
    locks: LockPair,
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    Lock, RLock = locks
    for lock in (Lock(), RLock(), threading.Lock()):
        cond, seen = Condition(lock), []

        def waiter(cond: Condition = cond, seen: list[bool] = seen) -> None:
            with cond:
                try:
                    cond.wait()
                except ThreadCancelled:
                    seen.append(cond._is_owned())
                    raise

        t = spawn(waiter)
        wait_until(
            lambda cond=cond: cond.statistics().waiting == 1,  # type: ignore[misc]
            message="the waiter in wait()",
        )
        wait_all_threads_blocked(expected=1)
        with cond:
            # It cannot re-acquire while we hold the lock: cancel, then let go.
            t.cancel(blocking=False)
            assert cond.statistics().waiting <= 1
        assert t.wait(5)
        assert t.cancelled
        assert seen == [True]
        assert cond.acquire(False)  # nobody kept the lock
        cond.release()
        assert cond.statistics().waiting == 0


def test_notified_then_cancelled_passes_the_notification_on(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    cond, got = Condition(Lock()), []

    def waiter(name: str) -> None:
        with cond:
            if cond.wait(timeout=10):
                got.append(name)

    first = spawn(waiter, "first")
    wait_all_threads_blocked(expected=1)
    second = spawn(waiter, "second")
    wait_all_threads_blocked(expected=2)
    with cond:
        # "first" is cancelled, but cannot leave wait() while we hold the lock,
        # so the notification still goes to its entry: it must pass it on.
        first.cancel(blocking=False)
        cond.notify(1)
    assert first.wait(5)
    assert first.cancelled
    second.join(timeout=5)
    assert got == ["second"]


def test_condition_notify_n_and_wait_for(wait_all_threads_blocked: Callable[..., None]) -> None:
    cond, state, woken = Condition(), {"go": False}, []

    def waiter(i: int) -> None:
        with cond:
            woken.append(cond.wait_for(lambda: state["go"], timeout=10))

    threads = [spawn(waiter, i) for i in range(3)]
    wait_all_threads_blocked(expected=3)
    assert cond.statistics().waiting == 3
    with cond:
        state["go"] = True
        cond.notify(2)
    wait_all_threads_blocked(expected=1)
    with cond:
        cond.notify_all()
    for t in threads:
        t.join(timeout=5)
    assert woken == [True, True, True]
    with pytest.raises(RuntimeError):
        cond.notify()
    with pytest.raises(RuntimeError):
        cond.wait()


def test_wait_for_deadline(wait_all_threads_blocked: Callable[..., None]) -> None:
    cond = Condition()

    def body() -> None:
        with cond, timeout_after(0.05):
            cond.wait_for(lambda: False)

    with pytest.raises(ThreadError) as info:
        spawn(body).join(timeout=5)
    assert isinstance(info.value.__cause__, ThreadTimeout)
    assert cond.acquire(False)
    cond.release()


# -- Semaphore ---------------------------------------------------------------------


@pytest.mark.parametrize("semtype", [Semaphore, BoundedSemaphore])
def test_semaphore_counts_stay_exact_under_cancellation(
    semtype: type[Semaphore], wait_all_threads_blocked: Callable[..., None]
) -> None:
    sem = semtype(1)
    sem.acquire()
    got = []

    def waiter(name: str) -> None:
        with sem:
            got.append(name)

    a = spawn(waiter, "a")
    wait_all_threads_blocked(expected=1)
    b = spawn(waiter, "b")
    wait_all_threads_blocked(expected=2)
    assert sem.statistics() == threadpatch._sync.SemaphoreStatistics(value=0, waiting=2)
    assert _cancelled(a)
    assert sem.statistics().value == 0
    sem.release()
    b.join(timeout=5)
    assert got == ["b"]
    assert sem.statistics().value == 1


def test_semaphore_release_to_cancelled_waiter_is_passed_on(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    sem, got = Semaphore(0), []
    a = spawn(lambda: got.append(sem.acquire(timeout=10)))
    wait_all_threads_blocked(expected=1)
    b = spawn(lambda: got.append(sem.acquire(timeout=10)))
    wait_all_threads_blocked(expected=2)
    with sem._cond:  # cancel "a", then release to it before it can leave
        a.cancel(blocking=False)
        sem._value += 1
        sem._cond.notify(1)
    assert a.wait(5)
    assert a.cancelled
    b.join(timeout=5)
    assert got == [True]
    assert sem._value == 0


def _call_cancelled_while_another_thread_is_inside(
    cond: Condition, call: Callable[[], object]
) -> None:
    """Run ``call`` in a cancelled thread while this thread holds ``cond`` (the primitive's own).

    The cancelled thread must wait for the lock -- a few statements of
    another thread, not a blocking wait -- and then complete ``call``.
    """
    outcome: list[BaseException | None] = []

    def body() -> None:
        threadpatch.current().cancel()  # recorded: raised at the next blocking point
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    def ended_or_waits_for_the_lock() -> bool:
        frame = sys._current_frames().get(t.ident or 0)
        return t.done() or (frame is not None and frame.f_code is Condition.__enter__.__code__)

    with cond:
        t = spawn(body)
        wait_until(ended_or_waits_for_the_lock, message="the thread ended or waiting for the lock")
    t.join(timeout=10)
    assert outcome == [None]


@pytest.mark.parametrize("semtype", [Semaphore, BoundedSemaphore])
def test_cancelled_thread_releases_a_semaphore_another_thread_is_inside(
    semtype: type[Semaphore],
) -> None:
    # ``with sem:`` in a cancelled thread: the release is clean-up and must not
    # be lost because another thread was in acquire() or release() just then.
    sem = semtype(1)
    sem.acquire()
    _call_cancelled_while_another_thread_is_inside(sem._cond, sem.release)
    assert sem.statistics().value == 1


def test_cancelled_thread_sets_an_event_another_thread_is_inside() -> None:
    ev = Event()
    _call_cancelled_while_another_thread_is_inside(ev._cond, ev.set)
    assert ev.is_set()


def test_cancelled_thread_aborts_a_barrier_another_thread_is_inside() -> None:
    barrier = Barrier(2)
    _call_cancelled_while_another_thread_is_inside(barrier._cond, barrier.abort)
    assert barrier.broken


def test_semaphore_arguments() -> None:
    with pytest.raises(ValueError, match="initial value"):
        Semaphore(-1)
    sem = BoundedSemaphore(1)
    with pytest.raises(ValueError, match="non-blocking"):
        sem.acquire(False, 1)
    with pytest.raises(ValueError, match="too many"):
        sem.release()
    with pytest.raises(ValueError, match="one or more"):
        sem.release(0)


# -- Event -------------------------------------------------------------------------


def test_event_cancel_before_during_after(wait_all_threads_blocked: Callable[..., None]) -> None:
    ev = Event()
    t = spawn(ev.wait)
    wait_all_threads_blocked(expected=1)
    assert ev.statistics() == threadpatch._sync.EventStatistics(is_set=False, waiting=1)
    assert _cancelled(t)  # during
    assert ev.statistics().waiting == 0

    def before() -> bool:
        threadpatch.current().cancel()
        return ev.wait()

    t = spawn(before)
    assert t.wait(5)
    assert t.cancelled
    ev.set()
    t = spawn(ev.wait)
    assert t.join(timeout=5) is True
    assert t.cancel()
    assert not t.cancelled
    assert ev.wait(0) is True


def test_event_deadline_and_timeout() -> None:
    ev = Event()
    assert ev.wait(0.01) is False
    with pytest.raises(ThreadTimeout), timeout_after(0.02):
        ev.wait()


def test_event_set_wakes_everyone(wait_all_threads_blocked: Callable[..., None]) -> None:
    ev = Event()
    threads = [spawn(ev.wait, 10) for _ in range(4)]
    wait_all_threads_blocked(expected=4)
    ev.set()
    assert [t.join(timeout=5) for t in threads] == [True] * 4
    ev.clear()
    assert not ev.is_set()


# -- Barrier -----------------------------------------------------------------------


def test_cancelled_party_breaks_the_barrier(wait_all_threads_blocked: Callable[..., None]) -> None:
    barrier = Barrier(3)
    outcome: list[str] = []

    def party() -> None:
        try:
            barrier.wait()
        except BrokenBarrierError:
            outcome.append("broken")

    a = spawn(party)
    b = spawn(barrier.wait)
    wait_all_threads_blocked(expected=2)
    assert barrier.statistics() == threadpatch._sync.BarrierStatistics(3, 2, False)
    assert _cancelled(b)
    a.join(timeout=5)
    assert outcome == ["broken"]
    assert barrier.broken
    barrier.reset()
    assert not barrier.broken


def test_barrier_trips_and_reports_indices(wait_all_threads_blocked: Callable[..., None]) -> None:
    actions = []
    barrier = Barrier(3, action=lambda: actions.append(1))
    threads = [spawn(barrier.wait, 10) for _ in range(2)]
    wait_all_threads_blocked(expected=2)
    mine = barrier.wait()
    indices = sorted([mine, *(t.join(timeout=5) for t in threads)])
    assert indices == [0, 1, 2]
    assert actions == [1]
    assert barrier.parties == 3
    assert barrier.n_waiting == 0


def test_barrier_deadline_breaks_it() -> None:
    barrier = Barrier(2)
    with pytest.raises(ThreadTimeout), timeout_after(0.02):
        barrier.wait()
    assert barrier.broken


def test_at_fork_reinit_resets(locks: LockPair) -> None:
    Lock, RLock = locks
    lock, rlock, ev = Lock(), RLock(), Event()
    lock.acquire()
    rlock.acquire()
    lock._at_fork_reinit()
    rlock._at_fork_reinit()
    ev._at_fork_reinit()
    assert not lock.locked()
    assert not rlock._is_owned()
    assert ev.wait(0) is False


class _RLockInterruptedInRestore:
    """An RLock whose ``_acquire_restore`` meets a Ctrl-C once, before or after taking it."""

    def __init__(self, after: bool) -> None:
        self._rlock = RLock()
        self._after = after
        self.interrupted = False
        self.acquire = self._rlock.acquire
        self.release = self._rlock.release
        self._is_owned = self._rlock._is_owned
        self._release_save = self._rlock._release_save
        self.__enter__ = self._rlock.__enter__

    def __exit__(self, *exc_info: object) -> None:
        self._rlock.release()

    def _acquire_restore(self, saved: object) -> None:
        if not self.interrupted and not self._after:
            self.interrupted = True
            raise KeyboardInterrupt
        self._rlock._acquire_restore(saved)
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt

    def depth(self) -> int:
        return int(self._rlock._recursion_count())


@pytest.mark.parametrize("after", [False, True], ids=["before-taking", "after-taking"])
def test_condition_wait_holds_the_lock_when_ctrl_c_lands_in_the_reacquire(after: bool) -> None:
    # A KeyboardInterrupt raised while wait() takes its lock back must leave
    # the lock held exactly as before the wait, so that ``with cond:`` exits
    # cleanly and the interrupt (not "release unlocked lock") propagates.
    lock = _RLockInterruptedInRestore(after)
    cond = Condition(lock)  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt), cond:
        with cond:
            cond.wait(0)  # releases and takes the lock back at once
        raise AssertionError("not reached")  # pragma: no cover
    assert lock.interrupted
    assert lock.depth() == 0  # both ``with`` blocks released: held twice, then never
