"""pytest plugin: patch for a session or a test, and cancel hung tests at their blocking point.

Registered through the ``pytest11`` entry point, so installing threadpatch is
enough.  It does nothing unless asked:

* ``pytest --threadpatch`` patches the standard library for the whole session;
  ``@pytest.mark.threadpatch`` and the ``patched`` fixture patch one test.
* ``--thread-timeout=SECONDS`` (or the ``thread_timeout`` ini option, or
  ``@pytest.mark.thread_timeout(seconds)``): a test still blocked at its
  deadline is cancelled at its blocking point, together with the threads it
  started, and fails with :class:`threadpatch.ThreadTimeout` whose cause shows
  where it was stuck.  The session goes on with the next test.
* Where the plugin is on for a test (any of the above), threads the test left
  running are reported with a :class:`ThreadLeakWarning` and cancelled (idle
  workers of ``threadpatch.to_thread`` are ended quietly: they are a pool).

Unlike a whole-process kill, the stuck test's ``finally`` blocks and fixtures'
teardown run; unlike a signal, the threads it started stop too.  Code blocked
in an operation threadpatch does not cover (an unpatched C call) cannot be
cancelled: keep pytest-timeout as a backstop for those.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING

import pytest

from . import _core
from ._patching import patch_all, patched, unpatch_all
from ._workers import shutdown_idle_workers

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

__all__ = ["ThreadLeakWarning"]

_LEAK_GRACE = 2.0  # seconds a leaked thread gets to end after its cancellation


class ThreadLeakWarning(pytest.PytestWarning):
    """A test left threads running; they have been cancelled."""

    __module__ = "threadpatch.pytest_plugin"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("threadpatch", "cancellable threads (threadpatch)")
    group.addoption(
        "--threadpatch",
        action="store_true",
        default=False,
        help="patch the standard library's blocking operations for the whole session",
    )
    group.addoption(
        "--thread-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="cancel a test still blocked after SECONDS at its blocking point (and its threads)",
    )
    parser.addini("thread_timeout", "default for --thread-timeout", default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "threadpatch: patch the standard library for this test")
    config.addinivalue_line(
        "markers",
        "thread_timeout(seconds): cancel this test at its blocking point after seconds "
        "(None: no limit)",
    )
    if config.getoption("threadpatch"):
        patch_all()
        config.add_cleanup(unpatch_all)


@pytest.fixture(name="patched")
def _patched_fixture() -> Iterator[None]:
    """Patch the standard library's blocking operations for the duration of the test."""
    with patched():
        yield


def _thread_timeout(item: pytest.Item) -> float | None:
    marker = item.get_closest_marker("thread_timeout")
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("seconds")
        return None if value is None else _core.check_duration(value, "thread_timeout")
    option = item.config.getoption("thread_timeout")
    if option is None:
        ini = item.config.getini("thread_timeout")
        option = float(ini) if ini not in (None, "") else None
    if option is None or option <= 0:
        return None
    return _core.check_duration(option, "--thread-timeout")


def _enabled(item: pytest.Item) -> bool:
    return (
        item.config.getoption("threadpatch")
        or item.get_closest_marker("threadpatch") is not None
        or _thread_timeout(item) is not None
    )


def _live_states() -> set[_core.ThreadState]:
    return {s for s in _core.all_states() if not s.finished}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    if not _enabled(item):
        return (yield)
    seconds = _thread_timeout(item)
    me = _core.current_state()
    before = _live_states()
    item.stash[_BEFORE] = before

    def cancel_test_threads() -> None:  # in the hub thread, once the test is marked
        for state in _live_states() - before:
            if state is not me:
                state.request_cancel()

    deadline: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if seconds is not None:
        deadline = _core.DeadlineScope(seconds, swallow=False, after_expiry=cancel_test_threads)
    patching = patched() if item.get_closest_marker("threadpatch") else contextlib.nullcontext()
    with patching, deadline:
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    try:
        return (yield)
    finally:
        before = item.stash.get(_BEFORE, None)
        if before is not None:
            _reap_leaked_threads(item, before)


def _reap_leaked_threads(item: pytest.Item, before: set[_core.ThreadState]) -> None:
    me = _core.current_state()
    leaked = [s for s in _live_states() - before if s is not me]
    if not leaked:
        return
    # Idle workers of threadpatch.to_thread wait for the next call: a pool, not a leak.
    shutdown_idle_workers()
    leaked = [s for s in leaked if not s.finished]
    if not leaked:
        return
    names = sorted(s.name or "?" for s in leaked)
    stuck = _core.cancel_states(leaked, _LEAK_GRACE)
    message = f"{item.nodeid} left {len(names)} thread(s) running: {', '.join(names)}; cancelled"
    if stuck:
        message += f" (still running after {_LEAK_GRACE:g} s: {', '.join(sorted(stuck))})"
    warnings.warn(ThreadLeakWarning(message), stacklevel=1)


_BEFORE = pytest.StashKey[set[_core.ThreadState]]()
