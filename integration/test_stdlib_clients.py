"""Unmodified stdlib and third-party clients, blocked on a stalled server, are cancellable.

Each client runs against a loopback server that accepts the connection and
never answers.  Inside a thread it must be cancelled promptly, and by
``timeout_after``; it must leave no descriptor and no thread behind; and the
same client must then work against a normal server, patched and unpatched.
"""

from __future__ import annotations

import ftplib
import http.client
import smtplib
import time
import urllib.request
import xmlrpc.client
from typing import TYPE_CHECKING, Any

import pytest
import requests
import urllib3
from _servers import TLS

import threadpatch

if TYPE_CHECKING:
    from collections.abc import Callable

    from _servers import Server


def use_http_client(srv: Server) -> object:
    conn = http.client.HTTPConnection(srv.host, srv.port)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read()
    finally:
        conn.close()


def use_urllib_request(srv: Server) -> object:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(srv.url) as response:
        return response.read()


def use_requests(srv: Server) -> object:
    with requests.Session() as session:
        session.trust_env = False
        return session.get(srv.url).content


def use_urllib3(srv: Server) -> object:
    with urllib3.PoolManager() as pool:
        return pool.request("GET", srv.url, retries=False).data


def use_xmlrpc(srv: Server) -> object:
    with xmlrpc.client.ServerProxy(srv.url) as proxy:
        return proxy.add(2, 3)


def use_smtplib(srv: Server) -> object:
    # Not SMTP(host, port): if the greeting never comes, __init__ raises and
    # nobody can close the socket (the stdlib's behaviour on a timeout, too).
    smtp = smtplib.SMTP()
    try:
        smtp.connect(srv.host, srv.port)
        return smtp.noop()[0]
    finally:
        smtp.close()


def use_ftplib(srv: Server) -> object:
    ftp = ftplib.FTP()
    try:
        ftp.connect(srv.host, srv.port)
        return ftp.voidcmd("NOOP")
    finally:
        ftp.close()


def use_https_client(srv: Server) -> object:
    conn = http.client.HTTPSConnection(srv.host, srv.port, context=TLS.client_context())
    try:
        conn.request("GET", "/")
        return conn.getresponse().read()
    finally:
        conn.close()


def use_https_requests(srv: Server) -> object:
    with requests.Session() as session:
        session.trust_env = False
        return session.get(srv.https_url, verify=TLS.ca_file).content


def use_https_urllib3(srv: Server) -> object:
    with urllib3.PoolManager(ca_certs=TLS.ca_file) as pool:
        return pool.request("GET", srv.https_url, retries=False).data


def use_https_urllib_request(srv: Server) -> object:
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=TLS.client_context()),
    )
    with opener.open(srv.https_url) as response:
        return response.read()


# client -> (function, fixture of its normal server, what the normal server answers)
CLIENTS: dict[str, tuple[Callable[[Server], object], str, object]] = {
    "http.client": (use_http_client, "http_server", b"hello"),
    "urllib.request": (use_urllib_request, "http_server", b"hello"),
    "requests": (use_requests, "http_server", b"hello"),
    "urllib3": (use_urllib3, "http_server", b"hello"),
    "xmlrpc.client": (use_xmlrpc, "xmlrpc_server", 5),
    "smtplib": (use_smtplib, "smtp_server", 250),
    "ftplib": (use_ftplib, "ftp_server", "200 ok"),
    # TLS: stalled in the handshake (the stalled server never answers the hello)
    "https:http.client": (use_https_client, "https_server", b"hello"),
    "https:requests": (use_https_requests, "https_server", b"hello"),
    "https:urllib3": (use_https_urllib3, "https_server", b"hello"),
    "https:urllib.request": (use_https_urllib_request, "https_server", b"hello"),
}

pytestmark = pytest.mark.parametrize("client", list(CLIENTS))


def test_cancel_a_stalled_client(
    client: str,
    stalled: Server,
    wait_all_threads_blocked: Any,
    no_fd_leak: Callable[[], None],
) -> None:
    func = CLIENTS[client][0]
    t = threadpatch.spawn(func, stalled, name=f"client-{client}")
    wait_all_threads_blocked(expected=1)
    assert t.cancel(timeout=5)
    assert t.cancelled, t.exception
    del t
    no_fd_leak()


def test_timeout_after_a_stalled_client(
    client: str, stalled: Server, no_fd_leak: Callable[[], None]
) -> None:
    func = CLIENTS[client][0]
    with pytest.raises(threadpatch.ThreadTimeout):
        threadpatch.timeout_after(0.05, func, stalled)
    no_fd_leak()


def test_cancel_in_connect_leaves_no_socket(
    client: str,
    unreachable: Server,
    wait_in_connect: Callable[[threadpatch.Thread[object]], None],
    no_fd_leak: Callable[[], None],
) -> None:
    # Checked while the thread's traceback (its frames, their sockets) is
    # alive: a socket is closed by the client's clean-up, not left to the
    # garbage collector (urllib3 needs the urllib3 patch set for that).
    t = threadpatch.spawn(CLIENTS[client][0], unreachable)
    wait_in_connect(t)
    assert t.cancel(timeout=5)
    assert t.cancelled, t.exception
    no_fd_leak()


@pytest.fixture
def normal(client: str, servers: dict[str, Server]) -> Server:
    """The normal server for ``client``."""
    return servers[CLIENTS[client][1]]


def test_client_works_afterwards(
    client: str,
    stalled: Server,
    normal: Server,
    wait_all_threads_blocked: Any,
    no_fd_leak: Callable[[], None],
) -> None:
    func, _, expected = CLIENTS[client]
    t = threadpatch.spawn(func, stalled)
    wait_all_threads_blocked(expected=1)
    t.cancel(timeout=5)
    assert t.cancelled
    assert threadpatch.spawn(func, normal).join(timeout=10) == expected
    threadpatch.unpatch_all()
    assert func(normal) == expected
    del t
    no_fd_leak()


@pytest.mark.slow
def test_cancel_latency_under_100ms(
    client: str, stalled: Server, wait_all_threads_blocked: Any
) -> None:
    func = CLIENTS[client][0]
    t = threadpatch.spawn(func, stalled)
    wait_all_threads_blocked(expected=1)
    t0 = time.monotonic()
    assert t.cancel(timeout=5)
    assert time.monotonic() - t0 < 0.1
