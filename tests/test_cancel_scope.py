"""CancelScope: cancel a block from any thread, deadlines on the threadpatch clock, shields.

Deadline tests run on a virtual clock (``mock_clock`` / ``autojump_clock``) so an
expiry comes exactly when the test says; cancels from other threads wait for the
canceller's target to be parked (``wait_all_threads_blocked``), never for a time.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

import pytest

import threadpatch
from threadpatch import (
    CancelScope,
    DeadlineExpired,
    DeadlineScope,
    ScopeCancelled,
    ThreadCancelled,
    ThreadTimeout,
    _core,
    current_time,
    ignore_after,
    shield,
    sleep,
    spawn,
    timeout_after,
)
from threadpatch import socket as tp_socket

if TYPE_CHECKING:
    from collections.abc import Callable

    from threadpatch.testing import MockClock


def _block_forever() -> None:
    threadpatch.Event().wait()  # only a cancellation ends it


def _cancel_when_blocked(scope: CancelScope, wait_blocked: Callable[..., None]) -> None:
    """From the test's thread: wait until the other thread parks, then cancel ``scope``."""
    wait_blocked(expected=1)
    scope.cancel()


# -- the basic contract ------------------------------------------------------------


def test_cancel_from_another_thread_ends_the_block_and_the_thread_goes_on(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    scope = CancelScope()
    log: list[object] = []

    def body() -> str:
        with scope:
            try:
                _block_forever()
            except Exception:  # legacy code cannot swallow it
                log.append("swallowed")
            finally:
                log.append("finally")
            log.append("not reached")
        sleep(0)  # the thread goes on, and its blocking calls work again
        threadpatch.Event().wait(0.001)
        return "after"

    t = spawn(body)
    _cancel_when_blocked(scope, wait_all_threads_blocked)
    assert t.join(timeout=10) == "after"
    assert log == ["finally"]
    assert scope.cancel_called
    assert scope.cancelled_caught


def test_the_operation_inside_raises_scope_cancelled_of_its_scope(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    scope = CancelScope()
    seen: list[BaseException] = []

    def body() -> None:
        with scope:
            try:
                _block_forever()
            except ThreadCancelled as exc:
                seen.append(exc)
                raise

    t = spawn(body)
    _cancel_when_blocked(scope, wait_all_threads_blocked)
    t.join(timeout=10)
    (exc,) = seen
    assert type(exc) is ScopeCancelled
    assert exc.scope is scope
    assert issubclass(DeadlineExpired, ScopeCancelled)


def test_cancel_before_entry_cancels_the_first_blocking_point() -> None:
    scope = CancelScope()
    scope.cancel()
    assert scope.cancel_called
    ran = []
    with scope:
        ran.append("body runs up to its first blocking point")
        sleep(60)
        ran.append("not reached")
    assert ran == ["body runs up to its first blocking point"]
    assert scope.cancelled_caught
    assert not _core.current_state().interrupt


def test_cancel_after_exit_is_a_no_op() -> None:
    with CancelScope() as scope:
        pass
    scope.cancel()
    scope.cancel()  # idempotent
    assert not scope.cancelled_caught
    assert not _core.current_state().interrupt
    threadpatch.Event().wait(0.001)  # nothing pending for this thread


def test_a_block_that_never_blocks_is_not_cut_short() -> None:
    with CancelScope() as scope:
        scope.cancel()  # cancelling itself: raised at the next blocking point
        total = sum(range(100))  # no blocking point: runs to the end
    assert total == 4950
    assert scope.cancel_called
    assert not scope.cancelled_caught
    assert not _core.current_state().interrupt


def test_cancellation_is_sticky_inside_the_scope_and_clean_up_works() -> None:
    lock = threadpatch.Lock()
    queue: threadpatch.Queue[int] = threadpatch.Queue(1)
    hits = 0
    with CancelScope() as scope:
        scope.cancel()
        for _ in range(3):
            try:
                sleep(1)
            except ScopeCancelled:
                hits += 1
        # What does not need to block still works (clean-up runs):
        assert lock.acquire()
        lock.release()
        queue.put_nowait(1)
        assert queue.get(timeout=5) == 1  # an item is there: no wait
        threadpatch.checkpoint()  # and a checkpoint always raises
    assert hits == 3
    assert scope.cancelled_caught


def test_checkpoint_raises_in_a_cancelled_scope() -> None:
    with CancelScope() as scope:
        scope.cancel()
        threadpatch.checkpoint()
        raise AssertionError("not reached")
    assert scope.cancelled_caught


def test_a_scope_is_entered_once() -> None:
    scope = CancelScope()
    with scope:
        pass
    with pytest.raises(RuntimeError, match="already been entered"), scope:
        pass


def test_exit_without_entry_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="without being entered"):
        CancelScope().__exit__(None, None, None)


def test_other_exceptions_pass_through_a_cancelled_scope() -> None:
    with pytest.raises(KeyError), CancelScope() as scope:
        scope.cancel()
        raise KeyError("x")
    assert not scope.cancelled_caught


def test_repr() -> None:
    scope = CancelScope(deadline=5, shield=True)
    assert repr(scope) == "<CancelScope(deadline=5, shield=True) new>"
    with scope:
        scope.cancel()
        assert "active, cancelled" in repr(scope)


def test_bad_deadline_is_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        CancelScope(deadline=math.nan)
    with pytest.raises(TypeError, match="deadline must be a number"):
        CancelScope(deadline="5")  # type: ignore[arg-type]
    scope = CancelScope()
    with pytest.raises(ValueError, match="NaN"):
        scope.deadline = math.nan
    assert scope.deadline == math.inf


# -- nesting ------------------------------------------------------------------------


def test_cancelling_the_inner_scope_leaves_the_outer_alone() -> None:
    with CancelScope() as outer:
        with CancelScope() as inner:
            inner.cancel()
            sleep(1)
        sleep(0)
        threadpatch.Event().wait(0.001)
    assert inner.cancelled_caught
    assert not outer.cancel_called
    assert not outer.cancelled_caught


def test_an_outer_cancellation_passes_through_the_inner_scope(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    outer = CancelScope()
    inner_saw: list[object] = []

    def body() -> None:
        with outer:
            with CancelScope() as inner:
                try:
                    _block_forever()
                except ScopeCancelled as exc:
                    inner_saw.append(exc.scope)
                    raise
            inner_saw.append(("inner caught it", inner.cancelled_caught))

    t = spawn(body)
    _cancel_when_blocked(outer, wait_all_threads_blocked)
    t.join(timeout=10)
    assert inner_saw == [outer]
    assert outer.cancelled_caught


def test_when_both_are_cancelled_the_outermost_wins() -> None:
    with CancelScope() as outer:
        with CancelScope() as inner:
            inner.cancel()
            outer.cancel()
            sleep(1)
    assert outer.cancelled_caught
    assert not inner.cancelled_caught


def test_a_thread_cancel_passes_through_every_scope(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    scopes: list[CancelScope] = []

    def body() -> None:
        with CancelScope() as a, CancelScope() as b:
            scopes.extend([a, b])
            _block_forever()

    t = spawn(body)
    wait_all_threads_blocked(expected=1)
    assert t.cancel(timeout=10)
    assert type(t.exception) is ThreadCancelled
    assert not any(s.cancelled_caught for s in scopes)


def test_deadline_scopes_nest_with_cancel_scopes(autojump_clock: MockClock) -> None:
    with CancelScope() as outer, pytest.raises(ThreadTimeout), timeout_after(10):
        sleep(60)
    assert not outer.cancel_called
    with timeout_after(10) as deadline, CancelScope() as inner:
        inner.cancel()
        sleep(60)
    assert inner.cancelled_caught
    assert not deadline.expired


# -- deadlines ------------------------------------------------------------------------


def test_current_time_is_the_hub_clock(mock_clock: MockClock) -> None:
    start = current_time()
    assert start == mock_clock.time()
    mock_clock.jump(5)
    assert current_time() == start + 5


def test_deadline_cancels_the_scope_exactly(autojump_clock: MockClock) -> None:
    start = current_time()
    with CancelScope(deadline=start + 30) as scope:
        assert scope.deadline == start + 30
        _block_forever()
    assert current_time() == start + 30
    assert scope.cancel_called
    assert scope.cancelled_caught


def test_a_passed_deadline_cancels_at_the_first_blocking_point(mock_clock: MockClock) -> None:
    with CancelScope(deadline=current_time() - 1) as scope:
        assert scope.cancel_called
        sleep(1)
    assert scope.cancelled_caught


def test_no_deadline_is_infinite() -> None:
    assert CancelScope().deadline == math.inf
    assert CancelScope(None).deadline == math.inf


def test_moving_the_deadline_later(mock_clock: MockClock) -> None:
    start = current_time()
    with CancelScope(deadline=start + 10) as scope:
        scope.deadline = start + 20
        mock_clock.jump(15)  # the old deadline's timer, if it fires, is ignored
        threadpatch.checkpoint()
        assert not scope.cancel_called
        mock_clock.jump(5)
        assert scope.cancel_called
        threadpatch.checkpoint()
    assert scope.cancelled_caught


def test_moving_the_deadline_earlier_and_into_the_past(mock_clock: MockClock) -> None:
    start = current_time()
    with CancelScope(deadline=start + 100) as scope:
        scope.deadline = start + 5
        mock_clock.jump(5)
        assert scope.cancel_called
        threadpatch.checkpoint()
    assert scope.cancelled_caught
    with CancelScope() as scope2:
        scope2.deadline = current_time() - 1  # passed: cancelled at once
        assert scope2.cancel_called
        sleep(1)
    assert scope2.cancelled_caught


def test_removing_the_deadline(mock_clock: MockClock) -> None:
    hub = _core.get_hub()
    pending = hub.pending_timers()
    with CancelScope(deadline=current_time() + 10) as scope:
        assert hub.pending_timers() == pending + 1
        scope.deadline = math.inf
        assert hub.pending_timers() == pending
        mock_clock.jump(20)
        threadpatch.checkpoint()
    assert not scope.cancel_called
    assert hub.pending_timers() == pending


def test_the_timer_goes_with_the_scope() -> None:
    hub = _core.get_hub()
    pending = hub.pending_timers()
    with CancelScope(deadline=current_time() + 1000) as scope:
        assert hub.pending_timers() == pending + 1
    assert hub.pending_timers() == pending
    scope.deadline = current_time() + 500  # after exit: only recorded
    assert scope.deadline > current_time()
    assert hub.pending_timers() == pending


def test_another_thread_moves_the_deadline_of_a_blocked_thread(
    mock_clock: MockClock, wait_all_threads_blocked: Callable[..., None]
) -> None:
    scope = CancelScope()

    def body() -> bool:
        with scope:
            _block_forever()
        return scope.cancelled_caught

    t = spawn(body)
    wait_all_threads_blocked(expected=1)
    scope.deadline = current_time() + 10
    mock_clock.jump(10)
    assert t.join(timeout=10) is True


# -- shields ---------------------------------------------------------------------------


def test_shield_is_a_cancel_scope() -> None:
    with shield() as s:
        assert isinstance(s, CancelScope)
        assert s.shield
        assert s.deadline == math.inf


def test_a_shielded_scope_holds_off_outer_cancellation_but_not_its_own() -> None:
    log = []
    with CancelScope() as outer:
        outer.cancel()
        with CancelScope(shield=True) as inner:
            sleep(0.001)  # not interrupted: the outer cancel is held off
            log.append("shielded sleep finished")
            inner.cancel()
            sleep(60)  # its own cancellation applies
        log.append("inner caught its own")
        sleep(60)  # the outer one, pending all along
    assert log == ["shielded sleep finished", "inner caught its own"]
    assert inner.cancelled_caught
    assert outer.cancelled_caught


def test_a_shield_holds_off_a_thread_cancel_until_it_ends(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    entered = threading.Event()
    release = threadpatch.Event()
    log = []

    def body() -> None:
        with CancelScope(shield=True):
            entered.set()
            release.wait()  # the cancel comes while this waits: held off
            log.append("shielded wait finished")
        _block_forever()

    t = spawn(body)
    assert entered.wait(10)
    wait_all_threads_blocked(expected=1)
    t.cancel(blocking=False)
    wait_all_threads_blocked(expected=1)  # still parked: the cancel did not end the wait
    release.set()
    assert t.wait(timeout=10)
    assert t.cancelled
    assert log == ["shielded wait finished"]


def test_lifting_the_shield_from_another_thread_delivers_what_is_pending(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    outer = CancelScope()
    inner = CancelScope(shield=True)

    def body() -> None:
        with outer, inner:
            _block_forever()

    t = spawn(body)
    wait_all_threads_blocked(expected=1)
    outer.cancel()
    wait_all_threads_blocked(expected=1)  # held off by the shield
    inner.shield = False
    t.join(timeout=10)
    assert outer.cancelled_caught
    assert not inner.shield


# -- deadline scopes are cancel scopes ----------------------------------------------------


@pytest.mark.parametrize(
    "make", [timeout_after, ignore_after], ids=["timeout_after", "ignore_after"]
)
def test_a_deadline_scope_can_be_cancelled_without_a_timeout(
    make: Callable[[float], DeadlineScope],
) -> None:
    with make(60) as scope:
        assert isinstance(scope, CancelScope)
        scope.cancel()
        sleep(60)
    assert scope.cancelled_caught
    assert not scope.expired


def test_a_deadline_scope_deadline_can_be_moved(autojump_clock: MockClock) -> None:
    start = current_time()
    with pytest.raises(ThreadTimeout), timeout_after(60) as scope:
        assert scope.deadline == start + 60
        scope.deadline = start + 5
        sleep(60)
    assert current_time() == start + 5
    assert scope.expired
    assert scope.cancelled_caught


# -- blocking points of every kind -----------------------------------------------------


def test_a_socket_wait_is_cancelled(wait_all_threads_blocked: Callable[..., None]) -> None:
    a, b = tp_socket.socketpair()
    scope = CancelScope()

    def body() -> bytes:
        with scope:
            return a.recv(1)
        b.sendall(b"!")
        return a.recv(1)  # the socket still works afterwards

    with a, b:
        t = spawn(body)
        _cancel_when_blocked(scope, wait_all_threads_blocked)
        assert t.join(timeout=10) == b"!"
    assert scope.cancelled_caught


def test_a_plain_thread_can_use_a_scope(wait_all_threads_blocked: Callable[..., None]) -> None:
    scope = CancelScope()
    result = []

    def body() -> None:
        with scope:
            _block_forever()
        result.append(scope.cancelled_caught)

    t = threading.Thread(target=body)
    t.start()
    _cancel_when_blocked(scope, wait_all_threads_blocked)
    t.join(10)
    assert result == [True]


# -- the races ----------------------------------------------------------------------------


class _CancelsWhileBeingRead:
    """A scope whose ``cancel_called`` cancels another scope the moment it is read.

    Placed after ``victim`` in ``state.scopes``, it runs the cancel exactly
    between ``recompute_interrupt`` reading ``victim.cancel_called`` (False)
    and writing the flag: the interleaving of a cancel from another thread
    racing the owner's scope exit.
    """

    shield = False
    delivered = False

    def __init__(self, victim: CancelScope) -> None:
        self.victim = victim
        self.fired = False

    @property
    def cancel_called(self) -> bool:
        if not self.fired:
            self.fired = True
            self.victim.cancel()
        return False

    def _error(self) -> ThreadCancelled:  # pragma: no cover - never cancelled
        raise AssertionError


def _recompute_with(state: _core.ThreadState, racer: _CancelsWhileBeingRead) -> None:
    """One ``recompute_interrupt`` with ``racer`` innermost, as a scope exit that found it set."""
    state.scopes.append(racer)  # type: ignore[arg-type]
    try:
        state.interrupt = True
        state.recompute_interrupt()
    finally:
        state.scopes.remove(racer)  # type: ignore[arg-type]
    assert racer.fired


def test_a_cancel_racing_the_recompute_is_not_lost() -> None:
    state = _core.current_state()
    with CancelScope() as victim:
        _recompute_with(state, _CancelsWhileBeingRead(victim))
        assert victim.cancel_called
        assert state.interrupt, "the victim's cancel was lost"
        threadpatch.Event().wait()  # raised here, not a hang
    assert victim.cancelled_caught


def test_a_thread_cancel_racing_the_recompute_is_not_lost(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    def body() -> None:
        state = _core.current_state()

        class Racer(_CancelsWhileBeingRead):
            @property
            def cancel_called(self) -> bool:
                if not self.fired:
                    self.fired = True
                    state.request_cancel()
                return False

        _recompute_with(state, Racer(CancelScope()))
        _block_forever()  # the cancel that came during the exit ends this

    t = spawn(body)
    assert t.wait(timeout=10)
    assert t.cancelled


def test_cancels_from_another_thread_racing_scope_exits_are_never_lost() -> None:
    # Real threads: a canceller cancels the outer scope at an arbitrary moment
    # while the owner enters and exits inner scopes (each exit recomputes the
    # flag).  A lost cancel would leave the final wait blocked: bounded by the
    # join's timeout.  200 rounds, each ending with the cancel delivered.
    rounds = 200
    for _ in range(rounds):
        outer = CancelScope()
        ready = threading.Event()

        def owner(outer: CancelScope = outer, ready: threading.Event = ready) -> bool:
            with outer:
                ready.set()
                for _ in range(1000):
                    with CancelScope():
                        pass
                    if outer.cancel_called:
                        break
                threadpatch.Event().wait()
            return outer.cancelled_caught

        t = spawn(owner)
        assert ready.wait(10)
        outer.cancel()
        assert t.join(timeout=10) is True


def test_a_cancel_racing_the_entry_is_never_lost() -> None:
    for _ in range(200):
        scope = CancelScope()
        go = threading.Barrier(2)

        def owner(scope: CancelScope = scope, go: threading.Barrier = go) -> bool:
            go.wait(10)
            with scope:
                threadpatch.Event().wait()
            return scope.cancelled_caught

        t = spawn(owner)
        go.wait(10)
        scope.cancel()  # before, during or after the owner's entry
        assert t.join(timeout=10) is True
