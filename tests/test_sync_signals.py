"""Evidence: which RLocks survive being re-entered from a signal handler of their thread.

Each case runs ``signal_reentry_probe.py`` in a child interpreter (it installs
signal handlers and a timer) on the C core and on the pure-Python one.  Ours
used to fail both ways; since the parking lots became lock-free a handler's
release no longer deadlocks, but a handler that waits for the RLock its thread
already waits for still steals that wait's wake-up (see
threadpatch/_signal_safe.py), which is why the locks signal handlers take stay
native under the patch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("signal_reentry_probe.py")


def _probe(kind: str, implementation: str) -> dict[str, str]:
    env = dict(os.environ, THREADPATCH_PURE_PYTHON="1" if implementation == "python" else "0")
    proc = subprocess.run(
        [sys.executable, str(PROBE), kind], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


IMPLEMENTATIONS = ["c", "python"]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", ["native", "signal-safe"])
def test_native_and_signal_safe_rlocks_survive_a_handler(kind: str, implementation: str) -> None:
    result = _probe(kind, implementation)
    if implementation == "c" and result["implementation"] != "c":
        pytest.skip("the C accelerator is not built")
    assert result["release"] == "ok"
    assert result["nested_wait"] == "ok"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_our_rlock_is_not_signal_safe(implementation: str) -> None:
    # Recorded on purpose: if the nested wait starts passing, our RLock has
    # become safe to re-enter and the signal-safe exemption can go.
    result = _probe("ours", implementation)
    if implementation == "c" and result["implementation"] != "c":
        pytest.skip("the C accelerator is not built")
    assert result["release"] == "ok"  # the lock-free ParkingLot: nothing to deadlock on
    assert result["nested_wait"].startswith("lost wake-up")
