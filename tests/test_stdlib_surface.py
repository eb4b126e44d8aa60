"""Our classes offer everything the stdlib's offer, old aliases included.

Old code calls ``Event.isSet()``, ``Condition.notifyAll()``, ``lock.acquire_lock()``
and passes arguments to ``threading.RLock()``; under the patch it gets our
classes, which must answer as the stdlib's do (same warnings, same results),
not with ``AttributeError`` or ``TypeError``.
"""

from __future__ import annotations

import queue
import sys
import threading
import warnings
from typing import Any

import pytest

import threadpatch


def _instances() -> dict[str, tuple[Any, Any]]:
    return {
        "Lock": (threading.Lock(), threadpatch.Lock()),
        "RLock": (threading.RLock(), threadpatch.RLock()),
        "Condition": (threading.Condition(), threadpatch.Condition()),
        "Semaphore": (threading.Semaphore(), threadpatch.Semaphore()),
        "BoundedSemaphore": (threading.BoundedSemaphore(), threadpatch.BoundedSemaphore()),
        "Event": (threading.Event(), threadpatch.Event()),
        "Barrier": (threading.Barrier(2), threadpatch.Barrier(2)),
        "Queue": (queue.Queue(), threadpatch.Queue()),
        "LifoQueue": (queue.LifoQueue(), threadpatch.LifoQueue()),
        "PriorityQueue": (queue.PriorityQueue(), threadpatch.PriorityQueue()),
        "SimpleQueue": (queue.SimpleQueue(), threadpatch.SimpleQueue()),
        "Queue.not_empty": (queue.Queue().not_empty, threadpatch.Queue().not_empty),
    }


@pytest.mark.parametrize("name", sorted(_instances()))
def test_every_stdlib_attribute_is_there(name: str) -> None:
    theirs, ours = _instances()[name]
    wanted = {a for a in dir(theirs) if not a.startswith("__")}
    wanted |= {a for a in ("__enter__", "__exit__", "__class_getitem__") if hasattr(theirs, a)}
    assert sorted(wanted - set(dir(ours))) == []


def _call(obj: Any, method: str) -> tuple[object, list[tuple[type[Warning], str]]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = getattr(obj, method)()
    return result, [(w.category, str(w.message)) for w in caught]


@pytest.mark.parametrize(
    ("make", "method"),
    [
        (lambda m: m.Event(), "isSet"),
        (lambda m: m.Condition(m.Lock()), "notifyAll"),
    ],
    ids=["Event.isSet", "Condition.notifyAll"],
)
def test_deprecated_aliases_answer_as_the_stdlib(make: Any, method: str) -> None:
    theirs, ours = make(threading), make(threadpatch)
    if method == "notifyAll":
        theirs.acquire()
        ours.acquire()
    assert _call(ours, method) == _call(theirs, method)
    assert _call(ours, method)[1], "the stdlib warns here: so must we"


def test_queue_condition_alias_wakes_the_queue_waiters() -> None:
    q: threadpatch.Queue[int] = threadpatch.Queue()
    with q.not_empty, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        q.not_empty.notifyAll()  # nobody waits: a no-op, as the stdlib's


@pytest.mark.parametrize("method", ["acquire_lock", "locked_lock", "release_lock"])
def test_lock_obsolete_synonyms(method: str) -> None:
    for impl, _rlock in threadpatch._sync.LOCK_IMPLEMENTATIONS.values():
        lock = impl()
        assert lock.acquire_lock() is True
        assert lock.locked_lock() is True
        assert lock.acquire_lock(False) is False
        assert lock.acquire_lock(True, 0) is False
        lock.release_lock()
        assert lock.locked_lock() is False
        assert hasattr(lock, method)


def test_patched_rlock_takes_the_arguments_the_stdlib_takes() -> None:
    native_warnings = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        native = threading.RLock(1, key="ignored")
        native_warnings = [(w.category, str(w.message)) for w in caught]
    with threadpatch.patched(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = threading.RLock(1, key="ignored")
        our_warnings = [(w.category, str(w.message)) for w in caught]
    assert isinstance(ours, threadpatch.RLock)
    assert our_warnings == native_warnings
    assert bool(native_warnings) == (sys.version_info >= (3, 13))
    with ours, ours:
        assert ours._is_owned()
    with native:
        pass
