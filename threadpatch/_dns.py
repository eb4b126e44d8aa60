"""Cancellable name resolution: ``getaddrinfo`` and friends.

The C resolver (``getaddrinfo(3)`` and the older ``gethostby*`` calls) blocks
inside libc with no descriptor to wait on, so the only way to make the
*caller's* wait cancellable is to run the lookup somewhere else.  Each lookup
becomes a job for a small, bounded pool of native worker threads; the caller
parks on its own :class:`~threadpatch._core.ThreadState` until the job is done.

How it works::

    caller thread                 pool (<= MAX_WORKERS native threads)
    -------------                 ------------------------------------
    submit(job) ---------------->  worker pops job, calls the native resolver
    park() ... (cancellable)       ...
                <----------------  job.done = True; caller.unpark()
    return job.result / raise job.error

If the caller is cancelled (or a deadline expires) while it waits, the job is
*abandoned*: a job not yet started is removed from the queue; a running one
finishes in its worker, which then drops the result.  Workers exit after
``IDLE_TIMEOUT`` seconds without work (by default at once: a worker lives as
long as there are jobs), so repeated cancels leak neither threads (the pool is
bounded) nor memory (abandoned results are dropped).  Exiting at once costs a
thread start per lookup that finds no busy worker (tens of microseconds), and
keeps a program's thread count what it would be without threadpatch: leak
checks such as ``test.support.threading_cleanup`` count native threads and
would otherwise wait for idle workers.

Where no worker thread can be started and none runs, the lookup is made in
the calling thread, not cancellable, as the stdlib makes it.

Tests make lookups block deterministically by replacing entries of
``_NATIVE`` (the functions the workers call), e.g. with ``monkeypatch.setitem``.
"""

from __future__ import annotations

import _socket
import contextlib
import os
import socket as _std
from collections import deque
from typing import TYPE_CHECKING, Any

from . import _core
from ._core import _natives

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "getaddrinfo",
    "gethostbyaddr",
    "gethostbyname",
    "gethostbyname_ex",
    "getnameinfo",
    "is_numeric",
    "pool_statistics",
]

MAX_WORKERS = 8
IDLE_TIMEOUT = 0.0

# The functions the workers call, captured before any patching.  Tests may
# replace entries to simulate a slow resolver.
_NATIVE: dict[str, Callable[..., Any]] = {
    "getaddrinfo": _std.getaddrinfo,
    "gethostbyname": _socket.gethostbyname,
    "gethostbyname_ex": _socket.gethostbyname_ex,
    "gethostbyaddr": _socket.gethostbyaddr,
    "getnameinfo": _socket.getnameinfo,
}


class _Job:
    __slots__ = ("abandoned", "args", "done", "error", "name", "result", "started", "state")

    def __init__(self, name: str, args: tuple[object, ...], state: _core.ThreadState) -> None:
        self.name = name
        self.args = args
        self.state = state
        self.result: object = None
        self.error: BaseException | None = None
        self.done = False
        self.started = False
        self.abandoned = False

    def is_done(self) -> bool:
        return self.done


_lock = _natives.allocate_lock()
_jobs: deque[_Job] = deque()
_idle: list[Any] = []  # one held native lock per idle worker; release() wakes it
_workers = 0


def pool_statistics() -> dict[str, int]:
    """Workers alive, idle workers and queued jobs (for tests and diagnostics)."""
    with _lock:
        return {"workers": _workers, "idle": len(_idle), "queued": len(_jobs)}


def _worker() -> None:
    global _workers
    wake = _natives.allocate_lock()
    wake.acquire()
    while True:
        with _lock:
            job = _jobs.popleft() if _jobs else None
            if job is not None:
                job.started = True
            else:
                _idle.append(wake)
        if job is None:
            if not wake.acquire(True, IDLE_TIMEOUT):
                with _lock:
                    try:
                        _idle.remove(wake)
                    except ValueError:
                        pass  # a submitter picked us and released (under _lock)
                    else:
                        _workers -= 1
                        return
                wake.acquire()  # consume that release
            continue
        try:
            result, error = _NATIVE[job.name](*job.args), None
        except BaseException as exc:  # handed to the caller, which re-raises it
            result, error = None, exc
        with _lock:
            job.args = ()  # the caller's arguments are not kept alive by the job
            if job.abandoned:
                del result, error
                continue
            job.result, job.error, job.done = result, error, True
        del result, error
        job.state.unpark()


def _submit(job: _Job) -> bool:
    """Queue ``job`` for the pool; False if no worker will run it (run it yourself).

    That is when no thread can be started (the thread limit; on 3.12, an
    interpreter shutting down: an ``atexit`` handler's lookup) and no worker
    is left to take the job: the lookup then blocks in the caller, as the
    stdlib's does, rather than fail where the stdlib's would not.
    """
    global _workers
    with _lock:
        _jobs.append(job)
        if _idle:
            _idle.pop().release()
            return True
        if _workers >= MAX_WORKERS:
            return True  # queued: a busy worker takes it when it is free
        _workers += 1
    try:
        _natives.start_new_thread(_worker, ())
    except BaseException as exc:
        with _lock:
            _workers -= 1
            served = bool(_workers) or job.started
            if not served:
                _jobs.remove(job)  # no worker popped it: none runs
        if isinstance(exc, RuntimeError):
            return served
        raise
    return True


def _run(name: str, args: tuple[object, ...]) -> Any:
    """Run the native lookup ``name`` in the pool and wait for it, cancellably."""
    if _core.is_hub_thread():
        return _NATIVE[name](*args)
    state = _core.current_state()
    state.check()
    job = _Job(name, args, state)
    if not _submit(job):
        return _NATIVE[name](*args)  # no thread to run it in: the stdlib's own wait
    try:
        _core.wait_until(job.is_done, reason=("dns", name, args[0] if args else None))
    except BaseException:
        with _lock:
            if not job.started:
                with contextlib.suppress(ValueError):
                    _jobs.remove(job)
            job.abandoned = True
            job.args = ()
        raise
    error = job.error
    if error is None:
        return job.result
    job.error = None
    del args, job  # the traceback keeps this frame: not the caller's arguments
    try:
        raise error
    finally:
        del error


def _lookup(name: str) -> Callable[..., Any]:
    """The cancellable stand-in for the C lookup ``socket.<name>`` (same arguments)."""

    def lookup(*args: object) -> Any:
        try:
            return _run(name, args)
        except BaseException:
            # As with the C call, an exception the caller keeps must not keep
            # the arguments alive (CPython's own tests count references).
            del args
            raise

    lookup.__name__ = lookup.__qualname__ = name
    lookup.__doc__ = f"``socket.{name}``, cancellable (see :func:`getaddrinfo`)."
    return lookup


def is_numeric(host: object) -> bool:
    """True if ``host`` is a numeric IPv4/IPv6 address (or None): no lookup needed."""
    if not isinstance(host, str):
        return host is None
    try:
        _socket.inet_pton(_socket.AF_INET, host)
    except (OSError, ValueError):
        try:
            _socket.inet_pton(_socket.AF_INET6, host)
        except (OSError, ValueError):
            return False
    return True


def getaddrinfo(
    host: bytes | str | None,
    port: bytes | str | int | None,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> list[tuple[_std.AddressFamily, _std.SocketKind, int, str, tuple[Any, ...]]]:
    """``socket.getaddrinfo``, cancellable (the lookup runs in a worker thread).

    Numeric hosts (and ``None``) are resolved in the calling thread: they need
    no resolver and never block.

    Raises:
        socket.gaierror: as the stdlib.
        ThreadCancelled: cancelled or a deadline expired while waiting.

    Cancellation:
        The caller returns at once; the lookup finishes in its worker and the
        result is dropped.
    """
    if is_numeric(host) and (
        port is None or isinstance(port, int) or (isinstance(port, str) and port.isdigit())
    ):
        return _NATIVE["getaddrinfo"](host, port, family, type, proto, flags)  # type: ignore[no-any-return]
    return _run("getaddrinfo", (host, port, family, type, proto, flags))  # type: ignore[no-any-return]


gethostbyname: Callable[[str], str] = _lookup("gethostbyname")
gethostbyname_ex: Callable[[str], tuple[str, list[str], list[str]]] = _lookup("gethostbyname_ex")
gethostbyaddr: Callable[[str], tuple[str, list[str], list[str]]] = _lookup("gethostbyaddr")
getnameinfo: Callable[[tuple[Any, ...], int], tuple[str, str]] = _lookup("getnameinfo")


def _after_fork_in_child() -> None:
    global _lock, _workers
    _lock = _natives.allocate_lock()
    _jobs.clear()
    _idle.clear()
    _workers = 0


os.register_at_fork(after_in_child=_after_fork_in_child)
