"""The database-driver sets without a server: psycopg's wait functions, psycopg2's callback.

What they do against real servers (server-side cancel, connections after a
cancel) is in ``integration/test_db_clients.py``; here: the wait functions'
contract with psycopg's generators (results, timeouts, a closed descriptor,
cancellation leaving the generator resumable), and the exact restore of
psycopg2's wait callback, which lives in C rather than in an attribute.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import psycopg.waiting
import psycopg2.extensions
import pytest
from psycopg import errors
from psycopg.waiting import Ready, Wait

import threadpatch
from threadpatch import _patching, _psycopg, _psycopg2

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    with a, b:
        yield a, b


def reader(sock: socket.socket, seen: list[Any]) -> Generator[Wait, Any, bytes]:
    """A generator shaped like psycopg's: wait for readable, then read."""
    while True:
        ready = yield Wait.R
        seen.append(ready)
        if ready:
            return sock.recv(10)


def test_wait_runs_the_generator_to_its_result(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    seen: list[Any] = []
    b.sendall(b"hello")
    assert _psycopg.wait(reader(a, seen), a.fileno()) == b"hello"
    assert seen == [Ready.R]


def test_wait_timeout_is_psycopgs(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    seen: list[Any] = []
    with pytest.raises(errors._WaitTimeout):
        _psycopg.wait(reader(a, seen), a.fileno(), timeout=0.01)
    assert seen == [Ready.NONE]  # resumed once with nothing, as psycopg's waits do


def test_wait_on_a_closed_descriptor_is_an_operational_error() -> None:
    a, b = socket.socketpair()
    fd = a.fileno()
    a.close()
    b.close()
    with pytest.raises(errors.OperationalError, match="connection socket closed"):
        _psycopg.wait(reader(a, []), fd, timeout=1)


def test_hang_up_is_reported_as_ready_for_libpq_to_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    b.shutdown(socket.SHUT_RDWR)
    assert _psycopg.wait(reader(a, []), a.fileno(), timeout=1) == b""


def test_cancelled_wait_leaves_the_generator_resumable(
    pair: tuple[socket.socket, socket.socket],
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, b = pair
    seen: list[Any] = []
    gen = reader(a, seen)
    t = threadpatch.spawn(_psycopg.wait, gen, a.fileno())
    wait_all_threads_blocked(expected=1)
    assert t.cancel(timeout=5)
    assert t.cancelled
    assert seen == []
    # Connection.wait resumes it to read the cancelled query's answer, as here.
    b.sendall(b"later")
    assert _psycopg.wait(gen, a.fileno(), timeout=5) == b"later"
    assert seen == [None, Ready.R]  # next() first, as psycopg's own resumption does


def test_cancelled_wait_conn_closes_the_generator(
    pair: tuple[socket.socket, socket.socket],
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, _ = pair
    closed: list[bool] = []

    def connecting() -> Generator[tuple[int, Wait], Any, None]:
        try:
            yield a.fileno(), Wait.R
        except GeneratorExit:
            closed.append(True)
            raise

    t = threadpatch.spawn(_psycopg.wait_conn, connecting())
    wait_all_threads_blocked(expected=1)
    assert t.cancel(timeout=5)
    assert t.cancelled
    assert closed == [True]


def test_psycopg_set_swaps_the_c_wait() -> None:
    native = psycopg.waiting.wait
    with threadpatch.patched(psycopg=True):
        assert psycopg.waiting.wait is _psycopg.wait
        assert psycopg.waiting.wait_conn is _psycopg.wait_conn
        assert threadpatch.original(psycopg.waiting, "wait") is native
    assert psycopg.waiting.wait is native


def test_psycopg2_callback_is_set_and_restored_exactly() -> None:
    def theirs(conn: object) -> None:  # say, gevent's
        raise AssertionError("never called")

    for before in (None, theirs):
        psycopg2.extensions.set_wait_callback(before)
        try:
            with threadpatch.patched(psycopg2=True):
                assert psycopg2.extensions.get_wait_callback() is _psycopg2.wait_callback
                with threadpatch.patched(psycopg2=True):  # nested: still ours
                    pass
                assert psycopg2.extensions.get_wait_callback() is _psycopg2.wait_callback
            assert psycopg2.extensions.get_wait_callback() is before
        finally:
            psycopg2.extensions.set_wait_callback(None)


def test_psycopg2_callback_replaced_while_patched_is_left_with_a_warning() -> None:
    def someone_elses(conn: object) -> None:
        raise AssertionError("never called")

    try:
        threadpatch.patch_all(**{flag: flag == "psycopg2" for flag in _patching.FLAGS})
        psycopg2.extensions.set_wait_callback(someone_elses)
        with pytest.warns(threadpatch.ThreadpatchWarning, match="wait callback was replaced"):
            threadpatch.unpatch_all()
        assert psycopg2.extensions.get_wait_callback() is someone_elses
    finally:
        psycopg2.extensions.set_wait_callback(None)
