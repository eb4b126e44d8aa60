"""Echo workloads shared by bench_socket.py and the gevent subprocess (_gevent_echo.py).

Everything takes the socket module (and optionally ssl contexts) to use, so
the same code measures the stdlib, threadpatch and gevent's patched sockets.
"""

from __future__ import annotations

import select
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

MSG = b"x" * 1024


def _polled(sock: Any) -> Callable[[int], object]:
    """``recv`` of a blocking socket that first waits in ``poll()``: how every
    poll-based design (threadpatch's included) waits, on native sockets."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    wait, recv = poller.poll, sock.recv

    def polled_recv(bufsize: int) -> object:
        wait()
        return recv(bufsize)

    return polled_recv


def _serve_echo(conn: Any, poll_first: bool = False) -> None:
    recv = _polled(conn) if poll_first else conn.recv
    try:
        while True:
            data = recv(65536)
            if not data:
                break
            conn.sendall(data)
    except OSError:
        pass
    finally:
        conn.close()


def echo_setup(
    sock_mod: Any,
    server_ctx: Any = None,
    client_ctx: Any = None,
    connections: int = 1,
    poll_first: bool = False,
) -> tuple[list[Any], Callable[[], None]]:
    """Connected client sockets, each served by its own echo thread; and a closer.

    ``poll_first``: the server waits in ``poll()`` before each ``recv``.
    """
    listener = sock_mod.create_server(("127.0.0.1", 0), backlog=connections + 8)
    if server_ctx is not None:
        listener = server_ctx.wrap_socket(listener, server_side=True)
    servers: list[threading.Thread] = []

    def acceptor() -> None:
        for _ in range(connections):
            conn, _ = listener.accept()
            conn.setsockopt(sock_mod.IPPROTO_TCP, sock_mod.TCP_NODELAY, 1)
            t = threading.Thread(target=_serve_echo, args=(conn, poll_first), daemon=True)
            t.start()
            servers.append(t)

    acc = threading.Thread(target=acceptor, daemon=True)
    acc.start()
    clients = []
    for _ in range(connections):
        c = sock_mod.create_connection(listener.getsockname()[:2])
        c.setsockopt(sock_mod.IPPROTO_TCP, sock_mod.TCP_NODELAY, 1)
        if client_ctx is not None:
            c = client_ctx.wrap_socket(c, server_hostname="localhost")
        clients.append(c)
    acc.join()

    def close() -> None:
        for c in clients:
            c.close()
        for t in servers:
            t.join(5)
        listener.close()

    return clients, close


def round_trips(sock: Any, n: int, poll_first: bool = False) -> None:
    """``n`` echo round trips of 1 KiB (``poll_first``: poll before each ``recv``)."""
    send, recv = sock.sendall, _polled(sock) if poll_first else sock.recv
    for _ in range(n):
        send(MSG)
        got = len(recv(65536))
        while got < 1024:
            got += len(recv(65536))


def concurrent_round_trips(clients: list[Any], n: int) -> None:
    """Every client does ``n`` round trips, each in its own thread."""
    threads = [threading.Thread(target=round_trips, args=(c, n)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
