"""Deadlines: timeout_after / ignore_after in both forms, nesting, shields.

Most tests run on a virtual clock (``mock_clock``: it moves by ``jump()``;
``autojump_clock``: it jumps to the next deadline once every thread waits),
so a deadline expires exactly when the test says, whatever the machine's
load; a few keep real time, end to end.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

import threadpatch
from threadpatch import (
    DeadlineExpired,
    ThreadCancelled,
    ThreadTimeout,
    _core,
    ignore_after,
    shield,
    sleep,
    spawn,
    timeout_after,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from threadpatch.testing import MockClock


def test_timeout_after_raises_thread_timeout() -> None:  # real time, end to end
    with pytest.raises(ThreadTimeout) as info, timeout_after(0.01):
        sleep(60)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value.__cause__, DeadlineExpired)


def test_timeout_after_expires_exactly_on_the_virtual_clock(autojump_clock: MockClock) -> None:
    start = autojump_clock.time()
    with pytest.raises(ThreadTimeout), timeout_after(60) as scope:
        assert scope.deadline == start + 60
        threadpatch.Event().wait()  # only the deadline can end this
    assert autojump_clock.time() == start + 60


def test_operation_inside_sees_a_thread_cancelled_subclass(autojump_clock: MockClock) -> None:
    seen = []
    with pytest.raises(ThreadTimeout), timeout_after(10):
        try:
            sleep(60)
        except Exception:  # legacy code cannot swallow it
            seen.append("swallowed")
        except ThreadCancelled as exc:
            seen.append(type(exc))
            raise
    assert seen == [DeadlineExpired]


def test_call_forms(autojump_clock: MockClock) -> None:
    start = autojump_clock.time()
    assert timeout_after(5, lambda x: x * 2, 21) == 42
    with pytest.raises(ThreadTimeout):
        timeout_after(10, sleep, 60)
    assert ignore_after(5, lambda: "done") == "done"
    assert ignore_after(10, sleep, 60) is None
    assert autojump_clock.time() == start + 20


def test_ignore_after_swallows_and_reports_expired(autojump_clock: MockClock) -> None:
    with ignore_after(10) as scope:
        sleep(60)
    assert scope.expired
    with ignore_after(5) as scope2:
        sleep(0)
    assert not scope2.expired


def test_no_expiry_when_body_finishes_in_time(mock_clock: MockClock) -> None:
    with timeout_after(30):
        mock_clock.jump(29.999)  # every timer due by now has fired: not this one
        threadpatch.checkpoint()
    assert _core.current_state().scopes == []
    assert not _core.current_state().interrupt


def test_expiry_comes_exactly_at_the_deadline(mock_clock: MockClock) -> None:
    with pytest.raises(ThreadTimeout), timeout_after(30):
        mock_clock.jump(29.5)
        assert not _core.current_state().interrupt
        mock_clock.jump(0.5)  # the hub has marked this thread when jump() returns
        assert _core.current_state().interrupt
        threadpatch.checkpoint()


def test_zero_timeout_expires_at_first_blocking_point() -> None:
    with pytest.raises(ThreadTimeout), timeout_after(0):
        sleep(1)


def test_expiry_is_sticky_inside_the_scope(autojump_clock: MockClock) -> None:
    hits = []
    with pytest.raises(ThreadTimeout), timeout_after(10):
        for _ in range(3):
            try:
                sleep(60)
            except DeadlineExpired:
                hits.append(1)
    assert hits == [1, 1, 1]  # the body caught them all; the scope still reports it


def test_nested_inner_earlier_is_caught_by_inner(mock_clock: MockClock) -> None:
    with timeout_after(30) as outer:
        with pytest.raises(ThreadTimeout), timeout_after(10):
            mock_clock.jump(10)
            threadpatch.checkpoint()
        mock_clock.jump(19)
        threadpatch.checkpoint()  # the outer scope is unaffected
    assert not outer.expired


def test_nested_outer_earlier_passes_through_inner(autojump_clock: MockClock) -> None:
    inner_saw = []
    with pytest.raises(ThreadTimeout) as info, timeout_after(10) as outer:
        try:
            with timeout_after(30):
                sleep(60)
        except ThreadTimeout:
            inner_saw.append("inner raised ThreadTimeout: wrong")
        except DeadlineExpired as exc:
            inner_saw.append(exc.scope)
            raise
    assert inner_saw == [outer]
    assert info.value.__cause__.scope is outer  # type: ignore[union-attr]


def test_both_expired_outermost_wins(mock_clock: MockClock) -> None:
    with pytest.raises(ThreadTimeout), timeout_after(10) as outer:
        with timeout_after(10) as inner:
            mock_clock.jump(10)  # both deadlines pass while not blocked here
            try:
                threadpatch.checkpoint()
            except DeadlineExpired as exc:
                assert exc.scope is outer
                raise
    assert outer.expired
    assert not inner.expired


def test_ignore_after_inside_timeout_after(autojump_clock: MockClock) -> None:
    start = autojump_clock.time()
    with timeout_after(30) as outer:
        with ignore_after(10) as quiet:
            sleep(60)
        assert quiet.expired
        sleep(1)
    assert not outer.expired
    assert autojump_clock.time() == start + 11


def test_timeout_inside_ignore_after_outer_expiry(autojump_clock: MockClock) -> None:
    with ignore_after(10) as outer, timeout_after(30):
        sleep(60)
    assert outer.expired


def test_thread_cancel_beats_deadline(wait_all_threads_blocked) -> None:
    def body() -> None:
        with timeout_after(60):
            sleep(60)

    t = spawn(body)
    wait_all_threads_blocked()
    t.cancel(timeout=10)
    assert t.cancelled
    assert type(t.exception) is ThreadCancelled


def test_shield_holds_off_deadline(mock_clock: MockClock) -> None:
    log = []
    with pytest.raises(ThreadTimeout), timeout_after(10):
        with shield():
            mock_clock.jump(10)  # the deadline passes inside the shield
            threadpatch.Event().wait(0.001)  # a blocking point: not interrupted
            threadpatch.checkpoint()
            log.append("shielded block finished")
        threadpatch.checkpoint()
    assert log == ["shielded block finished"]


def test_shield_holds_off_deadline_in_real_time() -> None:  # end to end
    log = []
    with pytest.raises(ThreadTimeout), timeout_after(0.01):
        with shield():
            sleep(0.05)  # not interrupted
            log.append("shielded sleep finished")
        sleep(60)
    assert log == ["shielded sleep finished"]


def test_deadline_inside_shield_still_applies(autojump_clock: MockClock) -> None:
    with shield(), pytest.raises(ThreadTimeout), timeout_after(10):
        sleep(60)


def test_scope_cannot_be_entered_twice() -> None:
    scope = timeout_after(10)
    with scope:
        pass
    with pytest.raises(RuntimeError, match="already been entered"), scope:
        pass


def test_timer_is_cancelled_on_exit() -> None:
    hub = _core.get_hub()
    with timeout_after(1000):
        pass
    pending = hub.pending_timers()
    with timeout_after(1000):
        assert hub.pending_timers() == pending + 1
    assert hub.pending_timers() == pending


def test_deadline_in_another_thread_does_not_leak(autojump_clock: MockClock) -> None:
    def body() -> str:
        with ignore_after(10):
            sleep(60)
        sleep(1)  # the expired scope is gone: this sleep completes
        return "ok"

    assert spawn(body).join(timeout=10) == "ok"


def test_a_deadline_in_another_thread_fires_when_the_clock_reaches_it(
    mock_clock: MockClock, wait_all_threads_blocked: Callable[..., None]
) -> None:
    started = threading.Event()

    def body() -> None:
        with timeout_after(60):
            started.set()
            threadpatch.Event().wait()

    t = spawn(body)
    assert started.wait(10)
    wait_all_threads_blocked()
    mock_clock.jump(59)
    assert not t._state.interrupt
    mock_clock.jump(1)
    assert t.wait(timeout=10)
    assert isinstance(t.exception, ThreadTimeout)


def test_exception_in_body_passes_through_scope() -> None:
    with pytest.raises(KeyError), timeout_after(10):
        raise KeyError("x")
