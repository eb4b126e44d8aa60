"""pytest plugin: patch for a session or a test, and a thread timeout that cancels, not kills.

Registered through the ``pytest11`` entry point, so installing threadpatch is
enough.  It does nothing unless asked:

* ``pytest --threadpatch`` patches the standard library for the whole session;
  ``@pytest.mark.threadpatch`` patches one test (its fixtures too), the
  ``patched`` fixture the rest of a test from where it is requested.
* ``--thread-timeout=SECONDS`` (or ``PYTEST_THREAD_TIMEOUT``, the
  ``thread_timeout`` ini option, ``@pytest.mark.thread_timeout(seconds)``;
  precedence as pytest-timeout's: marker > command line > environment > ini):
  a test that runs longer fails.  At the limit the test and the threads it
  started are cancelled at their blocking points; a thread that cannot be
  (a CPU loop, a call threadpatch does not cover) gets a grace, and then
  ``--thread-timeout-method`` applies: ``fail-at-end``, ``signal`` or
  ``exit``.  The limit covers setup, call and teardown, or the test function
  only (``func_only``).  A test with a limit runs patched (unless
  ``--thread-timeout-no-patch``), so ``time.sleep`` or ``requests`` in it can
  be cancelled.  The failure says which limit, from where, and for each
  thread of the test where it was stuck and on what.
* Where the plugin is on for a test (any of the above), threads the test left
  running are reported with a :class:`ThreadLeakWarning` and cancelled (idle
  workers of ``threadpatch.to_thread`` are ended quietly: they are a pool).

See docs/guide/pytest.md.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING

import pytest

from . import _core
from ._patching import patch_all, patched, unpatch_all
from ._pytest._settings import (
    MARKER_HELP,
    SessionSettings,
    add_options,
    item_limit,
    session_settings,
)
from ._pytest._watch import Watch, quiet_cancelled_threads
from ._workers import shutdown_idle_workers

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

__all__ = ["ThreadLeakWarning"]

_LEAK_GRACE = 2.0  # seconds a leaked thread gets to end after its cancellation


class ThreadLeakWarning(pytest.PytestWarning):
    """A test left threads running; they have been cancelled."""

    __module__ = "threadpatch.pytest_plugin"


_SETTINGS = pytest.StashKey[SessionSettings]()
_WATCH = pytest.StashKey[Watch]()
_PATCHER = pytest.StashKey["_TestPatching"]()
_PATCHED = pytest.StashKey[bool]()
_BEFORE = pytest.StashKey[set[_core.ThreadState]]()
_BAD_MARKER = pytest.StashKey[Exception]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(trylast=True)  # after pytest's own threading.excepthook is in place
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "threadpatch: patch the standard library for this test and its fixtures"
    )
    config.addinivalue_line("markers", MARKER_HELP)
    settings = config.stash[_SETTINGS] = session_settings(config)
    config.add_cleanup(quiet_cancelled_threads())
    patcher = config.stash[_PATCHER] = _TestPatching()
    config.add_cleanup(patcher.stop)
    if settings.session_patched:
        patch_all()
        config.add_cleanup(unpatch_all)


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash.get(_SETTINGS, None)
    return settings.header() if settings is not None else []


@pytest.fixture(name="patched")
def _patched_fixture() -> Iterator[None]:
    """Patch the standard library's blocking operations for the duration of the test."""
    with patched():
        yield


class _TestPatching:
    """Patching for the tests that want it: from the setup of the first one on.

    A test with a thread timeout (unless ``--thread-timeout-no-patch``) or
    ``@pytest.mark.threadpatch`` runs patched, from its setup to its teardown;
    a test that wants neither runs unpatched.  Between two tests that both
    want it, the patches stay (a cycle costs about 0.7 ms): they are undone
    when a test that does not want them is set up, and at the session's end.
    """

    def __init__(self) -> None:
        self._patching: patched | None = None

    def want(self, wanted: bool) -> None:
        if wanted and self._patching is None:
            patching = patched()
            patching.__enter__()
            self._patching = patching
        elif not wanted and self._patching is not None:
            self.stop()

    def stop(self) -> None:
        patching, self._patching = self._patching, None
        if patching is not None:
            patching.__exit__(None, None, None)


def _live_states() -> set[_core.ThreadState]:
    return {s for s in _core.all_states() if not s.finished}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    __tracebackhide__ = True
    settings = item.config.stash[_SETTINGS]
    try:
        limit = item_limit(item, settings)
    except (TypeError, ValueError) as exc:
        # Raised by the plain hook below, inside every wrapper (as pytest's
        # skip markers are): a wrapper that raises before it yields leaves the
        # wrappers inside it (logging's) half set up.
        item.stash[_BAD_MARKER] = exc
        return (yield)
    marked = item.get_closest_marker("threadpatch") is not None
    wanted = not settings.session_patched and (marked or (limit is not None and settings.patch))
    item.config.stash[_PATCHER].want(wanted)
    if wanted:
        item.stash[_PATCHED] = True
    if limit is None:
        return (yield)
    watch = item.stash[_WATCH] = Watch(item, limit)
    with watch.phase("setup"):
        return (yield)


@pytest.hookimpl(tryfirst=True, specname="pytest_runtest_setup")
def pytest_runtest_setup_bad_marker(item: pytest.Item) -> None:
    error = item.stash.get(_BAD_MARKER, None)
    if error is not None:
        raise error


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    __tracebackhide__ = True
    watch = item.stash.get(_WATCH, None)
    if watch is not None or _PATCHED in item.stash or item.config.stash[_SETTINGS].session_patched:
        item.stash[_BEFORE] = _live_states()
    if watch is None:
        return (yield)
    with watch.phase("call"):
        return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    __tracebackhide__ = True
    watch = item.stash.get(_WATCH, None)
    if watch is not None:
        watch.guard_teardown(item)
    try:
        with watch.phase("teardown") if watch is not None else contextlib.nullcontext():
            return (yield)
    finally:
        before = item.stash.get(_BEFORE, None)
        if before is not None:
            done = watch.cancelled_states() if watch is not None else set()
            _reap_leaked_threads(item, before | done)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    watch = item.stash.get(_WATCH, None)
    if watch is not None:
        watch.amend(report)
    return report


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
