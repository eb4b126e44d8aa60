"""``threadpatch.futures``: ``concurrent.futures`` where ``Future.cancel()`` stops running work.

A drop-in for the standard module's thread pool::

    from threadpatch.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        future = pool.submit(requests.get, url, timeout=30)
        ...
        future.cancel()   # True: the request stops at its blocking point

:class:`ThreadPoolExecutor` is a subclass of the standard one, with the same
constructor and methods.  Each work item runs in its own
:class:`threadpatch.CancelScope`:

* ``Future.cancel()`` on a *running* future cancels the call at its blocking
  point (it raises :class:`threadpatch.ScopeCancelled` there, its ``finally``
  and ``with`` clean-up runs) and returns True; the future ends cancelled
  once the call has stopped (``cancelled()`` True, ``result()`` raises
  ``CancelledError``, done callbacks run once).  The worker takes the next
  item.  Once the call has returned, ``cancel()`` returns False as for a
  finished future.
* ``shutdown(cancel_futures=True)`` cancels the running items too;
  ``map(..., timeout=)`` cancels the items still running when the timeout
  passes (and, as the standard ``map`` does, whatever it has not yielded
  when the iterator is closed early).
* Cancelling a worker *thread* (``threadpatch.cancel(worker)``) ends the
  item it runs as cancelled, and the pool replaces the worker.

The rest of ``concurrent.futures`` is re-exported, so the module can stand
in for it (``import threadpatch.futures as futures``).  The ``futures``
patch flag (off by default in :func:`threadpatch.patch_all`, since it changes
what ``Future.cancel()`` returns) gives the standard ``ThreadPoolExecutor``
the same behaviour.  The work must block in cancellable operations: real
socket, lock, queue and sleep calls are cancellation points when the standard
library is patched (``python -m threadpatch``), threadpatch's own always.
"""

from __future__ import annotations

from concurrent import futures as _cf
from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    BrokenExecutor,
    CancelledError,
    Executor,
    InvalidStateError,
    ProcessPoolExecutor,
    TimeoutError,
    as_completed,
    wait,
)

from . import _futures
from ._futures import CancellableFuture as Future

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "BrokenExecutor",
    "CancelledError",
    "Executor",
    "Future",
    "InvalidStateError",
    "ProcessPoolExecutor",
    "ThreadPoolExecutor",
    "TimeoutError",
    "as_completed",
    "wait",
]


class ThreadPoolExecutor(_cf.ThreadPoolExecutor):
    """``concurrent.futures.ThreadPoolExecutor`` whose futures can stop running work.

    Same constructor (``max_workers``, ``thread_name_prefix``,
    ``initializer``, ``initargs``) and methods.  Its workers run the
    cancellation-aware worker loop of the ``thread_pool`` patch set.
    """

    __module__ = "threadpatch.futures"

    # The functions the ``futures`` patch set puts on the standard class, as
    # this class's own methods (no wrapper: submit is on every job's path).
    submit = _futures.submit
    shutdown = _futures.shutdown
    _adjust_thread_count = _futures.adjust_thread_count
