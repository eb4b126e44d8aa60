"""concurrent.futures on the core: the pool's worker loop, and work that can be cancelled.

The worker loop (:func:`worker`).  ``threadpatch.cancel(worker)`` (or Ctrl-C
clean-up) on a pool worker must stop the worker without wedging the pool.
The standard worker loop cannot survive it: cancellation is sticky, so after
the cancelled job the worker counts itself idle (``_idle_semaphore.release()``),
then dies in its next ``work_queue.get()`` and logs "Exception in worker".
The executor still believes an idle worker exists, so the next ``submit()``
starts no thread and its job never runs; a job already queued would be taken
by the dying worker and fail at its first blocking call.

:func:`worker` keeps the standard protocol (the arguments, the initializer and
``_initializer_failed()``, the idle count, the ``None`` wake-up that ends
workers at shutdown, the module's ``_shutdown`` flag) and adds one rule: a
cancelled worker takes no new job and leaves the pool quietly, removing itself
from the executor's threads and taking back the idle count it gave, and
starts its replacement if jobs are waiting (else the next ``submit()`` does).
The job it was running when the cancel came ends cancelled:
``future.cancelled()`` is True and ``result()`` raises ``CancelledError``
(the caller is not cancelled, so it must not get a ``ThreadCancelled``); done
callbacks and ``wait()``/``as_completed()`` see it once.  Patched in by the
``thread_pool`` set for the workers pools start after patching (the executor
looks ``_worker`` up when it starts a thread).

Cancellable work (:class:`CancellableFuture`, :func:`submit`,
:func:`shutdown`).  A work item whose future is a :class:`CancellableFuture`
runs in its own :class:`~threadpatch.CancelScope`, so cancelling the *work*
never cancels the worker::

    caller                              worker thread
    fut = submit(fn)  --> queue -->     scope = CancelScope(); fut.scope = scope
                                        fut: PENDING -> RUNNING
    fut.cancel():                       with scope: fn()   (blocked in recv)
      RUNNING: mark, scope.cancel() ------> recv raises ScopeCancelled
      returns True                          fn's finally / with clean-up runs
                                        scope exits (swallows its own)
    fut.result() raises CancelledError <-- fut: RUNNING -> CANCELLED_AND_NOTIFIED
                                        next item (the worker is unharmed)

The future ends cancelled only once the call has stopped, whatever the call
did after the cancel (returned, raised): ``cancel()`` returned True, so
``cancelled()`` becomes True.  A call that has already returned (its outcome
is being recorded) can no longer be cancelled: ``cancel()`` returns False,
as for a finished future.  ``shutdown(cancel_futures=True)`` cancels the
running items too (a per-executor :class:`_Tracker` knows them), and
``Executor.map`` cancels what it has not returned when its ``timeout`` passes
(it calls ``cancel()`` on them), so those running stop as well.  The
``futures`` patch set puts :func:`submit` and :func:`shutdown` on the
standard ``ThreadPoolExecutor``; :class:`threadpatch.futures.ThreadPoolExecutor`
has them of its own, and also starts its workers on :func:`worker`.
"""

from __future__ import annotations

import queue
import threading
import weakref
from concurrent.futures import _base
from concurrent.futures import thread as _cf_thread
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from . import _core

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = [
    "CancellableFuture",
    "WorkItem",
    "adjust_thread_count",
    "run_item",
    "shutdown",
    "submit",
    "worker",
]

P = ParamSpec("P")
T = TypeVar("T")

# The standard methods, as the class defines them before any patching.
_stdlib_shutdown = vars(_cf_thread.ThreadPoolExecutor)["shutdown"]


def worker(
    executor_reference: Callable[[], ThreadPoolExecutor | None],
    work_queue: queue.SimpleQueue[Any],
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
) -> None:
    """Run a pool's work items until shutdown, or until this worker is cancelled."""
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException:
            _base.LOGGER.critical("Exception in initializer:", exc_info=True)
            executor = executor_reference()
            if executor is not None:
                executor._initializer_failed()
            return
    me = _core.current_state()
    counted_idle = False
    try:
        while not me.cancel_requested:
            try:
                item = work_queue.get_nowait()
            except queue.Empty:
                executor = executor_reference()
                if executor is not None:
                    executor._idle_semaphore.release()
                    counted_idle = True
                del executor
                item = work_queue.get(block=True)
                counted_idle = False  # whoever queued it took the idle count
            if item is not None:
                run_item(item, me)
                del item
                continue
            executor = executor_reference()
            if _cf_thread._shutdown or executor is None or executor._shutdown:
                if executor is not None:
                    executor._shutdown = True
                work_queue.put(None)  # wake the next worker, it leaves too
                return
            del executor
    except _core.ThreadCancelled:
        if not me.cancel_requested:
            raise  # a deadline of somebody's scope around the pool: not ours to hide
    except BaseException:
        _base.LOGGER.critical("Exception in worker", exc_info=True)
        return
    _leave_pool(executor_reference, counted_idle)


def run_item(item: Any, me: _core.ThreadState) -> None:
    """Run one work item; a cancellation of this worker cancels its future."""
    future: Future[Any] = item.future
    if isinstance(future, CancellableFuture):
        _run_in_scope(item, future, me)
        return
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = item.fn(*item.args, **item.kwargs)
    except _core.ThreadCancelled as exc:
        if me.cancel_requested:
            _cancel_running(future)
        else:
            future.set_exception(exc)
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _run_in_scope(item: Any, future: CancellableFuture[Any], me: _core.ThreadState) -> None:
    scope = _core.CancelScope()
    future._scope = scope  # before RUNNING: a cancel() that sees RUNNING sees the scope
    if not future.set_running_or_notify_cancel():
        return
    tracker = future._tracker
    if tracker is not None:
        tracker.running.add(future)
        if tracker.cancel_all:  # shutdown(cancel_futures=True) came as this started
            future.cancel()
    result = error = None
    try:
        with scope:
            result = item.fn(*item.args, **item.kwargs)
    except BaseException as exc:
        error = exc
    finally:
        if tracker is not None:
            tracker.running.discard(future)
    with future._condition:
        future._closing = True  # from now on cancel() says False, as when finished
        cancelled = future._cancel_accepted
    try:
        if cancelled or (isinstance(error, _core.ThreadCancelled) and me.cancel_requested):
            _cancel_running(future)
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    finally:
        error = None  # no cycle through the traceback


def _cancel_running(future: Future[Any]) -> None:
    """End a RUNNING future as cancelled (``Future.cancel()`` refuses running ones)."""
    with future._condition:
        future._state = _base.CANCELLED_AND_NOTIFIED
        for waiter in future._waiters:
            waiter.add_cancelled(future)
        future._condition.notify_all()
    future._invoke_callbacks()  # type: ignore[attr-defined]


def _leave_pool(
    executor_reference: Callable[[], ThreadPoolExecutor | None], counted_idle: bool
) -> None:
    """Forget this cancelled worker; start its replacement if work is waiting."""
    executor = executor_reference()
    if executor is None:
        return
    with _core.shield():  # this thread is cancelled, and these waits are short
        if counted_idle:
            executor._idle_semaphore.acquire(blocking=False)
        with executor._shutdown_lock:
            if executor._shutdown:
                return  # shutdown() is joining the workers: it iterates over _threads
            executor._threads.discard(threading.current_thread())  # type: ignore[attr-defined]
            if not executor._work_queue.empty():
                # A job submitted while this worker was busy counted on it.
                executor._adjust_thread_count()


# -- cancellable work -------------------------------------------------------------


class CancellableFuture(_base.Future[T]):
    """A ``concurrent.futures.Future`` whose ``cancel()`` also stops running work.

    Made by :func:`submit`.  Everything but ``cancel()`` is the standard
    future's.
    """

    __module__ = "threadpatch.futures"

    def __init__(self) -> None:
        super().__init__()
        self._scope: _core.CancelScope | None = None
        self._tracker: _Tracker | None = None
        self._cancel_accepted = False  # cancel() of the running call said True
        self._closing = False  # the call has returned: its outcome is being set

    def cancel(self) -> bool:
        """Cancel the future: pending work never runs, running work is stopped.

        Returns:
            True if the future is (or will be, once the running call has
            stopped) cancelled; False if it has finished, or if its call has
            already returned.

        Cancellation:
            A running call is cancelled at its blocking point (it raises
            :class:`~threadpatch.ScopeCancelled` there, and its clean-up
            runs); the future ends cancelled when the call has stopped: then
            ``cancelled()`` is True, ``result()`` raises ``CancelledError``
            and the done callbacks run (once).  A call that never blocks
            again runs to its end, and the future still ends cancelled.
        """
        with self._condition:
            if self._state == _base.RUNNING:
                return self._cancel_running_locked()
        if super().cancel():
            return True
        with self._condition:  # it started in between: it is running now
            if self._state == _base.RUNNING:
                return self._cancel_running_locked()
        return False

    def _cancel_running_locked(self) -> bool:
        scope = self._scope
        if scope is None or self._closing:
            return False  # not run in a scope (set running by hand), or already returned
        if not self._cancel_accepted:
            self._cancel_accepted = True
            scope.cancel()
        return True


class _Tracker:
    """What an executor knows of its running cancellable items."""

    __slots__ = ("__weakref__", "cancel_all", "running")

    def __init__(self) -> None:
        self.running: set[CancellableFuture[Any]] = set()
        self.cancel_all = False


def _tracker(executor: ThreadPoolExecutor) -> _Tracker:
    namespace = vars(executor)
    tracker: _Tracker | None = namespace.get("_threadpatch_tracker")
    if tracker is None:
        tracker = namespace.setdefault("_threadpatch_tracker", _Tracker())
    return tracker


class WorkItem(_cf_thread._WorkItem):  # type: ignore[type-arg]
    """A work item that runs the way :func:`worker` runs items, under any worker loop."""

    def run(self) -> None:
        run_item(self, _core.current_state())


def submit(
    self: ThreadPoolExecutor, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> CancellableFuture[T]:
    """``ThreadPoolExecutor.submit``, returning a :class:`CancellableFuture`.

    The standard method's checks, in its order, under its locks; then the
    item is queued and a worker started if none is idle.
    """
    with self._shutdown_lock, _cf_thread._global_shutdown_lock:
        if self._broken:
            raise _cf_thread.BrokenThreadPool(self._broken)
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _cf_thread._shutdown:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        future: CancellableFuture[T] = CancellableFuture()
        future._tracker = _tracker(self)
        self._work_queue.put(WorkItem(future, fn, args, kwargs))
        self._adjust_thread_count()
        return future


def shutdown(self: ThreadPoolExecutor, wait: bool = True, *, cancel_futures: bool = False) -> None:
    """``ThreadPoolExecutor.shutdown``; ``cancel_futures=True`` also cancels running items.

    Cancellation:
        With ``cancel_futures``, pending items are cancelled (as the standard
        method does) and running ones are cancelled at their blocking points;
        with ``wait``, it returns once every worker has ended.
    """
    if cancel_futures:
        tracker = _tracker(self)
        tracker.cancel_all = True  # before looking: an item starting now cancels itself
        for future in list(tracker.running):
            future.cancel()
    _stdlib_shutdown(self, wait, cancel_futures=cancel_futures)


def adjust_thread_count(self: ThreadPoolExecutor) -> None:
    """``ThreadPoolExecutor._adjust_thread_count``, starting workers on :func:`worker`.

    The standard rule: no new thread while one is idle; else one more, up to
    ``max_workers``, named ``<prefix>_<n>``, known to the module's exit hook.
    """
    if self._idle_semaphore.acquire(timeout=0):
        return
    work_queue = self._work_queue

    def wake_workers(_: object, work_queue: queue.SimpleQueue[Any] = work_queue) -> None:
        work_queue.put(None)  # the executor was collected: the workers leave

    threads = self._threads
    count = len(threads)
    if count < self._max_workers:
        prefix = self._thread_name_prefix or self
        thread = threading.Thread(
            name=f"{prefix}_{count}",
            target=worker,
            args=(
                weakref.ref(self, wake_workers),
                work_queue,
                self._initializer,
                self._initargs,
            ),
        )
        thread.start()
        threads.add(thread)  # type: ignore[attr-defined]
        _cf_thread._threads_queues[thread] = work_queue  # type: ignore[index]
