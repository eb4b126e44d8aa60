"""threadpatch.socketserver: shutdown() cancels handler threads, even with hung clients."""

from __future__ import annotations

import socket
import socketserver as std_socketserver
import threading
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import _socketserver
from threadpatch import socketserver as tp_socketserver

from ._helpers import wait_until
from .servers import fd_count

if TYPE_CHECKING:
    from collections.abc import Callable

N_CLIENTS = 3


class Recorder:
    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.finally_ran: list[str] = []
        self.lock = threading.Lock()


def make_handler(rec: Recorder) -> type[std_socketserver.BaseRequestHandler]:
    class Handler(tp_socketserver.StreamRequestHandler):
        def handle(self) -> None:
            try:
                rec.started.release()
                line = self.rfile.readline()  # the client never sends one
                self.wfile.write(line.upper())
            finally:
                with rec.lock:
                    rec.finally_ran.append(type(self.request).__module__)

    return Handler


def _serve_with_hung_clients(
    rec: Recorder, **attrs: Any
) -> tuple[tp_socketserver.ThreadingTCPServer, threadpatch.Thread[None], list[socket.socket]]:
    server = tp_socketserver.ThreadingTCPServer(("127.0.0.1", 0), make_handler(rec))
    for name, value in attrs.items():
        setattr(server, name, value)
    serving = threadpatch.spawn(server.serve_forever, 60)  # a long poll_interval on purpose
    clients = [
        socket.create_connection(server.server_address, timeout=10) for _ in range(N_CLIENTS)
    ]
    for _ in range(N_CLIENTS):
        assert rec.started.acquire(timeout=10)
    return server, serving, clients


needs_socket_class = pytest.mark.skipif(
    _socketserver._tp_socket is None, reason="threadpatch._socket is not available"
)


@needs_socket_class
def test_shutdown_cancels_handlers_blocked_on_hung_clients(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    before = fd_count()
    rec = Recorder()
    server, serving, clients = _serve_with_hung_clients(rec)
    handlers = server.handler_threads
    assert len(handlers) == N_CLIENTS
    wait_all_threads_blocked(expected=N_CLIENTS + 1)  # handlers in recv, server in select
    server.shutdown()  # wakes serve_forever at once despite poll_interval=60
    assert serving.join(5) is None
    assert all(t.done() for t in handlers)
    assert all(t.cancelled for t in handlers)
    assert rec.finally_ran == ["threadpatch.socket"] * N_CLIENTS  # accepted sockets are ours
    assert server.handler_threads == []
    server.server_close()
    for c in clients:
        assert c.recv(10) == b""  # the server closed its end
        c.close()
    assert fd_count() == before


@needs_socket_class
def test_server_close_cancels_and_joins_handlers(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    before = fd_count()
    rec = Recorder()
    server, serving, clients = _serve_with_hung_clients(rec)
    handlers = server.handler_threads
    wait_all_threads_blocked(expected=N_CLIENTS + 1)
    serving.cancel(timeout=5)  # stopping serve_forever by cancelling its thread works too
    assert serving.cancelled
    server.server_close()
    assert all(t.cancelled for t in handlers)
    assert len(rec.finally_ran) == N_CLIENTS
    for c in clients:
        c.close()
    assert fd_count() == before


def test_native_blocking_handlers_are_unblocked_by_shutting_their_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without the cancellable socket class a handler blocks in a native recv:
    # after cancel_grace its connection is shut down, which ends the recv.
    monkeypatch.setattr(_socketserver, "_tp_socket", None)
    before = fd_count()
    rec = Recorder()
    server, serving, clients = _serve_with_hung_clients(rec, cancel_grace=0.01)
    handlers = server.handler_threads
    server.shutdown()
    server.server_close()
    serving.join(5)
    assert all(t.done() for t in handlers)
    assert rec.finally_ran == ["socket"] * N_CLIENTS
    for c in clients:
        c.close()
    assert fd_count() == before


def test_requests_are_served() -> None:
    rec = Recorder()
    server = tp_socketserver.ThreadingTCPServer(("127.0.0.1", 0), make_handler(rec))
    with server:
        serving = threadpatch.spawn(server.serve_forever)
        with socket.create_connection(server.server_address, timeout=10) as c:
            c.sendall(b"hello\n")
            assert c.makefile("rb").readline() == b"HELLO\n"
        server.shutdown()
        serving.join(5)
    assert len(rec.finally_ran) == 1


def test_handle_request_times_out() -> None:
    timeouts = []

    class Server(tp_socketserver.ThreadingTCPServer):
        timeout = 0.01

        def handle_timeout(self) -> None:
            timeouts.append(True)

    with Server(("127.0.0.1", 0), tp_socketserver.BaseRequestHandler) as server:
        server.handle_request()
    assert timeouts == [True]


def test_handle_request_is_cancellable() -> None:
    with (
        tp_socketserver.ThreadingTCPServer(
            ("127.0.0.1", 0), tp_socketserver.BaseRequestHandler
        ) as server,
        pytest.raises(threadpatch.ThreadTimeout),
        threadpatch.timeout_after(0.02),
    ):
        server.handle_request()


def test_stdlib_compatibility() -> None:
    assert issubclass(tp_socketserver.ThreadingTCPServer, std_socketserver.ThreadingMixIn)
    assert issubclass(tp_socketserver.ThreadingTCPServer, std_socketserver.TCPServer)
    assert tp_socketserver.StreamRequestHandler is std_socketserver.StreamRequestHandler
    for name in std_socketserver.__all__:
        assert hasattr(tp_socketserver, name), name
    assert tp_socketserver.ThreadingMixIn.__module__ == "threadpatch.socketserver"


class _Exit(std_socketserver.BaseRequestHandler):
    def handle(self) -> None:
        raise SystemExit("from the handler")


def test_what_escapes_a_handler_goes_to_threading_excepthook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As a stdlib handler thread: process_request_thread handles Exception;
    # SystemExit gets out and reaches threading.excepthook (not an
    # "unretrieved threadpatch failure" report).
    seen: list[tuple[type[BaseException] | None, str]] = []
    reported = threading.Event()

    def hook(args: Any) -> None:
        seen.append((args.exc_type, args.thread.name if args.thread else ""))
        reported.set()

    monkeypatch.setattr(threading, "excepthook", hook)
    server = tp_socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Exit)
    with server:
        serving = threadpatch.spawn(server.serve_forever)
        with socket.create_connection(server.server_address, timeout=10):
            assert reported.wait(10)
        server.shutdown()
        serving.join(5)
    assert seen == [(SystemExit, "ThreadingTCPServer-handler")]


def test_the_stdlib_thread_list_is_there_and_reaped() -> None:
    # socketserver.ThreadingMixIn keeps ``_threads``; code (and CPython's
    # test_threads_reaped) reads its length: finished handlers are not in it.
    rec = Recorder()
    server = tp_socketserver.ThreadingTCPServer(("127.0.0.1", 0), make_handler(rec))
    with server:
        serving = threadpatch.spawn(server.serve_forever)
        for _ in range(5):
            with socket.create_connection(server.server_address, timeout=10) as c:
                c.sendall(b"x\n")
                assert c.makefile("rb").readline() == b"X\n"
        wait_until(lambda: len(server._threads) == 0, message="handlers to leave _threads")
        server.shutdown()
        serving.join(5)
    assert len(rec.finally_ran) == 5
