"""Bridges between event loops and threads: ``to_thread`` and ``from_thread``.

``await threadpatch.to_thread(func, *args, **kwargs)`` runs ``func`` in a
worker thread for an asyncio or trio task (the running library is found with
sniffio).  Unlike ``asyncio.to_thread`` and ``trio.to_thread.run_sync``, a
cancelled task does not abandon its thread: the call in the thread is
cancelled at its blocking point (its job's cancel scope; the worker thread
goes on to its next job), the await returns only once the call has stopped
(its ``finally`` blocks ran), and then raises the loop's own cancellation
(``asyncio.CancelledError``, ``trio.Cancelled``, or trio's
``KeyboardInterrupt``).  The task's deadline (trio's effective deadline, the
``asyncio.timeout()`` scopes the task is in) is the thread's deadline too.

``threadpatch.from_thread(async_fn, *args, **kwargs)`` is the way back: from
a worker of ``to_thread`` it runs the coroutine on the loop that started the
thread; from any other thread on the hub's curio kernel (the talk's
``AWAIT``).  The thread waits cancellably: cancelling it (or its deadline)
cancels the coroutine, and a coroutine cancelled by its loop cancels the
caller (a worker's job; any other thread as a whole).

How it works::

    event loop thread                       worker thread (a pool of them)
    -----------------                       ------------------------------
    to_thread: job --submit--> idle worker  unparked; runs func in a copy of
      await future <--call_soon_threadsafe-- the task's context, in the job's
                     (trio: run_sync_soon)   scope (ignore_after its deadline)
    task cancelled -> future.cancel():
      cancel(job) ---job.scope.cancel()----> blocking call raises ScopeCancelled,
      (future stays pending) <--notify-----  finally blocks run; the scope
      future cancelled: CancelledError       swallows it; job done; next job

On asyncio the job's future (:class:`_ThreadFuture`) does the waiting: a
task awaiting a future calls its ``cancel()`` when the task is cancelled and
resumes only when the future is done; this future is done once the thread
has stopped.  On trio the task waits in ``wait_task_rescheduled``, whose abort
function cancels the job and lets the worker reschedule the task.

The worker threads are :mod:`threadpatch._workers`' bounded pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import sys
import warnings
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import sniffio

from . import _asyncio, _core, _workers
from ._core import _natives
from ._workers import DONE, Job, shutdown_idle_workers

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = [
    "from_thread",
    "run_in_executor",
    "shutdown_default_executor",
    "shutdown_idle_workers",
    "to_thread",
    "to_thread_asyncio",
    "to_thread_until",
]

P = ParamSpec("P")
T = TypeVar("T")

_monotonic = _natives.monotonic
_INF = math.inf

# -- to_thread -------------------------------------------------------------------


async def to_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func(*args, **kwargs)`` in a worker thread; cancelling the task cancels it.

    For asyncio and trio tasks (found with sniffio).  The call runs in a copy
    of the task's context variables, under the task's deadline: trio's
    effective deadline, or the ``asyncio.timeout()`` scopes of the task (see
    :mod:`threadpatch._asyncio` for which ones can be seen).

    Returns:
        What ``func`` returned.

    Raises:
        Exception: whatever ``func`` raised, unchanged.
        RuntimeError: not called from an asyncio or trio task.

    Cancellation:
        When the task is cancelled (or its deadline expires) the thread is
        cancelled at its blocking point (a threadpatch or patched call); the
        await returns once the thread has stopped, and raises the loop's
        cancellation (``asyncio.CancelledError``, ``trio.Cancelled``).  What
        the call returned or raised meanwhile is dropped.
    """
    return await to_thread_until(_INF, func, *args, **kwargs)


async def to_thread_until(
    deadline: float, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """:func:`to_thread` with a deadline of its own (``time.monotonic()``, absolute).

    The thread runs under the earlier of ``deadline`` and the task's.

    Raises:
        ThreadTimeout: ``deadline`` passed while the call was blocked (when
            the task's deadline is the earlier, the loop's cancellation is
            raised instead).
        TypeError, ValueError: ``deadline`` is not a number, or is NaN.
    """
    if not isinstance(deadline, int | float) or isinstance(deadline, bool):
        raise TypeError(f"deadline must be a number (time.monotonic()), not {deadline!r}")
    if math.isnan(deadline):
        raise ValueError("deadline must be a number (time.monotonic()), not NaN")
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError(
            "threadpatch.to_thread() must be awaited in an asyncio or trio task"
        ) from None
    if library == "trio":
        return await _trio_to_thread(deadline, func, args, kwargs)  # type: ignore[return-value]
    if library == "asyncio":
        result: T = await _asyncio_start(deadline, func, args, kwargs)
        return result
    raise RuntimeError(f"threadpatch.to_thread() supports asyncio and trio, not {library}")


def _check_callable(func: object) -> None:
    if not callable(func):
        raise TypeError(f"to_thread() needs a callable, got {type(func).__name__}: {func!r}")


def _outcome(job: Job) -> object:
    """The job's result, or raise its exception (or the timeout of the deadline it hit)."""
    error, job.error = job.error, None
    if error is not None:
        try:
            raise error
        finally:
            del error
    if job.expired:
        raise _core.ThreadTimeout("to_thread(): the thread's deadline passed")
    value, job.value = job.value, None
    return value


# -- asyncio ---------------------------------------------------------------------


class _ThreadFuture(asyncio.Future[Any]):
    """The future of one job: ``cancel()`` stops its thread; it ends once the thread has.

    A task awaiting it that is cancelled (``task.cancel()``, an
    ``asyncio.timeout``) cancels it; it stays pending until the thread has
    stopped, and only then is the task resumed, with ``CancelledError``.
    ``cancel()`` returns True at once, as for any pending future, but
    ``cancelled()`` becomes True only when the thread has stopped.
    """

    _job: Job | None
    _when: float
    _explicit: bool
    _cancel_requested: bool
    _cancel_message: Any

    def cancel(self, msg: Any = None) -> bool:
        if self.done():
            return False
        job = self._job
        if job is None or _workers.cancel(job) or job.status == DONE:
            self._job = None  # never started, or has stopped: cancelled now
            return super().cancel(msg)
        self._cancel_requested = True
        self._cancel_message = msg
        return True

    def _finish(self) -> None:
        """In the loop, once the worker is done with the job."""
        if self.done() or self._job is None:
            return
        if self._cancel_requested:
            self._job = None
            super().cancel(self._cancel_message)
        elif self._job.expired and not self._explicit and self._when != _INF:
            # The thread stopped at the task's deadline: asyncio.timeout fires
            # at that same loop time and cancels the task, whichever runs first.
            self.get_loop().call_at(self._when, self._settle)
        else:
            self._settle()

    def _settle(self) -> None:
        job = self._job
        if self.done() or job is None:
            return
        self._job = None
        try:
            value = _outcome(job)
        except BaseException as exc:
            self.set_exception(exc)
        else:
            self.set_result(value)


def _asyncio_start(
    deadline: float,
    func: Callable[..., object],
    args: tuple[object, ...],
    kwargs: dict[str, object],
    loop: asyncio.AbstractEventLoop | None = None,
    copy_context: bool = True,
) -> _ThreadFuture:
    """Submit the job for the loop's current task (the running loop's by default); its future."""
    _check_callable(func)
    if loop is None:
        loop = asyncio.get_running_loop()
    when = _asyncio.task_deadline(loop, asyncio.current_task(loop))
    task_deadline = _INF if when == _INF else _monotonic() + (when - loop.time())
    job = Job(func, args, kwargs, min(deadline, task_deadline), "asyncio", loop, copy_context)
    future = _ThreadFuture(loop=loop)
    future._job = job
    future._when = when
    future._explicit = deadline < task_deadline
    future._cancel_requested = False
    future._cancel_message = None
    finish = future._finish
    call_soon = loop.call_soon_threadsafe

    def notify() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            call_soon(finish)

    job.notify = notify
    _workers.submit(job)
    return future


async def to_thread_asyncio(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """:func:`to_thread` for asyncio only: ``asyncio.to_thread`` under the ``asyncio`` patch set."""
    result: T = await _asyncio_start(_INF, func, args, kwargs)
    return result


_original_run_in_executor = asyncio.base_events.BaseEventLoop.run_in_executor


def run_in_executor(
    self: asyncio.base_events.BaseEventLoop,
    executor: Any,
    func: Callable[..., T],
    *args: object,
) -> asyncio.Future[T]:
    """``loop.run_in_executor``; with the default executor, a cancellable thread of the pool.

    The work starts at once, as with the standard method; cancelling the
    future (or a task awaiting it) cancels the thread, and the future ends
    cancelled once it has stopped.  An executor passed in (or set with
    ``set_default_executor``, or made by the standard method before
    patching) is used as before.
    """
    if executor is not None or getattr(self, "_default_executor", None) is not None:
        return _original_run_in_executor(self, executor, func, *args)
    if self.is_closed():
        raise RuntimeError("Event loop is closed")
    future = _asyncio_start(_INF, func, args, {}, self, copy_context=False)
    _asyncio.track_call(self, future)
    return future


_original_shutdown_default_executor = asyncio.base_events.BaseEventLoop.shutdown_default_executor


async def shutdown_default_executor(
    self: asyncio.base_events.BaseEventLoop, *args: Any, **kwargs: Any
) -> None:
    """``loop.shutdown_default_executor``; first wait for the calls :func:`run_in_executor` ran.

    As the standard method waits for the default executor's threads (the end
    of ``asyncio.run()``), this waits for the ``run_in_executor(None, ...)``
    calls still running in threadpatch's workers, up to the same ``timeout``
    (3.12+); during a Ctrl-C it cancels them first.
    """
    calls = _asyncio.pending_calls(self)
    if calls:
        if isinstance(sys.exc_info()[1], KeyboardInterrupt):
            for future in calls:
                future.cancel()
        timeout = args[0] if args else kwargs.get("timeout")
        _, late = await asyncio.wait(calls, timeout=timeout)
        if late:
            warnings.warn(
                f"{len(late)} run_in_executor() call(s) still running after {timeout} s",
                RuntimeWarning,
                stacklevel=2,
            )
    await _original_shutdown_default_executor(self, *args, **kwargs)


# -- trio ------------------------------------------------------------------------


async def _trio_to_thread(
    deadline: float,
    func: Callable[..., object],
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> object:
    import trio

    _check_callable(func)
    await trio.lowlevel.checkpoint_if_cancelled()
    token = trio.lowlevel.current_trio_token()
    task = trio.lowlevel.current_task()
    trio_deadline = trio.current_effective_deadline()
    if trio_deadline == _INF:
        task_deadline = _INF
    else:
        task_deadline = _monotonic() + (trio_deadline - trio.current_time())
    explicit = deadline < task_deadline
    job = Job(func, args, kwargs, min(deadline, task_deadline), "trio", token)
    run_sync_soon = token.run_sync_soon
    reschedule = trio.lowlevel.reschedule

    def notify() -> None:
        with contextlib.suppress(trio.RunFinishedError):  # the run is over: nobody waits
            run_sync_soon(reschedule, task)

    job.notify = notify
    raise_cancel: list[Callable[[], object]] = []

    def abort(how: Callable[[], object]) -> trio.lowlevel.Abort:
        if _workers.cancel(job):
            return trio.lowlevel.Abort.SUCCEEDED  # it never started
        raise_cancel.append(how)
        return trio.lowlevel.Abort.FAILED  # the worker reschedules us once stopped

    await _trio_submit_and_wait(job, abort)
    if raise_cancel:
        raise_cancel[0]()  # the loop's own cancellation (or its KeyboardInterrupt)
    if job.expired and not explicit:
        # The thread stopped at the task's deadline: trio's scope fires now
        # (if the deadline was moved later meanwhile: ThreadTimeout).
        await trio.sleep_until(trio_deadline)
        await trio.lowlevel.checkpoint()
    return _outcome(job)


_trio_submit_and_wait_fn: Any = None


async def _trio_submit_and_wait(job: Job, abort: Callable[..., Any]) -> None:
    """Submit ``job`` and wait to be rescheduled, with Ctrl-C held off in between.

    trio raises ``KeyboardInterrupt`` at any bytecode of an unprotected frame:
    between ``submit`` and ``wait_task_rescheduled`` it would end the task while
    its job runs, and the worker would later reschedule a task that has exited
    (``TrioInternalError``).  Protected, the interrupt arrives through ``abort``
    (trio's ``raise_cancel``) once the task waits, and the job is cancelled.
    """
    global _trio_submit_and_wait_fn
    if _trio_submit_and_wait_fn is None:
        import trio

        @trio.lowlevel.enable_ki_protection
        async def submit_and_wait(job: Job, abort: Callable[..., Any]) -> None:
            _workers.submit(job)
            await trio.lowlevel.wait_task_rescheduled(abort)

        _trio_submit_and_wait_fn = submit_and_wait
    await _trio_submit_and_wait_fn(job, abort)


# -- from_thread -----------------------------------------------------------------


class _Call:
    """A coroutine that a thread runs on a loop, and the thread waiting for it."""

    __slots__ = ("cancel_requested", "cancelled", "done", "error", "handle", "state", "value")

    def __init__(self, state: _core.ThreadState) -> None:
        self.state = state
        self.done = False
        self.cancelled = False
        self.cancel_requested = False
        self.value: object = None
        self.error: BaseException | None = None
        self.handle: Any = None  # the asyncio task, trio cancel scope, curio handle

    def finish(self) -> None:
        self.done = True
        self.state.unpark()


def from_thread(async_fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``await async_fn(*args, **kwargs)`` from a thread and return its result.

    In a worker of :func:`to_thread` the coroutine runs on the event loop
    (asyncio or trio) whose task started the thread; in any other thread it
    runs on the hub's curio kernel (a curio coroutine, which must not block
    the kernel).

    Returns:
        What the coroutine returned.

    Raises:
        Exception: whatever the coroutine raised, unchanged.
        ThreadCancelled: the loop cancelled the coroutine; the caller is then
            cancelled too (in a worker: its ``to_thread`` call, so every
            later blocking call in it raises; elsewhere: the thread).
        RuntimeError: called in an event loop's own thread or in the hub.

    Cancellation:
        If the thread is cancelled (or its deadline expires) while it waits,
        the coroutine is cancelled, and the exception is raised once the
        coroutine has ended.
    """
    if _core.is_hub_thread():
        raise RuntimeError("from_thread() blocks: it cannot be called in the threadpatch hub")
    job = _workers.current_job()
    call = _Call(_core.current_state())
    fn = functools.partial(async_fn, *args, **kwargs)
    job_scope = None if job is None else job.scope
    if job is None:
        _check_not_in_loop()
        start, cancel = _curio_start, _curio_cancel
        target: Any = None
    elif job.kind == "asyncio":
        start, cancel = _asyncio_call_start, _asyncio_call_cancel
        target = job.loop
    else:
        start, cancel = _trio_call_start, _trio_call_cancel
        target = job.loop
    del job
    start(call, target, fn)
    reason = ("from_thread", async_fn)
    try:
        _core.wait_until(lambda: call.done, _INF, reason, call.state)
    except BaseException:
        with _core.shield():
            cancel(call, target)
            _core.wait_until(lambda: call.done, _INF, reason, call.state)
        raise
    if call.cancelled and not call.cancel_requested:
        # The loop cancelled the coroutine: cancel its caller (a worker's job,
        # so the worker goes on; any other thread as a whole).
        if job_scope is not None:
            job_scope.cancel()
        else:
            call.state.request_cancel()
        raise _core.ThreadCancelled("the coroutine of from_thread() was cancelled by its loop")
    error, call.error = call.error, None
    if error is not None:
        try:
            raise error
        finally:
            del error
    return call.value  # type: ignore[return-value]


def _check_not_in_loop() -> None:
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return
    raise RuntimeError(
        f"from_thread() blocks: call it from a worker thread, not in the {library} event loop"
    )


# asyncio: a task of the loop, started and cancelled from the thread.


def _asyncio_call_start(call: _Call, target: Any, fn: Callable[[], Awaitable[object]]) -> None:
    target.call_soon_threadsafe(_asyncio_call_begin, call, target, fn)


def _asyncio_call_begin(call: _Call, loop: asyncio.AbstractEventLoop, fn: Any) -> None:
    if call.cancel_requested:
        call.cancelled = True
        call.finish()
        return
    call.handle = loop.create_task(_asyncio_call_run(call, fn))


async def _asyncio_call_run(call: _Call, fn: Callable[[], Awaitable[object]]) -> None:
    try:
        call.value = await fn()
    except asyncio.CancelledError:
        call.cancelled = True
    except BaseException as exc:  # the calling thread raises it, not the loop
        call.error = exc
    finally:
        call.handle = None
        call.finish()


def _asyncio_call_cancel(call: _Call, target: Any) -> None:
    try:
        target.call_soon_threadsafe(_asyncio_call_stop, call)
    except RuntimeError:  # the loop is closed: the coroutine cannot run any more
        call.cancelled = call.cancel_requested = True
        call.finish()


def _asyncio_call_stop(call: _Call) -> None:
    call.cancel_requested = True
    if call.handle is not None:
        call.handle.cancel()


# trio: a system task in a cancel scope of its own.


def _trio_call_start(call: _Call, target: Any, fn: Callable[[], Awaitable[object]]) -> None:
    import trio

    target.run_sync_soon(trio.lowlevel.spawn_system_task, _trio_call_run, call, fn)


async def _trio_call_run(call: _Call, fn: Callable[[], Awaitable[object]]) -> None:
    import trio

    with trio.CancelScope() as scope:
        call.handle = scope
        if call.cancel_requested:
            scope.cancel()
        try:
            call.value = await fn()
        except trio.Cancelled:
            call.cancelled = True
            raise  # to its scope (ours, or the system nursery's at the end of the run)
        except BaseException as exc:  # the calling thread raises it, not trio
            call.error = exc
        finally:
            call.finish()


def _trio_call_cancel(call: _Call, target: Any) -> None:
    import trio

    try:
        target.run_sync_soon(_trio_call_stop, call)
    except trio.RunFinishedError:
        call.cancelled = call.cancel_requested = True
        call.finish()


def _trio_call_stop(call: _Call) -> None:
    call.cancel_requested = True
    if call.handle is not None:
        call.handle.cancel()


# curio: a task of the hub's kernel.


def _curio_start(call: _Call, target: Any, fn: Callable[[], Awaitable[object]]) -> None:
    coro = fn()
    if not inspect.iscoroutine(coro):
        raise TypeError(
            f"from_thread() needs a coroutine function; {fn.func!r} returned "  # type: ignore[attr-defined]
            f"{type(coro).__name__}, not a coroutine"
        )

    def on_done(value: object, error: BaseException | None, cancelled: bool) -> None:
        call.value, call.error, call.cancelled = value, error, cancelled
        call.finish()

    call.handle = _core.get_hub().run_coroutine(coro, on_done)


def _curio_cancel(call: _Call, target: Any) -> None:
    call.cancel_requested = True
    _core.get_hub().cancel_coroutine(call.handle)
