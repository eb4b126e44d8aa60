"""Per-thread cancellation state, parking, and the registry of known threads.

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
for (see :meth:`ParkingLot.park_until`).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol, TypeVar

from . import _natives
from ._exceptions import DeadlineExpired, HubError, ThreadCancelled
from ._hub import get_hub

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "ParkingLot",
    "ThreadState",
    "WaitQueue",
    "all_states",
    "current_state",
    "state_for_thread",
]

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
_T = TypeVar("_T")
_ABSENT = object()


class ScopeLike(Protocol):
    """What the delivery logic needs from a deadline scope or a shield."""

    shield: bool
    timed_out: bool
    delivered: bool


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
        self.blocked_on: object = None
        self.finished = False
        self.is_main = False  # set when bound: the main thread waits in slices
        # The plain thread this state was made for by another thread (a cancel
        # that came before the thread used threadpatch); None once the thread
        # has bound it, or when a thread made its own.  See ``state_for_thread``.
        self.for_thread: threading.Thread | None = None
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
                first = i + 1
                break
        else:
            if self.cancel_requested:
                raise ThreadCancelled(f"thread {self.name!r} was cancelled")
        # The outermost expired scope wins: it is the one that must catch it.
        for i in range(first, len(scopes)):
            scope = scopes[i]
            if scope.timed_out:
                scope.delivered = True
                raise DeadlineExpired(scope)

    def recompute_interrupt(self) -> None:
        """Reset the fast flag after a scope ends (cancellation stays sticky)."""
        self.interrupt = (
            self.cancel_requested
            or get_hub().failure is not None
            or any(scope.timed_out for scope in self.scopes)
        )

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
                os.write(self._wake_fd, b"\1\0\0\0\0\0\0\0")
            except OSError:
                pass  # counter full or fd gone: the thread is awake either way

    def _make_wake_fd(self) -> int:
        """Make the wake-up eventfd (on the thread's first descriptor wait)."""
        if _natives.eventfd is None:  # pragma: no cover - non-Linux
            raise NotImplementedError("descriptor waits need eventfd")
        self._wake_fd = _natives.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return self._wake_fd

    def _make_poller(self) -> _natives.select.poll:  # type: ignore[name-defined]
        wake_fd = self._wake_fd if self._wake_fd >= 0 else self._make_wake_fd()
        poller = _natives.poll()
        poller.register(wake_fd, _natives.POLLIN)
        self._poller = poller
        return poller

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
            self._fd_waiting = True
            self.parked = True
            # An interrupt that arrived before _fd_waiting was set did not
            # write to the wake fd: look again before blocking.
            if self.interrupt:
                self.deliver()
            if self.is_main and (timeout is None or timeout > MAIN_THREAD_SLICE):
                timeout = MAIN_THREAD_SLICE  # see MAIN_THREAD_SLICE: a spurious wake
            if timeout is None or timeout == math.inf:
                ready = poller.poll()
            else:
                ready = poller.poll(min(math.ceil(timeout * 1000), 2**31 - 1) if timeout > 0 else 0)
        finally:
            self._fd_waiting = False
            self.parked = False
            for fd in registered:
                poller.unregister(fd)
        wake_fd = self._wake_fd
        result = []
        for fd, revents in ready:
            if fd == wake_fd:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_fd, 8)
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
        self._fd_waiting = True
        self.parked = True
        try:
            if self.interrupt:
                self.deliver()
            if self.is_main and (timeout is None or timeout > MAIN_THREAD_SLICE):
                timeout = MAIN_THREAD_SLICE  # see MAIN_THREAD_SLICE: a spurious wake
            if timeout is None or timeout == math.inf:
                ready = poller.poll()
            else:
                ready = poller.poll(min(math.ceil(timeout * 1000), 2**31 - 1) if timeout > 0 else 0)
        finally:
            self._fd_waiting = False
            self.parked = False
        result = 0
        for ready_fd, revents in ready:
            if ready_fd == fd:
                result = revents
            else:
                with contextlib.suppress(BlockingIOError):
                    os.read(ready_fd, 8)
        if self.interrupt:
            self.deliver()
        return result

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
        if _registry_lock is None:
            return  # interpreter teardown: module globals are gone
        with _registry_lock:
            if self.ident is not None and _by_ident.get(self.ident) is self:
                del _by_ident[self.ident]
            _unbound.discard(self)
        for callback in callbacks:
            callback()


class Parker(Protocol):
    """What can wait in a :class:`ParkingLot`: a ThreadState, or a plain native waiter."""

    def park(self, timeout: float | None = None) -> None: ...
    def unpark(self) -> None: ...


class WaitQueue(OrderedDict[_T, None]):
    """A FIFO of waiters with the ``deque`` methods waits use, each one O(1).

    A waiter that leaves (cancelled, timed out) removes itself from anywhere
    in the queue, and a woken waiter checks whether it is still queued: on a
    ``deque`` both scan, so with thousands of waiters every cancellation
    cost O(n).  Here the waiters are the keys of an ordered dict (a hash
    table threaded on a linked list): removal, membership and both ends are
    O(1), and the order stays first come, first served.

    A waiter is in the queue at most once: appending one that is already
    queued leaves it where it is.  Each operation is one C call, atomic under
    the GIL like the ``deque`` operations it replaces.
    """

    __slots__ = ()

    def append(self, waiter: _T) -> None:
        """Queue ``waiter`` last."""
        self[waiter] = None

    def appendleft(self, waiter: _T) -> None:
        """Queue ``waiter`` first (a woken waiter that keeps its place)."""
        self[waiter] = None
        self.move_to_end(waiter, last=False)

    def popleft(self) -> _T:
        """Remove and return the first waiter; IndexError if none."""
        try:
            return self.popitem(last=False)[0]
        except KeyError:
            raise IndexError("pop from an empty WaitQueue") from None

    def remove(self, waiter: _T) -> None:
        """Remove ``waiter``; ValueError if it is not queued."""
        if not self.discard(waiter):
            raise ValueError(f"{waiter!r} is not queued")

    def discard(self, waiter: _T) -> bool:
        """Remove ``waiter`` if it is queued; return whether it was."""
        return self.pop(waiter, _ABSENT) is not _ABSENT


class ParkingLot:
    """A FIFO of parked threads; any thread can wake the first or all of them."""

    __slots__ = ("_lock", "waiters")

    def __init__(self) -> None:
        self.waiters: WaitQueue[Parker] = WaitQueue()
        self._lock = _allocate_lock()

    def __len__(self) -> int:
        return len(self.waiters)

    def unpark_one(self) -> bool:
        """Wake the longest-waiting thread; False if nobody waits."""
        with self._lock:
            if not self.waiters:
                return False
            state = self.waiters.popleft()
        state.unpark()
        return True

    def unpark_all(self) -> int:
        with self._lock:
            waiters = list(self.waiters)
            self.waiters.clear()
        for state in waiters:
            state.unpark()
        return len(waiters)

    def park_until(
        self,
        predicate: Callable[[], bool],
        timeout: float | None = None,
        parker: Parker | None = None,
    ) -> bool:
        """Park the calling thread here until ``predicate()`` is true.

        ``predicate`` runs in the calling thread and may take what it waits
        for (a lock, an item): it is called at most once after returning True.
        ``parker`` is what the thread blocks on: its :class:`ThreadState` by
        default (a cancellation point), or e.g. a native waiter in the hub
        thread, which must never be interrupted.

        Returns:
            True once the predicate held, False if ``timeout`` passed first.

        Raises:
            ThreadCancelled: cancelled or a deadline expired while waiting; the
                predicate did not succeed, and a wake-up this thread received
                is passed on to the next waiter so that none is lost.
        """
        if predicate():
            return True
        state = parker if parker is not None else current_state()
        deadline = None if timeout is None else _monotonic() + timeout
        waiters, lock = self.waiters, self._lock
        with lock:
            waiters.append(state)
        ok = False
        try:
            while True:
                if predicate():
                    ok = True
                    return True
                if deadline is None:
                    state.park()
                else:
                    remaining = deadline - _monotonic()
                    if remaining <= 0:
                        ok = predicate()
                        return ok
                    state.park(remaining)
                with lock:
                    if state not in waiters:
                        # We were woken but may lose the race: keep our place.
                        waiters.appendleft(state)
        finally:
            with lock:
                notified = not waiters.discard(state)
            if notified and not ok:
                self.unpark_one()


# -- registry ------------------------------------------------------------------

_registry_lock = _allocate_lock()
_by_ident: dict[int, ThreadState] = {}
_unbound: set[ThreadState] = set()  # spawned, not yet running
_tls = _natives.local()


class _Reaper:
    """Lives in the thread-local storage of a thread; dies with the thread."""

    __slots__ = ("state",)

    def __init__(self, state: ThreadState) -> None:
        self.state = state

    def __del__(self) -> None:
        self.state.finish()


def current_state() -> ThreadState:
    """The calling thread's state, adopting the thread on first use."""
    try:
        return _tls.state  # type: ignore[no-any-return]
    except AttributeError:
        return bind_current(None)


def _thread_name(ident: int) -> str:
    # threading._active, not current_thread(): adopting a raw _thread thread
    # must not create a threading._DummyThread as a side effect.
    thread = threading._active.get(ident)  # type: ignore[attr-defined]
    return thread.name if thread is not None else f"thread-{ident}"


def bind_current(state: ThreadState | None) -> ThreadState:
    """Attach ``state`` (a new one if None) to the calling thread."""
    ident = _natives.get_ident()
    native_id = threading.get_native_id()
    stale = None
    with _registry_lock:
        if state is None:
            state = _by_ident.get(ident)  # created early by cancel(threading.Thread)?
            if state is not None and state.for_thread is not None and state.native_id != native_id:
                # Made for an earlier thread that had this ident and ended
                # without binding it: its cancel request is not ours.
                stale, state = state, None
            if state is None or state.finished:
                state = ThreadState()
        _unbound.discard(state)
        state.ident = ident
        state.for_thread = None  # from now on it lives and dies with this thread
        _by_ident[ident] = state
    if stale is not None:
        stale.finish()
    if state.name is None:
        state.name = _thread_name(ident)
    state.native_id = native_id
    state.is_main = threading.main_thread().ident == ident
    _tls.state = state
    _tls.reaper = _Reaper(state)
    return state


def register_unbound(state: ThreadState) -> None:
    """Remember a state whose thread has been asked to start but is not running yet."""
    with _registry_lock:
        _unbound.add(state)


def _outlived(state: ThreadState, thread: threading.Thread | None = None) -> bool:
    """True if ``state`` was made for a plain thread that is not ``thread`` or has ended.

    Such a state is never bound by its thread (which ended without using
    threadpatch), so nothing else would ever finish it.
    """
    made_for = state.for_thread
    return made_for is not None and (made_for is not thread or not made_for.is_alive())


def state_for_thread(thread: threading.Thread, create: bool = False) -> ThreadState | None:
    """The state of the running plain ``thread``; with ``create``, make one for it.

    A state made here (to cancel a thread that has not used threadpatch yet)
    is bound by the thread when it first uses threadpatch, and dropped if the
    thread ends first: thread idents are reused, and a later thread with the
    same ident must not inherit it.  The caller checks that the thread runs;
    a thread that ends meanwhile gets a finished state.
    """
    ident = thread.ident
    if ident is None:
        return None
    with _registry_lock:
        state = _by_ident.get(ident)
        stale = state is not None and _outlived(state, thread)
        if stale or (state is None and create):
            if stale:
                _by_ident.pop(ident)
            old, state = state, None
            if create:
                state = ThreadState(_thread_name(ident))
                state.ident = ident
                state.native_id = thread.native_id
                state.for_thread = thread
                _by_ident[ident] = state
        else:
            old = None
    if old is not None:
        old.finish()
    if state is not None and state.for_thread is thread and not thread.is_alive():
        state.finish()  # it ended between the caller's check and now
    return state


def all_states() -> list[ThreadState]:
    """Every live thread threadpatch knows: spawned, adopted, or marked for cancel.

    The hub thread is never among them: it cannot be cancelled or waited for.
    States made for plain threads that have ended meanwhile are dropped here.
    """
    hub_ident = get_hub().ident
    with _registry_lock:
        states = [s for s in (*_by_ident.values(), *_unbound) if s.ident != hub_ident]
    outlived = [s for s in states if _outlived(s, s.for_thread)]
    for state in outlived:
        state.finish()
    return [s for s in states if s not in outlived] if outlived else states


def _on_hub_failure() -> None:
    for state in all_states():
        state.interrupt = True
        state.wake()


get_hub().add_failure_listener(_on_hub_failure)


def _after_fork_in_child() -> None:
    # Only the forking thread survives.  Its parker and lock may have been
    # held by a thread that no longer exists: give it fresh ones.
    global _registry_lock
    _registry_lock = _allocate_lock()
    me = getattr(_tls, "state", None)
    others = [s for s in [*_by_ident.values(), *_unbound] if s is not me]
    _by_ident.clear()
    _unbound.clear()
    for state in others:
        state.finished = True
        state._release_wake_fd()
    if me is not None:
        parker = _allocate_lock()
        parker.acquire()
        me._parker = parker
        # The wake-up eventfd is shared with the parent after fork: a wake-up
        # here would wake a thread there.  Make a fresh one on next use.
        me._release_wake_fd()
        me._fd_waiting = False
        me._lock = _allocate_lock()
        me.ident = _natives.get_ident()
        me.native_id = threading.get_native_id()
        me.is_main = threading.main_thread().ident == me.ident
        _by_ident[me.ident] = me
        me.recompute_interrupt()


os.register_at_fork(after_in_child=_after_fork_in_child)
