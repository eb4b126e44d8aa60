"""The hub: lazy start, fork safety, and failing loudly when it dies."""

from __future__ import annotations

import logging
import os
import random
import socket
import subprocess
import sys
import textwrap
import threading
import warnings

import pytest

import threadpatch
from threadpatch import HubError, ThreadError, ThreadTimeout, _core, sleep, spawn, timeout_after
from threadpatch._core import _hub

from ._helpers import wait_until


def run_child(code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_import_starts_no_thread_and_no_curio() -> None:
    proc = run_child("""
        import sys, threading
        before = threading.active_count()
        import threadpatch
        assert threading.active_count() == before, threading.enumerate()
        assert "curio" not in sys.modules
        t = threadpatch.spawn(lambda: 1)
        assert t.join() == 1
        assert "curio" not in sys.modules  # no deadline yet: no hub
        with threadpatch.timeout_after(5):
            pass
        assert "curio" in sys.modules
        print("ok")
    """)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_hub_runs_in_its_own_daemon_thread() -> None:
    with timeout_after(10):
        pass
    hub = _core.get_hub()
    assert hub.running
    assert hub.ident is not None
    assert hub.ident != threading.get_ident()
    assert not _core.is_hub_thread()
    # Not a threading.Thread: the hub must not be joined at exit nor patched.
    assert hub.ident not in threading._active  # type: ignore[attr-defined]


def test_timers_fire_in_deadline_order() -> None:
    hub = _core.get_hub()
    fired: list[int] = []
    done = threading.Event()
    now = _core._natives.monotonic()
    for i, delay in enumerate([0.03, 0.01, 0.02]):
        hub.call_at(now + delay, lambda i=i: fired.append(i))
    hub.call_at(now + 0.04, done.set)
    assert done.wait(10)
    assert fired == [1, 2, 0]


def test_cancelled_timer_does_not_fire() -> None:
    hub = _core.get_hub()
    fired = []
    done = threading.Event()
    now = _core._natives.monotonic()
    handle = hub.call_at(now + 0.01, lambda: fired.append("x"))
    hub.cancel_timer(handle)
    hub.call_at(now + 0.02, done.set)
    assert done.wait(10)
    assert fired == []


@pytest.fixture
def fresh_hub():
    """Give the test a hub of its own and restore a working one afterwards."""
    _hub.reset_hub()
    yield _core.get_hub()
    _hub.reset_hub()
    for state in _core.all_states():
        state.recompute_interrupt()


def test_dead_hub_fails_blocked_and_later_calls(fresh_hub, wait_all_threads_blocked) -> None:
    def blocked() -> None:
        with timeout_after(60):
            sleep(60)

    t = spawn(blocked)
    wait_all_threads_blocked()
    fresh_hub.break_for_testing()
    t._thread.join(10)  # a native join: threadpatch's own waits fail now
    assert t.done()
    with pytest.raises(ThreadError) as info:
        _ = t.result
    assert isinstance(info.value.__cause__, HubError)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "hub" in str(info.value.__cause__)
    with pytest.raises(HubError), timeout_after(1):
        pass
    with pytest.raises(HubError):
        sleep(0.01)


def _make_wake_fd() -> int:
    """Do one descriptor wait so the thread has its wake-up eventfd; return it."""
    a, b = socket.socketpair()
    with a, b:
        _core.current_state().wait_fd(a.fileno(), _core._natives.POLLIN, 0)
    return _core.current_state()._wake_fd


def test_fork_child_gets_a_working_hub() -> None:
    with timeout_after(10):
        pass  # the hub is running in the parent
    assert _core.get_hub().running
    assert _make_wake_fd() >= 0  # the parent has a wake-up eventfd before the fork
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(r)
            try:
                with timeout_after(0.02):
                    sleep(10)
            except ThreadTimeout:
                t = spawn(lambda: 41 + 1)
                fresh_fd = _core.current_state()._wake_fd == -1 and _make_wake_fd() >= 0
                if t.join(timeout=5) == 42 and threadpatch.current().is_alive() and fresh_fd:
                    code = 0
            os.write(w, b"done")
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        assert f.read() == b"done"
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_pokes_that_meet_the_hubs_timeouts_log_nothing(fresh_hub, caplog) -> None:
    # The hub waits for a poke until its next timer is due.  A poke that came
    # just as that time passed made curio's timeout block log "took longer
    # than an enclosing timeout": noise, and the log record called
    # current_thread() in the hub thread, which made it a threading._DummyThread.
    caplog.set_level(logging.DEBUG, logger="curio")
    monotonic, native_sleep = _core._natives.monotonic, _core._natives.sleep
    for _ in range(300):
        due = monotonic() + 0.002
        fresh_hub.call_at(due, lambda: None)
        native_sleep(max(0.0, due - monotonic() - 0.0001))
        while monotonic() < due + random.uniform(-0.0001, 0.0001):
            pass
        fresh_hub.sync()  # a poke right at the timer's time
    assert fresh_hub.ident not in threading._active  # type: ignore[attr-defined]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("curio")] == []


def test_sync_waits_for_the_hub_and_reports_its_death(fresh_hub) -> None:
    fresh_hub.sync()  # never started: nothing to wait for
    assert fresh_hub.ident is None
    fresh_hub.ensure_started()
    fresh_hub.sync()
    fresh_hub.break_for_testing()
    wait_until(lambda: fresh_hub.failure is not None, message="the hub's death noticed")
    with pytest.raises(HubError):
        fresh_hub.sync()


def test_a_timer_that_fires_while_it_is_cancelled_is_not_counted_as_pending() -> None:
    # A scope exits just as its deadline passes: the hub fires the timer after
    # the owner's cancel_timer() looked at it and before that cancel counted.
    # The count of cancelled heap entries must stay exact (pending_timers()
    # went negative, and the heap compaction ran on a wrong count).
    hub = _hub.Hub()  # never started: the test runs the hub's timer step itself
    fired = []

    class FiresWhenFirstLookedAt(_hub.TimerHandle):
        __slots__ = ("_armed", "_flag")

        def __init__(self) -> None:
            self._armed = False
            super().__init__(0.0, lambda: fired.append(True))

        @property  # type: ignore[override]
        def cancelled(self) -> bool:
            flag = self._flag
            if self._armed:
                self._armed = False
                hub._run_due_timers()  # the hub thread, right after the caller's look
            return flag

        @cancelled.setter
        def cancelled(self, value: bool) -> None:
            self._flag = value

    handle = FiresWhenFirstLookedAt()
    hub._timers.append((0.0, 0, handle))
    handle._armed = True
    hub.cancel_timer(handle)
    assert fired == [True]
    assert not hub._timers
    assert hub.pending_timers() == 0


def test_a_hub_that_cannot_start_says_so_and_starts_later(
    fresh_hub: _hub.Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No thread can start (the thread limit; on 3.12, an interpreter shutting
    # down): the deadline fails at once, and the hub is not left half started,
    # which made every later deadline wait for a hub that never came.
    real = _core._natives.start_new_thread

    def refuse(*args: object) -> int:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(_core._natives, "start_new_thread", refuse)
    for _ in range(2):
        with pytest.raises(HubError, match="could not start its hub thread") as info:
            with timeout_after(0.01):
                sleep(60)
        assert isinstance(info.value.__cause__, RuntimeError)
    assert not fresh_hub.running
    assert _core.current_state().scopes == []
    monkeypatch.setattr(_core._natives, "start_new_thread", real)
    with pytest.raises(ThreadTimeout), timeout_after(0.01):
        sleep(60)
    assert fresh_hub.running


def test_a_deadline_in_an_atexit_handler_never_hangs() -> None:
    # 3.12 refuses to start threads once the interpreter shuts down: a first
    # deadline set in an atexit handler raises HubError there; elsewhere it fires.
    proc = run_child(
        """
        import atexit, threadpatch
        def at_exit():
            for _ in range(2):
                try:
                    with threadpatch.timeout_after(0.05):
                        threadpatch.sleep(60)
                except (threadpatch.ThreadTimeout, threadpatch.HubError) as exc:
                    print(type(exc).__name__)
        atexit.register(at_exit)
        """
    )
    assert proc.returncode == 0, proc.stderr
    expected = "HubError" if sys.version_info[:2] == (3, 12) else "ThreadTimeout"
    assert proc.stdout.split() == [expected, expected]
