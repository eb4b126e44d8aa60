"""The hub: a curio kernel in a lazily started daemon thread that fires deadline timers.

This is the only module of threadpatch that imports curio.  The hub does one
thing a blocked thread cannot do for itself: notice that a deadline passed.

* :meth:`Hub.call_at` puts a callback on a timer heap; the hub thread runs
  it when the deadline comes.  ``timeout_after``/``ignore_after`` scopes use
  it: the callback marks the scope expired and wakes the thread that owns it.
* Time comes from one function, :data:`clock` (``time.monotonic``): the
  deadline scopes read it too.  A test may install a virtual clock instead
  (:func:`set_clock`, used by :class:`threadpatch.testing.MockClock`); then
  timers fire only when that clock is moved on: by a test, which then calls
  :meth:`Hub.sync` to have the hub look, or by the clock's autojump.
* If the hub thread dies, :attr:`Hub.failure` is set and the failure
  listeners wake every blocked thread, which then raises :class:`HubError`
  instead of hanging.
* :meth:`Hub.run_coroutine` runs a curio coroutine as a task of the kernel
  (the talk's ``AWAIT``: ``threadpatch.from_thread`` where no event loop
  started the thread); :meth:`Hub.cancel_coroutine` cancels it.  Both are
  requests the kernel's main task serves when poked: the task reports its
  outcome through a callback, in the hub thread.

How it works::

    thread A                      hub thread (curio kernel)
    --------                      -------------------------
    call_at(t, cb) --heap push--> _main task sleeps until the earliest
                   --poke------>  deadline or until poked (wake socket);
                                  fires due callbacks: cb() marks A and
    park() <------unpark---------  unparks it.

Everything else goes thread to thread and never comes here: an uncontended
lock, a ready socket, a wake-up from another thread, a wait with a plain
timeout (``Event.wait(5)``), a sleep (which only a virtual clock routes
through a timer here).
"""

from __future__ import annotations

import heapq
import itertools
import os
from typing import TYPE_CHECKING, Any

from . import _natives
from ._exceptions import HubError

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = [
    "CoroutineHandle",
    "Hub",
    "TimerHandle",
    "clock",
    "get_hub",
    "is_hub_thread",
    "set_clock",
]

#: The clock of hub deadlines, in seconds: the timer heap and the deadline
#: scopes read the time from this one function.  ``time.monotonic`` itself
#: (callers look it up as ``_hub.clock`` and call it: no extra layer), or the
#: virtual clock a test installed with :func:`set_clock`.
clock: Callable[[], float] = _natives.monotonic
#: With a virtual clock: how long (real seconds) the hub waits before it looks
#: at the heap again, given the earliest pending deadline (None: none); None
#: means until poked.  It may move the virtual clock on (an autojump).
_idle: Callable[[float | None], float | None] | None = None


def set_clock(
    now: Callable[[], float] | None, idle: Callable[[float | None], float | None] | None = None
) -> None:
    """Make ``now`` the clock of hub deadlines; None restores ``time.monotonic``.

    With a virtual clock the hub does not wait for deadlines in real time:
    it fires due timers when poked (:meth:`Hub.sync`), or after ``idle``
    (see :data:`_idle`) tells it to look again.  For tests only
    (:class:`threadpatch.testing.MockClock`): deadlines already pending keep
    their values on the new clock.
    """
    global clock, _idle
    clock = now if now is not None else _natives.monotonic
    _idle = idle if now is not None else None
    hub = _hub
    if hub._started and hub.failure is None:
        hub._poke()  # look at the heap on the new clock


class TimerHandle:
    """A pending hub timer; ``Hub.cancel_timer`` stops it from firing."""

    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        # True once cancelled or fired; set only under the hub's lock (the
        # hub keeps count of the cancelled entries still in its heap).
        self.cancelled = False


class CoroutineHandle:
    """A coroutine handed to the hub's kernel by :meth:`Hub.run_coroutine`.

    ``on_done(value, error, cancelled)`` is called once, in the hub thread,
    when the coroutine has ended (or was cancelled before it started).
    """

    __slots__ = ("cancel_requested", "coro", "on_done", "task")

    def __init__(
        self,
        coro: Coroutine[Any, Any, object],
        on_done: Callable[[object, BaseException | None, bool], None],
    ) -> None:
        self.coro = coro
        self.on_done = on_done
        self.task: Any = None  # the curio task, once spawned
        self.cancel_requested = False


class Hub:
    """The curio kernel thread and the timer heap it serves."""

    def __init__(self) -> None:
        self._lock = _natives.allocate_lock()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._cancelled_timers = 0
        # Native locks of callers waiting in sync(), released once the hub has
        # fired what was due when it took them.
        self._syncs: list[Any] = []
        self._started = False
        self._ready = _natives.allocate_lock()
        self._ready.acquire()
        self.ident: int | None = None
        self.failure: HubError | None = None
        self._wake_r: Any = None
        self._wake_w: Any = None
        self._failure_listeners: list[Callable[[], None]] = []
        self._inject: BaseException | None = None
        self._closing = False
        # Coroutines to start and to cancel, served by the kernel's main task.
        self._coroutine_requests: list[tuple[bool, CoroutineHandle]] = []

    # -- life cycle ------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._started and self.failure is None

    def ensure_started(self) -> None:
        """Start the hub thread if needed; raise :class:`HubError` if it has died."""
        if self._started:
            if self.failure is not None:
                raise self.failure
            return
        with self._lock:
            if not self._started:
                self._wake_r, self._wake_w = _natives.socketpair()
                self._wake_w.setblocking(False)
                try:
                    _natives.start_new_thread(self._thread_main, ())
                except BaseException as exc:
                    # No thread can start now (the thread limit; on 3.12, an
                    # interpreter shutting down): nothing is started, and a
                    # later call tries again rather than wait for this one.
                    self._close_wake_sockets()
                    self._wake_r = self._wake_w = None
                    raise HubError(
                        f"threadpatch could not start its hub thread ({exc}), which fires "
                        "deadlines: no deadline can be set now (timeouts passed to the "
                        "calls themselves still work)"
                    ) from exc
                self._started = True
        # Wait (natively: this must work from any thread, patched or not)
        # until the kernel is up, so the first timer cannot be lost.
        self._ready.acquire()
        self._ready.release()
        if self.failure is not None:
            raise self.failure

    def add_failure_listener(self, listener: Callable[[], None]) -> None:
        self._failure_listeners.append(listener)

    def _thread_main(self) -> None:
        self.ident = _natives.get_ident()
        error: BaseException | None = None
        try:
            import curio  # the hub is the only place that imports curio

            kernel = curio.Kernel(selector=_natives.DefaultSelector())
            with kernel:
                kernel.run(self._main)
        except BaseException as exc:
            error = exc
        finally:
            self._fail(error)

    def _fail(self, error: BaseException | None) -> None:
        reason = f"{type(error).__name__}: {error}" if error is not None else "it exited"
        failure = HubError(
            f"the threadpatch hub thread died ({reason}); threadpatch cannot "
            "wait, time out or cancel any more in this process"
        )
        if error is not None:
            failure.__cause__ = error
        self.failure = failure
        if self._ready.locked():
            self._ready.release()
        self._release_syncs()  # they see the failure
        self._close_wake_sockets()
        if self is _hub and not self._closing:
            for listener in list(self._failure_listeners):
                listener()

    def _close_wake_sockets(self) -> None:
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def close(self) -> None:
        """Stop the kernel thread (used when a hub is replaced)."""
        if self._started and self.failure is None:
            self._closing = True
            self._poke()

    async def _main(self) -> None:
        import curio
        from curio.traps import _clock, _set_timeout, _unset_timeout

        wake = curio.io.Socket(self._wake_r)
        self._ready.release()
        while not self._closing:
            if self._coroutine_requests:
                await self._serve_coroutine_requests()
            delay = self._step()
            if delay is None:
                await wake.recv(4096)
            elif delay > 0:
                # A timed wait for a poke, on the kernel's timeout traps: a
                # curio timeout block would log a warning (and so make the hub
                # a threading._DummyThread) whenever a poke and the deadline
                # come together; here either simply ends the wait.
                previous = await _set_timeout(await _clock() + delay)
                try:
                    await wake.recv(4096)
                except curio.TaskTimeout:
                    pass
                finally:
                    await _unset_timeout(previous)

    async def _serve_coroutine_requests(self) -> None:
        import curio

        with self._lock:
            requests, self._coroutine_requests = self._coroutine_requests, []
        for cancel, handle in requests:
            if not cancel:
                if handle.cancel_requested:  # cancelled before it started: never run it
                    handle.coro.close()
                    handle.on_done(None, None, True)
                else:
                    try:
                        handle.task = await curio.spawn(self._run_coroutine, handle, daemon=True)
                    except Exception as exc:  # never the kernel's failure: the caller's
                        handle.on_done(None, exc, False)
            elif handle.task is not None and not handle.task.terminated:
                await handle.task.cancel(blocking=False)

    @staticmethod
    async def _run_coroutine(handle: CoroutineHandle) -> None:
        import curio

        value: object = None
        error: BaseException | None = None
        cancelled = False
        try:
            value = await handle.coro
        except curio.CancelledError:
            cancelled = True
        except BaseException as exc:  # the caller's thread raises it, not the kernel
            error = exc
        handle.coro = None  # type: ignore[assignment]  # no cycle through the frame
        handle.on_done(value, error, cancelled)

    def _step(self) -> float | None:
        """One look at the heap: fire what is due, answer sync(); real seconds to the next look.

        None means "until poked" (no timer, or a virtual clock that only
        moves when a test moves it).
        """
        with self._lock:
            syncs, self._syncs = self._syncs, []
        # Taken before the clock is read: a sync() that moved the clock first
        # finds every timer due at its new time fired when it is released.
        try:
            deadline = self._run_due_timers()
        finally:
            for done in syncs:
                done.release()
        idle = _idle
        if idle is not None:
            return idle(deadline)
        return None if deadline is None else deadline - clock()

    def _run_due_timers(self) -> float | None:
        """Fire every due timer; return the deadline of the next one (None: no timer)."""
        if self._inject is not None:
            error, self._inject = self._inject, None
            raise error
        now = clock()
        due = []
        with self._lock:
            timers = self._timers
            while timers and (timers[0][2].cancelled or timers[0][0] <= now):
                _, _, handle = heapq.heappop(timers)
                if handle.cancelled:
                    self._cancelled_timers -= 1
                else:
                    handle.cancelled = True  # fired; a late cancel_timer() is a no-op
                    due.append(handle)
            deadline = timers[0][0] if timers else None
        for handle in due:
            handle.callback()
        return deadline

    # -- services --------------------------------------------------------------

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` in the hub thread at ``deadline`` (on :data:`clock`).

        The callback must not block: it typically marks a thread and wakes it.
        """
        self.ensure_started()
        handle = TimerHandle(deadline, callback)
        with self._lock:
            timers = self._timers
            poke = not timers or deadline < timers[0][0]
            heapq.heappush(timers, (deadline, next(self._seq), handle))
        if poke:
            self._poke()
        return handle

    def cancel_timer(self, handle: TimerHandle) -> None:
        """Cancel a timer; the heap is compacted when cancelled entries dominate."""
        if handle.cancelled:  # fired or cancelled: it never becomes pending again
            return
        with self._lock:
            # Look again under the lock: the hub may have fired it meanwhile,
            # and then it is no longer in the heap to be counted.
            if handle.cancelled:
                return
            handle.cancelled = True
            self._cancelled_timers += 1
            if self._cancelled_timers > 256 and self._cancelled_timers * 2 > len(self._timers):
                self._timers = [t for t in self._timers if not t[2].cancelled]
                heapq.heapify(self._timers)
                self._cancelled_timers = 0

    def run_coroutine(
        self,
        coro: Coroutine[Any, Any, object],
        on_done: Callable[[object, BaseException | None, bool], None],
    ) -> CoroutineHandle:
        """Run the curio coroutine ``coro`` as a task of the hub's kernel.

        ``on_done(value, error, cancelled)`` is called in the hub thread when
        it has ended; it must not block.  The coroutine must not block the
        kernel either (no blocking calls: ``await curio.sleep()``, not
        ``time.sleep()``): every deadline of the process waits on this thread.

        Raises:
            HubError: the hub has died.
        """
        self.ensure_started()
        handle = CoroutineHandle(coro, on_done)
        with self._lock:
            self._coroutine_requests.append((False, handle))
        self._poke()
        return handle

    def cancel_coroutine(self, handle: CoroutineHandle) -> None:
        """Cancel a coroutine of :meth:`run_coroutine` (no-op once it has ended).

        Its ``on_done`` then reports ``cancelled`` (unless it ended otherwise
        first, or caught the cancellation and returned).
        """
        with self._lock:
            handle.cancel_requested = True
            self._coroutine_requests.append((True, handle))
        self._poke()

    def pending_timers(self) -> int:
        with self._lock:
            return len(self._timers) - self._cancelled_timers

    def sync(self, timeout: float = 10.0) -> None:
        """Return once the hub has fired every timer due now (on :data:`clock`).

        After a virtual clock moved on, the callbacks of the timers it made
        due have run (their threads are marked and woken) when this returns.
        A native wait, bounded by ``timeout``; no-op if the hub never started
        (then no timer is pending) or when called from the hub thread itself.

        Raises:
            HubError: the hub has died, or did not answer within ``timeout``.
        """
        if not self._started or self.ident == _natives.get_ident():
            return
        if self.failure is not None:
            raise self.failure
        done = _natives.allocate_lock()
        done.acquire()
        with self._lock:
            self._syncs.append(done)
        self._poke()
        if not done.acquire(True, timeout):
            raise HubError(f"the threadpatch hub did not answer within {timeout:g} s")
        if self.failure is not None:
            raise self.failure

    def _release_syncs(self) -> None:
        with self._lock:
            syncs, self._syncs = self._syncs, []
        for done in syncs:
            done.release()

    def _poke(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:
            pass  # the hub has unread wake-ups already: it will look at the heap
        except OSError:
            if self.failure is None:
                raise

    def break_for_testing(self, error: BaseException | None = None) -> None:
        """Kill the hub thread on purpose (tests of the failure path)."""
        self.ensure_started()
        self._inject = error if error is not None else RuntimeError("hub broken on purpose")
        self._poke()


_hub = Hub()


def get_hub() -> Hub:
    """The process's hub (created lazily; replaced in a forked child)."""
    return _hub


def is_hub_thread() -> bool:
    """True in the hub thread, where threadpatch's waits must run natively."""
    return _hub.ident == _natives.get_ident()


def reset_hub(*, after_fork: bool = False) -> Hub:
    """Forget the current hub and create a fresh one (after fork, or in tests).

    After a fork the old hub's thread does not exist in the child: its wake-up
    sockets are only closed.  Otherwise the old kernel thread is stopped.
    """
    global _hub
    old = _hub
    _hub = Hub()
    _hub._failure_listeners = old._failure_listeners
    if after_fork:
        old._close_wake_sockets()
    else:
        old.close()
    return _hub


def _after_fork_in_child() -> None:
    reset_hub(after_fork=True)  # a fresh hub starts lazily in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
