"""Shared test fixtures: deterministic waits, a virtual clock, and a leak check on every test."""

from __future__ import annotations

import gc
import threading
import time
from typing import TYPE_CHECKING

import pytest

from tests._helpers import wait_until
from threadpatch import _core
from threadpatch.testing import MockClock

pytest_plugins = ["pytester"]

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def _wait_all_threads_blocked(timeout: float = 10.0, *, expected: int | None = None) -> None:
    """Wait until every live thread threadpatch knows (but the caller) is parked.

    With ``expected``, also wait until at least that many are parked.  Fails
    the test if that state is not reached within ``timeout`` seconds.
    """
    me = _core.current_state()

    def others() -> list[_core.ThreadState]:
        return [s for s in _core.all_states() if s is not me and not s.finished]

    def all_blocked() -> bool:
        threads = others()
        parked = [s for s in threads if s.parked]
        return len(parked) == len(threads) and (expected is None or len(parked) >= expected)

    def busy() -> str:
        return f"threads all blocked (still running: {[s.name for s in others() if not s.parked]})"

    wait_until(all_blocked, timeout, busy)


def pytest_collection_finish(session: pytest.Session) -> None:
    # What collection imported lives for the whole session: keep it out of the
    # per-test collections below, which then only look at what tests made.
    # Hypothesis first: its entry-point plugins (trio's) call register_random,
    # which looks for the generator's referrers, and frozen objects have none.
    import hypothesis  # noqa: F401
    gc.collect()
    gc.freeze()


@pytest.fixture
def wait_all_threads_blocked() -> Callable[..., None]:
    return _wait_all_threads_blocked


@pytest.fixture
def mock_clock() -> Iterator[MockClock]:
    """A virtual clock for hub deadlines and sleeps; it moves by ``mock_clock.jump()`` only."""
    with MockClock() as clock:
        yield clock


@pytest.fixture
def autojump_clock() -> Iterator[MockClock]:
    """A virtual clock that jumps to the next deadline as soon as every known thread waits.

    For tests where only a deadline (or a sleep) can end the waits: a 60 s
    deadline then expires at once, exactly 60 virtual seconds on.
    """
    with MockClock(autojump_threshold=0) as clock:
        yield clock


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """A test must not leave threads running: report and cancel them."""
    before = set(threading.enumerate())
    yield
    gc.collect()  # an unclosed socket or file in a cycle warns now, in the test that left it
    # A _DummyThread stands for a raw thread that something asked for
    # current_thread() (logging in the hub or a DNS worker): not joinable, not a leak.
    dummy = threading._DummyThread  # type: ignore[attr-defined]
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and not isinstance(t, dummy)
    ]
    if not leaked:
        return
    deadline = time.monotonic() + 5
    for t in leaked:  # give threads that are just returning a moment
        t.join(max(0.0, deadline - time.monotonic()))
    still = [t for t in leaked if t.is_alive()]
    for t in still:
        _core.cancel(t, blocking=True, timeout=2)
    assert not still, f"test leaked running threads: {[t.name for t in still]}"
