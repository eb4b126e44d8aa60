"""The pytest plugin: a session of 300 trivial tests, plugin on vs ``-p no:threadpatch``.

Each figure is the CPU time (user + system) of a whole ``python -m pytest``
child: start-up, loading the plugins (importing threadpatch), collection and
the 300 tests.  CPU time, not wall time, because the machines this runs on are
shared: a wall-clock ratio of two sessions moved by 0.7-1.4x from run to run
there, their CPU time by a few percent.  The median of alternating rounds; the
ratio is to the same session with the plugin disabled.  Configurations:

* installed, nothing asked (what every user of threadpatch pays);
* ``--thread-timeout=30``: every test watched (a deadline scope per phase and
  two hub timers) and patched around its setup, call and teardown;
* ``--thread-timeout=30 --thread-timeout-no-patch``: watched, not patched;
* ``--threadpatch --thread-timeout=30``: patched once for the session, watched.

Run alone with ``python -m benchmarks pytest_plugin``; ``ROUNDS`` rounds.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._harness import Row, Table

TESTS = 300
ROUNDS = 7
NATIVE = ["-p", "no:threadpatch"]
CONFIGS: list[tuple[str, list[str], float]] = [
    ("plugin installed, no option", [], 1.1),
    ("--thread-timeout=30 (watched and patched per test)", ["--thread-timeout=30"], 1.2),
    (
        "--thread-timeout=30 --thread-timeout-no-patch",
        ["--thread-timeout=30", "--thread-timeout-no-patch"],
        1.15,
    ),
    ("--threadpatch --thread-timeout=30", ["--threadpatch", "--thread-timeout=30"], 1.15),
]


def _suite(directory: Path) -> None:
    body = "\n\n".join(f"def test_{i}():\n    assert {i} == {i}" for i in range(TESTS))
    (directory / "test_trivial.py").write_text(body + "\n")
    (directory / "pytest.ini").write_text("[pytest]\n")  # no rootdir config of ours


def _session(directory: Path, args: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "THREADPATCH_"))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or f"{TESTS} passed" not in proc.stdout:
        raise RuntimeError(f"pytest {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run() -> Table:
    table = Table(f"pytest plugin ({TESTS} trivial tests, CPU time of the session)")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        _suite(directory)
        _session(directory, NATIVE)  # byte-code caches, page cache
        for name, args, limit in CONFIGS:
            ours, native = [], []
            for _ in range(ROUNDS):
                native.append(_session(directory, NATIVE))
                ours.append(_session(directory, args))
            a, b = statistics.median(ours), statistics.median(native)
            table.add(Row(name, a, b, f"<= {limit:g}x", a / b <= limit))
    return table


if __name__ == "__main__":
    run()
