"""The plugin's thread timeout, tested as users run it: pytest sessions in child processes.

Every child session has short limits (0.5 s, a 0.5 s grace) and a bound on
its own run time, so a hang here is a failure, never a hung suite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Sequence

pytestmark = pytest.mark.slow  # each test runs pytest sessions in subprocesses

#: Bound on each child session (below this suite's own per-test timeout).
CHILD_TIMEOUT = 45
LIMIT = ["--thread-timeout=0.5", "--thread-timeout-grace=0.5"]
HEADER = "exceeded thread timeout of 0.5 s (--thread-timeout) during"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_THREAD_TIMEOUT", raising=False)
    monkeypatch.delenv("PYTEST_TIMEOUT", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    monkeypatch.delenv("THREADPATCH_AUTOPATCH", raising=False)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A child session with warnings as errors, as this project runs its own."""
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "error", "-p", "no:randomly", *args, timeout=CHILD_TIMEOUT
    )


def assert_no_plugin_frames(lines: Sequence[str]) -> None:
    text = "\n".join(lines)
    for internal in ("threadpatch/_pytest", "threadpatch/_core", "pluggy/", "_pytest/runner.py"):
        assert internal not in text, f"{internal} frames in the report:\n{text}"


# -- what gets cancelled, and what the report says -------------------------------------------


def test_hangs_in_stdlib_calls_are_cancelled_and_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_hangs="""
        import queue, socket, threading, time

        def test_queue_get():
            queue.Queue().get()

        def test_sleep():
            time.sleep(60)

        def test_lock_held_by_a_worker():
            lock, held, release = threading.Lock(), threading.Event(), threading.Event()

            def hold():
                with lock:
                    held.set()
                    release.wait()

            holder = threading.Thread(target=hold, name="holder")
            holder.start()
            held.wait()
            lock.acquire()

        def test_socket_recv():
            a, b = socket.socketpair()
            with a, b:
                a.recv(1)

        def test_worker_event_wait():
            worker = threading.Thread(target=threading.Event().wait, name="waiter")
            worker.start()
            worker.join()

        def test_next_one_runs():
            pass
        """
    )
    result = run(pytester, *LIMIT)
    result.assert_outcomes(failed=5, passed=1)  # and no error, no warning
    result.stdout.fnmatch_lines(
        [
            "*_ test_queue_get _*",
            f"{HEADER} the test",
            "thread 'MainThread' (the test): cancelled at its blocking point",
            "*test_hangs.py*, line 4, in test_queue_get",
            "*_ test_sleep _*",
            f"{HEADER} the test",
            "  stuck in sleep(60*)",
            "*time.sleep(60)",
            "*_ test_lock_held_by_a_worker _*",
            "  stuck in Lock.acquire on <Lock * held by 'holder'*",
            "*lock.acquire()",
            "thread 'holder' (started by the test): cancelled at its blocking point",
            "  stuck in Event.wait on *",
            "*release.wait()",
            "*_ test_socket_recv _*",
            "  stuck in recv on <socket fd=*",
            "*a.recv(1)",
            "*_ test_worker_event_wait _*",
            "  stuck in join of thread 'waiter'",
            "*worker.join()",
            "thread 'waiter' (started by the test): cancelled at its blocking point",
            "  stuck in Event.wait on *",
        ]
    )
    assert_no_plugin_frames(result.stdout.lines)
    assert "Warning" not in result.stdout.str()
    assert "ERROR" not in result.stdout.str()


def test_requests_to_a_stalled_loopback_server(pytester: pytest.Pytester) -> None:
    pytest.importorskip("requests")
    pytester.makepyfile(
        test_stalled="""
        import socket, requests, pytest

        @pytest.fixture
        def stalled():
            # Accepts connections (the kernel does, from the backlog) and never answers.
            with socket.create_server(("127.0.0.1", 0)) as server:
                yield server.getsockname()[1]

        def test_get(stalled):
            requests.get(f"http://127.0.0.1:{stalled}/")
        """
    )
    result = run(pytester, *LIMIT)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"{HEADER} the test",
            "thread 'MainThread' (the test): cancelled at its blocking point",
            "  stuck in recv on <socket * peer 127.0.0.1:*>",
            '*requests.get(f"http://127.0.0.1:{stalled}/")',
        ]
    )


def test_fixture_setup_and_teardown_hangs(pytester: pytest.Pytester) -> None:
    log = pytester.path / "log.txt"
    pytester.makepyfile(
        test_fixtures=f"""
        import queue, time, pytest

        def note(text):
            with open({str(log)!r}, "a") as f:
                f.write(text + "\\n")

        @pytest.fixture(scope="module")
        def module_resource():
            yield
            note("module torn down")

        @pytest.fixture
        def sleeps_in_setup():
            time.sleep(60)
            yield

        @pytest.fixture
        def other():
            yield
            note("other torn down")

        @pytest.fixture
        def waits_in_teardown():
            yield
            queue.Queue().get()

        def test_setup_hang(module_resource, sleeps_in_setup):
            pass

        def test_teardown_hang(module_resource, other, waits_in_teardown):
            pass
        """,
        test_later="""
        def test_in_the_next_module():
            pass
        """,
    )
    result = run(pytester, *LIMIT)
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_setup_hang*",
            f"{HEADER} setup",
            "  stuck in sleep(60*)",
            "*in sleeps_in_setup",
            "*ERROR at teardown of test_teardown_hang*",
            f"{HEADER} teardown",
            "*in waits_in_teardown",
        ]
    )
    # The rest of the teardown ran: pytest went on to the next module cleanly.
    assert log.read_text().splitlines() == ["other torn down", "module torn down"]


def test_func_only_leaves_fixtures_out(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time, pytest

        @pytest.fixture
        def slow_setup():
            time.sleep(1)

        def test_fixture_is_not_timed(slow_setup):
            pass

        def test_body_is(slow_setup):
            time.sleep(60)
        """
    )
    result = run(pytester, *LIMIT, "--thread-timeout-func-only")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"{HEADER} the test"])


# -- what cannot be cancelled --------------------------------------------------------------


CPU_LOOP = """
import time

def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass

def test_cpu_loop():
    spin({seconds})

def test_next_one_runs():
    pass
"""


def test_cpu_loop_fails_at_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CPU_LOOP.format(seconds=1.5))
    result = run(pytester, *LIMIT)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            f"{HEADER} the test",
            "thread 'MainThread' (the test): not in a cancellable wait (a CPU loop, or a call "
            "threadpatch does not cover): could not be stopped; it went on * s past the limit",
            "  not in a threadpatch wait at the limit",
            "*in spin",
        ]
    )


def test_cpu_loop_signal_method(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CPU_LOOP.format(seconds=40))
    result = run(pytester, *LIMIT, "--thread-timeout-method=signal")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*(the test): not in a cancellable wait: still running after the 0.5 s grace, "
            "interrupted by SIGALRM"
        ]
    )


def test_cpu_loop_exit_method(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CPU_LOOP.format(seconds=40))
    result = run(pytester, *LIMIT, "--thread-timeout-method=exit")
    assert result.ret == 1
    result.stderr.fnmatch_lines(
        [
            "*threadpatch: thread timeout*",
            f"test_cpu_loop_exit_method.py::test_cpu_loop: {HEADER} the test",
            "*(the test): still running*",
            "threadpatch: ending the process (--thread-timeout-method=exit)",
        ]
    )


def test_worker_in_a_cpu_loop_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading, time

        def spin():
            end = time.monotonic() + 2
            while time.monotonic() < end:
                pass

        def test_waits_for_a_spinning_worker():
            worker = threading.Thread(target=spin, name="spinner", daemon=True)
            worker.start()
            worker.join()
        """
    )
    result = run(pytester, *LIMIT)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "thread 'MainThread' (the test): cancelled at its blocking point",
            "thread 'spinner' (started by the test): still running 0.5 s after its "
            "cancellation: not in a cancellable wait*",
            "*in spin",
        ]
    )


def test_overrun_without_blocking_fails(pytester: pytest.Pytester) -> None:
    # Not patched: time.sleep cannot be cancelled, but the test still fails.
    pytester.makepyfile(
        """
        import time

        def test_sleeps_past_the_limit():
            time.sleep(1.2)
        """
    )
    result = run(pytester, *LIMIT, "--thread-timeout-no-patch")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"{HEADER} the test", "*not in a cancellable wait*"])


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("marker", "cli", "env", "ini", "expected"),
    [
        ("0.5", "7", "8", "9", "0.5 s (@pytest.mark.thread_timeout)"),
        (None, "7", "8", "9", "7 s (--thread-timeout)"),
        (None, None, "8", "9", "8 s (PYTEST_THREAD_TIMEOUT)"),
        (None, None, None, "9", "9 s (tox.ini thread_timeout)"),
    ],
)
def test_precedence_marker_cli_env_ini(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    marker: str | None,
    cli: str | None,
    env: str | None,
    ini: str | None,
    expected: str,
) -> None:
    # pytest-timeout's order, as it implements it: marker > command line > environment > ini.
    mark = f"@pytest.mark.thread_timeout({marker})" if marker else ""
    pytester.makepyfile(
        f"""
        import time, pytest

        {mark}
        def test_overruns():
            time.sleep(60)
        """
    )
    pytester.makefile(".ini", tox=f"[pytest]\nthread_timeout = {ini}\n")
    if env is not None:
        monkeypatch.setenv("PYTEST_THREAD_TIMEOUT", env)
    args = [f"--thread-timeout={cli}"] if cli else []
    if marker is None:  # the session's limit is in the header: no need to wait for it
        result = run(pytester, "--co", *args)
        result.stdout.fnmatch_lines([f"threadpatch: thread timeout {expected} over *"])
    else:
        result = run(pytester, "--thread-timeout-grace=0.5", *args)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines([f"exceeded thread timeout of {expected} during the test"])


def test_ini_file_settings(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nthread_timeout = 0.5\nthread_timeout_grace = 0.5\n"
        "thread_timeout_method = signal\n"
    )
    pytester.makepyfile(CPU_LOOP.format(seconds=40))
    result = run(pytester)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "threadpatch: thread timeout 0.5 s (tox.ini thread_timeout) over setup, call and "
            "teardown, then signal after a 0.5 s grace; each test with a limit is patched",
            "exceeded thread timeout of 0.5 s (tox.ini thread_timeout) during the test",
            "*interrupted by SIGALRM",
        ]
    )


def test_marker_none_means_no_limit_and_bad_markers_are_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time, pytest

        @pytest.mark.thread_timeout(None)
        def test_no_limit():
            time.sleep(0.7)

        @pytest.mark.thread_timeout(-1)
        def test_negative():
            pass

        @pytest.mark.thread_timeout(1, methd="signal")
        def test_typo():
            pass
        """
    )
    result = run(pytester, *LIMIT)
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ValueError: thread_timeout marker must be a non-negative number of seconds, not -1",
            "*TypeError: thread_timeout marker got unknown keywords: methd",
        ]
    )


def test_bad_command_line_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = run(pytester, "--thread-timeout=soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--thread-timeout must be a number of seconds, not 'soon'"])


def test_collect_only_header_names_limit_and_source(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = run(pytester, "--co", "--thread-timeout=2", "--thread-timeout-method=exit")
    result.stdout.fnmatch_lines(
        [
            "threadpatch: thread timeout 2 s (--thread-timeout) over setup, call and teardown, "
            "then exit after a 1 s grace; each test with a limit is patched"
        ]
    )


# -- patching ------------------------------------------------------------------------------


def test_patching_per_test_session_and_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time, pytest, threadpatch

        def test_is_patched():
            assert threadpatch.is_patched()

        def test_is_not_patched():
            assert not threadpatch.is_patched()

        @pytest.mark.threadpatch
        def test_marked_and_hung():
            time.sleep(60)
        """
    )
    # A test with a limit is patched, unless told not to; the marker patches anyway.
    run(pytester, *LIMIT, "-k", "test_is_patched").assert_outcomes(passed=1)
    no_patch = run(pytester, *LIMIT, "--thread-timeout-no-patch", "-k", "not test_is_patched")
    no_patch.assert_outcomes(passed=1, failed=1)
    no_patch.stdout.fnmatch_lines(["*(the test): cancelled at its blocking point"])
    session = run(pytester, *LIMIT, "--threadpatch", "--thread-timeout-no-patch", "-k", "is_pat")
    session.assert_outcomes(passed=1)
    session.stdout.fnmatch_lines(
        ["threadpatch: thread timeout * the session is patched (--threadpatch)"]
    )


def test_plugin_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threadpatch

        def test_x():
            assert not threadpatch.is_patched()
        """
    )
    result = run(pytester, "-p", "no:threadpatch")
    result.assert_outcomes(passed=1)
    assert "threadpatch:" not in result.stdout.str()
    refused = run(pytester, "-p", "no:threadpatch", "--thread-timeout=1")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*unrecognized arguments: --thread-timeout=1*"])


# -- with other plugins ----------------------------------------------------------------------


HUNG_SUITE = """
import threading, time

def test_hung():
    time.sleep(60)

def test_hung_worker():
    worker = threading.Thread(target=threading.Event().wait, name="waiter")
    worker.start()
    worker.join()

def test_fine():
    pass
"""


def test_alongside_pytest_timeout(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_timeout")
    pytester.makepyfile(HUNG_SUITE)
    ours_first = run(pytester, *LIMIT, "--timeout=30", "--thread-timeout-method=signal")
    ours_first.assert_outcomes(failed=2, passed=1)
    assert "pytest-timeout" not in ours_first.stdout.str()
    # pytest-timeout's alarm, first, still reaches its handler through ours.
    theirs_first = run(
        pytester,
        "--timeout=0.5",
        "--thread-timeout=20",
        "--thread-timeout-method=signal",
        "-k",
        "test_hung and not worker",
    )
    theirs_first.assert_outcomes(failed=1)
    theirs_first.stdout.fnmatch_lines(["*Timeout (>0.5s) from pytest-timeout*"])


def test_with_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(HUNG_SUITE)
    result = run(pytester, *LIMIT, "-n", "2")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(["*(the test): cancelled at its blocking point"])


def test_exit_method_with_xdist_replaces_the_worker(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        CPU_LOOP.format(seconds=40)
        + "\ndef test_more_1():\n    pass\n\ndef test_more_2():\n    pass\n"
    )
    result = run(pytester, *LIMIT, "--thread-timeout-method=exit", "-n", "2")
    result.assert_outcomes(failed=1, passed=3)
    result.stdout.fnmatch_lines(["*worker 'gw*' crashed while running*test_cpu_loop*"])


def test_leaked_threads_of_a_cancelled_test_warn_nothing(pytester: pytest.Pytester) -> None:
    # The plugin's own cancellations are not leaks nor thread exceptions.
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(HUNG_SUITE)
    result = run(pytester, *LIMIT, "-k", "worker")
    result.assert_outcomes(failed=1)
    assert "ThreadLeakWarning" not in result.stdout.str()
    assert "PytestUnhandledThreadExceptionWarning" not in result.stdout.str()


def test_teardown_after_an_overrun_gets_the_limit_again(pytester: pytest.Pytester) -> None:
    # The clean-up of a test that overran may block (briefly): it is not
    # cancelled at once, and it is bounded again.
    done = pytester.path / "cleaned.txt"
    pytester.makepyfile(
        f"""
        import threading, time, pytest

        @pytest.fixture
        def resource():
            yield
            threading.Event().wait(0.2)  # a clean-up that blocks, briefly
            with open({str(done)!r}, "w") as f:
                f.write("cleaned")

        def test_hangs(resource):
            time.sleep(60)
        """
    )
    result = run(pytester, *LIMIT)
    result.assert_outcomes(failed=1)
    assert done.read_text() == "cleaned"
