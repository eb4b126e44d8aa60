"""Thread groups: the four wait policies, streaming results, failures, exit guarantees."""

from __future__ import annotations

import threading

import pytest

from threadpatch import (
    ThreadCancelled,
    ThreadError,
    ThreadGroup,
    ThreadTimeout,
    sleep,
    spawn,
    timeout_after,
)


def _returns_after(gate: threading.Event, value: object) -> object:
    while not gate.is_set():
        sleep(0.001)
    return value


def test_wait_all_collects_results_in_spawn_order() -> None:
    with ThreadGroup() as g:
        for i in range(5):
            g.spawn(lambda i=i: i * i)
    assert g.results == [0, 1, 4, 9, 16]
    assert g.exceptions == [None] * 5
    assert g.completed is None
    with pytest.raises(RuntimeError, match="wait=any"):
        _ = g.result


def test_wait_any_first_finisher_wins_rest_cancelled(wait_all_threads_blocked) -> None:
    fast = threading.Event()
    with ThreadGroup(wait=any) as g:
        slow1 = g.spawn(sleep, 60)
        winner = g.spawn(_returns_after, fast, "fast")
        slow2 = g.spawn(sleep, 60)
        fast.set()
    assert g.completed is winner
    assert g.result == "fast"
    assert slow1.cancelled
    assert slow2.cancelled
    with pytest.raises(ThreadError):
        _ = g.results


def test_wait_any_skips_cancelled_members(wait_all_threads_blocked) -> None:
    gate = threading.Event()
    with ThreadGroup(wait=any) as g:
        victim = g.spawn(sleep, 60)
        winner = g.spawn(_returns_after, gate, 1)
        wait_all_threads_blocked()
        victim.cancel()
        gate.set()
    assert g.completed is winner


def test_wait_object_first_non_none_wins() -> None:
    gate = threading.Event()
    with ThreadGroup(wait=object) as g:
        g.spawn(lambda: None)
        winner = g.spawn(_returns_after, gate, "value")
        loser = g.spawn(sleep, 60)
        gate.set()
    assert g.completed is winner
    assert g.result == "value"
    assert loser.cancelled


def test_wait_none_cancels_everything_on_exit(wait_all_threads_blocked) -> None:
    with ThreadGroup(wait=None) as g:
        threads = [g.spawn(sleep, 60) for _ in range(3)]
        wait_all_threads_blocked()
    assert all(t.cancelled for t in threads)


def test_failure_cancels_rest_and_raises_exception_group() -> None:
    with pytest.raises(ExceptionGroup) as info:
        with ThreadGroup() as g:
            sleeper = g.spawn(sleep, 60)
            g.spawn(lambda: 1 / 0)
    assert [type(e) for e in info.value.exceptions] == [ZeroDivisionError]
    assert sleeper.cancelled


def test_base_exception_failure_gives_base_exception_group() -> None:
    def exit_() -> None:
        raise SystemExit(3)

    with pytest.raises(BaseExceptionGroup) as info, ThreadGroup() as g:
        g.spawn(exit_)
    assert not isinstance(info.value, ExceptionGroup)
    assert isinstance(info.value.exceptions[0], SystemExit)


def test_wait_any_first_finisher_failed_is_a_failure() -> None:
    with pytest.raises(ExceptionGroup), ThreadGroup(wait=any) as g:
        g.spawn(lambda: 1 / 0)
        g.spawn(sleep, 60)


def test_cancelled_member_is_never_a_failure(wait_all_threads_blocked) -> None:
    with ThreadGroup() as g:
        t = g.spawn(sleep, 60)
        g.spawn(lambda: 5)
        wait_all_threads_blocked()
        t.cancel()
    assert isinstance(g.exceptions[0], ThreadCancelled)


def test_next_done_and_next_result_stream_in_completion_order() -> None:
    gates = [threading.Event() for _ in range(3)]
    with ThreadGroup() as g:
        threads = [g.spawn(_returns_after, gate, i) for i, gate in enumerate(gates)]
        order = []
        for i in (2, 0, 1):
            gates[i].set()
            order.append(g.next_done(timeout=10))
        assert order == [threads[2], threads[0], threads[1]]
        assert g.next_done() is None
    with ThreadGroup() as g2:
        g2.spawn(lambda: "r")
        assert g2.next_result(timeout=10) == "r"
        with pytest.raises(RuntimeError, match="no threads left"):
            g2.next_result()


def test_next_result_raises_thread_error_for_failed_member() -> None:
    with pytest.raises(ExceptionGroup), ThreadGroup() as g:
        g.spawn(lambda: 1 / 0)
        with pytest.raises(ThreadError):
            g.next_result(timeout=10)


def test_next_done_timeout(wait_all_threads_blocked) -> None:
    with ThreadGroup(wait=None) as g:
        g.spawn(sleep, 60)
        wait_all_threads_blocked()
        with pytest.raises(ThreadTimeout):
            g.next_done(timeout=0.01)


def test_iteration_yields_every_member() -> None:
    with ThreadGroup() as g:
        for i in range(4):
            g.spawn(lambda i=i: i)
        got = sorted(t.result for t in g)
    assert got == [0, 1, 2, 3]


def test_body_exception_cancels_members(wait_all_threads_blocked) -> None:
    with pytest.raises(KeyError), ThreadGroup() as g:
        t = g.spawn(sleep, 60)
        wait_all_threads_blocked()
        raise KeyError("body")
    assert t.cancelled


def test_cancelled_body_leaves_no_member_running(wait_all_threads_blocked) -> None:
    members = []

    def body() -> None:
        with ThreadGroup() as g:
            members.append(g.spawn(sleep, 60))
            members.append(g.spawn(sleep, 60))
        # exits at the group's exit wait when cancelled

    t = spawn(body)
    wait_all_threads_blocked(expected=3)
    t.cancel(timeout=10)
    assert t.cancelled
    assert all(m.done() and m.cancelled for m in members)


def test_deadline_on_group_exit_cancels_members() -> None:
    with pytest.raises(ThreadTimeout), timeout_after(0.05), ThreadGroup() as g:
        t = g.spawn(sleep, 60)
    assert t.cancelled


def test_add_existing_thread_and_bad_input() -> None:
    t = spawn(lambda: 3)
    with ThreadGroup([t]) as g:
        pass
    assert g.results == [3]
    with pytest.raises(ValueError, match="wait must be"):
        ThreadGroup(wait="all")
    with pytest.raises(TypeError):
        ThreadGroup().add(object())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="exited"):
        g.spawn(print)


def test_member_finishing_before_add_is_judged() -> None:
    t = spawn(lambda: 1 / 0)
    t.wait(timeout=10)
    with pytest.raises(ExceptionGroup), ThreadGroup() as g:
        g.add(t)
