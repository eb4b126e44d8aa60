"""Database and cache drivers against real servers: blocked calls are cancellable, server-side too.

For each client (psycopg 3 binary and pure-Python, psycopg_pool, psycopg2,
pg8000, PyMySQL, redis-py BLPOP / XREAD BLOCK / pub/sub): a plain
``threading.Thread`` blocks on the server (``pg_sleep(30)``, ``SLEEP(30)``,
a 30 s ``BLPOP``...), and is stopped by ``threadpatch.cancel(thread)`` or by
``timeout_after(0.2)`` inside it.  The tests then check what the server
shows (the query no longer runs within 1 s, no session is left), that the
connection is usable or closed as documented, and that no descriptor or
thread is left.  The drivers are imported here before patching; the child
interpreter tests import them after ``patch_all()``.  Each outcome is
recorded for ``docs/compatibility.md`` (``python -m integration.compat_table``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import _dbservers
import pytest
from _dbclients import CLIENTS, Client, Monitor, Outcome, make_monitor, run_blocked

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def _import_drivers() -> None:
    # Before patching (collection imports this module first): the early-binding case.
    for module in ("psycopg", "psycopg_pool", "psycopg2", "pg8000.native", "pymysql", "redis"):
        try:
            __import__(module)
        except ImportError:
            if _dbservers.in_ci():
                raise
            pytest.skip(f"{module} missing: pip install -e '.[test]'", allow_module_level=True)


_import_drivers()

SERVER_FIXTURES = {"postgres": "postgres_info", "redis": "redis_info", "mariadb": "mariadb_info"}
MAX_LATENCY = 2.0  # seconds; generous for CI (typically a few ms)


@pytest.fixture(params=list(CLIENTS))
def client(request: pytest.FixtureRequest) -> Client:
    return CLIENTS[request.param]


@pytest.fixture
def info(client: Client, request: pytest.FixtureRequest) -> dict[str, Any]:
    info: dict[str, Any] = request.getfixturevalue(SERVER_FIXTURES[client.server])
    return info


_monitors: dict[str, Monitor] = {}


@pytest.fixture(scope="session")
def monitors() -> Iterator[dict[str, Monitor]]:
    yield _monitors
    for monitor in _monitors.values():
        monitor.close()


@pytest.fixture
def monitor(client: Client, info: dict[str, Any], monitors: dict[str, Monitor]) -> Monitor:
    if client.server not in monitors:
        # Made before the test's leak snapshot (the fixture order puts it first)
        # and kept for the session.
        monitors[client.server] = make_monitor(client.server, info)
    return monitors[client.server]


def check(outcome: Outcome, client: Client, compat_results: list[dict[str, Any]]) -> None:
    row = asdict(outcome)
    row["notes"] = client.notes
    compat_results.append(row)
    expected = "ThreadCancelled" if outcome.how == "cancel" else "ThreadTimeout"
    assert outcome.raised == expected, outcome
    assert outcome.latency is not None, outcome
    assert outcome.latency < MAX_LATENCY, outcome
    assert outcome.server_stopped is not None, f"still running on the server 1 s later: {outcome}"
    assert outcome.after == client.expected_after, outcome
    assert outcome.sessions_left == 0, outcome


def test_round_trip(client: Client, info: dict[str, Any], no_fd_leak: Callable[[], None]) -> None:
    conn = client.connect(info, "tp_round_trip")
    try:
        for _ in range(3):
            assert client.round_trip(conn) == client.expected
    finally:
        client.close(conn)
    no_fd_leak()


@pytest.mark.parametrize("how", ["cancel", "deadline"])
def test_blocked_call_is_stopped(
    client: Client,
    info: dict[str, Any],
    monitor: Monitor,
    how: str,
    compat_results: list[dict[str, Any]],
    no_fd_leak: Callable[[], None],
) -> None:
    outcome = run_blocked(client, info, monitor, how, "before")
    check(outcome, client, compat_results)
    no_fd_leak()


def _child(key: str, how: str, imported: str, info: dict[str, Any], **env: str) -> Outcome:
    here = os.path.dirname(__file__)
    result = subprocess.run(
        [sys.executable, os.path.join(here, "_dbclients.py"), key, how, imported, json.dumps(info)],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Outcome(**json.loads(result.stdout.strip().splitlines()[-1]))


def test_imported_after_patching(
    client: Client, info: dict[str, Any], compat_results: list[dict[str, Any]]
) -> None:
    """A child interpreter: ``patch_all()`` first, then ``import`` the driver."""
    check(_child(client.key, "cancel", "after", info), client, compat_results)


@pytest.mark.parametrize("imported", ["before", "after"])
@pytest.mark.parametrize("how", ["cancel", "deadline"])
def test_psycopg_pure_python(
    postgres_info: dict[str, Any],
    imported: str,
    how: str,
    compat_results: list[dict[str, Any]],
) -> None:
    """psycopg's pure-Python implementation (``PSYCOPG_IMPL=python``) in a child interpreter."""
    outcome = _child("psycopg", how, imported, postgres_info, PSYCOPG_IMPL="python")
    assert outcome.label == "psycopg 3 (python)"
    check(outcome, CLIENTS["psycopg"], compat_results)
