"""The worker threads of ``threadpatch.to_thread``: a bounded pool that survives cancellation.

A :class:`Job` is one call for a worker: the function, its arguments, the
context to run it in, a deadline, and a ``notify`` callback the worker calls
(in its own thread) once the job is done.  :func:`submit` hands it to an idle
worker (the one that went idle last: its cache is warm) or starts a new one;
past :data:`MAX_WORKERS` running workers the job queues.  :func:`cancel` takes a
queued job out (it never runs) or cancels the running job's scope.

Each job runs in its own cancel scope (``job.scope``, an ``ignore_after``
scope carrying the job's deadline), as each work item of
``threadpatch.futures.ThreadPoolExecutor`` does: cancelling a job cancels
that scope, never the worker thread, so the worker takes the next job.  Only
when the worker *thread* is cancelled (Ctrl-C's clean-up,
``threadpatch.cancel(worker)``) does it take no other job (cancellation is
sticky for a thread): it leaves the pool quietly, and starts a replacement if
jobs are queued (the next :func:`submit` starts one otherwise).  Idle workers
are daemon threads parked in the core's wait (so Ctrl-C's clean-up sees them
and cancels them) for up to :data:`IDLE_SECONDS`; :func:`shutdown_idle_workers`
ends them at once.

How it works::

    submit(job)          pool lock          worker thread
    -----------          ---------          -------------
    idle worker? ------> worker.job = job -> unpark: runs job in job.scope
    else start one                          (its deadline), then under the lock:
    (or queue it)                           DONE; next queued job, or idle,
                                            or leave if the thread is
                                            cancelled; notify()
    cancel(job): queued -> removed; running -> job.scope.cancel()
"""

from __future__ import annotations

import contextvars
import math
import os
from collections import deque
from typing import TYPE_CHECKING

import sniffio

from . import _core
from ._core import _natives

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DONE",
    "IDLE_SECONDS",
    "MAX_WORKERS",
    "Job",
    "cancel",
    "current_job",
    "pool",
    "shutdown_idle_workers",
    "submit",
]

#: How long an idle worker waits for the next job before it ends.
IDLE_SECONDS = 10.0
#: Most worker threads running at once (trio's default thread limit).
MAX_WORKERS = 40

_monotonic = _natives.monotonic
_INF = math.inf
QUEUED, RUNNING, DONE = 0, 1, 2
_QUEUED, _RUNNING, _DONE = QUEUED, RUNNING, DONE


class Job:
    """One call handed to a worker, and its outcome."""

    __slots__ = (
        "args",
        "context",
        "deadline",
        "error",
        "expired",
        "func",
        "kind",
        "kwargs",
        "loop",
        "notify",
        "scope",
        "status",
        "value",
        "worker",
    )

    def __init__(
        self,
        func: Callable[..., object],
        args: tuple[object, ...],
        kwargs: dict[str, object],
        deadline: float,
        kind: str,
        loop: object,
        copy_context: bool = True,
    ) -> None:
        self.func: Callable[..., object] | None = func
        self.args = args
        self.kwargs = kwargs
        self.deadline = deadline  # on time.monotonic(); inf: none
        self.kind = kind  # "asyncio" or "trio": where from_thread goes
        self.loop = loop  # the asyncio loop, or the trio token
        if copy_context:
            context = contextvars.copy_context()
            # sniffio must not think the worker runs inside the event loop.
            context.run(sniffio.current_async_library_cvar.set, None)
        else:  # what a fresh thread runs in (run_in_executor's calls do)
            context = contextvars.Context()
        self.context = context
        self.notify: Callable[[], object] = _nothing
        self.status = _QUEUED
        self.worker: _Worker | None = None
        self.value: object = None
        self.error: BaseException | None = None
        self.expired = False
        # Made now, so that cancel() finds it whenever it comes (a scope
        # cancelled before it is entered cuts its block short on entry).
        self.scope = _core.ignore_after(None)

    def run(self) -> None:
        func = self.func
        assert func is not None
        scope = self.scope
        if self.deadline != _INF:
            # The time left now (the queue's wait counts), on the hub's clock
            # from entry on, as for any ignore_after scope.
            scope.seconds = max(0.0, self.deadline - _monotonic())
        try:
            try:
                with scope:
                    self.value = self.context.run(func, *self.args, **self.kwargs)
            finally:  # also when the call turned the expiry into another error
                self.expired = scope.expired
            if scope.cancelled_caught and not self.expired:
                # Cancelled (cancel(), from_thread's loop) and cut short: no result.
                self.error = _core.ThreadCancelled("the to_thread() call was cancelled")
        except BaseException as exc:
            self.error = exc
        finally:
            self.func = None
            self.args = ()
            self.kwargs = {}


def _nothing() -> None:
    pass


class _Worker:
    """A pool thread: runs jobs until its thread is cancelled, retired, or idle too long."""

    __slots__ = ("job", "retire", "state", "thread")

    def __init__(self, job: Job) -> None:
        self.job: Job | None = job
        self.retire = False
        self.state: _core.ThreadState | None = None
        self.thread: _core.Thread[None] | None = None


_local = _natives.local()  # .job: the job this worker thread runs


class _Pool:
    """The worker threads of ``to_thread`` (one per process)."""

    def __init__(self) -> None:
        self.lock = _natives.allocate_lock()
        self.idle: list[_Worker] = []  # last in, first out: the warmest first
        self.queue: deque[Job] = deque()
        self.count = 0  # live workers, busy or idle

    def submit(self, job: Job) -> None:
        with self.lock:
            if self.idle:
                worker = self.idle.pop()
                job.status = _RUNNING
                job.worker = worker
                worker.job = job
                state = worker.state
                assert state is not None
                state.unpark()
                return
            if self.count >= MAX_WORKERS:
                self.queue.append(job)
                return
            self.count += 1
            job.status = _RUNNING
        self._start(job, raise_error=True)

    def _start(self, job: Job, raise_error: bool = False) -> None:
        """Start a worker for ``job`` (counted already); if that fails, the job fails."""
        worker = _Worker(job)
        job.worker = worker
        try:
            # A cancelled worker starts its replacement: starting a thread
            # waits (briefly) for it to come up, which must not raise here.
            with _core.shield():
                worker.thread = _core.spawn(
                    self._work, worker, daemon=True, name="threadpatch.to_thread"
                )
        except BaseException as exc:
            with self.lock:
                self.count -= 1
                job.status = _DONE
                job.worker = None
            if raise_error:  # submit(): its caller gets the error, no notify
                raise
            job.error = exc  # a queued job whose turn came: it fails, its waiter wakes
            notify, job.notify = job.notify, _nothing
            notify()

    def cancel(self, job: Job) -> bool:
        """Cancel ``job``; True if it never started (it never will, nor notify)."""
        with self.lock:
            if job.status == _QUEUED:
                self.queue.remove(job)
                job.status = _DONE
                return True
            if job.status == _RUNNING:
                job.scope.cancel()  # the job stops; its worker goes on
        return False

    def _work(self, worker: _Worker) -> None:
        me = _core.current_state()
        with self.lock:
            worker.state = me
        job = worker.job
        try:
            while job is not None:
                _local.job = job
                job.run()
                _local.job = None
                replacement = None
                with self.lock:
                    job.status = _DONE
                    job.worker = None
                    worker.job = None
                    if me.cancel_requested:  # sticky: this thread takes no more work
                        self.count -= 1
                        if self.queue:
                            replacement = self.queue.popleft()
                            replacement.status = _RUNNING
                            self.count += 1
                        leaving = True
                    elif self.queue:
                        leaving = False
                        worker.job = self.queue.popleft()
                        worker.job.status = _RUNNING
                        worker.job.worker = worker
                    else:
                        leaving = False
                        self.idle.append(worker)
                notify, job.notify = job.notify, _nothing
                notify()
                del job, notify
                if replacement is not None:
                    self._start(replacement)
                if leaving:
                    return
                job = worker.job or self._wait_for_job(worker)
        finally:
            _local.job = None

    def _wait_for_job(self, worker: _Worker) -> Job | None:
        """Park idle; the next job, or None when it is time to leave."""
        deadline = _monotonic() + IDLE_SECONDS
        try:
            _core.wait_until(
                lambda: worker.job is not None or worker.retire,
                deadline,
                ("to_thread idle", None),
                worker.state,
            )
        except BaseException:
            self._leave(worker)  # cancelled while idle (Ctrl-C): hand its job on
            raise
        with self.lock:
            if worker.job is not None:
                return worker.job
            if not worker.retire:  # idle too long
                self.idle.remove(worker)
                self.count -= 1
        return None

    def _leave(self, worker: _Worker) -> None:
        replacement = None
        with self.lock:
            if not worker.retire:  # shutdown_idle() has forgotten a retired one
                if worker in self.idle:
                    self.idle.remove(worker)
                self.count -= 1
            replacement, worker.job = worker.job, None
            if replacement is not None:  # given a job as the wait ended: another runs it
                self.count += 1
        if replacement is not None:
            self._start(replacement)

    def shutdown_idle(self, timeout: float | None) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
            for worker in idle:
                worker.retire = True
                self.count -= 1
                state = worker.state
                assert state is not None
                state.unpark()
        deadline = _core.deadline_after(timeout)
        for worker in idle:
            thread = worker.thread
            if thread is not None:
                thread.wait(None if deadline == _INF else max(0.0, deadline - _monotonic()))

    def reset_after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]  # the workers do not exist in the child


#: The process's pool (tests read ``pool.count``, ``pool.queue``).
pool = _Pool()
_pool = pool


def submit(job: Job) -> None:
    """Run ``job`` in a worker (or queue it); ``job.notify()`` follows once it is done.

    Raises:
        RuntimeError: no thread could be started (the job is then done, unrun).
    """
    _pool.submit(job)


def cancel(job: Job) -> bool:
    """Cancel ``job``: True if it was queued (it never runs and never notifies).

    A running job's scope is cancelled: the call stops at its blocking point
    (it raises ``ScopeCancelled`` there) and its worker goes on to the next
    job; ``notify()`` follows once the job has stopped.  A job that is done:
    no-op.
    """
    return _pool.cancel(job)


def current_job() -> Job | None:
    """The job the calling thread runs as a worker, if it is one."""
    job: Job | None = getattr(_local, "job", None)
    return job


def shutdown_idle_workers(timeout: float | None = 5.0) -> None:
    """End the idle worker threads of ``threadpatch.to_thread`` now, and wait for them.

    Idle workers end by themselves after :data:`IDLE_SECONDS`; a test that
    checks for threads it left behind calls this first.  Busy workers are
    not affected.

    Cancellation:
        The wait ends; the workers still end.
    """
    _pool.shutdown_idle(timeout)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.reset_after_fork)
