"""Helpers shared by the tests: waiting for a state that has no event to wait on, closing fds."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, TypeVar

from threadpatch import _core
from threadpatch._core import _natives

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator

__all__ = ["blocked_in", "closing_fds", "wait_until"]

_T = TypeVar("_T")
# Native, captured here: polling must neither be patched (a cancellation
# point in the test's own thread) nor run on a test's virtual clock.
_sleep = _natives.sleep
_monotonic = _natives.monotonic


def wait_until(
    predicate: Callable[[], _T],
    timeout: float = 10.0,
    message: str | Callable[[], str] = "the awaited state",
    *,
    interval: float = 0.0005,
) -> _T:
    """Poll ``predicate`` until it returns something true, and return that.

    For states nothing signals: a thread parked, a count reached, a
    descriptor closed, a frame entered.  When there is an event, a join or a
    ``wait_all_threads_blocked`` to wait on, use that instead.  Polling a
    state is not synchronising on time: the test goes on as soon as the
    state holds, and ``timeout`` (real seconds) only bounds a wait that
    would otherwise hang.

    Args:
        predicate: called every ``interval`` seconds, in the calling thread.
        timeout: how long the state may take before the test fails.
        message: what never happened, for the failure (or a function that
            says it, called only then: it may describe what it sees).

    Raises:
        AssertionError: the state did not hold within ``timeout``.
    """
    deadline = _monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if _monotonic() > deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"{what}: never happened within {timeout:g} s")
        _sleep(interval)


def blocked_in(thread: threading.Thread, kind: str) -> Callable[[], bool]:
    """A predicate for ``wait_until``: ``thread`` waits now, for a reason of ``kind``.

    ``kind`` is the first item of the wait reason (``"tls.read"``,
    ``"subprocess.wait"``, ...); a thread between two waits is not blocked.
    """

    def check() -> bool:
        for state in _core.all_states():
            if state.ident == thread.ident and not state.finished:
                reason = state.blocked_on
                return isinstance(reason, tuple) and reason[0] == kind
        return False

    return check


@contextlib.contextmanager
def closing_fds(*fds: int) -> Iterator[None]:
    """Close the descriptors ``fds`` on the way out (those already closed are skipped)."""
    try:
        yield
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
