"""Threads: spawn, join, wait, cancel, current, adoption, bad input."""

from __future__ import annotations

import gc
import math
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

import threadpatch
from threadpatch import ThreadCancelled, ThreadError, ThreadTimeout, _core, cancel, current, spawn
from threadpatch._core import _natives, _registry
from threadpatch._core._state import ThreadState

from ._helpers import wait_until


def test_spawn_join_returns_result() -> None:
    t = spawn(lambda a, b: a + b, 2, 3)
    assert t.join(timeout=10) == 5
    assert t.done()
    assert not t.is_alive()
    assert t.result == 5
    assert t.exception is None
    assert not t.cancelled


def test_spawned_thread_is_a_real_thread() -> None:
    seen = {}

    def body() -> None:
        seen["ident"] = threading.get_ident()
        seen["native"] = threading.get_native_id()
        seen["name"] = threading.current_thread().name
        seen["current"] = current()

    t = spawn(body, name="worker-x")
    t.join(timeout=10)
    assert seen["ident"] == t.ident != threading.get_ident()
    assert seen["native"] == t.native_id
    assert seen["name"] == t.name == "worker-x"
    assert seen["current"] is t


def test_exception_comes_out_of_join_wrapped() -> None:
    def fail() -> None:
        raise KeyError("boom")

    t = spawn(fail)
    with pytest.raises(ThreadError) as info:
        t.join(timeout=10)
    assert isinstance(info.value.__cause__, KeyError)
    assert isinstance(t.exception, KeyError)
    with pytest.raises(ThreadError):
        _ = t.result


def test_result_of_running_thread_is_runtime_error() -> None:
    gate = threadpatch.Thread  # keep the name used
    del gate
    ev = threading.Event()
    t = spawn(ev.wait, 10)
    try:
        with pytest.raises(RuntimeError, match="has not finished"):
            _ = t.result
        assert t.exception is None
    finally:
        ev.set()
        t.join(timeout=10)


def test_join_timeout_raises_thread_timeout(wait_all_threads_blocked) -> None:
    t = spawn(threadpatch.sleep, 60)
    wait_all_threads_blocked()
    with pytest.raises(ThreadTimeout):
        t.join(timeout=0.01)
    assert isinstance(ThreadTimeout("x"), TimeoutError)
    t.cancel(timeout=10)
    assert t.cancelled


def test_wait_returns_bool_and_never_raises(wait_all_threads_blocked) -> None:
    t = spawn(threadpatch.sleep, 60)
    wait_all_threads_blocked()
    assert t.wait(timeout=0.01) is False
    t.cancel(blocking=False)
    assert t.wait(timeout=10) is True
    f = spawn(lambda: 1 / 0)
    assert f.wait(timeout=10) is True
    assert isinstance(f.exception, ZeroDivisionError)


def test_unretrieved_failure_is_reported_not_lost() -> None:
    import gc

    seen = []
    t = spawn(lambda: 1 / 0)
    t.wait(timeout=10)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.unraisablehook", seen.append)
        del t
        gc.collect()
    assert len(seen) == 1
    assert isinstance(seen[0].exc_value, threadpatch.ThreadError)
    assert isinstance(seen[0].exc_value.__cause__, ZeroDivisionError)
    assert "never retrieved" in str(seen[0].exc_value)
    quiet = spawn(threadpatch.sleep, 60)
    quiet.cancel(timeout=10)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.unraisablehook", seen.append)
        del quiet  # a cancellation is not a failure: nothing to report
        gc.collect()
    assert len(seen) == 1


def test_cancel_sleeping_thread_runs_cleanup(wait_all_threads_blocked) -> None:
    log = []

    def body() -> None:
        try:
            threadpatch.sleep(60)
        except ThreadCancelled:
            log.append("caught")
            raise
        finally:
            log.append("finally")

    t = spawn(body)
    wait_all_threads_blocked()
    assert t.cancel(timeout=10) is True
    assert log == ["caught", "finally"]
    assert t.cancelled
    assert isinstance(t.exception, ThreadCancelled)
    with pytest.raises(ThreadError) as info:
        t.join()
    assert isinstance(info.value.__cause__, ThreadCancelled)


def test_cancel_before_the_thread_blocks() -> None:
    started = threading.Event()
    go = threading.Event()

    def body() -> str:
        started.set()
        go.wait(10)  # native wait: not a cancellation point
        threadpatch.sleep(60)
        return "not reached"

    t = spawn(body)
    started.wait(10)
    assert t.cancel(blocking=False) is False
    go.set()
    assert t.wait(timeout=10)
    assert t.cancelled


def test_cancel_finished_thread_is_noop() -> None:
    t = spawn(lambda: 7)
    t.join(timeout=10)
    assert t.cancel() is True
    assert cancel(t) is True
    assert t.result == 7
    assert not t.cancelled


def test_cancellation_is_sticky_but_non_blocking_work_continues(wait_all_threads_blocked) -> None:
    outcomes = []

    def body() -> None:
        try:
            threadpatch.sleep(60)
        except ThreadCancelled:
            outcomes.append("first")
        try:
            threadpatch.sleep(60)
        except ThreadCancelled:
            outcomes.append("second")
        outcomes.append(sum(range(10)))  # plain work still runs
        try:
            threadpatch.checkpoint()
        except ThreadCancelled:
            outcomes.append("checkpoint")

    t = spawn(body)
    wait_all_threads_blocked()
    t.cancel(timeout=10)
    assert outcomes == ["first", "second", 45, "checkpoint"]
    assert not t.cancelled  # it swallowed the cancellations and returned


def test_cancel_current_raises_at_next_blocking_point() -> None:
    def body() -> list[str]:
        log = []
        assert current().cancel() is False
        log.append("still running")
        try:
            threadpatch.sleep(60)
        except ThreadCancelled:
            log.append("raised at sleep")
        return log

    t = spawn(body)
    assert t.join(timeout=10) == ["still running", "raised at sleep"]


def test_shield_defers_cancellation(wait_all_threads_blocked) -> None:
    log = []
    in_shield = threading.Event()
    release = threading.Event()

    def body() -> None:
        with threadpatch.shield():
            in_shield.set()
            threadpatch.sleep(0.001)
            while not release.is_set():
                threadpatch.sleep(0.001)  # blocking inside the shield is not interrupted
            log.append("shield done")
        try:
            threadpatch.sleep(60)
        except ThreadCancelled:
            log.append("delivered after shield")
            raise

    t = spawn(body)
    in_shield.wait(10)
    t.cancel(blocking=False)
    release.set()
    t.wait(timeout=10)
    assert log == ["shield done", "delivered after shield"]
    assert t.cancelled


def test_join_current_thread_is_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="current thread"):
        current().join()

    def body() -> None:
        current().join()

    t = spawn(body)
    with pytest.raises(ThreadError) as info:
        t.join(timeout=10)
    assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize("bad", [None, 3, "func"])
def test_spawn_non_callable_is_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="callable"):
        spawn(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, -0.5, math.nan])
def test_bad_durations_are_value_errors(value: float) -> None:
    with pytest.raises(ValueError, match="sleep length"):
        threadpatch.sleep(value)
    with pytest.raises(ValueError, match="timeout"):
        threadpatch.timeout_after(value)
    with pytest.raises(ValueError, match="timeout"):
        threadpatch.ignore_after(value)
    t = spawn(lambda: None)
    t.join(timeout=10)
    with pytest.raises(ValueError, match="timeout"):
        spawn(threadpatch.sleep, 0).join(timeout=value)


def test_non_number_duration_is_type_error() -> None:
    with pytest.raises(TypeError, match="number of seconds"):
        threadpatch.sleep("1")  # type: ignore[arg-type]


def test_sleep_zero_and_small_sleep_return() -> None:
    threadpatch.sleep(0)
    threadpatch.sleep(0.001)


def test_current_adopts_main_and_plain_threads() -> None:
    main = current()
    assert main is current()
    assert main.ident == threading.get_ident()
    assert main.is_alive()
    box = {}

    def plain() -> None:
        box["handle"] = current()
        box["name"] = current().name

    th = threading.Thread(target=plain, name="plain-1")
    th.start()
    th.join(10)
    assert box["name"] == "plain-1"
    assert box["handle"].ident == th.ident


def test_adopting_a_raw_thread_creates_no_dummy_thread() -> None:
    import _thread

    done = threading.Event()
    box = {}

    def raw() -> None:
        box["name"] = current().name
        box["dummy"] = threading._active.get(threading.get_ident())  # type: ignore[attr-defined]
        done.set()

    _thread.start_new_thread(raw, ())
    done.wait(10)
    assert box["dummy"] is None
    assert box["name"].startswith("thread-")


def test_cancel_plain_threading_thread(wait_all_threads_blocked) -> None:
    log = []

    def body() -> None:
        try:
            threadpatch.sleep(60)
        except ThreadCancelled:
            log.append("cancelled")

    th = threading.Thread(target=body)
    th.start()
    wait_all_threads_blocked(expected=1)
    assert cancel(th, timeout=10) is True
    assert log == ["cancelled"]


def test_cancel_plain_thread_before_it_touches_threadpatch() -> None:
    go = threading.Event()
    log = []

    def body() -> None:
        go.wait(10)
        try:
            threadpatch.sleep(60)
        except ThreadCancelled:
            log.append("cancelled")

    th = threading.Thread(target=body)
    th.start()
    assert cancel(th, blocking=False) is False
    go.set()
    th.join(10)
    assert log == ["cancelled"]


def _cancelled_quiet_plain_thread() -> int:
    """Cancel a plain thread that ends without using threadpatch again; return its ident."""
    gate = _natives.allocate_lock()
    gate.acquire()

    def quiet() -> None:
        gate.acquire()  # native: not a cancellation point, and no threadpatch call

    th = threading.Thread(target=quiet)
    th.start()
    assert cancel(th, blocking=False) is False
    gate.release()
    th.join(10)
    assert th.ident is not None
    return th.ident


def test_a_cancel_request_dies_with_its_plain_thread() -> None:
    # Thread idents are reused: a later thread with the ident of a cancelled
    # plain thread that never used threadpatch again must not be born cancelled.
    ident = _cancelled_quiet_plain_thread()
    outcomes = []

    def fresh() -> None:
        try:
            threadpatch.sleep(0)
            outcomes.append((threading.get_ident(), "ran"))
        except ThreadCancelled:
            outcomes.append((threading.get_ident(), "cancelled"))

    for _ in range(50):  # glibc hands the last thread's stack (and ident) to the next one
        th = threading.Thread(target=fresh)
        th.start()
        th.join(10)
        if th.ident == ident:
            break
    assert ident in {i for i, _ in outcomes}, "no later thread reused the ident"
    assert all(what == "ran" for _, what in outcomes), outcomes


def test_a_cancel_request_for_an_ended_plain_thread_is_forgotten() -> None:
    ident = _cancelled_quiet_plain_thread()
    assert all(s.ident != ident for s in _core.all_states())


# A thread that uses threadpatch in its own teardown (a __del__ of what its
# threading.local held: a connection that says goodbye, a pool that closes)
# binds a state after its thread-local storage was cleared; on 3.11 and 3.12
# that storage is never freed, so the state's reaper never runs.

TEARDOWN_USER = """
import threading, threadpatch
held = threading.local()
class Goodbye:
    def __del__(self):
        threadpatch.sleep(0)
def body():
    threadpatch.sleep(0)
    held.goodbye = Goodbye()
"""


def test_a_thread_that_uses_threadpatch_in_its_teardown_leaves_no_live_state() -> None:
    scope: dict[str, object] = {}
    exec(TEARDOWN_USER, scope)
    th = threading.Thread(target=scope["body"])
    th.start()
    th.join(10)
    ident = th.ident
    wait_until(
        lambda: all(s.ident != ident for s in _core.all_states()),
        message="the ended thread's state is gone from the registry",
    )


def test_ctrl_c_does_not_wait_for_a_thread_that_used_threadpatch_in_its_teardown() -> None:
    program = TEARDOWN_USER + textwrap.dedent(
        """
        for _ in range(3):
            th = threading.Thread(target=body)
            th.start()
            th.join()
        raise KeyboardInterrupt
        """
    )
    proc = subprocess.run(
        [sys.executable, "-m", "threadpatch", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -2, proc.stderr
    assert proc.stderr.rstrip().endswith("KeyboardInterrupt"), proc.stderr
    assert "still running" not in proc.stderr


def _plant_left_over_state(name: str) -> ThreadState:
    """Register, for the calling thread's ident, the unfinished state of an earlier thread."""
    left = ThreadState(name)
    left.ident = threading.get_ident()
    left.native_id = -1  # that thread's, not ours
    with _registry._registry_lock:
        _registry._by_ident[left.ident] = left
    return left


def test_a_thread_does_not_adopt_the_state_an_earlier_thread_left() -> None:
    box: dict[str, object] = {}

    def body() -> None:
        box["left"] = _plant_left_over_state("earlier")
        box["mine"] = _core.current_state()
        try:
            threadpatch.sleep(60)
        except ThreadCancelled:
            box["outcome"] = "cancelled"

    th = threading.Thread(target=body)
    th.start()
    wait_until(lambda: "mine" in box and box["mine"].parked, message="the thread sleeps")
    left = box["left"]
    assert isinstance(left, ThreadState)
    assert box["mine"] is not left
    assert left.finished  # that thread has ended: its state with it
    assert cancel(th, timeout=10)
    assert box["outcome"] == "cancelled"


def test_cancel_before_first_use_skips_the_state_an_earlier_thread_left() -> None:
    planted = threading.Event()
    go = threading.Event()
    box: dict[str, object] = {}

    def body() -> None:
        box["left"] = _plant_left_over_state("earlier")
        planted.set()
        go.wait(10)
        try:
            threadpatch.sleep(60)
        except ThreadCancelled:
            box["outcome"] = "cancelled"

    th = threading.Thread(target=body)
    th.start()
    assert planted.wait(10)
    assert cancel(th, blocking=False) is False
    go.set()
    th.join(10)
    assert box.get("outcome") == "cancelled"
    left = box["left"]
    assert isinstance(left, ThreadState)
    assert left.finished
    assert not left.cancel_requested


def test_cancel_bad_argument() -> None:
    with pytest.raises(TypeError, match=r"threading\.Thread"):
        cancel(42)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not been started"):
        cancel(threading.Thread(target=print))
    finished = threading.Thread(target=lambda: None)
    finished.start()
    finished.join()
    assert cancel(finished) is True


def test_thread_attributes() -> None:
    ev = threading.Event()
    t = spawn(ev.wait, 10, daemon=True, name="d")
    try:
        assert t.daemon is True
        assert t.name == "d"
        assert "running" in repr(t)
    finally:
        ev.set()
        t.join(timeout=10)
    assert "done" in repr(t)
    u = spawn(lambda: None)
    u.join(timeout=10)
    assert u.daemon is False
    assert u.name.startswith("threadpatch-")


def test_many_threads_cancelled(wait_all_threads_blocked) -> None:
    threads = [spawn(threadpatch.sleep, 60) for _ in range(50)]
    wait_all_threads_blocked(expected=50)
    for t in threads:
        t.cancel(blocking=False)
    for t in threads:
        assert t.wait(timeout=10)
        assert t.cancelled


def test_thread_state_is_forgotten_after_exit() -> None:
    t = spawn(lambda: None)
    t.join(timeout=10)
    assert t._state not in _core.all_states()


def test_adopted_plain_thread_is_forgotten_when_it_exits() -> None:
    box = {}

    def body() -> None:
        box["state"] = _core.current_state()

    th = threading.Thread(target=body)
    th.start()
    th.join(10)
    state = box["state"]
    assert state.finished
    assert state not in _core.all_states()


def test_cancelled_plain_thread_ends_quietly(wait_all_threads_blocked) -> None:
    reported = []

    def body() -> None:
        threadpatch.sleep(60)  # ThreadCancelled ends the thread

    th = threading.Thread(target=body)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(threading, "excepthook", reported.append)
        th.start()
        wait_all_threads_blocked(expected=1)
        assert cancel(th, timeout=10)
        failing = threading.Thread(target=lambda: 1 / 0)
        failing.start()
        failing.join(10)
    assert [type(a.exc_value) for a in reported] == [ZeroDivisionError]


def test_waiting_on_a_closed_descriptor_is_ebadf() -> None:
    import errno
    import select

    state = _core.current_state()
    with pytest.raises(OSError, match="Bad file descriptor") as info:
        state.wait_fd(-1, select.POLLIN, 0)
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError, match="Bad file descriptor") as info:
        state.wait_fds([(-1, select.POLLIN)], 0)
    assert info.value.errno == errno.EBADF


def test_a_finished_thread_has_released_its_descriptor() -> None:
    # A descriptor wait gives the thread a wake-up eventfd.  Whoever sees the
    # thread done (join, wait, done()) must not see that descriptor still open:
    # fd-leak checks right after a join would count it otherwise.
    import select
    import socket

    a, b = socket.socketpair()
    with a, b:
        for _ in range(50):  # the race it guards against was a few microseconds wide
            t = spawn(lambda: _core.current_state().wait_fd(a.fileno(), select.POLLIN, 0))
            t.join(timeout=10)
            assert t._state._wake_fd == -1


def test_unretrieved_failure_reaches_the_default_hook() -> None:
    # The default sys.unraisablehook accepts only the interpreter's own
    # argument type: run it for real, in a child interpreter.
    code = textwrap.dedent("""
        import gc, threadpatch
        t = threadpatch.spawn(lambda: 1 / 0, name="doomed")
        t.wait(timeout=10)
        del t
        gc.collect()
        print("after", flush=True)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "after"
    assert "thread 'doomed' was never retrieved" in proc.stderr
    assert "ZeroDivisionError('division by zero')" in proc.stderr
    assert "in <lambda>" in proc.stderr  # where it failed
    assert "unraisablehook argument type" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "kwargs"), [((print,), {}), ((), {"target": print}), ((None, None), {})]
)
def test_thread_cannot_be_constructed_directly(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    seen: list[object] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.unraisablehook", seen.append)
        with pytest.raises(TypeError, match=r"threadpatch\.spawn\(func, \*args\)"):
            threadpatch.Thread(*args, **kwargs)
        gc.collect()
    assert seen == []  # and its __del__ has nothing to complain about


def test_a_threads_wake_up_descriptor_leaves_the_low_numbers_to_the_program() -> None:
    # A process gets the lowest free descriptor number; code and tests count on
    # getting the numbers they would get without threadpatch (CPython's test_os).
    def body() -> tuple[int, int, int]:
        before = os.open(os.devnull, os.O_RDONLY)
        os.close(before)
        a, b = socket.socketpair()
        with a, b:
            _core.current_state().wait_fd(a.fileno(), _natives.POLLIN, 0)  # makes it
        after = os.open(os.devnull, os.O_RDONLY)
        os.close(after)
        return before, after, _core.current_state()._wake_fd

    before, after, wake = spawn(body).join(timeout=10)
    assert after == before
    assert wake >= _natives.PRIVATE_FD_BASE


def test_under_a_low_descriptor_limit_the_wake_up_descriptor_stays_where_it_is() -> None:
    code = textwrap.dedent(
        """
        import os, resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        from threadpatch._core import _natives
        fd = os.eventfd(0)
        print(_natives.set_aside(fd) == fd, os.get_inheritable(fd))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True False\n"


def test_ctrl_c_judges_a_state_by_its_own_thread_not_by_its_ident() -> None:
    from threadpatch._core import _ctrl_c

    ended = threading.Thread(target=lambda: None)
    ended.start()
    ended.join()
    left = ThreadState("earlier")
    left.ident = threading.get_ident()  # now a live thread's ident
    left.bound_thread = ended
    assert not _ctrl_c._running(left)
    left.bound_thread = threading.current_thread()
    assert _ctrl_c._running(left)
