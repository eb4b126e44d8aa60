"""Per-thread cancellation state and the thread's own parking primitives.

Every OS thread that touches threadpatch gets one :class:`ThreadState`.  A
blocked thread parks on its *own* native primitive, so a wake-up goes straight
from the waking thread to the parked one without passing through the hub:

* :meth:`ThreadState.park` blocks on a private native lock used as a permit
  (``unpark`` releases it; a permit given before ``park`` is not lost);
* :meth:`ThreadState.wait_fds` blocks in ``poll`` on the caller's descriptors
  plus a private wake-up descriptor (an eventfd), so one ``poll`` waits for a
  socket and for a cancellation at once.

Cancellation and deadline expiry set :attr:`ThreadState.interrupt` and wake the
thread; every blocking point checks the flag before and after it blocks.  A
wake-up may be spurious, so callers always re-check the condition they wait
for.  Nothing outside ``_core._wait`` calls ``park``/``wait_fd``/``wait_fds``
directly: that module owns the loops, the deadlines and the wait reasons.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import threading
from typing import TYPE_CHECKING, Protocol

from . import _natives
from ._exceptions import HubError, ThreadCancelled
from ._hub import get_hub

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["ThreadState", "on_finish"]

_allocate_lock = _natives.allocate_lock
_monotonic = _natives.monotonic
_TIMEOUT_MAX = _natives.TIMEOUT_MAX

#: Longest the main thread blocks in one go (seconds).  Only the main thread
#: runs Python signal handlers, and only between bytecodes: a signal whose C
#: handler ran just before the thread blocked (or in another thread, which
#: then cannot wake it) would wait for the next wake-up, so a Ctrl-C could go
#: unnoticed while the main thread parks.  Waking every slice lets the
#: interpreter run the pending handler; callers treat it as a spurious wake.
MAIN_THREAD_SLICE = 0.05


class ScopeLike(Protocol):
    """What the delivery logic needs from a scope (see ``_scopes.CancelScope``).

    ``cancel_called`` is set by whoever cancels the scope (any thread, or the
    hub at its deadline) *before* it sets the owner's ``interrupt``;
    :meth:`ThreadState.recompute_interrupt` relies on that order.
    """

    @property
    def shield(self) -> bool: ...

    cancel_called: bool
    delivered: bool

    def _error(self) -> ThreadCancelled:
        """The exception to raise inside the scope (it marks nothing)."""
        ...


class ThreadState:
    """Cancellation state and parking primitive of one OS thread."""

    __slots__ = (
        "__weakref__",
        "_done_callbacks",
        "_fd_events",
        "_fd_poller",
        "_fd_registered",
        "_fd_waiting",
        "_lock",
        "_parker",
        "_poller",
        "_wake_fd",
        "blocked_on",
        "blocked_since",
        "blocked_until",
        "bound_thread",
        "cancel_requested",
        "finished",
        "for_thread",
        "handle",
        "ident",
        "interrupt",
        "is_main",
        "name",
        "native_id",
        "parked",
        "scopes",
    )

    def __init__(self, name: str | None = None) -> None:
        parker = _allocate_lock()
        parker.acquire()  # held == no permit
        self._parker = parker
        self._lock = _allocate_lock()
        self._done_callbacks: list[Callable[[], object]] = []
        self._fd_waiting = False
        self._poller: _natives.select.poll | None = None  # type: ignore[name-defined]
        self._wake_fd = -1
        # wait_fd's own poller keeps its last descriptor registered between
        # calls (a socket waited on again and again costs no re-registration).
        self._fd_poller: _natives.select.poll | None = None  # type: ignore[name-defined]
        self._fd_registered = -1
        self._fd_events = 0
        self.name = name
        self.ident: int | None = None
        self.native_id: int | None = None
        self.handle: object = None
        self.cancel_requested = False
        self.scopes: list[ScopeLike] = []
        self.parked = False
        # What the thread waits for, since when, until when: written by
        # _core._wait for the duration of each wait, read by snapshot().
        self.blocked_on: object = None
        self.blocked_since = 0.0
        self.blocked_until = math.inf
        self.finished = False
        self.is_main = False  # set when bound: the main thread waits in slices
        # The plain thread this state was made for by another thread (a cancel
        # that came before the thread used threadpatch); None once the thread
        # has bound it, or when a thread made its own.  See ``state_for_thread``.
        self.for_thread: threading.Thread | None = None
        # The threading.Thread registered for the ident when the thread bound
        # this state (None for a raw _thread thread): a later thread with the
        # same ident is another Thread there.  See ``_registry._outlived``.
        self.bound_thread: threading.Thread | None = None
        # A dead hub must fail every blocking call, also in threads born later.
        self.interrupt = get_hub().failure is not None

    def __repr__(self) -> str:
        return f"<ThreadState {self.name!r} ident={self.ident}>"

    # -- delivery --------------------------------------------------------------

    def check(self) -> None:
        """Raise what is pending for this thread (a cancellation point)."""
        if self.interrupt:
            self.deliver()

    def deliver(self) -> None:
        """Raise the pending cancellation, expiry or hub failure, if any is deliverable."""
        failure = get_hub().failure
        if failure is not None:
            error = HubError(*failure.args)
            raise error from failure.__cause__
        scopes = self.scopes
        first = 0
        for i in range(len(scopes) - 1, -1, -1):
            if scopes[i].shield:
                # A shield suspends what comes from outside it; the shielded
                # scope's own cancellation still applies inside it.
                first = i
                break
        else:
            if self.cancel_requested:
                raise ThreadCancelled(f"thread {self.name!r} was cancelled")
        # The outermost cancelled scope wins: it is the one that must catch it.
        for i in range(first, len(scopes)):
            scope = scopes[i]
            if scope.cancel_called:
                scope.delivered = True
                raise scope._error()

    def _interrupt_sources(self) -> bool:
        return (
            self.cancel_requested
            or get_hub().failure is not None
            or any(scope.cancel_called for scope in self.scopes)
        )

    def recompute_interrupt(self) -> None:
        """Reset the fast flag after a scope ends (cancellation stays sticky).

        Any thread may call it.  Whoever sets a source of the flag (a cancel,
        a scope's ``cancel_called``, the hub's failure) sets the source first
        and then ``interrupt = True``.  Writing the recomputed value could
        overwrite such a ``True`` that came after the sources were read (a
        cancel from another thread racing a scope's exit): so after writing
        False the sources are read again, and a source set meanwhile puts the
        flag back.  Every False written is followed by such a look, so no
        interrupt is lost; a stale True only costs one look in ``deliver``.
        """
        if self._interrupt_sources():
            self.interrupt = True
            return
        self.interrupt = False
        if self._interrupt_sources():
            self.interrupt = True

    def request_cancel(self) -> None:
        """Mark the thread cancelled and wake it if it is blocked (any thread may call)."""
        self.cancel_requested = True
        self.interrupt = True
        self.wake()

    # -- parking ---------------------------------------------------------------

    def park(self, timeout: float | None = None) -> None:
        """Block until :meth:`unpark`, an interrupt, or ``timeout`` seconds.

        Wake-ups may be spurious: the caller re-checks what it waits for.

        Raises:
            ThreadCancelled: the thread is cancelled or a deadline expired
                (before or while parked).
            HubError: the hub died.
        """
        if self.interrupt:
            self.deliver()
        if self.is_main and (timeout is None or timeout > MAIN_THREAD_SLICE):
            timeout = MAIN_THREAD_SLICE  # see MAIN_THREAD_SLICE: a spurious wake
        self.parked = True
        try:
            if timeout is None:
                self._parker.acquire()
            elif timeout > 0:
                self._parker.acquire(True, min(timeout, _TIMEOUT_MAX))
            else:
                self._parker.acquire(False)
        finally:
            self.parked = False
        if self.interrupt:
            self.deliver()

    def unpark(self) -> None:
        """Give the thread a wake-up permit (any thread may call)."""
        try:  # noqa: SIM105 - hot path: try/except is cheaper than suppress()
            self._parker.release()
        except RuntimeError:
            pass  # a permit is already there

    def wake(self) -> None:
        """Wake the thread from a park or from a descriptor wait."""
        self.unpark()
        if self._fd_waiting:
            try:  # noqa: SIM105 - wake path, keep it lean
                _natives.write(self._wake_fd, b"\1\0\0\0\0\0\0\0")
            except OSError:
                pass  # counter full or fd gone: the thread is awake either way

    def _make_wake_fd(self) -> int:
        """Make the wake-up eventfd (on the thread's first descriptor wait)."""
        if _natives.eventfd is None:  # pragma: no cover - non-Linux
            raise NotImplementedError("descriptor waits need eventfd")
        fd = _natives.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._wake_fd = _natives.set_aside(fd)
        return self._wake_fd

    def _make_poller(self) -> _natives.select.poll:  # type: ignore[name-defined]
        wake_fd = self._wake_fd if self._wake_fd >= 0 else self._make_wake_fd()
        poller = _natives.poll()
        poller.register(wake_fd, _natives.POLLIN)
        self._poller = poller
        return poller

    def _poll(
        self,
        poller: _natives.select.poll,  # type: ignore[name-defined]
        timeout: float | None,
    ) -> list[tuple[int, int]]:
        """One ``poll`` of a poller that watches the wake-up fd, as a wake-able wait."""
        self._fd_waiting = True
        self.parked = True
        try:
            # An interrupt that arrived before _fd_waiting was set did not
            # write to the wake fd: look again before blocking.
            if self.interrupt:
                self.deliver()
            if self.is_main and (timeout is None or timeout > MAIN_THREAD_SLICE):
                timeout = MAIN_THREAD_SLICE  # see MAIN_THREAD_SLICE: a spurious wake
            if timeout is None or timeout == math.inf:
                return poller.poll()  # type: ignore[no-any-return]
            ms = min(math.ceil(timeout * 1000), 2**31 - 1) if timeout > 0 else 0
            return poller.poll(ms)  # type: ignore[no-any-return]
        finally:
            self._fd_waiting = False
            self.parked = False

    def wait_fds(
        self, fds: Iterable[tuple[int, int]], timeout: float | None = None
    ) -> list[tuple[int, int]]:
        """Wait until one of ``fds`` (pairs of fd and poll event mask) is ready.

        Returns the ready ``(fd, revents)`` pairs, empty on timeout.  Like
        :meth:`park`, it raises at an interrupt and can return early and empty
        on a spurious wake-up.
        """
        if self.interrupt:
            self.deliver()
        poller = self._poller or self._make_poller()
        registered = []
        try:
            for fd, events in fds:
                if fd < 0:  # closed under us (by another thread): as the syscall would say
                    raise OSError(errno.EBADF, os.strerror(errno.EBADF))
                poller.register(fd, events)
                registered.append(fd)
            ready = self._poll(poller, timeout)
        finally:
            for fd in registered:
                poller.unregister(fd)
        wake_fd = self._wake_fd
        result = []
        for fd, revents in ready:
            if fd == wake_fd:
                with contextlib.suppress(BlockingIOError):
                    _natives.read(wake_fd, 8)
            else:
                result.append((fd, revents))
        if self.interrupt:
            self.deliver()
        return result

    def wait_fd(self, fd: int, events: int, timeout: float | None = None) -> int:
        """Wait for one descriptor; return its ``revents`` (0 on timeout or spurious wake)."""
        # The hot path of every socket wait: the steps of wait_fds, inlined,
        # on a second poller whose registration is cached.  Registering by
        # descriptor number is always right at poll time, even if the number
        # now names another file: only the call's own fd is ever polled.
        if self.interrupt:
            self.deliver()
        poller = self._fd_poller
        if poller is None:
            poller = self._fd_poller = _natives.poll()
            # Only the wake-up fd is shared with wait_fds: its poller is made
            # when a thread first waits for several descriptors at once.
            poller.register(self._wake_fd if self._wake_fd >= 0 else self._make_wake_fd(), 1)
        if fd != self._fd_registered or events != self._fd_events:
            if fd < 0:  # closed under us (by another thread): as the syscall would say
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            if self._fd_registered >= 0:
                poller.unregister(self._fd_registered)
            poller.register(fd, events)
            self._fd_registered = fd
            self._fd_events = events
        ready = self._poll(poller, timeout)
        result = 0
        for ready_fd, revents in ready:
            if ready_fd == fd:
                result = revents
            else:
                with contextlib.suppress(BlockingIOError):
                    _natives.read(ready_fd, 8)
        if self.interrupt:
            self.deliver()
        return result

    # -- a descriptor wait polled by the caller (the C accelerator) ------------
    # threadpatch/_speedups_socket.c waits for a socket and receives in one C
    # call that releases the GIL once.  This is the protocol it uses, and all
    # of it; it never depends on this object's layout:
    #
    # * begin_fd_wait(reason) / end_fd_wait() below define what a wait that
    #   the caller polls itself does.  The C code calls them whenever they
    #   have more to do than record (no wake-up fd yet, an interrupt pending).
    # * In the common case it performs their stores itself, through the
    #   attribute protocol (the descriptors of these names on this class):
    #   it reads ``interrupt``, ``is_main``, ``_wake_fd``; begin sets
    #   ``blocked_on``/``blocked_since``/``blocked_until``, then
    #   ``_fd_waiting`` and ``parked`` True, then reads ``interrupt`` again;
    #   end sets ``_fd_waiting``, ``parked`` False and ``blocked_on`` None,
    #   then reads ``interrupt`` (set: it calls end_fd_wait(), which raises).
    #   Calling two Python methods per wait cost 10 % of a loopback echo.
    # Renaming one of these fields means updating that file's field table.

    def begin_fd_wait(self, reason: object, deadline: float = math.inf) -> int:
        """Start a descriptor wait the caller polls for itself; the wake-up fd to poll.

        The caller then polls its descriptor and the returned eventfd
        (``POLLIN``) without the GIL, for at most ``MAIN_THREAD_SLICE`` in
        the main thread (``is_main``), reads 8 bytes from the eventfd if it
        is readable (it is non-blocking), and calls :meth:`end_fd_wait` on
        every way out.  Until then a wake-up (a cancellation, an expiry)
        writes to the eventfd, and ``blocked_on`` is ``reason``.

        Raises:
            ThreadCancelled: a deliverable interrupt is pending (nothing begun).
        """
        if self.interrupt:
            self.deliver()
        wake_fd = self._wake_fd if self._wake_fd >= 0 else self._make_wake_fd()
        self.blocked_on = reason
        self.blocked_since = _monotonic()
        self.blocked_until = deadline
        self._fd_waiting = True
        self.parked = True
        # An interrupt that arrived before _fd_waiting was set did not write
        # to the wake fd: look again before the caller blocks.
        if self.interrupt:
            try:
                self.deliver()
            except BaseException:
                self._fd_waiting = self.parked = False
                self.blocked_on = None
                raise
        return wake_fd

    def end_fd_wait(self) -> None:
        """End a wait begun with :meth:`begin_fd_wait`; raise what came meanwhile."""
        self._fd_waiting = self.parked = False
        self.blocked_on = None
        if self.interrupt:
            self.deliver()

    # -- termination -----------------------------------------------------------

    def add_done_callback(self, callback: Callable[[], object]) -> bool:
        """Call ``callback`` when the thread ends; False (not added) if it has ended."""
        with self._lock:
            if self.finished:
                return False
            self._done_callbacks.append(callback)
            return True

    def remove_done_callback(self, callback: Callable[[], object]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._done_callbacks.remove(callback)

    def _release_wake_fd(self) -> None:
        """Close the wake-up eventfd and forget the pollers watching it (made again on use)."""
        if self._wake_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._wake_fd)
        self._wake_fd = -1
        self._poller = None
        self._fd_poller = None
        self._fd_registered = -1

    def forget_after_fork(self) -> None:
        """In a forked child: this state's thread does not exist there."""
        self.finished = True
        self._release_wake_fd()

    def survive_fork(self, ident: int, native_id: int) -> None:
        """In a forked child: this state's thread is the one that forked.

        Its parker and lock may have been held by a thread that no longer
        exists, and the wake-up eventfd is shared with the parent (a wake-up
        here would wake a thread there): fresh ones, made again on next use.
        """
        parker = _allocate_lock()
        parker.acquire()
        self._parker = parker
        self._release_wake_fd()
        self._fd_waiting = False
        self._lock = _allocate_lock()
        self.ident = ident
        self.native_id = native_id
        self.is_main = threading.main_thread().ident == ident
        self.recompute_interrupt()

    def finish(self) -> None:
        """Mark the thread ended, forget it, and run the done callbacks (idempotent)."""
        with self._lock:
            if self.finished:
                return
            # Release the thread's descriptor before the end is visible: whoever
            # sees ``finished`` (join, wait, done) sees no descriptor left behind.
            self._release_wake_fd()
            self.finished = True
            callbacks, self._done_callbacks = self._done_callbacks, []
        forget = _forget
        if forget is None:
            return  # interpreter teardown: module globals are gone
        forget(self)
        for callback in callbacks:
            callback()


_forget: Callable[[ThreadState], None] | None = None


def on_finish(forget: Callable[[ThreadState], None]) -> None:
    """Set what :meth:`ThreadState.finish` calls to drop a state from the registry."""
    global _forget
    _forget = forget
