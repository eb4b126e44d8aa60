"""Loopback servers for the integration tests, and an fd-leak check.

Servers listen on 127.0.0.1 only.  A *stalled* server is a listening socket
that is never accepted from: the kernel completes the TCP handshake, so a
client connects, sends its request, and then waits forever for a reply.
"""

from __future__ import annotations

import gc
import http.server
import json
import os
import select
import socket
import socketserver
import ssl
import sys
import threading
import time
import xmlrpc.server
from typing import TYPE_CHECKING, Any

import _dbservers
import _netservers
import pytest
from _servers import TLS, Server

import threadpatch
from threadpatch import _core

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture
def stalled() -> Iterator[Server]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield Server("127.0.0.1", listener.getsockname()[1])
    finally:
        listener.close()


@pytest.fixture
def unreachable() -> Iterator[Server]:
    """A listener with a full backlog: a client's ``connect()`` never completes."""
    from tests.servers import BacklogServer

    with BacklogServer() as srv:
        yield Server(*srv.address)


@pytest.fixture
def wait_in_connect() -> Callable[[threadpatch.Thread[object]], None]:
    """Wait until a thread is parked in a socket connect (waiting for POLLOUT).

    Not just parked: some clients first park elsewhere (smtplib's ``getfqdn()``
    asks the resolver), and the test means to cancel the connect itself.
    """

    def wait(thread: threadpatch.Thread[object]) -> None:
        state = thread._state
        deadline = time.monotonic() + 10
        while not (state.parked and state._fd_waiting and state._fd_events == select.POLLOUT):
            assert time.monotonic() < deadline, "the thread never waited in connect()"
            assert not thread.done(), thread.exception
            time.sleep(0.0005)  # polling the thread's state, not synchronising on time

    return wait


@pytest.fixture(autouse=True)
def patched_stdlib() -> Iterator[None]:
    """Every integration test runs with the whole standard library patched."""
    threadpatch.patch_all()
    try:
        yield
    finally:
        threadpatch.unpatch_all()


def open_fds() -> set[int]:
    """Open descriptors, less the wake-up eventfds of live threads (they die with them)."""
    gc.collect()
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the descriptor listdir itself used
        if not target.startswith("/proc/"):
            fds.add(int(name))
    wake_fds = {getattr(s, "_wake_fd", -1) for s in _core.all_states() if not s.finished}
    return fds - wake_fds


@pytest.fixture
def no_fd_leak() -> Iterator[Callable[[], None]]:
    """Call the fixture's function at the end of a test: fails on new open fds.

    The hub's descriptors and the calling thread's wake-up eventfd live as long
    as the process and the thread: a short wait under a deadline creates them
    before the first snapshot.
    """
    a, b = socket.socketpair()
    with a, b, threadpatch.ignore_after(0.001):
        a.recv(1)
    before = open_fds()

    def check() -> None:
        # The servers' handler threads close their side of a connection
        # asynchronously: poll for that state for a while before failing.
        deadline = time.monotonic() + 5
        leaked = open_fds() - before
        while leaked and time.monotonic() < deadline:
            time.sleep(0.005)
            leaked = open_fds() - before
        details = {fd: _describe_fd(fd) for fd in leaked}
        assert not leaked, f"descriptors left open: {details}"

    return check


def _describe_fd(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Xmlrpc(xmlrpc.server.SimpleXMLRPCRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(server: socketserver.BaseServer) -> Iterator[Server]:
    # Native thread, started before the test's leak snapshot (module scope).
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"server-{type(server).__name__}",
        daemon=True,
    )
    thread.start()
    try:
        host, port = server.server_address[:2]  # type: ignore[misc]
        yield Server(str(host), int(port))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def http_server() -> Iterator[Server]:
    """A normal HTTP/1.0 server answering ``hello`` to every GET."""
    yield from _serve(http.server.HTTPServer(("127.0.0.1", 0), _Hello))


@pytest.fixture(scope="module")
def xmlrpc_server() -> Iterator[Server]:
    server = xmlrpc.server.SimpleXMLRPCServer(
        ("127.0.0.1", 0), requestHandler=_Xmlrpc, logRequests=False, allow_none=True
    )
    server.register_function(lambda a, b: a + b, "add")
    yield from _serve(server)


class _SmtpLike(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib's connect, NOOP and QUIT."""

    def handle(self) -> None:
        self.wfile.write(b"220 test ESMTP\r\n")
        for line in self.rfile:
            verb = line.strip().upper()
            if verb.startswith(b"QUIT"):
                self.wfile.write(b"221 bye\r\n")
                return
            self.wfile.write(b"250 ok\r\n")


class _FtpLike(socketserver.StreamRequestHandler):
    """Just enough FTP for ftplib's welcome, NOOP and QUIT."""

    def handle(self) -> None:
        self.wfile.write(b"220 test FTP\r\n")
        for line in self.rfile:
            if line.strip().upper().startswith(b"QUIT"):
                self.wfile.write(b"221 bye\r\n")
                return
            self.wfile.write(b"200 ok\r\n")


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = True


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[Server]:
    yield from _serve(_TCPServer(("127.0.0.1", 0), _SmtpLike))


@pytest.fixture(scope="module")
def ftp_server() -> Iterator[Server]:
    yield from _serve(_TCPServer(("127.0.0.1", 0), _FtpLike))


class _TLSHTTPServer(http.server.HTTPServer):
    """HTTPS: the handshake happens in the handler's first read, not in accept()."""

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        TLS.cert.configure_cert(ctx)
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class _ThreadingTLSHTTPServer(socketserver.ThreadingMixIn, _TLSHTTPServer):
    daemon_threads = True
    block_on_close = True


@pytest.fixture(scope="module")
def https_server() -> Iterator[Server]:
    """A normal HTTPS server (certificate from the ``TLS`` CA) answering ``hello``."""
    yield from _serve(_ThreadingTLSHTTPServer(("127.0.0.1", 0), _Hello))


@pytest.fixture(scope="module", autouse=True)
def servers(
    http_server: Server,
    https_server: Server,
    xmlrpc_server: Server,
    smtp_server: Server,
    ftp_server: Server,
) -> dict[str, Server]:
    """Every normal server, started before any test of the module (and its leak checks)."""
    return {
        "http_server": http_server,
        "https_server": https_server,
        "xmlrpc_server": xmlrpc_server,
        "smtp_server": smtp_server,
        "ftp_server": ftp_server,
    }


# -- database and cache servers (session-wide; see _dbservers) -------------------------

COMPAT_RESULTS = os.path.join(os.path.dirname(__file__), ".results")


def _server_info(
    start: Callable[[], tuple[object, _dbservers.Process]],
) -> Iterator[dict[str, Any]]:
    server, proc = start()
    info = dict(vars(server))
    if isinstance(server, _dbservers.Postgres):
        info["conninfo"] = server.conninfo
    try:
        yield info
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def postgres_info() -> Iterator[dict[str, Any]]:
    yield from _server_info(_dbservers.start_postgres)


@pytest.fixture(scope="session")
def redis_info() -> Iterator[dict[str, Any]]:
    yield from _server_info(_dbservers.start_redis)


@pytest.fixture(scope="session")
def mariadb_info() -> Iterator[dict[str, Any]]:
    yield from _server_info(_dbservers.start_mariadb)


@pytest.fixture(scope="session")
def net_servers() -> Iterator[dict[str, dict[str, Any]]]:
    """The network servers of :mod:`_netservers` (one child process for the session)."""
    servers, proc = _netservers.start()
    try:
        yield servers
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def compat_results() -> Iterator[list[dict[str, Any]]]:
    """Outcomes the database tests record; written for ``python -m integration.compat_table``."""
    rows: list[dict[str, Any]] = []
    yield rows
    if rows:
        os.makedirs(COMPAT_RESULTS, exist_ok=True)
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        path = os.path.join(COMPAT_RESULTS, f"compat-{version}.json")
        merged: dict[str, dict[str, Any]] = {}
        if os.path.exists(path):  # a partial run (-k) updates its rows only
            with open(path) as f:
                merged = {_row_key(r): r for r in json.load(f)["rows"]}
        merged.update({_row_key(r): r for r in rows})
        with open(path, "w") as f:
            json.dump({"python": version, "rows": list(merged.values())}, f, indent=1)


def _row_key(row: dict[str, Any]) -> str:
    return f"{row['label']}|{row['how']}|{row['imported']}"
