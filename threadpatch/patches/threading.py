"""Make threading's locks, conditions, semaphores, events, barriers and joins cancellable.

``Thread``, ``_start_new_thread``, ``get_ident`` and ``_shutdown`` stay: the
threads are real.  ``Timer.finished``, ``Thread._started`` and the waits of
``queue.Queue`` come from these names at call time, so they follow.
``_allocate_lock`` makes the waiter locks of standard ``Condition`` objects
made *before* patching (in queues, futures, events) cancellable too.
``Thread.join`` is patched on the class: it waits natively, in C.
``RLock`` is a factory, as the stdlib's is: ours, except for the set-up of
code whose RLocks signal handlers take (see ``_sync.makes_signal_safe_locks``).
"""

from .. import _sync, _threading

TARGET = "threading"
REPLACEMENTS = {
    "Lock": _sync.Lock,
    "_allocate_lock": _sync.Lock,
    "RLock": _sync.patched_rlock,
    "Condition": _sync.Condition,
    "Semaphore": _sync.Semaphore,
    "BoundedSemaphore": _sync.BoundedSemaphore,
    "Event": _sync.Event,
    "Barrier": _sync.Barrier,
}
CLASS_REPLACEMENTS = {"Thread": {"join": _threading.join}}
