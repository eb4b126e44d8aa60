"""Pure-Python database drivers: a cancelled query stops on the server too.

pg8000 and PyMySQL talk to their servers over plain sockets, so the socket
patch set already makes a blocked query a cancellation point.  But the
server does not notice that the client went away: a ``pg_sleep(30)`` or a
``SELECT SLEEP(30)`` runs on for its 30 seconds, holding its locks and a
server connection.  :func:`cancels_on_server` wraps a driver's query method:
when a ``ThreadCancelled`` (or an expired deadline) comes out of it, a
driver-specific clean-up runs, shielded and bounded by :data:`CANCEL_TIMEOUT`:

* pg8000 (:func:`pg8000_cancel`): the protocol's CancelRequest (the backend
  key the server sent at start-up, on a new connection to the same address),
  then the connection is closed;
* PyMySQL (:func:`pymysql_kill`): ``KILL QUERY <thread id>`` on a second
  connection with the same parameters; PyMySQL itself has already closed the
  connection (it closes on any exception in a read).

Why close: the cancelled read may have stopped inside a protocol message,
and what was buffered of it is lost, so where the stream is now is unknown.
A closed connection fails clearly on its next use (pg8000:
``InterfaceError: connection is closed``; PyMySQL: ``InterfaceError(0, '')``,
or ``ping(reconnect=True)`` reconnects); a pool discards it.

How it works::

    thread: conn.run("SELECT pg_sleep(30)") --> recv waits (cancellation point)
    other:  threadpatch.cancel(thread)      --> ThreadCancelled out of recv
    thread: wrapper, shielded:  CancelRequest / KILL QUERY --> server stops query
                                close the connection
            re-raise ThreadCancelled
"""

from __future__ import annotations

import functools
import logging
import socket
import struct
from typing import TYPE_CHECKING, Any, TypeVar

from . import _core

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["CANCEL_TIMEOUT", "cancels_on_server", "pg8000_cancel", "pymysql_kill"]

T = TypeVar("T")

#: Seconds the server-side cancel may take (connect, send, answer).
CANCEL_TIMEOUT = 5.0

logger = logging.getLogger("threadpatch.dbcancel")

_PG_CANCEL_REQUEST_CODE = 80877102  # (1234 << 16) | 5678, the protocol's CancelRequest


def cancels_on_server(method: Callable[..., T], cancel: Callable[[Any], None]) -> Callable[..., T]:
    """Wrap a driver's query ``method``: on cancellation, ``cancel(conn)`` runs first (shielded).

    A failing ``cancel`` is logged, never raised: the caller gets its
    ``ThreadCancelled``.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except _core.ThreadCancelled:
            with _core.shield():
                try:
                    cancel(self)
                except Exception as exc:
                    logger.warning("cancelling the query on the server failed: %r", exc)
            raise

    return wrapper


def _close_quietly(sock: socket.socket | None) -> None:
    if sock is not None:
        sock.close()


def pg8000_cancel(conn: Any) -> None:
    """Send PostgreSQL's CancelRequest for pg8000's ``conn``, then close ``conn``."""
    usock = getattr(conn, "_usock", None)
    key = getattr(conn, "_backend_key_data", None)
    if usock is None:
        return  # already closed
    try:
        if key is not None:
            address = usock.getpeername()
            with socket.socket(usock.family, socket.SOCK_STREAM) as s:
                s.settimeout(CANCEL_TIMEOUT)
                s.connect(address)
                s.sendall(struct.pack("!ii", 16, _PG_CANCEL_REQUEST_CODE) + bytes(key))
                # The server answers by closing: wait for that, so the query has
                # been signalled before the caller goes on.
                s.recv(1)
    finally:
        _pg8000_close(conn)


def _pg8000_close(conn: Any) -> None:
    # Not conn.close(): it writes a Terminate message into a stream whose
    # position is unknown.  Closing the socket ends the server session.
    rfile, usock = conn._sock, conn._usock
    conn._sock = conn._usock = None
    try:
        if rfile is not None:
            rfile.close()
    finally:
        _close_quietly(usock)


def pymysql_kill(conn: Any) -> None:
    """``KILL QUERY`` PyMySQL's ``conn``'s statement from a second connection; close ``conn``."""
    thread_id = conn.server_thread_id[0] if getattr(conn, "server_thread_id", None) else None
    try:
        if thread_id is not None:
            options: dict[str, Any] = {
                "host": conn.host,
                "port": conn.port,
                "user": conn.user,
                "password": conn.password,
                "unix_socket": conn.unix_socket,
                "connect_timeout": CANCEL_TIMEOUT,
                "read_timeout": CANCEL_TIMEOUT,
                "write_timeout": CANCEL_TIMEOUT,
            }
            if getattr(conn, "_ssl_required", False):
                options["ssl"] = conn.ctx
            killer = type(conn)(**options)
            try:
                killer.query(f"KILL QUERY {int(thread_id)}")
            finally:
                killer.close()
    finally:
        if conn.open:
            conn._force_close()
