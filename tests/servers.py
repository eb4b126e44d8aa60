"""Loopback test servers for socket, ssl, select and selectors tests.

Each server listens on 127.0.0.1 on a free port, runs its accept loop in one
native thread (stdlib sockets, so the servers never depend on the code under
test), and stops within a bounded time when closed.  Use them as context
managers or through the fixtures in ``tests/conftest``-style modules::

    with SilentServer() as srv:          # accepts, never answers
        sock = socket.create_connection(srv.address)

Servers:
    SilentServer     accepts connections, reads nothing, sends nothing.
    DripServer       sends ``payload`` one byte every ``interval`` seconds.
    EchoServer       echoes what it receives (optionally over TLS).
    BacklogServer    a listener that never accepts, with its backlog full:
                     a further connect hangs (SYN dropped) until its timeout.
    TLSCerts         trustme CA + server certificate; ``server_context()`` and
                     ``client_context(cls)``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["BacklogServer", "DripServer", "EchoServer", "SilentServer", "TLSCerts", "fd_count"]

# These servers must stay native even while a test patches the stdlib.
_socket_class = socket.socket
_poll = select.poll
_Event = threading.Event
_Thread = threading.Thread


def fd_count() -> int:
    """Open descriptors of this process, less those that live as long as a thread or the process.

    The hub's descriptors (started here if it was not running) and the wake-up
    eventfd each live thread makes on its first descriptor wait are not leaks
    of the code under test, whichever test happens to create them first.
    """
    import os

    from threadpatch import _core

    _core.get_hub().ensure_started()
    wake_fds = {s._wake_fd for s in _core.all_states() if not s.finished and s._wake_fd >= 0}
    fds = {int(name) for name in os.listdir("/proc/self/fd")}
    return len(fds - wake_fds)


class _Server:
    """Base: a listening socket plus one thread running ``_handle`` per connection."""

    def __init__(self, backlog: int = 16, rcvbuf: int | None = None) -> None:
        self.listener = _socket_class(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:  # inherited by accepted connections
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(backlog)
        self.address: tuple[str, int] = self.listener.getsockname()
        self._stop = _Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.accepted = _Event()  # set at the first accepted connection
        self._threads: list[threading.Thread] = []

    def start(self) -> _Server:
        t = _Thread(target=self._accept_loop, name=f"{type(self).__name__}-accept", daemon=True)
        self._threads.append(t)
        t.start()
        return self

    def _accept_loop(self) -> None:
        poller = _poll()
        poller.register(self.listener.fileno(), select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(50):
                continue
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stop.is_set():
                    conn.close()
                    return
                self._conns.append(conn)
            self.accepted.set()
            t = _Thread(
                target=self._run_handler,
                args=(conn,),
                daemon=True,
                name=f"{type(self).__name__}-conn",
            )
            with self._lock:
                self._threads.append(t)
            t.start()

    def _run_handler(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the server is stopping."""
        return self._stop.wait(seconds)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            conns, self._conns = self._conns, []
            threads = list(self._threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)  # the fd, TLS or not
            if not isinstance(conn, ssl.SSLSocket):
                conn.close()  # a TLS socket is closed by its handler
        for t in threads:
            t.join(5)
        self.listener.close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SilentServer(_Server):
    """Accepts and never answers (and never reads: the peer's sends fill up).

    Its receive buffer is small, so a client's send side fills up quickly.
    """

    def __init__(self) -> None:
        super().__init__(rcvbuf=4096)

    def _handle(self, conn: socket.socket) -> None:
        self._stop.wait()


class DripServer(_Server):
    """Sends ``payload`` one byte every ``interval`` seconds, then keeps the line open."""

    def __init__(self, payload: bytes = b"x" * 1000, interval: float = 1.0) -> None:
        super().__init__()
        self.payload = payload
        self.interval = interval

    def _handle(self, conn: socket.socket) -> None:
        for i in range(len(self.payload)):
            if self._wait(self.interval):
                return
            conn.sendall(self.payload[i : i + 1])
        self._stop.wait()


class EchoServer(_Server):
    """Echoes every byte back; with ``tls`` (a server SSLContext) over TLS."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.tls = tls

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)  # bounded: a stuck test client cannot pin the thread
        sock: socket.socket = conn
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._conns.append(sock)  # close() shuts the TLS socket's fd down
            sock.settimeout(0.1)  # notice close() promptly
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                sock.settimeout(10)
                sock.sendall(data)
                sock.settimeout(0.1)
        finally:
            sock.close()


class BacklogServer:
    """A listener whose accept backlog is full: a new connect never completes.

    Linux drops the SYN of a connection to a listener whose accept queue is
    full, so the client's ``connect`` waits (retransmitting) until cancelled or
    timed out.  The filler connections are made here and closed on exit.
    """

    def __init__(self) -> None:
        self.listener = _socket_class(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.address: tuple[str, int] = self.listener.getsockname()
        self._fillers: list[socket.socket] = []

    def start(self) -> BacklogServer:
        # Fill the queue: with backlog 0 Linux accepts one queued connection;
        # keep connecting (non-blocking) until a connect stays in progress.
        for _ in range(64):
            s = _socket_class(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            self._fillers.append(s)
            err = s.connect_ex(self.address)
            if err != 0:
                poller = _poll()
                poller.register(s.fileno(), select.POLLOUT)
                if not poller.poll(200):
                    return self  # this one hangs: the backlog is full
        raise RuntimeError("could not fill the listen backlog")

    def close(self) -> None:
        for s in self._fillers:
            s.close()
        self.listener.close()

    def __enter__(self) -> BacklogServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class TLSCerts:
    """A trustme CA and a certificate for ``localhost``/127.0.0.1."""

    def __init__(self) -> None:
        import trustme

        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("localhost", "127.0.0.1")

    def server_context(self, cls: type[ssl.SSLContext] = ssl.SSLContext) -> ssl.SSLContext:
        ctx = cls(ssl.PROTOCOL_TLS_SERVER)
        self.cert.configure_cert(ctx)
        return ctx

    def client_context(self, cls: type[ssl.SSLContext] = ssl.SSLContext) -> ssl.SSLContext:
        ctx = cls(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(ctx)
        return ctx
