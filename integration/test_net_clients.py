"""Network clients against real servers: a call the server never answers is stopped cleanly.

For each client of :mod:`_netclients` (requests, urllib3, httpx over HTTP/1.1
and HTTP/2, http.client, urllib.request, HTTPS with HTTP/2 by ALPN, streamed
bodies, boto3 S3 against moto, websocket-client,
smtplib against aiosmtpd, ftplib against pyftpdlib, poplib, imaplib,
xmlrpc.client): round trips work while patched; a plain ``threading.Thread``
blocked in a call the server never answers is stopped by every route of
:data:`_routes.ROUTES` (``threadpatch.cancel(thread)``, ``timeout_after``);
the client (or, where the protocol cannot abandon a command, a new
connection) works afterwards; and no descriptor, thread or server-side
connection is left (``/proc/net/tcp``).  The clients are imported here
before patching; :func:`test_imported_after_patching` imports them after
``patch_all()``, or in an interpreter that ``THREADPATCH_AUTOPATCH=1``
patched at start-up, in a child interpreter.  Outcomes go to
``docs/compatibility.md`` (``python -m integration.compat_table``).
"""

from __future__ import annotations

import importlib
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import _dbservers
import _netservers
import pytest
from _netclients import CLIENTS, NetClient, NetOutcome, open_connections, run_blocked
from _routes import MAX_LATENCY, ROUTES, poll_until, run_child

if TYPE_CHECKING:
    from collections.abc import Callable

#: client -> why it cannot run here (a module missing); collection imports before patching
_MISSING: dict[str, str] = {}
for _client in CLIENTS.values():
    try:
        _client.import_client()
    except ImportError as _exc:
        _MISSING[_client.key] = f"{_exc}: pip install {_client.pip or _client.modules[0]}"


@pytest.fixture(params=list(CLIENTS))
def client(request: pytest.FixtureRequest) -> NetClient:
    key: str = request.param
    if key in _MISSING:
        _dbservers.missing(_MISSING[key])
    return CLIENTS[key]


@pytest.fixture
def info(client: NetClient, net_servers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    server = net_servers[client.server]
    if "missing" in server:
        _dbservers.missing(f"the {client.server} server: {server['missing']}")
    return server


def check(outcome: NetOutcome, client: NetClient, compat_results: list[dict[str, Any]]) -> None:
    route = ROUTES[outcome.how]
    row = asdict(outcome)
    row["notes"] = client.notes
    row["outer"] = route.outer
    row["passed"] = (
        outcome.raised == route.outer
        and outcome.latency is not None
        and outcome.latency < MAX_LATENCY
        and outcome.after == client.expected_after
        and outcome.connections_left == 0
    )
    compat_results.append(row)
    assert outcome.raised == route.outer, outcome
    assert outcome.latency is not None, outcome
    assert outcome.latency < MAX_LATENCY, outcome
    assert outcome.after == client.expected_after, outcome
    assert outcome.connections_left == 0, f"the server still holds connections: {outcome}"


def test_round_trip(
    client: NetClient, info: dict[str, Any], no_fd_leak: Callable[[], None]
) -> None:
    conn = client.connect(info)
    try:
        for _ in range(3):
            assert client.round_trip(conn) == client.expected
    finally:
        client.close(conn)
    assert poll_until(lambda: open_connections(info) == 0, 5), "the server holds a connection"
    no_fd_leak()


@pytest.mark.parametrize("how", list(ROUTES))
def test_blocked_call_is_stopped(
    client: NetClient,
    info: dict[str, Any],
    how: str,
    compat_results: list[dict[str, Any]],
    no_fd_leak: Callable[[], None],
) -> None:
    check(run_blocked(client, info, how, "before"), client, compat_results)
    no_fd_leak()


@pytest.mark.parametrize("imported", ["after", "startup"])
def test_imported_after_patching(
    client: NetClient, info: dict[str, Any], imported: str, compat_results: list[dict[str, Any]]
) -> None:
    """A child interpreter: ``patch_all()`` (or ``THREADPATCH_AUTOPATCH=1``), then the import."""
    outcome = NetOutcome(**run_child("_netclients.py", client.key, "cancel", imported, info))
    assert outcome.imported == imported
    check(outcome, client, compat_results)


def test_a_missing_server_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one skip mechanism: a skip on a developer's machine is a failure with ``CI=true``."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="nothing may be skipped"):
        _dbservers.missing("the ftp server: pip install pyftpdlib")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="pip install pyftpdlib"):
        _dbservers.missing("the ftp server: pip install pyftpdlib")


def test_established_counts_the_server_end(net_servers: dict[str, dict[str, Any]]) -> None:
    import socket

    port = int(net_servers["pop3"]["port"])
    assert _netservers.established(port) == 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        assert sock.recv(100).startswith(b"+OK")
        assert _netservers.established(port) == 1
    assert poll_until(lambda: _netservers.established(port) == 0, 5)


def test_every_client_module_is_importable_here() -> None:
    # Under CI a missing package is a failure (not just the skips above).
    for key, why in _MISSING.items():
        _dbservers.missing(f"{key}: {why}")
    for client in CLIENTS.values():
        for module in client.modules:
            assert importlib.import_module(module)
