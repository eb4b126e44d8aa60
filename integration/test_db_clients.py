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

import threading
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import _dbservers
import pytest
from _dbclients import CLIENTS, Client, Monitor, Outcome, make_monitor, run_blocked
from _routes import MAX_LATENCY, ROUTES, parked, run_child

import threadpatch

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
    expected = ROUTES[outcome.how].outer
    row = asdict(outcome)
    row["notes"] = client.notes
    row["outer"] = expected
    row["passed"] = (
        outcome.raised == expected
        and outcome.latency is not None
        and outcome.latency < MAX_LATENCY
        and outcome.server_stopped is not None
        and outcome.after == client.expected_after
        and outcome.sessions_left == 0
    )
    compat_results.append(row)
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


@pytest.mark.parametrize("how", list(ROUTES))
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
    return Outcome(**run_child("_dbclients.py", key, how, imported, info, **env))


@pytest.mark.parametrize("imported", ["after", "startup"])
def test_imported_after_patching(
    client: Client, info: dict[str, Any], imported: str, compat_results: list[dict[str, Any]]
) -> None:
    """A child interpreter: ``patch_all()`` (or ``THREADPATCH_AUTOPATCH=1``), then the import."""
    outcome = _child(client.key, "cancel", imported, info)
    assert outcome.imported == imported
    check(outcome, client, compat_results)


@pytest.mark.parametrize("imported", ["before", "after"])
@pytest.mark.parametrize("how", list(ROUTES))
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


def _wait_parked(thread: threading.Thread) -> None:
    deadline = time.monotonic() + 10
    while not (parked(thread) or not thread.is_alive()):
        assert time.monotonic() < deadline, "the thread never blocked in a cancellation point"
        time.sleep(0.001)  # polling the thread's state, not synchronising on time


def _run_plain(func: Callable[[], object]) -> tuple[threading.Thread, dict[str, str]]:
    seen: dict[str, str] = {}

    def worker() -> None:
        try:
            func()
        except BaseException as exc:
            seen["raised"] = type(exc).__name__

    thread = threading.Thread(target=worker)
    thread.start()
    return thread, seen


def test_waiting_for_a_free_pool_connection_is_cancellable(
    postgres_info: dict[str, Any], no_fd_leak: Callable[[], None]
) -> None:
    """psycopg_pool was imported before patching: its Condition is rebound by the set."""
    import psycopg_pool

    pool = psycopg_pool.ConnectionPool(
        postgres_info["conninfo"], min_size=1, max_size=1, open=False
    )
    pool.open(wait=True, timeout=10)
    try:
        with pool.connection(timeout=5):  # the only one
            thread, seen = _run_plain(lambda: pool.getconn(timeout=30))
            _wait_parked(thread)
            threadpatch.cancel(thread, timeout=5)
            thread.join(5)
            assert seen == {"raised": "ThreadCancelled"}
        with pool.connection(timeout=5) as conn:  # the pool still hands it out
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pool.close(timeout=5)
    no_fd_leak()


def test_waiting_for_a_shared_psycopg_connection_is_cancellable(
    postgres_info: dict[str, Any], no_fd_leak: Callable[[], None]
) -> None:
    """psycopg was imported before patching: a connection made while patched has our Lock."""
    import psycopg

    conn = psycopg.connect(postgres_info["conninfo"], autocommit=True)
    try:
        sleeper, slept = _run_plain(lambda: conn.execute("SELECT pg_sleep(30)"))
        _wait_parked(sleeper)
        waiter, waited = _run_plain(lambda: conn.execute("SELECT 1"))
        _wait_parked(waiter)  # on conn.lock, behind the sleeper
        threadpatch.cancel(waiter, timeout=5)
        waiter.join(5)
        assert waited == {"raised": "ThreadCancelled"}
        threadpatch.cancel(sleeper, timeout=5)
        sleeper.join(5)
        assert slept == {"raised": "ThreadCancelled"}
        assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        conn.close()
    no_fd_leak()
