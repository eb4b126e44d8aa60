"""Thread handles: ``spawn``, ``current``, ``cancel``, ``run`` and Ctrl-C.

A :class:`Thread` is a handle on a real ``threading.Thread`` (so
``threading.enumerate()``, ``current_thread()`` and debuggers see it) plus the
thread's :class:`~._state.ThreadState`.  Any other thread (the main thread, a
plain ``threading.Thread``, a pool worker) is adopted the first time it uses
threadpatch and gets a handle too.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, TypeVarTuple, overload

from . import _natives
from ._exceptions import ThreadCancelled, ThreadError, ThreadTimeout
from ._registry import bind_current, current_state, register_unbound, state_for_thread
from ._scopes import check_duration
from ._state import ThreadState
from ._wait import ParkingLot, deadline_after, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Thread",
    "cancel",
    "current",
    "in_ctrl_c_cleanup",
    "quiet_cancelled_plain_threads",
    "spawn",
]

T = TypeVar("T")
P = ParamSpec("P")
Ts = TypeVarTuple("Ts")


class Thread(Generic[T]):
    """A handle on a real OS thread that can be joined and cancelled.

    Made by :func:`spawn` (or by :func:`current` for an adopted thread).
    """

    __module__ = "threadpatch"

    _state: ThreadState
    _thread: threading.Thread | None
    _result: T | None
    _lot: ParkingLot | None
    _spawned: bool
    # Class defaults: __del__ must work even on a handle whose set-up failed.
    _exception: BaseException | None = None
    _retrieved = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "threadpatch.Thread is a handle, not a thread to construct: start one with "
            "threadpatch.spawn(func, *args) (or get the calling thread's handle with "
            "threadpatch.current())"
        )

    @classmethod
    def _make(cls, state: ThreadState, thread: threading.Thread | None) -> Thread[Any]:
        self: Thread[Any] = object.__new__(cls)
        self._state = state
        self._thread = thread
        self._result = None
        self._lot = None  # made by the first wait()
        self._spawned = False
        state.handle = self
        return self

    def __del__(self) -> None:
        # Like asyncio's "exception was never retrieved": a failure nobody
        # looked at must not vanish silently (threading would have printed it).
        # Raising here hands it to sys.unraisablehook through the interpreter's
        # own machinery, whatever hook is installed (the default hook accepts
        # nothing but the interpreter's own UnraisableHookArgs, and prints
        # neither causes nor notes: the failure's traceback and repr go on
        # the ThreadError itself).
        exc = self._exception
        if exc is not None and not self._retrieved and not isinstance(exc, ThreadCancelled):
            self._retrieved = True
            report = ThreadError(
                f"exception in threadpatch thread {self.name!r} was never retrieved "
                f"(join() it, or read .result or .exception): {exc!r}"
            )
            raise report.with_traceback(exc.__traceback__) from exc

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
        if in_ctrl_c_cleanup():
            state.request_cancel()
        lot = self._lot
        if lot is None:
            # Two first waiters may each make one: each wakes by its own lot.
            lot = self._lot = ParkingLot()
        state.add_done_callback(lot.unpark_all)
        try:
            return lot.park_until(lambda: state.finished, deadline_after(seconds), ("join", self))
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

    def _bootstrap(
        self, func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        state = bind_current(self._state)
        try:
            self._result = func(*args, **kwargs)
        except BaseException as exc:
            self._exception = exc
        finally:
            del func, args, kwargs
            state.finish()


def in_ctrl_c_cleanup() -> bool:
    """True in the main thread while it handles a KeyboardInterrupt.

    That is, in the ``finally``, ``except`` or ``__exit__`` a Ctrl-C runs
    through on its way out (``with ThreadPoolExecutor():``, ``finally:
    t.join()``).  A wait there for another thread cancels that thread first:
    waiting for it to finish its blocking call is how Ctrl-C hangs.
    """
    return isinstance(sys.exc_info()[1], KeyboardInterrupt) and (
        threading.current_thread() is threading.main_thread()
    )


@overload
def spawn(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Thread[T]: ...
@overload
def spawn(
    func: Callable[[*Ts], T], /, *args: *Ts, daemon: bool = False, name: object = None
) -> Thread[T]: ...
def spawn(  # type: ignore[misc]  # mypy: a *Ts overload never matches an implementation
    func: Callable[..., T],
    /,
    *args: Any,
    daemon: Any = False,
    name: Any = None,
    **kwargs: Any,
) -> Thread[T]:
    """Start ``func(*args, **kwargs)`` in a new real OS thread and return its handle.

    Args:
        func: the callable to run (positional only).
        *args: its positional arguments.
        daemon: as for ``threading.Thread``: a daemon thread does not keep the
            interpreter alive (keyword only).
        name: thread name (keyword only; default ``threadpatch-N``; made a
            ``str`` as ``threading.Thread`` does).
        **kwargs: its keyword arguments.

    ``daemon=`` and ``name=`` are spawn's own: they never reach ``func``.  To
    pass a keyword of that name to ``func``, bind it first
    (``spawn(functools.partial(func, name="x"))``).  For type checkers, the
    arguments are checked against ``func``'s signature (``ParamSpec``); with
    ``daemon=`` or ``name=``, the positional ones are.

    Raises:
        TypeError: ``func`` is not callable.
    """
    if not callable(func):
        raise TypeError(f"spawn() needs a callable, got {type(func).__name__}: {func!r}")
    name = f"threadpatch-{next(_counter)}" if name is None else str(name)
    state = ThreadState(name)
    handle: Thread[T] = Thread._make(state, None)
    thread = threading.Thread(
        target=handle._bootstrap, args=(func, args, kwargs), name=name, daemon=daemon
    )
    handle._thread = thread
    handle._spawned = True
    register_unbound(state)
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
        handle = Thread._make(state, threading._active.get(state.ident))  # type: ignore[attr-defined]
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
    quiet_cancelled_plain_threads()
    state = state_for_thread(thread, create=True)
    assert state is not None
    handle = state.handle if isinstance(state.handle, Thread) else Thread._make(state, thread)
    if handle.cancel(blocking=False) or state is current_state():
        return not thread.is_alive()
    if blocking:
        _wait_plain(thread, timeout)
    return not thread.is_alive()


def _wait_plain(thread: threading.Thread, timeout: float | None) -> None:
    # A plain thread that never touches threadpatch again has no done
    # callback: poll its liveness at a coarse interval, cancellably.
    seconds = check_duration(timeout, "timeout")
    wait_until(
        lambda: not thread.is_alive(), deadline_after(seconds), ("join", thread), every=0.005
    )


def quiet_cancelled_plain_threads() -> None:
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
