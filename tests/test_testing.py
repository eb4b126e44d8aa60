"""threadpatch.testing.MockClock: what the virtual clock drives, what it leaves real."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING

import pytest

import threadpatch
from threadpatch import ThreadTimeout, _core, ignore_after, sleep, spawn, timeout_after
from threadpatch._core import _hub
from threadpatch.testing import MockClock

from ._helpers import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable


def test_installing_swaps_the_hub_clock_and_removing_restores_it() -> None:
    assert _hub.clock is time.monotonic
    with MockClock() as clock:
        assert _hub.clock == clock.time
        start = clock.time()
        clock.jump(3600)
        assert clock.time() == start + 3600
        with timeout_after(10) as scope:
            assert scope.deadline == start + 3610
    assert _hub.clock is time.monotonic
    with pytest.raises(ThreadTimeout), timeout_after(0.01):  # real deadlines work again
        sleep(60)


def test_one_clock_at_a_time_and_time_goes_forward() -> None:
    with MockClock() as clock:
        with pytest.raises(RuntimeError, match="installed already"), MockClock():
            pass
        with pytest.raises(ValueError, match="backwards"):
            clock.jump(-1)
        with pytest.raises(ValueError, match="backwards"):
            clock.jump(math.nan)
        with pytest.raises(ValueError, match="autojump_threshold"):
            clock.autojump_threshold = -1
    with MockClock():  # the first one is gone: another may come
        pass


def test_hub_timers_fire_in_deadline_order_when_the_clock_jumps(mock_clock: MockClock) -> None:
    hub = _core.get_hub()
    fired: list[int] = []
    now = mock_clock.time()
    for i, delay in enumerate([3.0, 1.0, 2.0, 10.0]):
        hub.call_at(now + delay, lambda i=i: fired.append(i))
    cancelled = hub.call_at(now + 1.5, lambda: fired.append(-1))
    hub.cancel_timer(cancelled)
    mock_clock.jump(2.5)  # the hub has fired what is due when jump() returns
    assert fired == [1, 2]
    mock_clock.jump(0.5)
    assert fired == [1, 2, 0]
    mock_clock.jump(6.999)
    assert fired == [1, 2, 0]
    assert hub.pending_timers() >= 1
    mock_clock.jump(0.001)
    assert fired == [1, 2, 0, 3]


def test_without_a_jump_a_deadline_never_passes(
    mock_clock: MockClock, wait_all_threads_blocked: Callable[..., None]
) -> None:
    def body() -> None:
        with timeout_after(0.001):
            threadpatch.Event().wait()

    t = spawn(body)
    wait_all_threads_blocked()
    # Real time passes (a bounded wait that is meant to run out); virtual does not.
    assert not t.wait(timeout=0.05)
    assert not t._state.interrupt
    mock_clock.jump(0.001)
    assert t.wait(timeout=10)
    assert isinstance(t.exception, ThreadTimeout)


def test_sleeps_run_on_the_virtual_clock(
    mock_clock: MockClock, wait_all_threads_blocked: Callable[..., None]
) -> None:
    t = spawn(sleep, 3600)
    wait_all_threads_blocked()
    assert t._state.blocked_on == ("sleep", 3600)
    mock_clock.jump(3599)
    assert not t._state.interrupt
    mock_clock.jump(1)
    assert t.join(timeout=10) is None


def test_a_cancelled_virtual_sleep_leaves_no_timer(
    mock_clock: MockClock, wait_all_threads_blocked: Callable[..., None]
) -> None:
    hub = _core.get_hub()
    pending = hub.pending_timers()
    t = spawn(sleep, 60)
    wait_all_threads_blocked()
    assert hub.pending_timers() == pending + 1
    assert t.cancel(timeout=10)
    assert t.cancelled
    assert hub.pending_timers() == pending


def test_waits_with_a_plain_timeout_keep_real_time(mock_clock: MockClock) -> None:
    start = mock_clock.time()
    assert threadpatch.Event().wait(0.01) is False
    assert threadpatch.Lock().acquire(timeout=0.01) is True
    with pytest.raises(threadpatch.Empty):
        threadpatch.Queue().get(timeout=0.01)
    assert mock_clock.time() == start


def test_autojump_goes_to_the_next_deadline_once_every_thread_waits(
    autojump_clock: MockClock,
) -> None:
    start = autojump_clock.time()
    results: list[float] = []

    def sleeper(seconds: float) -> None:
        sleep(seconds)
        results.append(autojump_clock.time() - start)

    threads = [spawn(sleeper, s) for s in (30.0, 10.0, 20.0)]
    with ignore_after(3600) as scope:
        threadpatch.Event().wait()
    assert scope.expired
    for t in threads:
        t.join(timeout=10)
    assert results == [10.0, 20.0, 30.0]
    assert autojump_clock.time() == start + 3600


def test_autojump_waits_while_a_thread_runs(autojump_clock: MockClock) -> None:
    start = autojump_clock.time()
    main = _core.current_state()
    seen: list[float] = []

    def busy() -> None:
        # Runs (never parks) until the main thread waits, then 50 ms more.
        wait_until(lambda: main.parked, message="the main thread waiting")
        until = time.monotonic() + 0.05
        while time.monotonic() < until:
            seen.append(autojump_clock.time())

    t = spawn(busy)
    with ignore_after(60) as scope:
        threadpatch.Event().wait()
    assert scope.expired
    t.join(timeout=10)
    assert seen
    assert set(seen) == {start}  # no jump while it ran
    assert autojump_clock.time() == start + 60


def test_autojump_threshold_can_be_set_while_installed(
    mock_clock: MockClock, wait_all_threads_blocked: Callable[..., None]
) -> None:
    t = spawn(sleep, 60)
    wait_all_threads_blocked()
    mock_clock.autojump_threshold = 0  # the hub looks again: everybody waits
    assert t.join(timeout=10) is None
    mock_clock.autojump_threshold = math.inf


def test_the_clock_in_a_child_interpreter() -> None:
    # As a user's test would: the public import, plain threading.Threads, patched time.sleep.
    code = textwrap.dedent("""
        import threading, time
        import threadpatch
        from threadpatch.testing import MockClock

        threadpatch.patch_all()
        with MockClock(autojump_threshold=0) as clock:
            start = clock.time()
            t0 = time.monotonic()
            out = []
            def worker():
                try:
                    with threadpatch.timeout_after(300):
                        time.sleep(3600)
                except TimeoutError:
                    # absolute times: the difference is 300 up to float rounding
                    out.append(round(clock.time() - start, 6))
            t = threading.Thread(target=worker)
            t.start()
            t.join(20)
            # The deadline is start + 300 on a clock that starts at the real
            # time: the difference back is 300 up to the float's rounding.
            print([round(x, 6) for x in out], time.monotonic() - t0 < 20)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout.split() == ["[300.0]", "True"], proc.stderr


def test_wait_until_returns_the_value_or_names_what_never_happened() -> None:
    assert wait_until(lambda: 42) == 42
    with pytest.raises(AssertionError, match=r"the flag set: never happened within 0\.01 s"):
        wait_until(threading.Event().is_set, timeout=0.01, message="the flag set")
    with pytest.raises(AssertionError, match="3 items"):
        wait_until(lambda: False, timeout=0.01, message=lambda: f"{3} items")
