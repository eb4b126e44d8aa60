"""The xmlrpc set: a cancelled call closes the proxy's connection, so the proxy goes on.

``Transport.single_request`` clears its connection on ``except Exception``
only; without the set, a proxy whose call was cancelled raises
``CannotSendRequest`` on every later call.
"""

from __future__ import annotations

import threading
import xmlrpc.client
import xmlrpc.server
from typing import TYPE_CHECKING

import pytest

import threadpatch
from threadpatch import _cleanup

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


class _Quiet(xmlrpc.server.SimpleXMLRPCRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, threading.Event]]:
    """``add(a, b)``, and ``stall()``, which answers once the test lets it."""
    release = threading.Event()
    srv = xmlrpc.server.SimpleXMLRPCServer(
        ("127.0.0.1", 0), requestHandler=_Quiet, logRequests=False
    )
    srv.register_function(lambda a, b: a + b, "add")
    srv.register_function(lambda: release.wait(10), "stall")
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/", release
    finally:
        release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(10)


def _stall_and_cancel(
    proxy: xmlrpc.client.ServerProxy, wait_all_threads_blocked: Callable[..., None]
) -> threadpatch.Thread[object]:
    t = threadpatch.spawn(proxy.stall)
    wait_all_threads_blocked(expected=1)
    assert t.cancel(timeout=10)
    assert t.cancelled
    return t


def test_a_cancelled_call_leaves_the_proxy_usable(
    server: tuple[str, threading.Event], wait_all_threads_blocked: Callable[..., None]
) -> None:
    url, release = server
    with threadpatch.patched(), xmlrpc.client.ServerProxy(url) as proxy:
        assert proxy.add(2, 3) == 5
        _stall_and_cancel(proxy, wait_all_threads_blocked)
        release.set()  # the single-threaded server can take the next request
        assert proxy.add(2, 3) == 5


def test_without_the_set_the_proxy_is_stuck(
    server: tuple[str, threading.Event], wait_all_threads_blocked: Callable[..., None]
) -> None:
    """What the set fixes (the stdlib's behaviour under the other sets)."""
    import http.client

    url, release = server
    with threadpatch.patched(xmlrpc=False), xmlrpc.client.ServerProxy(url) as proxy:
        _stall_and_cancel(proxy, wait_all_threads_blocked)
        release.set()
        with pytest.raises(http.client.CannotSendRequest):
            proxy.add(2, 3)


def test_other_errors_and_results_pass_through() -> None:
    calls: list[str] = []

    class Thing:
        def close(self) -> None:
            calls.append("close")

        def work(self, x: int) -> int:
            if x < 0:
                raise ValueError(x)
            if x == 0:
                raise KeyboardInterrupt
            return x * 2

    work = _cleanup.cleans_up_on_cancel(Thing.work)
    assert work.__name__ == "work"
    assert work(Thing(), 2) == 4
    with pytest.raises(ValueError, match="-1"):
        work(Thing(), -1)
    with pytest.raises(KeyboardInterrupt):
        work(Thing(), 0)
    assert calls == []  # only a cancellation runs the clean-up


def test_the_clean_up_runs_on_a_cancellation_and_its_ignored_errors_are_ignored() -> None:
    calls: list[str] = []

    class Thing:
        def shutdown(self) -> None:
            calls.append("shutdown")
            raise OSError("already gone")

        def work(self) -> None:
            threadpatch.checkpoint()

    work = _cleanup.cleans_up_on_cancel(Thing.work, "shutdown", ignore=(OSError,))
    with pytest.raises(threadpatch.ThreadTimeout), threadpatch.timeout_after(0):
        work(Thing())
    assert calls == ["shutdown"]
    # Not ignored: it escapes, chained to the cancellation (as from the stdlib's own handler).
    strict = _cleanup.cleans_up_on_cancel(Thing.work, "shutdown")
    with pytest.raises(OSError, match="already gone") as info, threadpatch.timeout_after(0):
        strict(Thing())
    assert isinstance(info.value.__context__, threadpatch.ThreadCancelled)
