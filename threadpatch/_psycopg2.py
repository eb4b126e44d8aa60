"""psycopg2: a wait callback that waits cancellably and cancels the query on the server.

psycopg2 blocks inside libpq (``PQexec``, ``PQconnectdb``) with the GIL
released: nothing in Python can interrupt it.  Its escape hatch is the *wait
callback* (``psycopg2.extensions.set_wait_callback``, the hook psycogreen
uses for gevent): with one set, psycopg2 drives every connection
asynchronously and calls ``callback(conn)`` whenever libpq would block.
:func:`wait_callback` polls the connection and waits for its descriptor
through the core, so ``cancel()`` and deadlines reach it.

When a cancellation (or an expired deadline) arrives while a query is in
flight, the callback first sends the protocol's CancelRequest
(``conn.cancel()``, libpq's ``PQcancel``: a short blocking connect to the
server, shielded), so the query stops on the server, then lets the
``ThreadCancelled`` out.  psycopg2 answers any exception from its wait
callback by **closing the connection** (its ``green_panic``): afterwards
``conn.closed`` is true and using it raises ``InterfaceError: connection
already closed``; take a new connection (a pool discards closed ones).

Installed by the ``psycopg2`` patch set; restoring it puts back exactly the
callback that was there before (``None``, or gevent's).  While it is set,
psycopg2 refuses what its asynchronous mode cannot do: ``copy_from``,
``copy_to``, ``copy_expert`` and large objects raise ``ProgrammingError``
("... cannot be used with an asynchronous callback").  Leave the set out
(``patch_all(psycopg2=False)``) for code that needs them; its queries then
block in libpq, uncancellably.
"""

from __future__ import annotations

import contextlib
import select
from typing import Any

import psycopg2
from psycopg2 import extensions as _ext

from . import _core

__all__ = ["install_wait_callback", "restore_wait_callback", "wait_callback"]

_EVENTS = {_ext.POLL_READ: select.POLLIN, _ext.POLL_WRITE: select.POLLOUT}

# The callbacks that were set before ours, one per application of the set.
_previous: list[object] = []


def wait_callback(conn: Any) -> None:
    """psycopg2's wait callback: poll ``conn`` until done, waiting cancellably.

    Raises:
        psycopg2.OperationalError: ``conn.poll()`` answered something unknown.

    Cancellation:
        A query in flight is cancelled on the server first; psycopg2 then
        closes the connection.
    """
    while True:
        state = conn.poll()
        if state == _ext.POLL_OK:
            return
        events = _EVENTS.get(state)
        if events is None:
            raise psycopg2.OperationalError(f"bad state from poll: {state!r}")
        try:
            _core.wait_fd(conn.fileno(), events, reason=("psycopg2", conn))
        except _core.ThreadCancelled:
            _cancel_query(conn)
            raise


def _cancel_query(conn: Any) -> None:
    # psycopg2.Error: still connecting, or closed: nothing runs on the server.
    with _core.shield(), contextlib.suppress(psycopg2.Error):
        conn.cancel()


def install_wait_callback() -> None:
    """Make :func:`wait_callback` psycopg2's wait callback (remembering the one before)."""
    _previous.append(_ext.get_wait_callback())
    _ext.set_wait_callback(wait_callback)


def restore_wait_callback() -> str | None:
    """Put back the callback :func:`install_wait_callback` replaced.

    Returns:
        ``None``, or a warning if someone else replaced ours meanwhile (then
        theirs stays).
    """
    previous = _previous.pop()
    current = _ext.get_wait_callback()
    if current is not wait_callback:
        return (
            f"psycopg2's wait callback was replaced by someone else while patched "
            f"(it is {current!r}); threadpatch left it as it is"
        )
    _ext.set_wait_callback(previous)
    return None
