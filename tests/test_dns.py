"""threadpatch DNS: lookups run in a bounded pool; the caller's wait is cancellable."""

from __future__ import annotations

import gc
import os
import socket as std_socket
import threading
import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import _dns
from threadpatch import socket as tp_socket
from threadpatch._core import ThreadCancelled, ThreadTimeout

from ._helpers import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def native_thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.fixture
def slow_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Every lookup blocks until the returned event is set (then answers natively)."""
    release = threading.Event()
    for name, real in list(_dns._NATIVE.items()):

        def slow(*args: Any, _real: Callable[..., Any] = real) -> Any:
            release.wait(30)
            return _real(*args)

        monkeypatch.setitem(_dns._NATIVE, name, slow)
    yield release
    release.set()


LOOKUPS: dict[str, Callable[[Any], Any]] = {
    "getaddrinfo": lambda m: m.getaddrinfo("localhost", 80, 0, m.SOCK_STREAM),
    "gethostbyname": lambda m: m.gethostbyname("localhost"),
    "gethostbyname_ex": lambda m: m.gethostbyname_ex("localhost"),
    "gethostbyaddr": lambda m: m.gethostbyaddr("127.0.0.1")[0],
    "getnameinfo": lambda m: m.getnameinfo(("127.0.0.1", 80), m.NI_NUMERICHOST),
}


@pytest.mark.parametrize("lookup", LOOKUPS.values(), ids=LOOKUPS.keys())
def test_results_match_stdlib(lookup: Callable[[Any], Any]) -> None:
    assert lookup(tp_socket) == lookup(std_socket)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.getaddrinfo("host.invalid", 80),
        lambda m: m.getaddrinfo(None, None),
        lambda m: m.gethostbyname("host.invalid"),
        lambda m: m.gethostbyaddr("not an address"),
        lambda m: m.getnameinfo(("127.0.0.1",), 0),
        lambda m: m.getnameinfo("x", 0),
        lambda m: m.getaddrinfo("localhost", "nosuchservice"),
    ],
)
def test_errors_match_stdlib(call: Callable[[Any], Any]) -> None:
    def outcome(mod: Any) -> object:
        try:
            return call(mod)
        except Exception as exc:
            return type(exc), getattr(exc, "errno", None)

    assert outcome(tp_socket) == outcome(std_socket)


@pytest.mark.parametrize("lookup", LOOKUPS.values(), ids=LOOKUPS.keys())
def test_lookup_is_cancellable(
    lookup: Callable[[Any], Any],
    slow_resolver: threading.Event,
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    t = threadpatch.spawn(lookup, tp_socket)
    wait_all_threads_blocked(expected=1)
    assert t.cancel(timeout=5)
    assert t.cancelled
    assert isinstance(t.exception, ThreadCancelled)
    with pytest.raises(ThreadTimeout), threadpatch.timeout_after(0.01):
        lookup(tp_socket)


def test_queued_lookup_cancelled_never_runs(
    monkeypatch: pytest.MonkeyPatch, slow_resolver: threading.Event
) -> None:
    monkeypatch.setattr(_dns, "MAX_WORKERS", 0)  # nothing runs: jobs stay queued
    with pytest.raises(ThreadTimeout), threadpatch.timeout_after(0.01):
        tp_socket.gethostbyname("localhost")
    assert _dns.pool_statistics()["queued"] == 0


def test_numeric_hosts_resolve_in_the_caller(slow_resolver: threading.Event) -> None:
    # The slow hook would block: numeric hosts never reach the pool... except
    # getaddrinfo, which calls the same native function directly.
    slow_resolver.set()
    assert tp_socket.getaddrinfo("127.0.0.1", 80)[0][4] == ("127.0.0.1", 80)


@pytest.mark.slow
def test_repeated_cancels_leak_no_thread_and_no_memory(slow_resolver: threading.Event) -> None:
    def cancel_many(n: int) -> None:
        for _ in range(n):
            with threadpatch.ignore_after(0.001):
                tp_socket.getaddrinfo("localhost", 80)

    cancel_many(20)  # the pool is full of stuck workers now
    threads = native_thread_count()
    assert _dns.pool_statistics()["workers"] <= _dns.MAX_WORKERS
    gc.collect()
    tracemalloc.start()
    try:
        snap1 = tracemalloc.take_snapshot()
        cancel_many(300)
        gc.collect()
        snap2 = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in snap2.compare_to(snap1, "filename"))
    assert growth < 64 * 1024, f"memory grew by {growth} bytes over 300 cancelled lookups"
    assert native_thread_count() <= threads
    assert _dns.pool_statistics()["queued"] == 0
    slow_resolver.set()
    # Once the resolver answers, the pool drains and serves again.
    assert tp_socket.gethostbyname("localhost") == std_socket.gethostbyname("localhost")
    stats = _dns.pool_statistics
    wait_until(lambda: stats()["idle"] == stats()["workers"], 5, "every worker idle again")


def test_idle_workers_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dns, "IDLE_TIMEOUT", 0.01)
    # Workers already idle from earlier tests wait with the old timeout: wake
    # them (as a submitter would) so that they wait again with the new one.
    with _dns._lock:
        while _dns._idle:
            _dns._idle.pop().release()
    tp_socket.gethostbyname("localhost")
    wait_until(lambda: not _dns.pool_statistics()["workers"], 5, "idle workers exited")
