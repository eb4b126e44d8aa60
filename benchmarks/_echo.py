"""Echo workloads shared by bench_socket.py and the gevent subprocess (_gevent_echo.py).

Everything takes the socket module (and optionally ssl contexts) to use, so
the same code measures the stdlib, threadpatch and gevent's patched sockets.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

MSG = b"x" * 1024


def _serve_echo(conn: Any) -> None:
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
    except OSError:
        pass
    finally:
        conn.close()


def echo_setup(
    sock_mod: Any, server_ctx: Any = None, client_ctx: Any = None, connections: int = 1
) -> tuple[list[Any], Callable[[], None]]:
    """Connected client sockets, each served by its own echo thread; and a closer."""
    listener = sock_mod.create_server(("127.0.0.1", 0), backlog=connections + 8)
    if server_ctx is not None:
        listener = server_ctx.wrap_socket(listener, server_side=True)
    servers: list[threading.Thread] = []

    def acceptor() -> None:
        for _ in range(connections):
            conn, _ = listener.accept()
            conn.setsockopt(sock_mod.IPPROTO_TCP, sock_mod.TCP_NODELAY, 1)
            t = threading.Thread(target=_serve_echo, args=(conn,), daemon=True)
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


def round_trips(sock: Any, n: int) -> None:
    """``n`` echo round trips of 1 KiB."""
    send, recv = sock.sendall, sock.recv
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
