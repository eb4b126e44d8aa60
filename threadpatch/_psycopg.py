"""psycopg 3: cancellable waits, and a cancelled query stops on the server too.

psycopg runs every network operation as a generator that yields what it
waits for (read, write or both on the connection's descriptor) and a *wait
function* that blocks until the descriptor is ready and resumes it.  The
binary package waits in C (``psycopg_binary``'s ``wait_c``: a ``poll()`` that
only ``Ctrl-C`` interrupts); the pure-Python implementation waits in
``select.poll`` every 100 ms.  Neither is a cancellation point of ours.

* :func:`wait` and :func:`wait_conn` have the signatures of
  ``psycopg.waiting.wait`` and ``wait_conn`` and wait through the core
  (``wait_fd``), so ``cancel()`` and deadlines reach them.  psycopg looks both
  up on ``psycopg.waiting`` at call time, so an imported psycopg is covered.
* Cancelling only the client would leave the query running on the server
  (a ``pg_sleep(30)`` goes on for 30 s, holding its locks) and the connection
  stuck in the middle of a result.  :func:`cancels_on_server` wraps
  ``Connection.wait`` (every query, commit and fetch goes through it): when a
  ``ThreadCancelled`` (or an expired deadline) comes out of a wait while a
  query is active, it sends the protocol's CancelRequest
  (``Connection.cancel_safe``: non-blocking on libpq 17+, else libpq's
  ``PQcancel``) and reads the connection up to the server's answer, shielded
  and bounded by :data:`CANCEL_TIMEOUT` -- what psycopg itself does on
  ``Ctrl-C``.  The connection is then usable; a transaction that was open is
  in error (roll it back), as after any failed statement.  If the server does
  not answer in time, the connection is closed (``conn.closed``).

A connect cancelled part-way closes its half-made connection at once (the
generator is closed), not when the garbage collector finds it.
"""

from __future__ import annotations

import functools
import logging
import select
from typing import TYPE_CHECKING, Any, TypeVar

from psycopg import errors as _errors
from psycopg import pq as _pq
from psycopg.waiting import Ready, Wait

from . import _core

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from psycopg import Connection

__all__ = ["CANCEL_TIMEOUT", "cancels_on_server", "wait", "wait_conn", "waiting_client_wait"]

RV = TypeVar("RV")

#: Seconds a cancelled query's connection waits for the server's answer.
CANCEL_TIMEOUT = 5.0

logger = logging.getLogger("threadpatch.psycopg")

_ACTIVE = _pq.TransactionStatus.ACTIVE
_EVENTS = {
    Wait.R: select.POLLIN,
    Wait.W: select.POLLOUT,
    Wait.RW: select.POLLIN | select.POLLOUT,
}
_ERRORS = select.POLLERR | select.POLLHUP


def _ready(wanted: int, revents: int) -> Ready:
    """psycopg's ``Ready`` for poll's ``revents`` (0 once a deadline passed)."""
    if revents & select.POLLNVAL:  # another thread closed the connection under us
        raise _errors.OperationalError("connection socket closed")
    ready = 0
    if revents & select.POLLIN:
        ready |= Ready.R
    if revents & select.POLLOUT:
        ready |= Ready.W
    if not ready and revents & _ERRORS:
        # A reset or hang-up: let libpq read or write and report it in its words.
        ready = wanted
    return Ready(ready)


def wait(
    gen: Generator[Wait, Ready | int | None, RV],
    fileno: int,
    interval: float | None = 0.0,
    timeout: float | None = None,
) -> RV:
    """Run a psycopg generator to completion, waiting cancellably for ``fileno``.

    The signature and errors are those of ``psycopg.waiting.wait``:
    ``interval`` (how often psycopg's own waits wake up for ``Ctrl-C``) is
    not needed and ignored; ``timeout`` raises psycopg's ``_WaitTimeout``.

    Cancellation:
        ``ThreadCancelled`` leaves ``gen`` where it was, so the caller can
        resume it (``Connection.wait`` does, to read the cancelled query's
        answer).
    """
    if interval is None:
        raise ValueError("indefinite wait not supported anymore")
    deadline = _core.deadline_after(timeout)
    try:
        state = next(gen)
        while True:
            revents = _core.wait_fd(fileno, _EVENTS[state], deadline, ("psycopg", fileno))
            state = gen.send(_ready(state, revents))
            # After resuming, as psycopg does: data already there is used, and a
            # timeout of 0 polls once.
            if timeout is not None and _core.seconds_left(deadline) <= 0:
                raise _errors._WaitTimeout("wait timeout expired")
    except StopIteration as ex:
        result: RV = ex.value
        return result


def wait_conn(
    gen: Generator[tuple[int, Wait], Ready | int | None, RV],
    interval: float | None = 0.0,
    timeout: float | None = None,
) -> RV:
    """Like :func:`wait` for connect and cancel generators (they yield the descriptor).

    Cancellation:
        ``gen`` is closed, so a half-made connection is closed at once.
    """
    if interval is None:
        raise ValueError("indefinite wait not supported anymore")
    deadline = _core.deadline_after(timeout)
    try:
        fileno, state = next(gen)
        while True:
            revents = _core.wait_fd(fileno, _EVENTS[state], deadline, ("psycopg.connect", fileno))
            fileno, state = gen.send(_ready(state, revents))
            if timeout is not None and _core.seconds_left(deadline) <= 0:
                raise _errors._WaitTimeout("wait timeout expired")
    except StopIteration as ex:
        result: RV = ex.value
        return result
    except _core.ThreadCancelled:
        gen.close()
        raise


def cancels_on_server(
    original: Callable[..., Any],
) -> Callable[..., Any]:
    """Wrap ``psycopg.Connection.wait``: a cancelled query is cancelled on the server too."""

    @functools.wraps(original)
    def wait_on(
        self: Connection[Any],
        gen: Generator[Wait, Ready | int | None, RV],
        interval: float = 0.1,
        timeout: float | None = None,
    ) -> RV:
        try:
            result: RV = original(self, gen, interval, timeout)
        except _core.ThreadCancelled:
            _cancel_query(self, gen)
            raise
        return result

    return wait_on


def _cancel_query(conn: Connection[Any], gen: Generator[Wait, Ready | int | None, Any]) -> None:
    """Cancel the active query on the server and read up to its answer (shielded)."""
    pgconn = conn.pgconn
    if pgconn.status != _pq.ConnStatus.OK or pgconn.transaction_status != _ACTIVE:
        return  # nothing in flight
    with _core.shield():
        try:
            conn.cancel_safe(timeout=CANCEL_TIMEOUT)
            wait(gen, pgconn.socket, timeout=CANCEL_TIMEOUT)
        except _errors.QueryCanceled:
            pass  # the answer we asked for
        except _errors.Error as exc:
            if isinstance(exc, _errors._WaitTimeout):
                logger.warning("query not ended %ss after its cancel: closing", CANCEL_TIMEOUT)
            else:
                logger.warning("cancelling the query failed (%s): closing the connection", exc)
            pgconn.finish()


def waiting_client_wait(self: Any, timeout: float) -> Any:
    """``psycopg_pool.pool.WaitingClient.wait`` that also gives up on cancellation.

    psycopg_pool's own marks the client failed only on ``Exception``: after a
    ``ThreadCancelled`` (or ``KeyboardInterrupt``) out of its condition wait,
    the client stays in the pool's queue and the next connection returned is
    handed to it -- to nobody: the pool loses the connection.  Marking it here,
    under the client's condition, makes ``set()`` refuse, so the connection
    goes to the next waiter or back into the pool.
    """
    from psycopg_pool import PoolTimeout

    with self._cond:
        if not (self.conn or self.error):
            try:
                if not self._cond.wait(timeout):
                    self.error = PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec")
            except BaseException as exc:
                self.error = exc
    if self.error:
        raise self.error
    return self.conn
