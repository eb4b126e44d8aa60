"""subprocess under the patch: waits are cancellation points, children are never left as zombies."""

from __future__ import annotations

import contextlib
import io
import os
import platform
import select
import selectors
import signal
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from tests._helpers import blocked_in, wait_until
from threadpatch import _core, _subprocess
from threadpatch.patches import TARGETS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

STD_WAIT = subprocess.Popen._wait  # type: ignore[attr-defined]
STD_EXIT = subprocess.Popen.__exit__
STD_COMMUNICATE = subprocess.Popen.communicate
STD_SELECTOR = subprocess._PopenSelector  # type: ignore[attr-defined]
# A child that says its pid (in a file: stdout may be captured) and then waits.
SLEEPER = 'echo $$ > "$0"; exec sleep 60'


@pytest.fixture
def patch() -> Iterator[None]:
    with threadpatch.patched():
        yield


@pytest.fixture
def pidfile(tmp_path: Path) -> Path:
    return tmp_path / "pid"


def sleeper(pidfile: Path) -> list[str]:
    return ["sh", "-c", SLEEPER, str(pidfile)]


@contextlib.contextmanager
def sleeping_child(pidfile: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A sleeper child, killed and reaped at the end whatever the test did."""
    proc = subprocess.Popen(sleeper(pidfile))
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def spawn_waiter(
    proc: subprocess.Popen[bytes], kind: str = "subprocess.wait"
) -> threadpatch.Thread:
    """A thread blocked in ``proc.wait()``, parked in a wait of ``kind``."""
    waiter = threadpatch.spawn(proc.wait)
    wait_until(blocked_in(waiter, kind))
    return waiter


def child_pid(pidfile: Path) -> int:
    """The pid the sleeper wrote, once it has (the child has then exec'd sleep)."""

    def read() -> int:
        try:
            return int(pidfile.read_text())
        except (OSError, ValueError):
            return 0

    return wait_until(read, message="the child wrote its pid")


def assert_reaped(pid: int) -> None:
    """``pid`` is no child of ours any more: neither running nor a zombie."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
    if got == 0:  # still running: clean up, then fail
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail(f"child {pid} was left running")
    pytest.fail(f"child {pid} was left a zombie (status {status})")


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


# -- Popen.wait ----------------------------------------------------------------


@pytest.mark.usefixtures("patch")
def test_wait_returns_the_exit_status() -> None:
    assert subprocess.Popen(["sh", "-c", "exit 3"]).wait() == 3
    proc = subprocess.Popen(["sleep", "60"])
    proc.kill()
    assert proc.wait() == -9
    assert proc.wait() == -9  # known: no second waitpid


@pytest.mark.usefixtures("patch")
def test_wait_timeout_is_the_stdlibs(pidfile: Path) -> None:
    proc = subprocess.Popen(sleeper(pidfile))
    with pytest.raises(subprocess.TimeoutExpired) as info:
        proc.wait(timeout=0.05)
    assert info.value.cmd == proc.args
    assert info.value.timeout == 0.05
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0)
    assert proc.poll() is None  # a timeout leaves the child running
    proc.kill()
    assert proc.wait(timeout=10) == -9
    assert_reaped(proc.pid)


def test_popen_made_before_patching_is_cancellable(pidfile: Path) -> None:
    with sleeping_child(pidfile) as proc, threadpatch.patched():
        waiter = spawn_waiter(proc)
        assert waiter.cancel(timeout=5)
        assert waiter.cancelled


@pytest.mark.usefixtures("patch")
def test_cancelled_wait_leaves_the_child_running(pidfile: Path) -> None:
    with sleeping_child(pidfile) as proc:
        waiter = spawn_waiter(proc)
        assert waiter.cancel(timeout=5)
        assert isinstance(waiter.exception, threadpatch.ThreadCancelled)
        assert proc.poll() is None  # as the stdlib leaves it on any exception
    assert proc.returncode == -9


@pytest.mark.usefixtures("patch")
def test_deadline_fires_in_wait(pidfile: Path) -> None:
    with sleeping_child(pidfile) as proc:
        with pytest.raises(threadpatch.ThreadTimeout), threadpatch.timeout_after(0.05):
            proc.wait()
        assert proc.poll() is None


@pytest.mark.usefixtures("patch")
def test_wait_reason_names_the_pid(pidfile: Path) -> None:
    with sleeping_child(pidfile) as proc:
        waiter = spawn_waiter(proc)
        [state] = [s for s in _core.all_states() if s.ident == waiter.ident]
        assert state.blocked_on == ("subprocess.wait", proc.pid)
        out = io.StringIO()
        threadpatch.dump(out)
        assert f"subprocess.wait on {proc.pid}" in out.getvalue()
        proc.kill()
        assert waiter.join(timeout=10) == -9


@pytest.mark.usefixtures("patch")
def test_cancelled_thread_still_reaps_an_exited_child() -> None:
    # An operation that need not block still works in a cancelled thread.
    proc = subprocess.Popen(["true"])
    wait_until(lambda: _zombie(proc.pid))

    def body() -> tuple[int, bool]:
        assert not threadpatch.cancel(threadpatch.current())  # recorded only
        code = proc.wait()
        try:
            threadpatch.checkpoint()
        except threadpatch.ThreadCancelled:
            return code, True
        return code, False

    assert threadpatch.spawn(body).join(timeout=10) == (0, True)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


@pytest.mark.usefixtures("patch")
def test_two_threads_wait_for_one_child(pidfile: Path) -> None:
    proc = subprocess.Popen(sleeper(pidfile))
    waiters = [spawn_waiter(proc) for _ in range(2)]
    proc.kill()
    assert [w.join(timeout=10) for w in waiters] == [-9, -9]
    assert_reaped(proc.pid)


@pytest.mark.usefixtures("patch")
def test_child_reaped_by_someone_else() -> None:
    # As the stdlib: a child another waitpid took has no status left (0).
    proc = subprocess.Popen(["true"])
    os.waitpid(proc.pid, 0)
    assert proc.wait() == 0


@pytest.mark.usefixtures("patch")
def test_without_pidfd_the_wait_polls_and_stays_cancellable(
    pidfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(pid: int) -> int:
        raise PermissionError(1, "Operation not permitted")  # as a seccomp filter says

    monkeypatch.setattr(_subprocess, "_pidfd_open", denied)
    with sleeping_child(pidfile) as proc:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)
        waiter = spawn_waiter(proc, "sleep")
        assert waiter.cancel(timeout=5)
        assert waiter.cancelled
    assert proc.returncode == -9


# -- run() and friends: the child is killed and reaped --------------------------


RUNNERS: dict[str, Callable[..., Any]] = {
    "run": lambda args: subprocess.run(args, capture_output=True),
    "run-no-pipes": subprocess.run,
    "call": subprocess.call,
    "check_call": subprocess.check_call,
    "check_output": subprocess.check_output,
    "popen-with": lambda args: _with_popen(args),
}


def _with_popen(args: list[str]) -> None:
    with subprocess.Popen(args, stdout=subprocess.PIPE) as proc:
        proc.communicate()


@pytest.mark.usefixtures("patch")
@pytest.mark.parametrize("runner", RUNNERS.values(), ids=RUNNERS.keys())
def test_cancel_kills_and_reaps_the_child(runner: Callable[..., Any], pidfile: Path) -> None:
    fds = open_fds()
    worker = threadpatch.spawn(runner, sleeper(pidfile))
    pid = child_pid(pidfile)
    wait_until(lambda: _core_blocked(worker))
    assert worker.cancel(timeout=5)
    assert worker.cancelled
    assert_reaped(pid)
    assert open_fds() <= fds


def _core_blocked(thread: threadpatch.Thread) -> bool:
    return any(s.ident == thread.ident and s.parked for s in _core.all_states())


@pytest.mark.usefixtures("patch")
@pytest.mark.parametrize("runner", RUNNERS.values(), ids=RUNNERS.keys())
def test_deadline_kills_and_reaps_the_child(runner: Callable[..., Any], pidfile: Path) -> None:
    fds = open_fds()
    with pytest.raises(threadpatch.ThreadTimeout), threadpatch.timeout_after(0.2):
        runner(sleeper(pidfile))
    assert_reaped(child_pid(pidfile))
    assert open_fds() <= fds


def test_plain_thread_run_is_cancellable(pidfile: Path) -> None:
    with threadpatch.patched():
        outcome: list[BaseException] = []

        def body() -> None:
            try:
                subprocess.run(sleeper(pidfile), capture_output=True)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=body)
        thread.start()
        pid = child_pid(pidfile)
        wait_until(lambda: any(s.ident == thread.ident and s.parked for s in _core.all_states()))
        assert threadpatch.cancel(thread, timeout=5)
        assert isinstance(outcome[0], threadpatch.ThreadCancelled)
        assert_reaped(pid)


@pytest.mark.usefixtures("patch")
def test_run_timeout_is_the_stdlibs(pidfile: Path) -> None:
    cmd = ["sh", "-c", f"echo early; {SLEEPER}", str(pidfile)]
    with pytest.raises(subprocess.TimeoutExpired) as info:
        subprocess.run(cmd, capture_output=True, timeout=0.5)
    assert info.value.timeout == 0.5
    assert info.value.stdout == b"early\n"  # what was read so far, as the stdlib says
    assert_reaped(child_pid(pidfile))


@pytest.mark.usefixtures("patch")
def test_run_results_are_the_stdlibs() -> None:
    script = (
        "import sys; sys.stdout.write(sys.stdin.read().upper()); sys.stderr.write('e'); sys.exit(4)"
    )
    done = subprocess.run([sys.executable, "-c", script], input=b"ab", capture_output=True)
    assert (done.returncode, done.stdout, done.stderr) == (4, b"AB", b"e")
    with pytest.raises(subprocess.CalledProcessError) as info:
        subprocess.check_output(["sh", "-c", "echo out; exit 2"])
    assert (info.value.returncode, info.value.output) == (2, b"out\n")


# -- communicate ---------------------------------------------------------------


PIPES = {
    "stdout": {"stdout": subprocess.PIPE},
    "stderr": {"stderr": subprocess.PIPE},
    "stdin": {"stdin": subprocess.PIPE},
    "stdout-text": {"stdout": subprocess.PIPE, "text": True},
    "stdin-text": {"stdin": subprocess.PIPE, "text": True},
    "stdout+stderr": {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE},
    "all": {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE},
}


@pytest.mark.usefixtures("patch")
@pytest.mark.parametrize("pipes", PIPES.values(), ids=PIPES.keys())
def test_communicate_is_cancellable(pipes: dict[str, Any], pidfile: Path) -> None:
    # The child neither reads nor writes: stdin gets more than a pipe holds.
    data: bytes | str | None = None
    if "stdin" in pipes:
        data = "x" * (1 << 20) if pipes.get("text") else b"x" * (1 << 20)
    with subprocess.Popen(sleeper(pidfile), **pipes) as proc:  # type: ignore[call-overload]
        try:
            worker = threadpatch.spawn(proc.communicate, data)
            child_pid(pidfile)
            wait_until(lambda: _core_blocked(worker))
            assert worker.cancel(timeout=5)
            assert worker.cancelled
            assert proc.poll() is None  # left running, as on any exception
        finally:
            proc.kill()
    assert proc.returncode == -9


COMMUNICATE_OUTPUT = [
    ({"stdout": subprocess.PIPE}, {}),
    ({"stdout": subprocess.PIPE}, {"text": True}),
    ({"stdout": subprocess.PIPE}, {"bufsize": 0}),
    ({"stderr": subprocess.PIPE}, {"errors": "replace", "encoding": "ascii"}),
    ({"stdin": subprocess.PIPE}, {}),
]


@pytest.mark.parametrize(("pipes", "options"), COMMUNICATE_OUTPUT)
def test_single_pipe_communicate_output_is_the_stdlibs(
    pipes: dict[str, int], options: dict[str, Any]
) -> None:
    script = (
        "import sys,os; os.write(1, b'a\\r\\nb\\rc\\n' * 5000);"
        " os.write(2, b'e\\r\\n\\xfe'); sys.stdin and sys.stdin.read()"
    )
    args = [sys.executable, "-c", script]
    text = "text" in options or "encoding" in options
    data = ("in" if text else b"in") if "stdin" in pipes else None

    def outcome() -> tuple[Any, ...]:
        proc = subprocess.Popen(args, **pipes, **options)
        return (*proc.communicate(data), proc.returncode)

    expected = outcome()
    with threadpatch.patched():
        assert outcome() == expected


@pytest.mark.usefixtures("patch")
def test_communicate_keeps_what_a_partial_read_buffered() -> None:
    proc = subprocess.Popen(["sh", "-c", "echo one; echo two; echo three"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"one\n"
    assert proc.communicate() == (b"two\nthree\n", None)
    assert proc.stdout.closed


@pytest.mark.usefixtures("patch")
@pytest.mark.parametrize(
    "options", [{}, {"text": True}, {"bufsize": 0}], ids=["buffered", "text", "unbuffered"]
)
def test_cancelled_single_pipe_communicate_keeps_what_it_read(
    options: dict[str, Any], pidfile: Path
) -> None:
    script = 'echo first; echo $$ > "$0"; exec sleep 60'
    with subprocess.Popen(
        ["sh", "-c", script, str(pidfile)], stdout=subprocess.PIPE, **options
    ) as proc:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        try:
            worker = threadpatch.spawn(proc.communicate)
            child_pid(pidfile)  # "first" is in the pipe, or was read

            def read_first_and_waits() -> bool:
                return not select.select([fd], [], [], 0)[0] and _core_blocked(worker)

            wait_until(read_first_and_waits, message="the worker read 'first' and waits")
            assert worker.cancel(timeout=5)
            assert worker.cancelled
        finally:
            proc.kill()
        first = "first\n" if options.get("text") else b"first\n"
        assert proc.communicate() == (first, None)
    assert proc.returncode == -9


# -- patching ------------------------------------------------------------------


def test_unpatch_is_exact() -> None:
    assert TARGETS["subprocess"] == "subprocess"
    with threadpatch.patched():
        assert subprocess.Popen._wait is _subprocess.popen_wait  # type: ignore[attr-defined]
        assert subprocess.Popen.__exit__ is _subprocess.popen_exit  # type: ignore[comparison-overlap]
        assert subprocess.Popen.communicate is _subprocess.communicate  # type: ignore[comparison-overlap]
        assert subprocess._PopenSelector is _subprocess.PopenSelector  # type: ignore[attr-defined]
    assert subprocess.Popen._wait is STD_WAIT  # type: ignore[attr-defined]
    assert subprocess.Popen.__exit__ is STD_EXIT
    assert subprocess.Popen.communicate is STD_COMMUNICATE
    assert subprocess._PopenSelector is STD_SELECTOR is selectors.PollSelector  # type: ignore[attr-defined]


def test_subprocess_set_alone_makes_communicate_cancellable(pidfile: Path) -> None:
    # Two pipes: the stdlib's selector loop, with only this set on.
    flags = {flag: flag == "subprocess" for flag in TARGETS}
    with threadpatch.patched(**flags):
        proc = subprocess.Popen(sleeper(pidfile), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            worker = threadpatch.spawn(proc.communicate)
            child_pid(pidfile)
            wait_until(lambda: _core_blocked(worker))
            assert worker.cancel(timeout=5)
        finally:
            proc.kill()
            proc.communicate()


def test_cancel_in_a_program_run_with_python_m_threadpatch(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(
        "import subprocess, threading, os, sys\n"
        "import threadpatch\n"
        "ready = threading.Event()\n"
        "def body():\n"
        "    try:\n"
        "        subprocess.run(['sh', '-c', 'echo $$ > \"$0\"; exec sleep 60', sys.argv[1]])\n"
        "    except threadpatch.ThreadCancelled:\n"
        "        print('cancelled')\n"
        "t = threading.Thread(target=body)\n"
        "t.start()\n"
        "while not (os.path.exists(sys.argv[1]) and open(sys.argv[1]).read().strip()):\n"
        "    threadpatch.sleep(0.005)\n"
        "pid = int(open(sys.argv[1]).read())\n"
        "while not threadpatch.cancel(t, timeout=0.1):\n"
        "    pass\n"
        "try:\n"
        "    os.waitpid(pid, os.WNOHANG)\n"
        "    print('not reaped')\n"
        "except ChildProcessError:\n"
        "    print('reaped')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "THREADPATCH_AUTOPATCH"}
    done = subprocess.run(
        [sys.executable, "-m", "threadpatch", str(script), str(tmp_path / "pid")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cancelled", "reaped"]


@pytest.mark.usefixtures("patch")
@pytest.mark.parametrize("size", [0, 10, select.PIPE_BUF, select.PIPE_BUF + 1, 1 << 20])
def test_stdin_only_communicate_writes_everything(size: int) -> None:
    script = "import sys, zlib; sys.exit(zlib.crc32(sys.stdin.buffer.read()) % 251)"
    data = os.urandom(size)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    assert proc.communicate(data) == (None, None)
    assert proc.returncode == zlib.crc32(data) % 251
    assert proc.stdin is not None
    assert proc.stdin.closed


@pytest.mark.skipif(platform.machine() != "x86_64", reason="reads x86-64 syscall numbers")
def test_ctrl_c_in_run_kills_the_child(tmp_path: Path) -> None:
    # Main thread blocked in run() under python -m threadpatch: SIGINT raises
    # KeyboardInterrupt there (the wait is sliced for signals) and run() kills
    # the child, as the stdlib does.
    pidfile = tmp_path / "pid"
    script = tmp_path / "prog.py"
    script.write_text(
        "import subprocess, sys\n"
        "subprocess.run(['sh', '-c', 'echo $$ > \"$0\"; exec sleep 60', sys.argv[1]],\n"
        "               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "THREADPATCH_AUTOPATCH"}
    with subprocess.Popen(
        [sys.executable, "-m", "threadpatch", str(script), str(pidfile)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as prog:
        pid = child_pid(pidfile)
        # Once its main thread polls (the wait, not the fork: a Ctrl-C that
        # lands in _fork_exec loses the child's pid, in the stdlib too).
        wait_until(lambda: _in_poll(prog.pid), message="the program waits for its child")
        prog.send_signal(signal.SIGINT)
        _, err = prog.communicate(timeout=30)
    assert prog.returncode != 0
    assert "KeyboardInterrupt" in err
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), message="the child was killed")


def _in_poll(tid: int) -> bool:
    try:
        call = Path(f"/proc/{tid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return False
    return call in ("7", "271")  # poll, ppoll (x86-64)
