"""The cancellable ``threading.Thread.join`` that the threading patch installs."""

from __future__ import annotations

import threading

import pytest

import threadpatch
from tests._helpers import wait_until
from threadpatch import _threading
from threadpatch._core import _natives


def _blocked_plain_thread() -> tuple[threading.Thread, object]:
    gate = _natives.allocate_lock()
    gate.acquire()

    def body() -> None:
        gate.acquire()  # native: only release() ends it

    t = threading.Thread(target=body, name="blocked-plain")
    t.start()
    return t, gate


def test_join_of_a_finished_thread_returns() -> None:
    t = threading.Thread(target=lambda: None)
    t.start()
    _threading.join(t)
    _threading.join(t, 0)
    assert not t.is_alive()


def test_join_errors_are_the_stdlibs() -> None:
    t = threading.Thread(target=lambda: None)
    with pytest.raises(RuntimeError, match="before it is started"):
        _threading.join(t)
    with pytest.raises(RuntimeError, match="cannot join current thread"):
        _threading.join(threading.current_thread())


def test_join_with_timeout_returns_while_alive() -> None:
    t, gate = _blocked_plain_thread()
    try:
        _threading.join(t, 0.02)
        _threading.join(t, -1)  # negative: like 0
        assert t.is_alive()
    finally:
        gate.release()  # type: ignore[attr-defined]
        _threading.join(t, 10)
    assert not t.is_alive()


def test_joiner_is_cancellable(wait_all_threads_blocked: object) -> None:
    t, gate = _blocked_plain_thread()
    try:
        joiner = threadpatch.spawn(_threading.join, t)
        wait_all_threads_blocked(expected=1)  # type: ignore[operator]
        assert joiner.cancel(timeout=5)
        assert joiner.cancelled
        assert t.is_alive()  # the awaited thread is not affected
    finally:
        gate.release()  # type: ignore[attr-defined]
        t.join(10)


def test_join_times_out_under_timeout_after() -> None:
    t, gate = _blocked_plain_thread()
    try:
        with pytest.raises(threadpatch.ThreadTimeout):
            threadpatch.timeout_after(0.02, _threading.join, t)
    finally:
        gate.release()  # type: ignore[attr-defined]
        t.join(10)


def test_join_returns_when_the_thread_ends(wait_all_threads_blocked: object) -> None:
    t, gate = _blocked_plain_thread()
    joiner = threadpatch.spawn(_threading.join, t)
    wait_all_threads_blocked(expected=1)  # type: ignore[operator]
    gate.release()  # type: ignore[attr-defined]
    joiner.join(timeout=10)
    assert not t.is_alive()


def test_join_of_a_cancelled_plain_thread_returns_when_it_ends() -> None:
    # The cancel made a threadpatch state for the thread, which it never
    # binds (it never uses threadpatch again): that state cannot say when the
    # thread ends, so the joiner must not wait for it to.
    t, gate = _blocked_plain_thread()
    assert threadpatch.cancel(t, blocking=False) is False
    joiner = threadpatch.spawn(_threading.join, t)
    # The joiner waits in join (the other thread never parks).
    wait_until(lambda: joiner._state.parked, message="the joiner waiting in join")
    gate.release()  # type: ignore[attr-defined]
    assert joiner.wait(timeout=10), "join() of the ended thread never returned"
    assert joiner.exception is None
    assert not t.is_alive()


def test_join_of_a_known_thread_is_woken_by_its_end(wait_all_threads_blocked: object) -> None:
    # A spawned thread has a threadpatch state: its end unparks the joiner
    # through a done callback (no periodic re-check needed).
    release = threadpatch.Event()
    target = threadpatch.spawn(release.wait, 10)
    joiner = threadpatch.spawn(_threading.join, target._thread)
    wait_all_threads_blocked(expected=2)  # type: ignore[operator]
    assert target._state._done_callbacks  # the joiner is watching
    release.set()
    assert joiner.wait(timeout=10)
    assert joiner.exception is None
    assert not target._thread.is_alive()  # type: ignore[union-attr]


def test_join_after_cancelling_a_plain_thread_that_ends_without_threadpatch() -> None:
    # cancel() makes a state for a thread that never used threadpatch; the
    # thread then ends without ever binding it (so nobody finishes it): the
    # join must see the thread end, not wait for that state forever.
    t, gate = _blocked_plain_thread()
    assert threadpatch.cancel(t, blocking=False) is False
    gate.release()  # type: ignore[attr-defined]
    joiner = threadpatch.spawn(_threading.join, t)
    assert joiner.wait(timeout=10), "join waited for a state that nobody finishes"
    joiner.join()
    assert not t.is_alive()
