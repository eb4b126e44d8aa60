"""The urllib3 set: a connect cancelled part-way leaves no socket open.

urllib3's ``create_connection`` closes its socket only on ``OSError``.  The
checks below run while the cancelled call's traceback (and so its frames and
their locals) is still alive: without the patch the socket would stay open.
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING

import pytest
from urllib3.util import connection

import threadpatch
from tests.servers import BacklogServer, fd_count
from threadpatch import _socket

if TYPE_CHECKING:
    from collections.abc import Callable


def test_cancel_in_connect_closes_the_socket(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    with BacklogServer() as srv, threadpatch.patched(urllib3=True, socket=True, dns=True):
        before = fd_count()
        t = threadpatch.spawn(connection.create_connection, srv.address)
        wait_all_threads_blocked(expected=1)  # in connect(): the SYN is dropped
        assert t.cancel(timeout=10)
        assert t.cancelled
        assert t.exception is not None
        assert t.exception.__traceback__ is not None  # its frames are still alive
        assert fd_count() == before


def test_deadline_in_connect_closes_the_socket() -> None:
    with BacklogServer() as srv, threadpatch.patched(urllib3=True, socket=True, dns=True):
        before = fd_count()
        with pytest.raises(threadpatch.ThreadTimeout) as info:
            threadpatch.timeout_after(0.05, connection.create_connection, srv.address)
        assert info.tb is not None
        assert fd_count() == before


def test_results_and_errors_pass_through() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with threadpatch.patched(urllib3=True):
        assert connection.create_connection is not threadpatch.original(
            connection, "create_connection"
        )
        sock = connection.create_connection(("127.0.0.1", port), timeout=5)
        with sock:
            assert sock.getpeername() == ("127.0.0.1", port)
            assert sock.gettimeout() == 5
        listener.close()  # nothing listens on the port now
        before = fd_count()
        with pytest.raises(ConnectionRefusedError) as info:
            connection.create_connection(("127.0.0.1", port))
        assert info.value.errno == errno.ECONNREFUSED
        assert fd_count() == before


def test_wrapper_keeps_the_helper_identity() -> None:
    def helper(address: tuple[str, int]) -> socket.socket:
        """Connects."""
        raise AssertionError

    wrapped = _socket.closes_sockets_on_error(helper)
    assert wrapped.__wrapped__ is helper  # type: ignore[attr-defined]
    assert (wrapped.__name__, wrapped.__doc__) == ("helper", "Connects.")


def test_only_the_helpers_own_sockets_are_closed() -> None:
    keep, also = socket.socket(), socket.socket()  # the caller's: arguments, not locals

    def helper(other: socket.socket, *more: object, extra: socket.socket) -> None:
        mine = socket.socket()
        assert mine.fileno() >= 0
        raise KeyboardInterrupt  # as Ctrl-C in connect() would

    wrapped = _socket.closes_sockets_on_error(helper)
    with keep, also:
        with pytest.raises(KeyboardInterrupt) as info:
            wrapped(keep, extra=also)
        assert keep.fileno() >= 0  # an argument is the caller's to close
        assert also.fileno() >= 0
    tb = info.tb
    while tb.tb_frame.f_code is not helper.__code__:
        tb = tb.tb_next
    assert tb.tb_frame.f_locals["mine"].fileno() == -1
