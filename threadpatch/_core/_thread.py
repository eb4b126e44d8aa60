"""Thread handles: ``spawn``, ``current``, ``cancel``, ``run`` and Ctrl-C.

A :class:`Thread` is a handle on a real ``threading.Thread`` (so
``threading.enumerate()``, ``current_thread()`` and debuggers see it) plus the
thread's :class:`~._state.ThreadState`.  Any other thread (the main thread, a
plain ``threading.Thread``, a pool worker) is adopted the first time it uses
threadpatch and gets a handle too.
"""

from __future__ import annotations

import math
import sys
import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _natives
from ._exceptions import ThreadCancelled, ThreadError, ThreadTimeout
from ._scopes import check_duration, shield
from ._state import (
    ParkingLot,
    ThreadState,
    all_states,
    bind_current,
    current_state,
    register_unbound,
    state_for_thread,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = ["Thread", "cancel", "cancel_all", "cancel_states", "current", "run", "spawn"]

T = TypeVar("T")
_monotonic = _natives.monotonic

#: Time ``run()`` and interpreter exit give cancelled threads to finish their
#: clean-up after Ctrl-C, so that KeyboardInterrupt surfaces within 1 s.
CTRL_C_GRACE = 0.5


class Thread(Generic[T]):
    """A handle on a real OS thread that can be joined and cancelled.

    Made by :func:`spawn` (or by :func:`current` for an adopted thread).
    """

    __module__ = "threadpatch"

    def __init__(self, state: ThreadState, thread: threading.Thread | None) -> None:
        self._state = state
        self._thread = thread
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._lot = ParkingLot()
        self._spawned = False
        self._retrieved = False
        state.handle = self

    def __del__(self) -> None:
        # Like asyncio's "exception was never retrieved": a failure nobody
        # looked at must not vanish silently (threading would have printed it).
        exc = self._exception
        if exc is not None and not self._retrieved and not isinstance(exc, ThreadCancelled):
            sys.unraisablehook(
                _Unraisable(
                    exc,
                    f"Exception in threadpatch thread {self.name!r} was never "
                    "retrieved (join() it, or read .result or .exception)",
                    self,
                )
            )

    def __repr__(self) -> str:
        status = (
            ("cancelled" if self.cancelled else "failed" if self._exception is not None else "done")
            if self.done()
            else "running"
        )
        return f"<threadpatch.Thread {self.name!r} {status}>"

    # -- attributes ------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._state.name or ""

    @property
    def ident(self) -> int | None:
        return self._state.ident

    @property
    def native_id(self) -> int | None:
        return self._state.native_id

    @property
    def daemon(self) -> bool:
        thread = self._thread or threading._active.get(self._state.ident)  # type: ignore[attr-defined]
        return bool(thread is not None and thread.daemon)

    def done(self) -> bool:
        """True once the thread has ended."""
        return self._state.finished

    def is_alive(self) -> bool:
        return not self._state.finished

    @property
    def cancelled(self) -> bool:
        """True once the thread has ended by :class:`ThreadCancelled`."""
        return self._state.finished and isinstance(self._exception, ThreadCancelled)

    @property
    def exception(self) -> BaseException | None:
        """The exception the thread ended with (None if it returned or still runs)."""
        if not self._state.finished:
            return None
        self._retrieved = True
        return self._exception

    @property
    def result(self) -> T:
        """The thread's return value.

        Raises:
            ThreadError: the thread failed or was cancelled (``__cause__`` says why).
            RuntimeError: the thread has not finished.
        """
        if not self._state.finished:
            raise RuntimeError(f"thread {self.name!r} has not finished")
        if self._exception is not None:
            self._retrieved = True
            what = "was cancelled" if self.cancelled else "failed"
            raise ThreadError(f"thread {self.name!r} {what}") from self._exception
        return self._result  # type: ignore[return-value]

    # -- waiting ---------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the thread ends; return whether it has (no result, no raise).

        Cancellation:
            The wait ends; the awaited thread is not affected.
        """
        seconds = check_duration(timeout, "timeout")  # bad input fails on every path
        state = self._state
        if state.finished:
            return True
        if state is current_state():
            raise RuntimeError("cannot wait for the current thread")
        lot = self._lot
        state.add_done_callback(lot.unpark_all)
        try:
            return lot.park_until(lambda: state.finished, None if seconds == math.inf else seconds)
        finally:
            state.remove_done_callback(lot.unpark_all)

    def join(self, timeout: float | None = None) -> T:
        """Wait for the thread and return its result.

        Raises:
            ThreadError: the thread failed or was cancelled; ``__cause__`` is the
                original exception.
            ThreadTimeout: ``timeout`` passed before the thread ended.
            RuntimeError: joining the current thread.

        Cancellation:
            The join ends; the awaited thread is not affected.
        """
        if self._state is current_state():
            raise RuntimeError("cannot join current thread")
        if not self.wait(timeout):
            raise ThreadTimeout(f"thread {self.name!r} still running after {timeout} s")
        return self.result

    def cancel(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Cancel the thread at its current or next blocking point.

        Args:
            blocking: wait until the thread has ended.
            timeout: with ``blocking``, how long to wait at most.

        Returns:
            :meth:`done`.  Cancelling a finished thread is a no-op that returns
            True; cancelling the calling thread only records the request (it is
            raised at the next blocking point) and returns False.
        """
        state = self._state
        if state.finished:
            return True
        state.request_cancel()
        if state is current_state():
            return False
        if blocking:
            self.wait(timeout)
        return state.finished

    # -- running ---------------------------------------------------------------

    def _bootstrap(self, func: Callable[..., T], args: tuple[Any, ...]) -> None:
        state = bind_current(self._state)
        try:
            self._result = func(*args)
        except BaseException as exc:
            self._exception = exc
        finally:
            del func, args
            state.finish()


class _Unraisable:
    """The argument sys.unraisablehook expects."""

    def __init__(self, exc: BaseException, message: str, obj: object) -> None:
        self.exc_type: type[BaseException] = type(exc)
        self.exc_value: BaseException | None = exc
        self.exc_traceback: TracebackType | None = exc.__traceback__
        self.err_msg: str | None = message
        self.object: object = obj


def spawn(
    func: Callable[..., T], *args: Any, daemon: bool = False, name: str | None = None
) -> Thread[T]:
    """Start ``func(*args)`` in a new real OS thread and return its handle.

    Args:
        func: the callable to run.
        daemon: as for ``threading.Thread``: a daemon thread does not keep the
            interpreter alive.
        name: thread name (default: ``threadpatch-N``).

    Raises:
        TypeError: ``func`` is not callable.
    """
    if not callable(func):
        raise TypeError(f"spawn() needs a callable, got {type(func).__name__}: {func!r}")
    if name is None:
        name = f"threadpatch-{next(_counter)}"
    state = ThreadState(name)
    handle: Thread[T] = Thread(state, None)
    thread = threading.Thread(target=handle._bootstrap, args=(func, args), name=name, daemon=daemon)
    handle._thread = thread
    handle._spawned = True
    register_unbound(state)
    _install_exit_hook()
    try:
        thread.start()
    except RuntimeError:
        state.finish()  # "can't start new thread": it never ran
        raise
    except BaseException:
        # E.g. Ctrl-C while start() waited for the new thread to come up: the
        # thread exists (or is about to), so take it down rather than lose it.
        state.request_cancel()
        raise
    return handle


class _Counter:
    def __init__(self) -> None:
        self._n = 0
        self._lock = _natives.allocate_lock()

    def __next__(self) -> int:
        with self._lock:
            self._n += 1
            return self._n


_counter = _Counter()


def current() -> Thread[Any]:
    """The handle of the calling thread (any thread is adopted on first use)."""
    state = current_state()
    handle = state.handle
    if handle is None:
        handle = Thread(state, threading._active.get(state.ident))  # type: ignore[attr-defined]
    return handle  # type: ignore[return-value]


def cancel(
    thread: Thread[Any] | threading.Thread, blocking: bool = True, timeout: float | None = None
) -> bool:
    """Cancel a :class:`Thread` or a plain ``threading.Thread``.

    A plain thread is cancelled where it blocks in threadpatch operations (or
    patched standard-library ones).  Returns whether the thread has ended.

    Raises:
        TypeError: ``thread`` is neither.
    """
    if isinstance(thread, Thread):
        return thread.cancel(blocking, timeout)
    if not isinstance(thread, threading.Thread):
        raise TypeError(
            f"cancel() needs a threadpatch.Thread or threading.Thread, got {type(thread).__name__}"
        )
    if thread.ident is None:
        raise RuntimeError(f"cannot cancel {thread!r}: it has not been started")
    if not thread.is_alive():
        return True
    _quiet_cancelled_plain_threads()
    state = state_for_thread(thread, create=True)
    assert state is not None
    handle = state.handle if isinstance(state.handle, Thread) else Thread(state, thread)
    if handle.cancel(blocking=False) or state is current_state():
        return not thread.is_alive()
    if blocking:
        _wait_plain(thread, timeout)
    return not thread.is_alive()


def _wait_plain(thread: threading.Thread, timeout: float | None) -> None:
    # A plain thread that never touches threadpatch again has no done
    # callback: poll its liveness at a coarse interval, cancellably.
    seconds = check_duration(timeout, "timeout")
    deadline = _monotonic() + seconds
    me = current_state()
    while thread.is_alive():
        remaining = deadline - _monotonic()
        if remaining <= 0:
            return
        me.park(min(remaining, 0.005))


def cancel_all(grace: float = CTRL_C_GRACE, *, exclude: ThreadState | None = None) -> list[str]:
    """Cancel every thread threadpatch knows and wait up to ``grace`` s for them.

    Returns the names of the threads still running afterwards.
    """
    me = current_state()
    return cancel_states(
        [s for s in all_states() if s is not me and s is not exclude and not s.finished], grace
    )


def cancel_states(targets: list[ThreadState], grace: float) -> list[str]:
    """Cancel ``targets`` and wait (shielded) up to ``grace`` s in all for them to end.

    Returns the names of the threads still running afterwards.
    """
    _quiet_cancelled_plain_threads()
    for state in targets:
        state.request_cancel()
    deadline = _monotonic() + grace
    lot = ParkingLot()
    with shield():
        for state in targets:
            if state.add_done_callback(lot.unpark_all):
                remaining = deadline - _monotonic()
                if remaining > 0:
                    lot.park_until(lambda s=state: s.finished, remaining)  # type: ignore[misc]
                state.remove_done_callback(lot.unpark_all)
    return [s.name or "?" for s in targets if not s.finished]


def run(main: Callable[..., T], *args: Any) -> T:
    """Run ``main(*args)`` in a managed thread and return its result.

    On Ctrl-C (``KeyboardInterrupt`` in the calling thread, normally the main
    thread) every thread threadpatch knows is cancelled, their ``finally``
    blocks get a bounded time to run, and ``KeyboardInterrupt`` is re-raised.

    Raises:
        ThreadError: ``main`` failed; ``__cause__`` is its exception.
        KeyboardInterrupt: on Ctrl-C, after the clean-up.
    """
    thread = spawn(main, *args, name="threadpatch.run")
    try:
        thread.wait()
    except KeyboardInterrupt:
        cancel_all()
        raise
    return thread.join()


def _quiet_cancelled_plain_threads() -> None:
    """A plain ``threading.Thread`` that ends by our cancellation ends quietly.

    ``threading`` prints a traceback for any exception that ends a thread
    except ``SystemExit``; a requested cancellation is not an error either.
    Installed when threadpatch cancels threads, over whatever hook is in place
    then; every other exception still reaches that hook.
    """
    previous = threading.excepthook
    if getattr(previous, "_threadpatch_quiet", False):
        return

    def excepthook(args: threading.ExceptHookArgs) -> object:
        if args.exc_type is not None and issubclass(args.exc_type, ThreadCancelled):
            return None
        return previous(args)

    excepthook._threadpatch_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = excepthook


# -- interpreter exit ------------------------------------------------------------

_exit_hook_installed = False


def _install_exit_hook() -> None:
    global _exit_hook_installed
    if _exit_hook_installed:
        return
    _exit_hook_installed = True
    try:  # noqa: SIM105
        threading._register_atexit(_at_exit)  # type: ignore[attr-defined]
    except RuntimeError:
        pass  # the interpreter is already shutting down


def _at_exit() -> None:
    """Runs in threading._shutdown, before the join of non-daemon threads.

    If the main program ended by Ctrl-C, cancel every thread we know.  If not,
    wait for our non-daemon threads as threading would, but so that a Ctrl-C
    during this wait cancels them instead of leaving the process hanging.
    """
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if isinstance(last, KeyboardInterrupt):
        cancel_all()
        return
    me = current_state()
    try:
        for state in all_states():
            handle = state.handle
            if state is me or not isinstance(handle, Thread) or not handle._spawned:
                continue
            if not handle.daemon:
                handle.wait()
    except KeyboardInterrupt:
        cancel_all()
