"""subprocess under patch_all(): run, check_output, Popen.wait vs the stdlib in the same run.

Each round runs the workload either inside ``threadpatch.patched()`` (every
patch set on, as ``python -m threadpatch`` does) or unpatched, alternating, so
the ratio is of the same children on the same machine.  The child is
``true`` / ``echo``: spawning it dominates, and what is measured is what
threadpatch adds around that (the pidfd wait, the selector, the single-pipe
read loop).  ``Popen.wait, child running`` waits for a child that sleeps
5 ms, so every wait really blocks and is woken by the child's exit.
Spawning a process varies a lot with the machine's load (2 shared cores):
nine alternating rounds, the median of each side.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import threadpatch
from benchmarks._harness import Table, ratio_row

if TYPE_CHECKING:
    from collections.abc import Callable


def _loop(body: Callable[[], object], patch: bool) -> Callable[[int], None]:
    def run(n: int) -> None:
        if patch:
            with threadpatch.patched():
                for _ in range(n):
                    body()
        else:
            for _ in range(n):
                body()

    return run


def _wait_running() -> int:
    return subprocess.Popen(["sleep", "0.005"]).wait()


def _wait_exited() -> int:
    proc = subprocess.Popen(["true"])
    return proc.wait()


WORKLOADS: dict[str, tuple[Callable[[], object], int, float]] = {
    # name: (one operation, operations per round, target ratio)
    "subprocess.run(['true'])": (lambda: subprocess.run(["true"]), 100, 1.15),
    "subprocess.run(capture_output=True)": (
        lambda: subprocess.run(["echo", "x"], capture_output=True),
        100,
        1.15,
    ),
    "subprocess.check_output(['echo', 'x'])": (
        lambda: subprocess.check_output(["echo", "x"]),
        100,
        1.15,
    ),
    "Popen(['true']).wait()": (_wait_exited, 100, 1.2),
    "Popen.wait, child running (sleep 5 ms)": (_wait_running, 50, 1.15),
}


def run() -> Table:
    table = Table("subprocess under patch_all() (ratio to the stdlib)")
    for name, (body, n, limit) in WORKLOADS.items():
        ratio_row(table, name, _loop(body, True), _loop(body, False), n, limit, rounds=9)
    return table


if __name__ == "__main__":
    run()
