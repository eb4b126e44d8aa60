"""The worker loop of ``concurrent.futures.ThreadPoolExecutor``, cancellation-aware.

``threadpatch.cancel(worker)`` (or Ctrl-C clean-up) on a pool worker must stop
the worker without wedging the pool.  The standard worker loop cannot survive
it: cancellation is sticky, so after the cancelled job the worker counts
itself idle (``_idle_semaphore.release()``), then dies in its next
``work_queue.get()`` and logs "Exception in worker".  The executor still
believes an idle worker exists, so the next ``submit()`` starts no thread and
its job never runs; a job already queued would be taken by the dying worker
and fail at its first blocking call.

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
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import _base
from concurrent.futures import thread as _cf_thread
from typing import TYPE_CHECKING, Any

from . import _core

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["worker"]


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
                _run(item, me)
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


def _run(item: Any, me: _core.ThreadState) -> None:
    """Run one work item; a cancellation of this worker cancels its future."""
    future: Future[Any] = item.future
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
