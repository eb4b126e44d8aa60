"""The imaplib set: a greeting cancelled in ``IMAP4()`` leaves no socket open.

``IMAP4.__init__`` shuts the socket down when ``_connect()`` raises an
``Exception`` only.  The checks run while the cancelled call's traceback (its
frames, the half-made object and its socket) is still alive: without the set
the socket would stay open until garbage collection.
"""

from __future__ import annotations

import imaplib
import socket
from typing import TYPE_CHECKING

import pytest
from _patch_helpers import only

import threadpatch
from tests.servers import fd_count

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture
def silent() -> Iterator[int]:
    """A listener that never accepts: the connection is made, the greeting never comes."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


@pytest.mark.parametrize("flags", [{}, only("socket", "select", "imaplib")])
def test_cancel_in_the_greeting_closes_the_socket(
    silent: int, flags: dict[str, bool], wait_all_threads_blocked: Callable[..., None]
) -> None:
    with threadpatch.patched(**flags):
        before = fd_count()
        t = threadpatch.spawn(imaplib.IMAP4, "127.0.0.1", silent)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=10)
        assert t.cancelled
        assert t.exception is not None
        assert t.exception.__traceback__ is not None  # its frames are still alive
        assert fd_count() == before


def test_deadline_in_the_greeting_closes_the_socket(silent: int) -> None:
    with threadpatch.patched():
        before = fd_count()
        with pytest.raises(threadpatch.ThreadTimeout) as info:
            threadpatch.timeout_after(0.05, imaplib.IMAP4, "127.0.0.1", silent)
        assert info.tb is not None
        assert fd_count() == before


def test_without_the_set_the_socket_waits_for_the_garbage_collector(silent: int) -> None:
    """What the set fixes (the stdlib's behaviour under the other sets)."""
    with threadpatch.patched(imaplib=False):
        before = fd_count()
        with pytest.raises(threadpatch.ThreadTimeout) as info:
            threadpatch.timeout_after(0.05, imaplib.IMAP4, "127.0.0.1", silent)
        assert fd_count() == before + 1
        imap = _the_imap(info.value)
        imap.shutdown()  # what the garbage collector would do, with a ResourceWarning
        assert fd_count() == before


def _the_imap(exc: BaseException | None) -> imaplib.IMAP4:
    """The half-made IMAP4 in the frames of ``exc`` or of what it was raised from."""
    while exc is not None:
        tb = exc.__traceback__
        while tb is not None:
            obj = tb.tb_frame.f_locals.get("self")
            if isinstance(obj, imaplib.IMAP4):
                return obj
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__
    raise AssertionError("no IMAP4 in the traceback")
