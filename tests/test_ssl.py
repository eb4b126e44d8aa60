"""threadpatch.ssl: cancellable TLS handshake, read, write, sendfile and unwrap."""

from __future__ import annotations

import socket as std_socket
import ssl as std_ssl
import tempfile
import time
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import _core
from threadpatch import socket as tp_socket
from threadpatch import ssl as tp_ssl
from threadpatch._core import ThreadTimeout

from ._helpers import blocked_in, wait_until
from .servers import EchoServer, SilentServer, TLSCerts, fd_count
from .test_socket import settle_fds

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture(scope="module")
def certs() -> TLSCerts:
    return TLSCerts()


@pytest.fixture
def baseline() -> int:
    _core.get_hub().ensure_started()
    a, b = tp_socket.socketpair()
    with a, b:
        b.send(b"x")
        _core.current_state().wait_fd(a.fileno(), 1, 0)
    return fd_count()


@pytest.fixture
def tls_echo(certs: TLSCerts) -> Iterator[EchoServer]:
    with EchoServer(tls=certs.server_context()) as srv:
        yield srv


def client(certs: TLSCerts, address: tuple[str, int], timeout: float | None = 5) -> Any:
    ctx = certs.client_context(tp_ssl.SSLContext)
    sock = tp_socket.create_connection(address, timeout=timeout)
    return ctx.wrap_socket(sock, server_hostname="localhost")


def test_types_and_echo(certs: TLSCerts, tls_echo: EchoServer) -> None:
    with client(certs, tls_echo.address) as s:
        assert isinstance(s, std_ssl.SSLSocket)
        assert isinstance(s, std_socket.socket)
        assert type(s) is tp_ssl.SSLSocket
        assert s.gettimeout() == 5
        s.sendall(b"hello" * 10000)
        got = b""
        while len(got) < 50000:
            got += s.recv(65536)
        assert got == b"hello" * 10000
        with s.makefile("rwb") as f:
            f.write(b"line\n")
            f.flush()
            assert f.readline() == b"line\n"
    ctx = tp_ssl.create_default_context()
    assert type(ctx) is tp_ssl.SSLContext
    assert ctx.check_hostname


def test_read_cancel_deadline_timeout(
    certs: TLSCerts,
    tls_echo: EchoServer,
    baseline: int,
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    with client(certs, tls_echo.address, timeout=None) as s:
        t = threadpatch.spawn(s.recv, 10)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert t.cancelled
        with pytest.raises(ThreadTimeout), threadpatch.timeout_after(0.02):
            s.recv(10)
        s.settimeout(0.02)
        with pytest.raises(TimeoutError, match="The read operation timed out"):
            s.read(10)
        s.settimeout(5)
        s.sendall(b"still usable")
        assert s.recv(100) == b"still usable"
        s.setblocking(False)
        with pytest.raises(std_ssl.SSLWantReadError):
            s.recv(10)
    tls_echo.close()
    settle_fds(baseline)


def test_handshake_cancel_deadline_timeout(
    certs: TLSCerts, baseline: int, wait_all_threads_blocked: Callable[..., None]
) -> None:
    # The silent server never answers the ClientHello.
    with SilentServer() as srv:
        ctx = certs.client_context(tp_ssl.SSLContext)

        def handshake() -> None:
            with tp_socket.create_connection(srv.address) as sock:
                ctx.wrap_socket(sock, server_hostname="localhost")

        t = threadpatch.spawn(handshake)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert t.cancelled
        with pytest.raises(ThreadTimeout), threadpatch.timeout_after(0.02):
            handshake()
        with tp_socket.create_connection(srv.address, timeout=0.02) as sock:
            with pytest.raises(TimeoutError, match="handshake operation timed out"):
                ctx.wrap_socket(sock, server_hostname="localhost")
    settle_fds(baseline)


def _flooded_client(certs: TLSCerts, srv: EchoServer) -> Any:
    s = client(certs, srv.address, None)
    s.setsockopt(std_socket.SOL_SOCKET, std_socket.SO_SNDBUF, 4096)
    s.setsockopt(std_socket.SOL_SOCKET, std_socket.SO_RCVBUF, 4096)
    return s


def test_write_and_sendfile_cancellable(
    certs: TLSCerts, wait_all_threads_blocked: Callable[..., None]
) -> None:
    # The client never reads: the server's echo blocks, then the client's writes.
    # (A TLS write cut short must be retried with the same data, so each
    # phase uses its own connection, as after a timeout in the stdlib.)
    with EchoServer(tls=certs.server_context()) as srv:
        with _flooded_client(certs, srv) as s:

            def flood() -> None:
                while True:
                    s.sendall(b"z" * 65536)

            t = threadpatch.spawn(flood)
            wait_all_threads_blocked(expected=1)
            assert t.cancel(timeout=5)
            assert t.cancelled
        with _flooded_client(certs, srv) as s, tempfile.TemporaryFile() as f:
            f.write(b"q" * (16 << 20))
            f.seek(0)
            with pytest.raises(ThreadTimeout), threadpatch.timeout_after(0.05):
                s.sendfile(f)
        with _flooded_client(certs, srv) as s:
            s.settimeout(0.05)
            with pytest.raises(TimeoutError, match="The write operation timed out"):
                while True:
                    s.write(b"z" * 65536)


def test_unwrap_waits_for_peer_and_is_cancellable(
    certs: TLSCerts, wait_all_threads_blocked: Callable[..., None]
) -> None:
    server_ctx = certs.server_context()
    with tp_socket.create_server(("127.0.0.1", 0)) as listener:
        c = tp_socket.create_connection(listener.getsockname(), timeout=5)
        raw, _ = listener.accept()
        with raw, c:
            raw.settimeout(5)
            done = threadpatch.spawn(lambda: server_ctx.wrap_socket(raw, server_side=True))
            s = certs.client_context(tp_ssl.SSLContext).wrap_socket(c, server_hostname="localhost")
            srv = done.join(timeout=10)
            with srv, s:
                s.settimeout(None)
                # The server never answers close_notify: unwrap waits for it.
                t = threadpatch.spawn(s.unwrap)
                wait_all_threads_blocked(expected=1)
                assert t.cancel(timeout=5)
                assert t.cancelled
                # Now the server unwraps too: both sides complete.
                t2 = threadpatch.spawn(srv.unwrap)
                plain = s.unwrap()
                t2.join(timeout=10)
                assert type(plain) is tp_ssl.SSLSocket or isinstance(plain, std_socket.socket)


def test_accept_wraps_with_our_class(certs: TLSCerts) -> None:
    server_ctx = certs.server_context(tp_ssl.SSLContext)
    with server_ctx.wrap_socket(
        tp_socket.create_server(("127.0.0.1", 0)), server_side=True
    ) as listener:
        listener.settimeout(5)
        t = threadpatch.spawn(lambda: client(certs, listener.getsockname()))
        conn, _ = listener.accept()
        with conn, t.join(timeout=10) as c:
            assert type(conn) is tp_ssl.SSLSocket
            c.sendall(b"ping")
            assert conn.recv(4) == b"ping"


def test_facade_mirrors_stdlib() -> None:
    for name in (
        "PROTOCOL_TLS_CLIENT",
        "SSLError",
        "SSLWantReadError",
        "CERT_NONE",
        "Purpose",
        "_create_default_https_context",
    ):
        assert getattr(tp_ssl, name) is getattr(std_ssl, name)
    _ = time


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_reads_that_wait_first_take_what_openssl_holds(
    certs: TLSCerts, tls_echo: EchoServer, timeout: float | None
) -> None:
    """After a read waited, reads wait first; never while OpenSSL holds decrypted bytes.

    A record of 100 bytes read 10 at a time: the socket is empty after the
    first read, the other nine come from OpenSSL's buffer and must not wait
    (they would wait forever: the echo server sends nothing more).
    """
    with client(certs, tls_echo.address, timeout) as s:
        s.sendall(b"x")
        assert s.recv(10) == b"x"  # it had to wait: the next reads wait first
        assert s._tp_read_wait > 0
        s.sendall(b"y" * 100)
        got = [s.recv(10) for _ in range(10)]
        assert got == [b"y" * 10] * 10
        buf = bytearray(4)
        s.sendall(b"abcd")
        assert s.recv_into(buf) == 4
        assert buf == b"abcd"
        # Zero-length reads return at once, as the native ones.
        assert s.read(0) == b""
        assert s.recv_into(bytearray(0)) == 0


def test_reads_wait_first_in_longer_streaks_for_request_response(certs: TLSCerts) -> None:
    """Every read that tried first and had to wait doubles the streak of reads that wait first.

    The peer answers each request only once the client waits for the answer,
    as on a link whose round trip is longer than the client's turnaround: so
    every read that tries first finds nothing, however loaded the machine
    (an echo server on loopback may answer before the client reads).
    """
    rounds = 16 + 32 + 3
    streaks: list[int] = []

    def client_side(address: tuple[str, int]) -> None:
        with client(certs, address, None) as s:
            for _ in range(rounds):
                s.sendall(b"q")
                assert s.recv(1) == b"q"
                streaks.append(s._tp_read_streak)

    with std_socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        t = threadpatch.spawn(client_side, listener.getsockname())
        conn, _ = listener.accept()
        conn.settimeout(10)
        with certs.server_context().wrap_socket(conn, server_side=True) as peer:
            for _ in range(rounds):
                assert peer.recv(1) == b"q"
                wait_until(blocked_in(t, "tls.read"), message="the client waiting to read")
                peer.sendall(b"q")
            t.join(timeout=10)
    assert streaks == [16] * 17 + [32] * 33 + [64]
