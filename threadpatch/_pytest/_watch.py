"""A test's watchdog: the deadline of its phases, the cancel, the fall-back and the report.

How it works, for a phase (setup, call or teardown) of a test with a limit::

    the test's thread (main)                  the hub thread (threadpatch's timers)
    ------------------------                  -------------------------------------
    enter DeadlineScope(rest of the limit)
    timer "look" just before its deadline --> at the limit: look (where is every
    ... the phase runs ...                    thread of the test, and on what),
                                              cancel_threads(): the threads the
                                              phase started, at their blocking points;
                                              then the scope's own timer expires
                                              the test's thread at its blocking point
    ... DeadlineExpired -> ThreadTimeout      timer "grace", grace seconds later:
        (or: returns late, not blocked)       still in the phase?  method:
                                                fail-at-end: nothing (report at end)
                                                signal: SIGALRM to the main thread
                                                exit: report on stderr, os._exit(1)
    phase ends: wait the rest of the grace
    for the cancelled threads; the report
    replaces the phase's failure (makereport)

A test that exceeded its limit fails, whatever it did afterwards: the look at
the limit is what decides, not an exception.  The phases share the limit
(``setup`` starts the clock); a phase that begins after the limit passed (the
teardown of a test that overran) gets the whole limit again, so its clean-up
runs but cannot hang the session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import signal
import threading
import time
import weakref
from typing import TYPE_CHECKING

from .. import _core
from ._report import NOT_CANCELLABLE, Seen, look, thread_outcome

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType

    import pytest

    from ._settings import Limit

__all__ = ["TeardownTimeout", "Watch", "cancel_threads", "quiet_cancelled_threads"]

_allocate_lock = _core._natives.allocate_lock
#: Threads the plugin cancelled: a ThreadCancelled that ends one is not an error.
_cancelled: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


class _SignalTimeout(BaseException):
    """Raised by the ``signal`` method in the test's main thread (not an ``Exception``)."""


class TeardownTimeout(Exception):
    """A fixture's teardown was cancelled by the thread timeout.

    pytest runs the rest of the teardown only past an ``Exception`` (or its own
    outcomes): the expiry, a ``BaseException`` so that the test's own
    ``except Exception`` cannot swallow it, becomes this on its way out of
    each finalizer.
    """


def cancel_threads(
    threads: list[threading.Thread], states: list[_core.ThreadState]
) -> list[tuple[threading.Thread | None, _core.ThreadState]]:
    """Cancel the threads a test started, at their blocking points: the plugin's one cancel.

    ``states`` are the threads threadpatch knows that the test started (a
    spawned thread may not be running yet; a raw ``_thread`` thread), ``threads``
    every ``threading.Thread`` it started; a
    plain thread that never used threadpatch is marked, and raises at its next
    patched blocking call.  The test's own thread is not among them: its
    phase's deadline scope expires right after this runs (with a cancel scope,
    ``scope.cancel()`` would go here).  Callable from any thread.

    Returns:
        (thread, state) of everything cancelled.
    """
    targets: list[tuple[threading.Thread | None, _core.ThreadState]] = []
    known = {s.ident: s for s in states if s.ident is not None}
    for thread in threads:
        state = known.pop(thread.ident, None) if thread.ident is not None else None
        if state is None:
            state = _core.state_for_thread(thread, create=True)
        if state is not None:
            targets.append((thread, state))
            _cancelled.add(thread)
    targets.extend((None, s) for s in states if s.ident is None or s.ident in known)
    for _, state in targets:
        state.request_cancel()
    return targets


def quiet_cancelled_threads() -> Callable[[], None]:
    """Install a ``threading.excepthook`` that drops the cancellations of threads we cancelled.

    pytest turns an exception that ends a thread into a warning (an error
    under ``-W error``); a thread the plugin cancelled itself is not one.
    Returns the function that puts the previous hook back.
    """
    previous = threading.excepthook

    def excepthook(args: threading.ExceptHookArgs) -> object:
        ours = args.thread is not None and args.thread in _cancelled
        if ours and args.exc_type is not None and issubclass(args.exc_type, _core.ThreadCancelled):
            return None
        return previous(args)

    threading.excepthook = excepthook

    def restore() -> None:
        if threading.excepthook is excepthook:
            threading.excepthook = previous

    return restore


@dataclasses.dataclass(slots=True)
class _Phase:
    when: str
    threads_before: set[threading.Thread]
    states_before: set[_core.ThreadState]
    scope: _core.DeadlineScope | None = None
    timers: list[object] = dataclasses.field(default_factory=list)
    ended: bool = False
    over: bool = False  # the limit passed during the phase
    seen: list[Seen] = dataclasses.field(default_factory=list)
    targets: list[tuple[threading.Thread | None, _core.ThreadState]] = dataclasses.field(
        default_factory=list
    )
    over_at: float = 0.0
    after_grace: bool = False  # the grace passed with the phase still running
    signalled: bool = False
    exception: BaseException | None = None
    report: str = ""


class Watch:
    """The watchdog of one test (made at its setup, kept in its stash)."""

    def __init__(self, item: pytest.Item, limit: Limit) -> None:
        self.item = item
        self.limit = limit
        self.me = _core.current_state()
        self._lock = _allocate_lock()
        self._deadline: float | None = None  # real clock
        self._first_before: set[threading.Thread] | None = None
        self._phase: _Phase | None = None
        self.phases: dict[str, _Phase] = {}

    @property
    def overran(self) -> bool:
        return any(p.over for p in self.phases.values())

    def cancelled_states(self) -> set[_core.ThreadState]:
        return {s for p in self.phases.values() for _, s in p.targets}

    @contextlib.contextmanager
    def phase(self, when: str) -> Iterator[None]:
        """Run a phase of the test under the limit (a no-op for a phase it does not cover)."""
        __tracebackhide__ = True
        if self.limit.func_only and when != "call":
            yield
            return
        now = time.monotonic()
        if self._deadline is None or self.overran:
            self._deadline = now + self.limit.seconds
        ph = _Phase(when, set(threading.enumerate()), set(_core.all_states()))
        if self._first_before is None:
            self._first_before = ph.threads_before
        self.phases[when] = ph
        self._phase = ph
        scope = ph.scope = _core.DeadlineScope(max(self._deadline - now, 1e-6), swallow=False)
        restore_signal = self._arm_signal(ph)
        try:
            with scope:
                hub = _core.get_hub()
                # Just before the scope's own timer: the look sees the test
                # where it is stuck, before the expiry unwinds it.
                ph.timers.append(
                    hub.call_at(
                        math.nextafter(scope.deadline, -math.inf),
                        functools.partial(self._at_limit_from_hub, ph),
                    )
                )
                yield
        except BaseException as exc:
            ph.exception = exc
            raise
        finally:
            self._end(ph, restore_signal)

    def guard_teardown(self, item: pytest.Item) -> None:
        """Let pytest's teardown go on past a finalizer cancelled by the limit.

        pytest's ``SetupState.teardown_exact`` stops at an exception that is
        not an ``Exception``, leaving the rest of the stack (other fixtures,
        the module's) set up for the next test.  Its finalizers are wrapped, once.
        """
        stack = getattr(getattr(item.session, "_setupstate", None), "stack", None)
        if not isinstance(stack, dict) or self.limit.func_only:
            return
        for finalizers, _ in stack.values():
            if isinstance(finalizers, list):
                finalizers[:] = [_guarded(fin, self) for fin in finalizers]

    def expired_here(self, exc: BaseException) -> bool:
        """``exc`` is the expiry of this watch's running phase."""
        ph = self._phase
        return (
            ph is not None
            and isinstance(exc, _core.DeadlineExpired)
            and exc.scope is ph.scope
            and not ph.ended
        )

    # -- in the hub thread -----------------------------------------------------

    def _at_limit_from_hub(self, ph: _Phase) -> None:
        with self._lock:
            if ph.ended:
                return
            ph.over = True
            ph.over_at = time.monotonic()
            ph.seen = look(self.me, self._first_before or ph.threads_before, ph.threads_before)
            new_threads = [s.thread for s in ph.seen if s.role == "started by the test"]
            # States made meanwhile for threads that ran before the phase (a
            # session fixture's server adopted now) are not the test's.
            old = {t.ident for t in ph.threads_before}
            new_states = [
                s
                for s in _core.all_states()
                if s not in ph.states_before and s is not self.me and s.ident not in old
            ]
            ph.targets = cancel_threads([t for t in new_threads if t is not None], new_states)
            cancelled = {id(s) for _, s in ph.targets} | {id(t) for t, _ in ph.targets}
            for seen in ph.seen:
                seen.cancelled = seen.role == "the test" or id(seen.thread) in cancelled
            assert ph.scope is not None
            hub = _core.get_hub()
            ph.timers.append(
                hub.call_at(
                    ph.scope.deadline + self.limit.grace,
                    functools.partial(self._after_grace_from_hub, ph),
                )
            )

    def _after_grace_from_hub(self, ph: _Phase) -> None:
        with self._lock:
            if ph.ended:
                return
            ph.after_grace = True
            method = self.limit.method
            if method == "signal" and self._signal_ok:
                ph.signalled = True
                signal.pthread_kill(self.me.ident or 0, signal.SIGALRM)
                return
            if method != "exit":
                return
        self._exit(ph)

    def _exit(self, ph: _Phase) -> None:
        """The ``exit`` method: report on stderr and end the process (xdist replaces a worker)."""
        text = f"{self.item.nodeid}: {self._text(ph, final=False)}"
        with contextlib.suppress(Exception):  # a report on the way out: never fail it
            capman = self.item.config.pluginmanager.getplugin("capturemanager")
            if capman is not None:
                capman.suspend_global_capture(in_=True)
        with contextlib.suppress(Exception):
            _core._natives.write(
                2,
                f"\n{'+' * 20} threadpatch: thread timeout {'+' * 20}\n{text}\n"
                "threadpatch: ending the process (--thread-timeout-method=exit)\n".encode(),
            )
        os._exit(1)

    # -- in the test's thread --------------------------------------------------

    _signal_ok = False
    _previous_handler: object = None

    def _arm_signal(self, ph: _Phase) -> Callable[[], None] | None:
        if (
            self.limit.method != "signal"
            or threading.current_thread() is not threading.main_thread()
        ):
            self._signal_ok = False
            return None
        previous = signal.getsignal(signal.SIGALRM)

        def handler(signum: int, frame: FrameType | None) -> None:
            __tracebackhide__ = True
            if ph.signalled and not ph.ended:
                raise _SignalTimeout(
                    f"thread timeout of {self.limit.describe()}: SIGALRM after the grace"
                )
            if callable(previous):  # e.g. pytest-timeout's own alarm
                previous(signum, frame)

        signal.signal(signal.SIGALRM, handler)
        self._signal_ok = True

        def restore() -> None:
            self._signal_ok = False
            signal.signal(signal.SIGALRM, previous)

        return restore

    def _end(self, ph: _Phase, restore_signal: Callable[[], None] | None) -> None:
        __tracebackhide__ = True
        hub = _core.get_hub()
        with self._lock:
            ph.ended = True
            for timer in ph.timers:
                hub.cancel_timer(timer)  # type: ignore[arg-type]
            if not ph.over and ph.scope is not None and ph.scope.timed_out:
                # The scope's timer fired and our look did not run first (it
                # never should): the test overran; it has unwound already.
                ph.over, ph.over_at = True, time.monotonic()
                ph.seen = [Seen(self.me.name or "MainThread", "the test", None, [], cancelled=True)]
        if restore_signal is not None:
            restore_signal()
        if not ph.over:
            return
        # The cancelled threads get what is left of the grace to end.
        left = max(0.0, ph.over_at + self.limit.grace - time.monotonic())
        _core.cancel_states([s for _, s in ph.targets], left)
        for seen in ph.seen:
            seen.outcome = self._outcome(ph, seen)
        ph.report = self._text(ph, final=True)

    def _outcome(self, ph: _Phase, seen: Seen) -> str:
        grace = f"{self.limit.grace:g} s"
        if seen.role == "the test":
            exc = ph.exception
            if isinstance(exc, _SignalTimeout):
                return (
                    f"not in a cancellable wait: still running after the {grace} grace, "
                    "interrupted by SIGALRM"
                )
            if ph.scope is not None and ph.scope.delivered:
                return "cancelled at its blocking point"
            late = time.monotonic() - ph.over_at
            return (
                f"{NOT_CANCELLABLE}: could not be stopped; it went on {late:.1f} s past the limit"
            )
        return thread_outcome(seen, self.limit.grace)

    # -- the look and the report ---------------------------------------------------

    def _text(self, ph: _Phase, final: bool) -> str:
        where = {"setup": "during setup", "call": "during the test", "teardown": "during teardown"}[
            ph.when
        ]
        lines = [f"exceeded thread timeout of {self.limit.describe()} {where}"]
        for seen in ph.seen:
            outcome = seen.outcome if final else thread_outcome(seen, self.limit.grace)
            lines.append(f"thread {seen.name!r} ({seen.role}): {outcome}")
            lines.append(
                f"  stuck in {seen.reason}"
                if seen.reason
                else "  not in a threadpatch wait at the limit"
            )
            lines.extend(seen.stack)
        return "\n".join(lines)

    def _ours(self, ph: _Phase, exc: BaseException) -> bool:
        if isinstance(exc, _SignalTimeout | TeardownTimeout):
            return True
        cause = exc.__cause__ if isinstance(exc, _core.ThreadTimeout) else exc
        return isinstance(cause, _core.DeadlineExpired) and cause.scope is ph.scope

    def amend(self, report: pytest.TestReport) -> None:
        """Make the report of an overrun phase a failure that shows ours."""
        ph = self.phases.get(report.when or "")
        if ph is None or not ph.over:
            return
        longrepr: object = ph.report
        exc = ph.exception
        if exc is not None and not self._ours(ph, exc) and report.longrepr is not None:
            longrepr = f"{ph.report}\n\n{report.longrepr}"
        report.outcome = "failed"
        report.longrepr = longrepr  # type: ignore[assignment]
        if hasattr(report, "wasxfail"):
            del report.wasxfail


def _guarded(fin: Callable[[], object], watch: Watch) -> Callable[[], object]:
    if getattr(fin, "_threadpatch_guarded", None) is watch:
        return fin
    inner = getattr(fin, "__wrapped__", fin) if getattr(fin, "_threadpatch_guarded", None) else fin

    @functools.wraps(inner)
    def guarded() -> object:
        __tracebackhide__ = True
        try:
            return inner()
        except _core.DeadlineExpired as exc:
            if not watch.expired_here(exc):
                raise
            raise TeardownTimeout(
                f"teardown cancelled by the thread timeout of {watch.limit.describe()}"
            ) from exc

    guarded._threadpatch_guarded = watch  # type: ignore[attr-defined]
    return guarded
