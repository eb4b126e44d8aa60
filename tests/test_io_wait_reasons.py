"""Every socket, TLS and select wait records what it waits for, and clears it after.

While a thread waits, its ``ThreadState`` says on what (``blocked_on``, a
``(kind, subject)`` tuple), since when and until when; once the call
returns, nothing is left behind (``blocked_on`` None, ``parked`` False).
Socket receives run on the C and the pure-Python paths, waiting first or
trying first, since the C wait records the reason itself.
"""

from __future__ import annotations

import math
import selectors as std_selectors
import socket as std_socket
import time
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import _core
from threadpatch import select as tp_select
from threadpatch import selectors as tp_selectors
from threadpatch import socket as tp_socket
from threadpatch import ssl as tp_ssl

from .servers import BacklogServer, TLSCerts
from .test_socket import fill, prime, wait_path  # noqa: F401 - fixtures

if TYPE_CHECKING:
    from collections.abc import Callable


def _raises(exc: type[BaseException], call: Callable[[], object]) -> str:
    with pytest.raises(exc):
        call()
    return "raised"


def _blocked(
    call: Callable[[], object],
    release: Callable[[], object],
    wait_all_threads_blocked: Callable[..., None],
) -> tuple[object, float, float, object]:
    """Block a thread in ``call``; its (blocked_on, since, until) while blocked, then release."""
    before = time.monotonic()
    t = threadpatch.spawn(call)
    wait_all_threads_blocked(expected=1)
    state = next(s for s in _core.all_states() if s.parked and s is not _core.current_state())
    seen = (state.blocked_on, state.blocked_since - before, state.blocked_until)
    release()
    result = t.join(timeout=5)
    assert state.blocked_on is None
    assert not state.parked
    return (*seen, result)


@pytest.mark.parametrize("op", ["recv", "recv_into", "recvfrom", "recvmsg"])
def test_socket_receive_records_its_reason(
    op: str,
    wait_path: str,  # noqa: F811 - the fixture
    prime: Callable[[Any], Any],  # noqa: F811 - the fixture
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, b = tp_socket.socketpair()
    with a, b:
        calls = {
            "recv": lambda: a.recv(10),
            "recv_into": lambda: a.recv_into(bytearray(10)),
            "recvfrom": lambda: a.recvfrom(10),
            "recvmsg": lambda: a.recvmsg(10),
        }
        prime(a)
        reason, since, until, result = _blocked(
            calls[op], lambda: b.sendall(b"x"), wait_all_threads_blocked
        )
        assert reason == ("recv", a)
        assert since >= 0
        assert until == math.inf
        assert result


def test_socket_timeout_is_the_deadline(wait_all_threads_blocked: Callable[..., None]) -> None:
    a, b = tp_socket.socketpair()
    with a, b:
        a.settimeout(60)
        start = time.monotonic()
        reason, _, until, result = _blocked(
            lambda: a.recv(1), lambda: b.sendall(b"x"), wait_all_threads_blocked
        )
        assert reason == ("recv", a)
        assert start + 59 < until < time.monotonic() + 60  # type: ignore[operator]
        assert result == b"x"


def test_send_accept_connect_record_their_reasons(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, b = tp_socket.socketpair()
    with a, b:
        fill(a)
        reason, *_ = _blocked(
            lambda: _raises(OSError, lambda: a.sendall(b"\0" * (1 << 20))),  # the peer leaves
            b.close,
            wait_all_threads_blocked,
        )
        assert reason == ("send", a)
    with tp_socket.create_server(("127.0.0.1", 0)) as listener:
        address = listener.getsockname()

        def connect() -> None:
            std_socket.create_connection(address).close()

        reason, *_, (conn, _) = _blocked(listener.accept, connect, wait_all_threads_blocked)
        conn.close()
        assert reason == ("accept", listener)
    with BacklogServer() as srv, tp_socket.socket() as sock:
        sock.settimeout(0.5)
        reason, *_ = _blocked(
            lambda: _raises(TimeoutError, lambda: sock.connect(srv.address)),
            lambda: None,
            wait_all_threads_blocked,
        )
        assert reason == ("connect", sock)


def test_tls_read_records_its_reason(wait_all_threads_blocked: Callable[..., None]) -> None:
    certs = TLSCerts()
    listener = std_socket.create_server(("127.0.0.1", 0))
    server_ctx = certs.server_context()
    peers: list[Any] = []

    def serve() -> None:
        conn, _ = listener.accept()
        peers.append(server_ctx.wrap_socket(conn, server_side=True))

    with listener:
        t = threadpatch.spawn(serve)
        raw = tp_socket.create_connection(listener.getsockname())
        client = certs.client_context(tp_ssl.SSLContext).wrap_socket(
            raw, server_hostname="localhost"
        )
        t.join(timeout=10)
    with client, peers[0]:
        for _ in range(2):  # trying first, then (after a read waited) waiting first
            reason, *_, data = _blocked(
                lambda: client.recv(10), lambda: peers[0].sendall(b"tls"), wait_all_threads_blocked
            )
            assert reason == ("tls.read", client)
            assert data == b"tls"


def test_select_poll_epoll_selectors_record_their_reasons(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, b = tp_socket.socketpair()
    with a, b:
        reason, *_ = _blocked(
            lambda: tp_select.select([a], [], [], 30),
            lambda: b.send(b"x"),
            wait_all_threads_blocked,
        )
        assert reason == ("select", ([a.fileno()], [], []))
        assert a.recv(1) == b"x"
        p = tp_select.poll()
        p.register(a, tp_select.POLLIN)
        reason, *_ = _blocked(
            lambda: p.poll(30_000), lambda: b.send(b"x"), wait_all_threads_blocked
        )
        assert reason == ("poll", p)
        assert a.recv(1) == b"x"
        with tp_select.epoll() as ep:
            ep.register(a.fileno(), tp_select.EPOLLIN)
            reason, *_ = _blocked(
                lambda: ep.poll(30), lambda: b.send(b"x"), wait_all_threads_blocked
            )
            assert reason == ("epoll", ep)
            assert a.recv(1) == b"x"
        for cls in (
            tp_selectors.SelectSelector,
            tp_selectors.PollSelector,
            tp_selectors.EpollSelector,
        ):
            with cls() as sel:
                sel.register(a, std_selectors.EVENT_READ)
                reason, *_ = _blocked(
                    lambda sel=sel: sel.select(30), lambda: b.send(b"x"), wait_all_threads_blocked
                )
                expected = (
                    ("select", ([a.fileno()], [], []))
                    if cls is tp_selectors.SelectSelector
                    else ("selector", sel)
                )
                assert reason == expected
                assert a.recv(1) == b"x"
