"""asyncio internals the bridges need: ``Runner.close`` after Ctrl-C, and a task's deadline.

**Runner.close.**

On Ctrl-C, ``asyncio.run()`` cancels its main task; tasks awaiting
``asyncio.to_thread()`` or ``loop.run_in_executor(None, ...)`` are cancelled,
but the threads doing the work go on.  ``Runner.close()`` (the ``finally`` of
``asyncio.run``) then waits in ``loop.shutdown_default_executor()`` for those
threads: with a blocked call, forever on 3.11 and for five minutes on 3.12+.

:func:`runner_close` runs while the ``KeyboardInterrupt`` (or the main task's
cancellation by the runner's SIGINT handler) is on its way out, cancels the
threads of the loop's default executor at their blocking calls, and then
closes as the standard method does.  A close without Ctrl-C is untouched.

**A task's deadline.**  ``asyncio.timeout()`` (and ``asyncio.wait_for`` on
3.12+, which is built on it) keeps its deadline on a ``Timeout`` object that
only the ``async with`` statement holds: neither the task nor the loop has a
public way to find it.  What the loop does have is the timer the timeout
scheduled, ``loop.call_at(when, timeout._on_timeout)``, in its heap of
scheduled handles.  :func:`task_deadline` looks there for the timers of
``Timeout`` objects entered by the given task (the same code on 3.11, 3.12
and 3.13) and returns the earliest ``when()``.  Supported: the standard
event loops (``BaseEventLoop``, whose heap is ``_scheduled``), nested and
rescheduled timeouts, ``wait_for`` on 3.12+.  Not seen (the thread then
runs without a deadline, and cancellation still reaches it when the
timeout fires): loops without that heap (uvloop), ``wait_for`` on 3.11
(it runs the awaitable in a separate task), timeouts of an enclosing
task, and heaps larger than :data:`SCAN_LIMIT` handles (the scan costs
about 0.1 us a handle).
"""

from __future__ import annotations

import asyncio.runners
import asyncio.timeouts
import math
import sys
import weakref
from typing import Any

from . import _core

__all__ = ["SCAN_LIMIT", "pending_calls", "runner_close", "task_deadline", "track_call"]

_original_close = asyncio.runners.Runner.close
_on_timeout = asyncio.timeouts.Timeout._on_timeout  # type: ignore[attr-defined]
_ENTERED = asyncio.timeouts._State.ENTERED  # type: ignore[attr-defined]

#: Largest heap of scheduled handles :func:`task_deadline` looks through.
SCAN_LIMIT = 2000


#: Per loop, the futures of ``run_in_executor(None, ...)`` calls that the
#: ``asyncio`` patch set runs in threadpatch's workers and that have not ended:
#: the loop's ``shutdown_default_executor()`` waits for them, as it waits for
#: its executor's threads (the workers are daemon threads).
_calls: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[asyncio.Future[Any]]] = (
    weakref.WeakKeyDictionary()
)


def track_call(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
    """Count ``future`` (a ``run_in_executor`` call) as the loop's until it is done."""
    calls = _calls.get(loop)
    if calls is None:
        calls = _calls[loop] = set()
    calls.add(future)
    future.add_done_callback(calls.discard)


def pending_calls(loop: asyncio.AbstractEventLoop | None) -> list[asyncio.Future[Any]]:
    """The tracked calls of ``loop`` still running."""
    calls = _calls.get(loop) if loop is not None else None
    return [f for f in calls if not f.done()] if calls else []


def runner_close(self: asyncio.runners.Runner) -> None:
    """``asyncio.Runner.close``; after Ctrl-C, first cancel the default executor's threads."""
    interrupted = getattr(self, "_interrupt_count", 0) > 0 or isinstance(
        sys.exc_info()[1], KeyboardInterrupt
    )
    loop = getattr(self, "_loop", None)
    executor = getattr(loop, "_default_executor", None)
    if interrupted and executor is not None:
        for thread in list(getattr(executor, "_threads", ())):
            if thread.is_alive():
                _core.cancel(thread, blocking=False)
    if interrupted:
        for future in pending_calls(loop):
            future.cancel()  # the call's thread; the future ends once it has stopped
    _original_close(self)


def task_deadline(loop: asyncio.AbstractEventLoop, task: asyncio.Task[object] | None) -> float:
    """The earliest deadline (``loop.time()``) of the ``asyncio.timeout`` scopes ``task`` is in.

    ``math.inf`` when there is none, or none can be seen (see the module's
    docstring for what is supported).
    """
    scheduled = getattr(loop, "_scheduled", None)
    if task is None or not scheduled or len(scheduled) > SCAN_LIMIT:
        return math.inf
    deadline = math.inf
    for handle in scheduled:
        callback = handle._callback
        if getattr(callback, "__func__", None) is _on_timeout:
            timeout = callback.__self__
            if timeout._task is task and timeout._state is _ENTERED and not handle.cancelled():
                deadline = min(deadline, handle.when())
    return deadline
