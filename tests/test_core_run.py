"""run(), Ctrl-C and interpreter exit, in child interpreters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import threadpatch
from threadpatch import ThreadError

# The child prints READY once every thread threadpatch knows is parked.
PRELUDE = """
import os, signal, sys, threadpatch
from threadpatch import _core

# The test run may itself be a background job, started with SIGINT ignored
# (inherited); the child acts as a terminal's foreground program would.
signal.signal(signal.SIGINT, signal.default_int_handler)

def say(line):
    os.write(1, (line + "\\n").encode())  # one write: lines from threads don't interleave

def announce_when_blocked(count):
    me = _core.current_state()
    while True:
        others = [s for s in _core.all_states() if s is not me and not s.finished]
        if len(others) >= count and all(s.parked for s in others):
            break
        _core._natives.sleep(0.001)
    print("READY", flush=True)

def sleeper(i):
    try:
        threadpatch.sleep(60)
    finally:
        say(f"finally sleeper {i}")

def joiner(t):
    try:
        t.join()
    finally:
        say("finally joiner")

def grouped():
    try:
        with threadpatch.ThreadGroup() as g:
            g.spawn(sleeper, "g")
    finally:
        say("finally group")
"""


def interrupt_child(body: str) -> tuple[subprocess.CompletedProcess[str], float]:
    code = PRELUDE + textwrap.dedent(body)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if first.strip() != "READY":
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"child did not get ready: {first!r} {out!r} {err!r}")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    elapsed = time.monotonic() - t0
    return subprocess.CompletedProcess(proc.args, proc.returncode, first + out, err), elapsed


@pytest.mark.slow
def test_ctrl_c_in_run_cancels_everything_within_a_second() -> None:
    result, elapsed = interrupt_child("""
        def main():
            threads = [threadpatch.spawn(sleeper, i) for i in range(3)]
            threadpatch.spawn(joiner, threads[0])
            threadpatch.spawn(grouped)
            try:
                announce_when_blocked(7)
                threadpatch.sleep(60)
            finally:
                say("finally main")

        threadpatch.run(main)
    """)
    assert "KeyboardInterrupt" in result.stderr
    assert result.returncode in (-signal.SIGINT, 128 + signal.SIGINT, 1)
    expected = {f"finally sleeper {i}" for i in (0, 1, 2, "g")}
    expected |= {"finally joiner", "finally group", "finally main"}
    assert expected <= set(result.stdout.splitlines()), result.stdout
    assert elapsed < 1.0


@pytest.mark.slow
def test_unhandled_ctrl_c_in_main_thread_cancels_threads_at_exit() -> None:
    result, elapsed = interrupt_child("""
        threads = [threadpatch.spawn(sleeper, i) for i in range(2)]
        threadpatch.spawn(joiner, threads[0])
        announce_when_blocked(3)
        threadpatch.sleep(60)
    """)
    assert "KeyboardInterrupt" in result.stderr
    lines = set(result.stdout.splitlines())
    assert {"finally sleeper 0", "finally sleeper 1", "finally joiner"} <= lines, result.stdout
    assert elapsed < 1.0


@pytest.mark.slow
def test_ctrl_c_while_exit_waits_for_threads() -> None:
    result, elapsed = interrupt_child("""
        threadpatch.spawn(sleeper, 0)
        announce_when_blocked(1)
        # the main program ends here; the interpreter waits for the thread
    """)
    assert "finally sleeper 0" in result.stdout
    assert elapsed < 1.0


def test_exit_still_waits_for_non_daemon_threads_doing_work() -> None:
    code = """
        import threadpatch
        def work():
            threadpatch.sleep(0.05)
            print("work finished", flush=True)
        threadpatch.spawn(work)
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "work finished"


def test_run_returns_result_and_wraps_failure() -> None:
    assert threadpatch.run(lambda a, b: a * b, 6, 7) == 42
    with pytest.raises(ThreadError) as info:
        threadpatch.run(lambda: 1 / 0)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_run_main_is_a_managed_thread() -> None:
    def main() -> bool:
        return threadpatch.current().name == "threadpatch.run"

    assert threadpatch.run(main)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_run_in_child_after_ctrl_c_exit_code() -> None:
    # Exit status of an interpreter killed by KeyboardInterrupt is -SIGINT on POSIX.
    result, _ = interrupt_child("""
        announce_when_blocked(0)
        threadpatch.run(threadpatch.sleep, 60)
    """)
    assert result.returncode == -signal.SIGINT
