"""Ctrl-C and interpreter exit: ``run()``, and the hook in ``threading._shutdown``.

A Ctrl-C ends a program only if every non-daemon thread ends too.  CPython's
finalisation calls ``threading._shutdown`` (looked up on the module at that
moment), which runs the ``threading._register_atexit`` callbacks (there
``concurrent.futures`` joins its pool workers) and then waits for every
non-daemon thread.  Natively that is where Ctrl-C programs hang or lose work:

* the main program ended by ``KeyboardInterrupt`` while threads block: the
  wait lasts as long as their blocking calls (forever for a queue ``get``);
* a Ctrl-C *during* that wait: the wait is abandoned, the threads' ``finally``
  blocks never run, and the exit status is 0, which shells and CI read as
  success.

So importing threadpatch replaces ``threading._shutdown`` by :func:`_shutdown`,
which passes straight through until threadpatch is in use (a thread was
spawned or adopted, or the standard library was patched):

    main ended by Ctrl-C?  --yes-->  cancel every thread, wait <= CTRL_C_GRACE,
          |                          then the original _shutdown (now quick)
          no
          v
    original _shutdown  --Ctrl-C during it-->  print the traceback, cancel every
                                               thread, wait <= CTRL_C_GRACE,
                                               exit by SIGINT

"Every thread" is every thread threadpatch knows plus every non-daemon
``threading.Thread`` (one that has not touched threadpatch yet is marked: its
next blocking call raises).  A thread still running after the grace (stuck in
a call threadpatch does not cover) is named on stderr and the process exits by
SIGINT anyway, after the ``atexit`` callbacks, as Python's own Ctrl-C exit does.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import signal
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from . import _natives
from ._hub import get_hub
from ._registry import all_states, current_state, state_for_thread
from ._scopes import shield
from ._thread import quiet_cancelled_plain_threads, spawn
from ._wait import deadline_after, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._state import ThreadState

__all__ = ["CTRL_C_GRACE", "cancel_everything", "cancel_states", "run", "watch_exit"]

T = TypeVar("T")
P = ParamSpec("P")
_monotonic = _natives.monotonic

#: Time ``run()`` and interpreter exit give cancelled threads to finish their
#: clean-up after Ctrl-C, so that the program ends within 1 s.
CTRL_C_GRACE = 0.5


def run(main: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``main(*args, **kwargs)`` in a managed thread and return its result.

    On Ctrl-C (``KeyboardInterrupt`` in the calling thread, normally the main
    thread) every thread is cancelled, their ``finally`` blocks get a bounded
    time to run, and ``KeyboardInterrupt`` is re-raised.

    Raises:
        ThreadError: ``main`` failed; ``__cause__`` is its exception.
        KeyboardInterrupt: on Ctrl-C, after the clean-up.
    """
    # Bound first: every keyword is main's (run() has no options of its own).
    thread = spawn(functools.partial(main, *args, **kwargs), name="threadpatch.run")
    try:
        thread.wait()
    except KeyboardInterrupt:
        cancel_everything()
        raise
    return thread.join()


def cancel_states(targets: list[ThreadState], grace: float) -> list[str]:
    """Cancel ``targets`` and wait (shielded) up to ``grace`` s in all for them to end.

    A target that has a ``threading.Thread`` counts as ended when that thread
    has (a plain thread marked cancelled may end without touching threadpatch
    again); others when their state has finished.

    Returns:
        The names of the threads still running afterwards.
    """
    quiet_cancelled_plain_threads()
    for state in targets:
        state.request_cancel()
    me = current_state()
    watched = [s for s in targets if s.add_done_callback(me.unpark)]
    try:
        with shield():
            # A done callback wakes us; plain threads that end without one
            # are looked at every 10 ms.
            wait_until(
                lambda: not any(_running(s) for s in watched),
                deadline_after(grace),
                ("cancel", watched),
                every=0.01,
            )
    finally:
        for state in watched:
            state.remove_done_callback(me.unpark)
    return [s.name or "?" for s in targets if _running(s)]


def _running(state: ThreadState) -> bool:
    if state.finished:
        return False
    # Its own Thread first: the ident may be another thread's by now.
    active = threading._active  # type: ignore[attr-defined]
    thread = state.for_thread or state.bound_thread or active.get(state.ident)
    return thread is None or thread.is_alive()


def cancel_everything(grace: float = CTRL_C_GRACE) -> list[str]:
    """Cancel every thread but the caller and wait up to ``grace`` s for them.

    Every thread threadpatch knows, and every non-daemon ``threading.Thread``
    (the interpreter would wait for it at exit): one that never touched
    threadpatch is marked, and raises at its next blocking call.

    Returns:
        The names of the threads still running afterwards.
    """
    me = current_state()
    hub = get_hub().ident
    dummy = threading._DummyThread
    for thread in list(threading._active.values()):  # type: ignore[attr-defined]
        ident = thread.ident
        if ident in (me.ident, hub) or thread.daemon or isinstance(thread, dummy):
            continue
        state_for_thread(thread, create=True)
    targets = [s for s in all_states() if s is not me and not s.finished]
    return cancel_states(targets, grace)


# -- interpreter exit ------------------------------------------------------------

_original_shutdown: Callable[[], None] = threading._shutdown  # type: ignore[attr-defined]
_original_thread_shutdown: Callable[[], None] | None = getattr(threading, "_thread_shutdown", None)
_watching = False


def watch_exit() -> None:
    """Handle Ctrl-C at exit even if no thread has touched threadpatch yet (patching calls it)."""
    global _watching
    _watching = True


def _ended_by_ctrl_c() -> bool:
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return isinstance(last, KeyboardInterrupt)


def _shutdown() -> None:
    """``threading._shutdown`` with Ctrl-C handling (see the module docstring)."""
    if not (_watching or all_states()) or threading.current_thread() is not threading.main_thread():
        _original_shutdown()
        return
    try:
        if _ended_by_ctrl_c():
            left = cancel_everything()
            if left:
                _exit_by_sigint(left)
        if sys.version_info >= (3, 13):
            # 3.13 waits in _thread._shutdown(), which reports a Ctrl-C as
            # unraisable and stops waiting: wait first, where it propagates.
            threading._thread_shutdown = _join_then_thread_shutdown  # type: ignore[attr-defined]
            try:
                _original_shutdown()
            finally:
                threading._thread_shutdown = _original_thread_shutdown  # type: ignore[attr-defined]
        else:
            _original_shutdown()
    except KeyboardInterrupt as exc:
        # Ctrl-C while the interpreter waits for threads (or for the grace).
        traceback.print_exception(exc)
        _exit_by_sigint(cancel_everything())


def _join_then_thread_shutdown() -> None:
    for thread in list(threading._active.values()):  # type: ignore[attr-defined]
        if not thread.daemon and thread is not threading.current_thread():
            thread.join()
    assert _original_thread_shutdown is not None
    _original_thread_shutdown()


def _exit_by_sigint(left: list[str]) -> None:
    """End the process as an uncaught KeyboardInterrupt does: atexit callbacks, then SIGINT."""
    if left:
        names = ", ".join(repr(n) for n in left)
        print(
            f"threadpatch: Ctrl-C: {len(left)} thread(s) still running after "
            f"{CTRL_C_GRACE} s, not waiting for them: {names}",
            file=sys.stderr,
        )
        # Where each one is stuck: what it waits for (if in a threadpatch wait) and its stack.
        frames, me = sys._current_frames(), current_state()
        for state in [s for s in all_states() if s is not me and _running(s)]:
            with contextlib.suppress(Exception):  # a report: never fail the exit
                reason: Any = state.blocked_on
                what = "is not in a threadpatch wait"
                if reason:
                    what = f"waits in {reason[0]} on {reason[1]!r}"[:300]
                stack = "".join(traceback.format_stack(frames[state.ident or 0], limit=8))
                sys.stderr.write(f"  {state.name!r} {what}, at:\n{stack}")
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # closed or broken: nothing to flush
                stream.flush()
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
            os.kill(os.getpid(), signal.SIGINT)
        finally:
            os._exit(128 + signal.SIGINT)  # SIGINT could not end us: the shell's code for it


threading._shutdown = _shutdown  # type: ignore[attr-defined]
