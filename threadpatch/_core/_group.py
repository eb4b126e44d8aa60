"""Thread groups: structured concurrency for real threads.

``with ThreadGroup(wait=all) as g: g.spawn(...)``: leaving the block waits for
the group's threads according to the ``wait`` policy and never leaves one
running.  A member that fails (raises anything but :class:`ThreadCancelled`)
cancels the others at once, and the block raises an ``ExceptionGroup`` of the
failures.  Completion is recorded by the finishing thread itself (a done
callback), so the policy acts as soon as a member ends, not only at exit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, TypeVarTuple, overload

from . import _natives
from ._exceptions import ThreadCancelled, ThreadTimeout
from ._scopes import check_duration, shield
from ._thread import Thread, spawn
from ._wait import ParkingLot, deadline_after

P = ParamSpec("P")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

__all__ = ["ThreadGroup"]

_monotonic = _natives.monotonic
_POLICIES = {"all": all, "any": any, "object": object, "none": None}


class ThreadGroup:
    """A set of threads whose lifetime is bounded by a ``with`` block.

    Args:
        threads: existing :class:`Thread` handles to adopt into the group.
        wait: the exit policy: ``all`` waits for every thread; ``any``: the
            first to finish wins and the rest are cancelled; ``object``: the
            first to return a non-None value wins; ``None``: cancel every
            thread on exit.
    """

    __module__ = "threadpatch"

    def __init__(
        self, threads: tuple[Thread[Any], ...] | list[Thread[Any]] = (), *, wait: object = all
    ) -> None:
        if wait not in (all, any, object, None):
            raise ValueError(f"wait must be all, any, object or None, got {wait!r}")
        self._policy = wait
        self._lock = _natives.allocate_lock()
        self._lot = ParkingLot()
        self._members: list[Thread[Any]] = []
        self._done: list[Thread[Any]] = []  # in completion order
        self._handed_out = 0  # how many of _done next_done() returned
        self._judged = 0  # how many of _done the policy looked at
        self._failures: list[Thread[Any]] = []
        self._completed: Thread[Any] | None = None
        self._closed = False
        for thread in threads:
            self.add(thread)

    def __repr__(self) -> str:
        name = {all: "all", any: "any", object: "object", None: "None"}[self._policy]
        return f"<threadpatch.ThreadGroup wait={name} members={len(self._members)}>"

    # -- members ---------------------------------------------------------------

    @overload
    def spawn(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Thread[T]: ...
    @overload
    def spawn(
        self, func: Callable[[*Ts], T], /, *args: *Ts, daemon: bool = False, name: object = None
    ) -> Thread[T]: ...
    def spawn(  # type: ignore[misc]  # mypy: a *Ts overload never matches an implementation
        self,
        func: Callable[..., Any],
        /,
        *args: Any,
        daemon: Any = False,
        name: Any = None,
        **kwargs: Any,
    ) -> Thread[Any]:
        """Start ``func(*args, **kwargs)`` in a new thread that belongs to the group.

        ``daemon=`` and ``name=`` are the thread's (keyword only), as for
        :func:`threadpatch.spawn`.
        """
        if self._closed:
            raise RuntimeError("cannot spawn into a ThreadGroup that has exited")
        thread = spawn(func, *args, daemon=daemon, name=name, **kwargs)
        self.add(thread)
        return thread

    def add(self, thread: Thread[Any]) -> None:
        """Make an existing thread a member of the group."""
        if not isinstance(thread, Thread):
            raise TypeError(f"ThreadGroup.add() needs a threadpatch.Thread, got {thread!r}")
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot add to a ThreadGroup that has exited")
            self._members.append(thread)
        if not thread._state.add_done_callback(lambda: self._on_done(thread)):
            self._on_done(thread)

    def _on_done(self, thread: Thread[Any]) -> None:
        # Runs in the finishing thread: judge it now, so that a failure or a
        # winner cancels the rest at once.
        with self._lock:
            self._done.append(thread)
            losers = self._judge_locked()
        for other in losers:
            other.cancel(blocking=False)
        self._lot.unpark_all()

    def _judge_locked(self) -> list[Thread[Any]]:
        """Apply the policy to newly finished threads; return the threads to cancel."""
        cancel_rest = False
        while self._judged < len(self._done):
            thread = self._done[self._judged]
            self._judged += 1
            exc = thread._exception
            if exc is not None and not isinstance(exc, ThreadCancelled):
                thread._retrieved = True  # the group reports it
                self._failures.append(thread)
                cancel_rest = True
            elif (
                self._completed is None
                and exc is None
                and (self._policy is any or (self._policy is object and thread._result is not None))
            ):
                self._completed = thread
                cancel_rest = True
        if not cancel_rest:
            return []
        return [t for t in self._members if not t.done()]

    def cancel_remaining(self) -> None:
        """Cancel every member still running and wait for them to end."""
        with self._lock:
            running = [t for t in self._members if not t.done()]
        for thread in running:
            thread.cancel(blocking=False)
        with shield():
            for thread in running:
                thread.wait()

    # -- consuming results -----------------------------------------------------

    def next_done(self, timeout: float | None = None) -> Thread[Any] | None:
        """The next member to finish (in completion order); None when none is left.

        Raises:
            ThreadTimeout: ``timeout`` passed first.
        """
        seconds = check_duration(timeout, "timeout")

        def ready() -> bool:
            return self._handed_out < len(self._done) or len(self._done) == len(self._members)

        if not self._lot.park_until(ready, deadline_after(seconds), ("group", self)):
            raise ThreadTimeout(f"no thread of the group finished within {timeout} s")
        with self._lock:
            if self._handed_out == len(self._done):
                return None
            thread = self._done[self._handed_out]
            self._handed_out += 1
            return thread

    def next_result(self, timeout: float | None = None) -> Any:
        """The result of the next member to finish.

        Raises:
            ThreadError: that member failed or was cancelled.
            RuntimeError: no member is left.
            ThreadTimeout: ``timeout`` passed first.
        """
        thread = self.next_done(timeout)
        if thread is None:
            raise RuntimeError("no threads left in the group")
        return thread.result

    def __iter__(self) -> Iterator[Thread[Any]]:
        """Yield members as they finish."""
        while (thread := self.next_done()) is not None:
            yield thread

    @property
    def completed(self) -> Thread[Any] | None:
        """The member that satisfied ``wait=any|object`` (None otherwise)."""
        return self._completed

    @property
    def result(self) -> Any:
        """The result of :attr:`completed`.

        Raises:
            RuntimeError: the policy is not ``any``/``object``, or no member won.
        """
        if self._policy not in (any, object):
            raise RuntimeError("ThreadGroup.result needs wait=any or wait=object")
        if self._completed is None:
            raise RuntimeError("no thread of the group completed")
        return self._completed.result

    @property
    def results(self) -> list[Any]:
        """Return values of all members in spawn order.

        Raises:
            ThreadError: a member did not return normally.
            RuntimeError: a member is still running.
        """
        return [thread.result for thread in self._members]

    @property
    def exceptions(self) -> list[BaseException | None]:
        """Per member in spawn order: the exception it ended with, or None."""
        return [thread.exception for thread in self._members]

    @property
    def threads(self) -> list[Thread[Any]]:
        return list(self._members)

    # -- the block -------------------------------------------------------------

    def __enter__(self) -> ThreadGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        try:
            if exc is not None or self._policy is None:
                self.cancel_remaining()
            else:
                self._wait_for_policy()
        except BaseException:
            # Cancelled (or timed out) while waiting: take everybody down.
            self.cancel_remaining()
            raise
        finally:
            with self._lock:
                self._closed = True
        if exc is None and self._failures:
            errors = [t._exception for t in self._failures if t._exception is not None]
            raise BaseExceptionGroup(f"{len(errors)} thread(s) of the group failed", errors)
        return False

    def _wait_for_policy(self) -> None:
        def settled() -> bool:
            return (
                len(self._done) == len(self._members)
                or bool(self._failures)
                or self._completed is not None
            )

        self._lot.park_until(settled, reason=("group", self))
        self.cancel_remaining()
