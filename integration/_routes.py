"""The ways a test stops a thread blocked on a server: one list, parametrized by every client test.

A :class:`Route` wraps the blocked call in the worker thread (``enter``) and
stops it from the test's thread once the call waits on the server
(``stop``).  Adding a way is one entry in :data:`ROUTES`; the ``scope``
route (``with CancelScope() as scope:`` in the worker, ``scope.cancel()``
from the test) is there once ``threadpatch.CancelScope`` exists (issue 11).

:func:`run_stopped` runs one client call through one route and measures the
latency: from the ``stop`` call (or the deadline) to the exception in the
blocked thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import threadpatch
from threadpatch import _core

if TYPE_CHECKING:
    from collections.abc import Callable

DEADLINE = 0.2  # seconds: the timeout_after route's deadline
MAX_LATENCY = 2.0  # seconds: the bound the tests assert (generous for CI; typically < 10 ms)


@dataclass(frozen=True)
class Route:
    """One way of stopping a blocked call.

    Attributes:
        name: the test id and the table's column.
        outer: the exception name the worker sees leave ``enter()``'s block
            (``"nothing"`` for a scope that swallows its own cancellation).
        enter: makes the context manager the blocked call runs in; may note
            things in ``seen`` (a deadline, a scope).
        stop: called from the test's thread once the call waits; None if the
            route stops the call by itself (a deadline).
    """

    name: str
    outer: str
    enter: Callable[[dict[str, Any]], contextlib.AbstractContextManager[object]]
    stop: Callable[[dict[str, Any], threading.Thread], None] | None = None


def _deadline(seen: dict[str, Any]) -> contextlib.AbstractContextManager[object]:
    seen["deadline"] = time.monotonic() + DEADLINE
    return threadpatch.timeout_after(DEADLINE)


def _cancel(seen: dict[str, Any], thread: threading.Thread) -> None:
    threadpatch.cancel(thread, blocking=False)


def _scope(seen: dict[str, Any]) -> contextlib.AbstractContextManager[object]:
    scope: contextlib.AbstractContextManager[object] = threadpatch.CancelScope()
    seen["scope"] = scope
    return scope


def _cancel_scope(seen: dict[str, Any], thread: threading.Thread) -> None:
    seen["scope"].cancel()


ROUTES: dict[str, Route] = {
    r.name: r
    for r in (
        Route("cancel", "ThreadCancelled", lambda seen: contextlib.nullcontext(), _cancel),
        Route("deadline", "ThreadTimeout", _deadline),
    )
}
if hasattr(threadpatch, "CancelScope"):  # issue 11; it swallows its own cancellation
    ROUTES["scope"] = Route("scope", "nothing", _scope, _cancel_scope)


def parked(thread: threading.Thread) -> bool:
    state = _core.state_for_thread(thread)
    return state is not None and state.parked


#: Wait-reason kinds of a thread waiting for a server's answer (not for connect or send).
READ_KINDS = ("recv", "read", "select", "poll", "epoll", "selector")


def waiting_to_read(thread: threading.Thread) -> bool:
    """The thread is parked waiting for data from a socket (its request sent)."""
    state = _core.state_for_thread(thread)
    if state is None or not state.parked:
        return False
    reason = state.blocked_on
    kind = reason[0] if isinstance(reason, tuple) and reason else reason
    return isinstance(kind, str) and any(k in kind for k in READ_KINDS)


def poll_until(predicate: Callable[[], object], timeout: float, every: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)  # polling another thread's or a server's state, not synchronising
    return True


@dataclass
class Stopped:
    """What one stopped call did."""

    raised: str  # the exception that left the route's block ("nothing": none)
    inner: str  # the exception the blocked call raised ("nothing": it returned)
    latency: float | None  # seconds from the stop (or the deadline) to that exception


def run_stopped(
    route: Route,
    call: Callable[[], object],
    blocked: Callable[[threading.Thread], bool],
    name: str = "blocked",
) -> Stopped:
    """Run ``call`` in a plain thread inside ``route``; stop it once ``blocked(thread)``."""
    seen: dict[str, Any] = {}

    def worker() -> None:
        try:
            with route.enter(seen):
                try:
                    call()
                except BaseException as exc:
                    seen["at"] = time.monotonic()
                    seen["inner"] = type(exc).__name__
                    raise
                else:
                    seen["inner"] = "nothing"
        except BaseException as exc:
            seen["raised"] = type(exc).__name__
        else:
            seen["raised"] = "nothing"

    thread = threading.Thread(target=worker, name=name)
    thread.start()
    try:
        started: float | None = None
        # A deadline may end the call first; a stop needs it blocked.
        assert poll_until(lambda: "inner" in seen or blocked(thread), 10), (
            "the call never blocked in a cancellation point"
        )
        if route.stop is not None:
            assert "inner" not in seen, f"the call ended by itself: {seen}"
            started = time.monotonic()
            route.stop(seen, thread)
        thread.join(10)
        assert not thread.is_alive(), "the blocked thread did not end"
    finally:
        if thread.is_alive():  # pragma: no cover - a failed test; let the thread go
            threadpatch.cancel(thread, timeout=5)
    if started is None:
        started = seen.get("deadline")
    latency = seen["at"] - started if "at" in seen and started is not None else None
    return Stopped(seen.get("raised", "?"), seen.get("inner", "?"), latency)


def patch_and_import(imported: str, import_client: Callable[[], None]) -> None:
    """In a child interpreter: import the client ``before`` or ``after`` ``patch_all()``.

    ``startup``: the interpreter ran with ``THREADPATCH_AUTOPATCH=1``, patched
    before this module ran; the import comes after.
    """
    if imported == "startup":
        assert threadpatch.is_patched("socket"), "THREADPATCH_AUTOPATCH did not patch"
        import_client()
    elif imported == "after":
        threadpatch.patch_all()
        import_client()
    else:
        import_client()
        threadpatch.patch_all()


def run_child(script: str, key: str, how: str, imported: str, info: dict[str, Any],
              **env: str) -> dict[str, Any]:  # fmt: skip
    """Run ``python SCRIPT KEY HOW IMPORTED JSON-INFO`` beside this file; its outcome's fields.

    ``imported="startup"`` runs it with ``THREADPATCH_AUTOPATCH=1``; ``env`` adds variables.
    """
    autopatch = "1" if imported == "startup" else ""
    result = subprocess.run(
        [sys.executable, os.path.join(os.path.dirname(__file__), script), key, how, imported,
         json.dumps(info)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "THREADPATCH_AUTOPATCH": autopatch, **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    fields: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return fields
