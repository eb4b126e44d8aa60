"""The registry of the threads threadpatch knows: spawned, adopted, or marked for cancel.

Every OS thread that touches threadpatch gets one :class:`ThreadState`, bound
to it in thread-local storage on first use (adoption) and dropped when the
thread ends (a reaper object in that storage dies with the thread).  A state
can also be made *for* a running plain thread by another thread, to cancel it
before it has used threadpatch (see :func:`state_for_thread`).
"""

from __future__ import annotations

import os
import threading

from . import _natives, _state
from ._hub import get_hub
from ._state import ThreadState

__all__ = [
    "all_states",
    "bind_current",
    "current_state",
    "register_unbound",
    "state_for_thread",
    "thread_local",
]

_allocate_lock = _natives.allocate_lock

_registry_lock = _allocate_lock()
_by_ident: dict[int, ThreadState] = {}
_unbound: set[ThreadState] = set()  # spawned, not yet running
_tls = _natives.local()
#: The thread-local storage whose ``state`` is the calling thread's ThreadState.
thread_local = _tls


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
    """Attach ``state`` (a new one if None) to the calling thread.

    A state already registered under the calling thread's ident is the
    thread's own only if another thread made it for this very thread, to
    cancel it before it used threadpatch (see :func:`state_for_thread`).  Any
    other is an earlier thread's that had this ident and ended without its
    state being finished -- it used threadpatch in its own teardown, after
    its thread-local storage was cleared -- and is finished here, never
    adopted: its late reaper would end the new thread's state.
    """
    ident = _natives.get_ident()
    native_id = threading.get_native_id()
    with _registry_lock:
        previous = _by_ident.get(ident)
        if state is None:
            if previous is not None and _made_for_caller(previous, ident, native_id):
                state = previous
            else:
                state = ThreadState()
        stale = previous if previous is not state else None
        _unbound.discard(state)
        state.ident = ident
        state.for_thread = None  # from now on it lives and dies with this thread
        _by_ident[ident] = state
    if stale is not None:
        stale.finish()
    if state.name is None:
        state.name = _thread_name(ident)
    state.native_id = native_id
    state.bound_thread = threading._active.get(ident)  # type: ignore[attr-defined]
    state.is_main = threading.main_thread().ident == ident
    _tls.state = state
    _tls.reaper = _Reaper(state)
    return state


def _made_for_caller(state: ThreadState, ident: int, native_id: int) -> bool:
    """True if ``state`` was made by another thread for the calling one, and is live."""
    made_for = state.for_thread
    if made_for is None or state.finished:
        return False
    active = threading._active.get(ident)  # type: ignore[attr-defined]
    # In its teardown a threading.Thread has left threading._active.
    return made_for is active if active is not None else state.native_id == native_id


def register_unbound(state: ThreadState) -> None:
    """Remember a state whose thread has been asked to start but is not running yet."""
    with _registry_lock:
        _unbound.add(state)


def _outlived(state: ThreadState, thread: threading.Thread | None = None) -> bool:
    """True if nothing but the registry will ever finish ``state``.

    That is a state made for a plain thread that is not ``thread`` or has
    ended (its thread ended without using threadpatch, so never bound it), or
    a state bound by a thread that has ended without its reaper running: it
    used threadpatch in its own teardown, after its thread-local storage was
    cleared, and the storage made then is never freed (CPython 3.11, 3.12).
    """
    made_for = state.for_thread
    if made_for is not None:
        return made_for is not thread or not made_for.is_alive()
    if state.finished or state.native_id is None:
        return False
    active = threading._active.get(state.ident)  # type: ignore[attr-defined]
    if active is not None:
        # Another threading.Thread has the ident now; a _DummyThread may be
        # the raw thread's own, made after it bound the state.
        return active is not state.bound_thread and not isinstance(active, _DummyThread)
    return _HAVE_TASKS and not os.path.exists(f"/proc/self/task/{state.native_id}")


_DummyThread = threading._DummyThread
# Where /proc is not mounted, a thread's end is not seen here (its state then stays).
_HAVE_TASKS = os.path.isdir("/proc/self/task")


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
        state.forget_after_fork()
    if me is not None:
        ident = _natives.get_ident()
        me.survive_fork(ident, threading.get_native_id())
        # threading's own fork handler ran first: this is its Thread (a new
        # _MainThread if the thread was a raw one).
        me.bound_thread = threading._active.get(ident)  # type: ignore[attr-defined]
        _by_ident[ident] = me


os.register_at_fork(after_in_child=_after_fork_in_child)


def _forget(state: ThreadState) -> None:
    if _registry_lock is None:
        return  # interpreter teardown: module globals are gone
    with _registry_lock:
        if state.ident is not None and _by_ident.get(state.ident) is state:
            del _by_ident[state.ident]
        _unbound.discard(state)


_state.on_finish(_forget)
