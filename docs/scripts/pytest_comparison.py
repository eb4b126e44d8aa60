"""Run one hung test suite under pytest-timeout and under threadpatch's plugin; print a table.

    python docs/scripts/pytest_comparison.py            # print the Markdown table
    python docs/scripts/pytest_comparison.py --write    # and put it in docs/guide/pytest.md

The suite (written to a temporary directory) hangs the ways tests hang: a
``time.sleep``, a fixture blocked in ``queue.Queue().get()``, a worker thread
blocked in ``Event().wait()`` that the test joins, ``requests.get`` to a
loopback server that never answers, a CPU loop, and one test that passes.
Each configuration runs it in a child ``python -m pytest`` with a 1 s limit;
a child still running after ``CHILD_TIMEOUT`` seconds is killed (and the
table says so).  Needs pytest-timeout, requests and threadpatch installed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHILD_TIMEOUT = 30
GUIDE = Path(__file__).resolve().parents[1] / "guide" / "pytest.md"
START, END = "<!-- comparison:start -->", "<!-- comparison:end -->"

SUITE = """
import os, queue, socket, sys, threading, time
import pytest, requests

@pytest.fixture
def stuck_fixture():
    queue.Queue().get()
    yield

@pytest.fixture
def stalled_server():
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, never answers
        yield server.getsockname()[1]

def test_sleep():
    time.sleep(60)

def test_fixture_queue_get(stuck_fixture):
    pass

def test_worker_event_wait():
    worker = threading.Thread(target=threading.Event().wait, name="waiter")
    worker.start()
    worker.join()

def test_requests_stalled_server(stalled_server):
    requests.get(f"http://127.0.0.1:{stalled_server}/")

def test_cpu_loop_3s():
    end = time.monotonic() + 3
    while time.monotonic() < end:
        pass

def test_passes():
    pass

def test_zz_threads_left(tmp_path_factory):
    # Threads the tests started that really still run (a join interrupted by a
    # signal may have marked one stopped); not pytest-timeout's own timer.
    running = sys._current_frames()
    others = [
        t for t in threading.enumerate()
        if t is not threading.main_thread() and t.ident in running
        and not t.name.startswith("pytest_timeout")
    ]
    with open(os.environ["COMPARISON_LEFT"], "w") as f:
        f.write(str(len(others)))
"""
TESTS = [t for t in re.findall(r"^def (test_\w+)", SUITE, re.MULTILINE) if "_zz_" not in t]
NO_THEIRS, NO_OURS = ["-p", "no:timeout"], ["-p", "no:threadpatch"]
CONFIGS = {
    "pytest-timeout `signal`": [*NO_OURS, "--timeout=1", "--timeout-method=signal"],
    "pytest-timeout `thread`": [*NO_OURS, "--timeout=1", "--timeout-method=thread"],
    "threadpatch `--thread-timeout=1`": [*NO_THEIRS, "--thread-timeout=1"],
    "threadpatch, `signal` method, pytest-timeout `thread` backstop": [
        "--thread-timeout=1",
        "--thread-timeout-method=signal",
        "--timeout=20",
        "--timeout-method=thread",
    ],
}


@dataclass
class Run:
    outcomes: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    returncode: int | None = None
    threads_left: str = "?"
    report_lines: int | None = None
    hung: bool = False
    seconds: float = 0.0
    stdout: str = ""


def run_config(directory: Path, args: list[str]) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "THREADPATCH_"))}
    left = directory / "left.txt"
    left.unlink(missing_ok=True)
    env["COMPARISON_LEFT"] = str(left)
    env["COLUMNS"] = "400"  # pytest's short summary keeps the whole message
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-rA"]
    result = Run()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [*cmd, *args],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
        result.returncode, result.stdout = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        result.hung = True
        out = exc.stdout or b""
        result.stdout = out.decode() if isinstance(out, bytes) else out
    result.seconds = time.monotonic() - t0
    if left.exists():
        result.threads_left = left.read_text()
    section = re.search(
        r"_+ test_worker_event_wait _+\n(.*?)\n(?:_{3,}|={3,})", result.stdout, re.DOTALL
    )
    if section:
        result.report_lines = len(section.group(1).splitlines())
    for line in result.stdout.splitlines():
        found = re.match(r"(PASSED|FAILED|ERROR) \S+::(test_\w+)(?: - (.*))?$", line)
        if found:
            kind, name, message = found.groups()
            outcome = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error"}[kind]
            if result.outcomes.get(name) not in (None, "passed"):
                outcome = result.outcomes[name]  # FAILED, then ERROR at teardown: keep the first
            elif result.outcomes.get(name) == "passed" and outcome == "error":
                outcome = "passed, then error at teardown"
            result.outcomes[name] = outcome
            result.messages.setdefault(name, message or "")
    finished = [n for n in TESTS if n in result.outcomes]
    for name in TESTS:
        if name not in result.outcomes:
            first_missing = name == next(n for n in TESTS if n not in finished)
            if result.hung and not first_missing:
                result.outcomes[name] = "never finished"
            else:
                result.outcomes[name] = "process killed" if first_missing else "not run"
    return result


def session_text(run: Run) -> str:
    if run.hung:
        ran = sum(o not in ("not run", "process killed") for o in run.outcomes.values())
        if ran == len(TESTS):
            return (
                f"no: all tests ran, then the process hung at exit (killed after {CHILD_TIMEOUT} s)"
            )
        return f"no: hung (killed after {CHILD_TIMEOUT} s)"
    if any(o == "process killed" for o in run.outcomes.values()):
        return f"no: the process ended at the first hang (exit status {run.returncode})"
    return f"yes ({run.seconds:.0f} s, exit status {run.returncode})"


def report_text(run: Run) -> str:
    message = run.messages.get("test_worker_event_wait")
    if message is None:
        return "none: the process was killed (the stacks of all threads are on stderr)"
    lines = f" ({run.report_lines} lines)" if run.report_lines else ""
    return f"`{message.strip()[:80]}`{lines}"


def table(runs: dict[str, Run]) -> str:
    names = list(runs)
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for test in TESTS:
        lines.append(f"| `{test}` | " + " | ".join(runs[n].outcomes[test] for n in names) + " |")
    lines.append("| session survived? | " + " | ".join(session_text(runs[n]) for n in names) + " |")
    lines.append(
        "| threads still running at the end | "
        + " | ".join(runs[n].threads_left if runs[n].threads_left != "?" else "-" for n in names)
        + " |"
    )
    lines.append(
        "| report of `test_worker_event_wait` | "
        + " | ".join(report_text(runs[n]) for n in names)
        + " |"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {GUIDE}")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "test_hung_suite.py").write_text(SUITE)
        (directory / "pytest.ini").write_text("[pytest]\n")
        runs = {}
        for name, args in CONFIGS.items():
            print(f"running: {name} ...", file=sys.stderr, flush=True)
            runs[name] = run_config(directory, args)
    text = table(runs)
    print(text)
    if options.write:
        guide = GUIDE.read_text()
        before, rest = guide.split(START, 1)
        _, after = rest.split(END, 1)
        py = f"Python {sys.version_info.major}.{sys.version_info.minor}"
        generated = f"{START}\n<!-- generated by docs/scripts/pytest_comparison.py on {py} -->\n"
        GUIDE.write_text(f"{before}{generated}{text}\n{END}{after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
