"""The resolver pool leaves no thread behind and keeps no argument alive.

Leak checks (``test.support.threading_cleanup``, pytest plugins) compare the
native thread count before and after a test: a lookup must not leave an idle
worker running after it returned.
"""

from __future__ import annotations

import _thread
import gc
import socket
import subprocess
import sys
import weakref

import pytest

from threadpatch import _dns
from threadpatch import socket as tp_socket

from ._helpers import wait_until


def test_a_lookup_leaves_no_worker_running() -> None:
    before = _thread._count()
    assert tp_socket.gethostbyname("localhost") == socket.gethostbyname("localhost")
    # The worker delivers the answer, then ends: moments later, not seconds.
    wait_until(
        lambda: _thread._count() == before,
        timeout=1.0,
        message=lambda: f"{_thread._count()} native threads, not {before}",
    )
    assert _dns.pool_statistics() == {"workers": 0, "idle": 0, "queued": 0}


def test_a_failed_lookup_keeps_no_argument_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    class Address:
        """Stands for a sockaddr: the fake resolver takes anything."""

    def failing(*args: object) -> None:
        del args  # as the C resolver: its frame holds nothing of the caller's
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setitem(_dns._NATIVE, "getnameinfo", failing)
    address = Address()
    ref = weakref.ref(address)
    with pytest.raises(socket.gaierror) as caught:
        tp_socket.getnameinfo(address, 0)
    del address
    gc.collect()
    # The caller still holds the exception (its traceback holds our frames).
    assert caught.value.errno == socket.EAI_NONAME
    assert ref() is None


def test_the_stdlib_reference_count_check_passes() -> None:
    # CPython's test_socket.testRefCountGetNameInfo, on our stand-in.
    name = "a string is not a sockaddr"
    try:
        before = sys.getrefcount(name)
        tp_socket.getnameinfo(name, 0)
    except TypeError as exc:
        assert sys.getrefcount(name) == before, exc
    else:
        pytest.fail("getnameinfo accepted a string")


def test_where_no_worker_can_start_the_lookup_runs_in_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No thread can start (the thread limit; 3.12 at interpreter exit): the
    # lookup blocks in the caller as the stdlib's does, rather than fail.
    wait_until(lambda: _dns.pool_statistics()["workers"] == 0, timeout=5.0)

    def refuse(*args: object) -> int:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(_dns._natives, "start_new_thread", refuse)
    monkeypatch.setitem(_dns._NATIVE, "gethostbyname", lambda host: (host, _thread.get_ident()))
    assert tp_socket.gethostbyname("example.test") == ("example.test", _thread.get_ident())
    assert _dns.pool_statistics() == {"workers": 0, "idle": 0, "queued": 0}


def test_a_lookup_in_an_atexit_handler_works_patched() -> None:
    code = (
        "import atexit, socket\n"
        "atexit.register(lambda: print(socket.getaddrinfo('localhost', 80)[0][4][1],"
        " socket.gethostbyname_ex('localhost')[0] != ''))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "threadpatch", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "80 True\n", proc.stderr
